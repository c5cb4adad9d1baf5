"""Jobs queued in a transaction are sent after it commits, and never for work that was rolled back."""
from shared import dispatch
from shared.extensions import db

SENT: list[tuple] = []


def record_job(*args):
    SENT.append(args)


def test_jobs_wait_for_commit_and_vanish_with_rollback(session):
    SENT.clear()
    dispatch.after_commit("tests.test_dispatch.record_job", "kept")
    try:
        with db.session.begin_nested():
            dispatch.after_commit("tests.test_dispatch.record_job", "in failed savepoint")
            raise RuntimeError("the savepoint fails")
    except RuntimeError:
        pass
    assert SENT == []  # nothing is sent before the commit
    db.session.commit()
    assert SENT == [("kept",)]
    dispatch.after_commit("tests.test_dispatch.record_job", "rolled back")
    db.session.rollback()
    db.session.commit()
    assert SENT == [("kept",)]


def test_inline_mode_runs_the_job_in_place(session):
    SENT.clear()
    assert dispatch.jobs_run_inline()  # the test apps set JOBS_INLINE
    dispatch.send("tests.test_dispatch.record_job", 1, 2)
    assert SENT == [(1, 2)]
