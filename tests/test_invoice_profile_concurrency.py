"""Concurrent requests for one customer's invoice profiles keep the rules: one default, at most 20 profiles.
Real commits on SQLite and PostgreSQL."""
import threading

from sqlalchemy import func, select

from shared.extensions import db
from shared.models import InvoiceProfile
from shared.services import customers, invoice_profiles
from shared.services.errors import ValidationFailed
from tests.factories import ADMIN, PASSWORD

CLIENTS = 24


def test_concurrent_first_profiles_make_one_default_and_stop_at_the_limit(live_apps):
    app = live_apps.core
    with app.app_context():
        customer_id = customers.create_account("李雷", "13900001111", "li.lei@example.com", PASSWORD, ADMIN).id
        db.session.commit()
    start = threading.Barrier(CLIENTS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def client(number: int):
        with app.app_context():
            start.wait()
            try:
                invoice_profiles.create_profile(customer_id, {"kind": "individual", "name": f"李雷{number}"}, ADMIN)
                db.session.commit()
                result = "saved"
            except ValidationFailed as refused:
                db.session.rollback()
                result = refused.code
            except Exception as exc:  # anything else is a bug the assertion below shows
                db.session.rollback()
                result = f"error: {exc!r}"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(set(outcomes)) == ["saved", "too_many_profiles"], outcomes
    assert outcomes.count("saved") == invoice_profiles.MAX_PROFILES
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(InvoiceProfile))
        defaults = db.session.scalar(select(func.count()).select_from(InvoiceProfile)
                                     .where(InvoiceProfile.is_default.is_(True)))
        assert (count, defaults) == (invoice_profiles.MAX_PROFILES, 1)
