"""Polling over real HTTP against the channel simulator: every platform's signing and paging, the watermark with
overlap, retries with backoff, failed runs, reconciliation by HTTP, and a real RQ worker doing the sync."""
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import func, select

from jobs import queues
from shared.extensions import db
from shared.models import ChannelConnection, InboxItem, Order, SyncRun
from shared.services import channel_settings, polling, reconciliation
from devtools.simulators.channels import DEFAULT_CREDENTIALS, ChannelSimulator
from tests.conftest import REDIS_URL
from tests.factories import ADMIN, SYNC_SKUS, connect_channels
from tests.test_worker import _redis, _worker_env

PLATFORMS = ("taobao", "jd", "pinduoduo", "douyin", "shopify", "woocommerce")


@pytest.fixture
def simulator():
    sim = ChannelSimulator(seed=3, skus=list(SYNC_SKUS), start=datetime.now(UTC) - timedelta(hours=2))
    sim.start()
    yield sim
    sim.stop()


def use_simulator(channels: dict, sim: ChannelSimulator) -> None:
    """Give each channel the simulator's address and the platform's credentials (the caller commits)."""
    for platform in PLATFORMS:
        creds = DEFAULT_CREDENTIALS[platform]
        channel_settings.connect(channels[platform], ADMIN, base_url=sim.url(platform),
                                 app_key=creds.get("app_key") or creds.get("consumer_key"),
                                 app_secret=creds.get("app_secret") or creds.get("consumer_secret"),
                                 access_token=creds.get("access_token"))


@pytest.fixture
def polled(sync_channels, simulator):
    use_simulator(sync_channels, simulator)
    db.session.commit()
    return sync_channels


def orders_of(channel) -> dict[str, Order]:
    return {o.channel_order_id: o for o in db.session.execute(
        select(Order).where(Order.channel_id == channel.id)).scalars()}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_poll_pages_through_the_platform_and_every_order_arrives_once(polled, simulator, platform):
    channel = polled[platform]
    for _ in range(7):
        simulator.add_order(platform, state="paid")
    simulator.advance(40, platform=platform)  # payments, address changes, refunds, shipping, duplicates
    connection = db.session.execute(select(ChannelConnection).where(
        ChannelConnection.channel_id == channel.id)).scalar_one()
    adapter_page = type(polling.adapter_for(channel.kind)).page_size
    type(polling.adapter_for(channel.kind)).page_size = 3  # small pages, so paging is exercised
    try:
        # The simulator stamps changes up to the wall clock; a poll a few seconds later sees them settled.
        run = polling.poll(channel.id, db.session.commit, sleep=lambda s: None,
                           now=datetime.now(UTC) + timedelta(seconds=5))
    finally:
        type(polling.adapter_for(channel.kind)).page_size = adapter_page
    assert run.status == "ok", run.error
    assert run.pages >= 3 and connection.watermark is not None and connection.last_success_at is not None
    now = datetime.now(UTC)
    expected = dict(simulator.ids_and_statuses(platform, now - timedelta(days=30), now + timedelta(days=1)))
    here = orders_of(channel)
    failed = db.session.execute(select(InboxItem.external_id, InboxItem.last_error).where(
        InboxItem.channel_id == channel.id, InboxItem.status != "done")).all()
    assert failed == []
    assert set(here) == set(expected)
    assert {cid: o.platform_status for cid, o in here.items()} == expected
    # The overlap brings some back: nothing doubles.
    again = polling.poll(channel.id, db.session.commit, sleep=lambda s: None)
    assert again.status == "ok" and len(orders_of(channel)) == len(expected)


def test_a_failing_page_is_retried_with_backoff(polled, simulator):
    channel = polled["taobao"]
    simulator.add_order("taobao", state="paid")
    simulator.fail_next("taobao", 2, kind="http500")
    waits = []
    run = polling.poll(channel.id, db.session.commit, sleep=waits.append)
    assert run.status == "ok" and waits == [0.5, 1.0] and len(orders_of(channel)) == 1


@pytest.mark.parametrize("kind", ["http500", "error_body"])
def test_after_the_retries_the_run_fails_and_the_watermark_stays(polled, simulator, kind):
    channel = polled["jd"]
    connection = db.session.execute(select(ChannelConnection).where(
        ChannelConnection.channel_id == channel.id)).scalar_one()
    simulator.add_order("jd", state="paid")
    simulator.fail_next("jd", polling.RETRIES + 1, kind=kind)
    waits = []
    run = polling.poll(channel.id, db.session.commit, sleep=waits.append)
    assert run.status == "failed" and "after 3 retries" in run.error and waits == [0.5, 1.0, 2.0]
    assert connection.watermark is None and connection.consecutive_failures == 1 and connection.last_error
    assert orders_of(channel) == {}
    # The next poll asks for the same window again.
    assert polling.poll(channel.id, db.session.commit, sleep=waits.append).status == "ok"
    assert len(orders_of(channel)) == 1 and connection.consecutive_failures == 0


@pytest.mark.parametrize("platform", ["taobao", "jd", "pinduoduo", "douyin"])
def test_a_wrong_app_secret_is_refused_by_the_platform_signature_check(polled, simulator, platform):
    channel_settings.connect(polled[platform], ADMIN, app_secret="not-the-secret")
    db.session.commit()
    simulator.add_order(platform, state="paid")
    run = polling.poll(polled[platform].id, db.session.commit, sleep=lambda s: None)
    assert run.status == "failed" and orders_of(polled[platform]) == {}
    assert any(word in run.error for word in ("signature", "签名", "sign")), run.error


def test_due_channels_follow_each_channels_own_period(polled):
    now = datetime.now(UTC)
    assert set(polling.due_channel_ids(now)) >= {polled[p].id for p in PLATFORMS}
    for connection in db.session.execute(select(ChannelConnection)).scalars():
        connection.last_poll_at = now - timedelta(minutes=3)
    channel_settings.connect(polled["jd"], ADMIN, poll_minutes=2)
    db.session.commit()
    assert polling.due_channel_ids(now) == [polled["jd"].id]
    assert polled["offline"].id not in polling.due_channel_ids(now + timedelta(hours=1))


def test_long_gaps_are_cut_into_windows_the_platform_accepts():
    start = datetime(2026, 11, 20, tzinfo=UTC)
    pieces = polling.windows(start, start + timedelta(hours=1, minutes=10), timedelta(minutes=30))
    assert [(b - a).total_seconds() / 60 for a, b in pieces] == [30, 30, 10]
    assert pieces[0][0] == start and pieces[-1][1] == start + timedelta(hours=1, minutes=10)


def test_reconciliation_over_http_finds_and_fetches_an_order_polling_missed(polled, simulator):
    channel = polled["douyin"]
    simulator.add_order("douyin", state="paid")
    assert polling.poll(channel.id, db.session.commit, sleep=lambda s: None).status == "ok"
    connection = db.session.execute(select(ChannelConnection).where(
        ChannelConnection.channel_id == channel.id)).scalar_one()
    simulator.add_order("douyin", state="paid", created=datetime.now(UTC) - timedelta(hours=30))
    report = reconciliation.reconcile(channel.id, ADMIN, db.session.commit, trigger="manual")
    assert report.status == "ok" and report.missing_here == 1 and report.refetched == 1
    assert len(orders_of(channel)) == 2 and connection.watermark is not None


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_worker_polls_and_processes_through_redis(live_apps, simulator):
    """The cron's poll job and the processing jobs run in `orderloom worker --burst` against Redis."""
    from rq import Queue

    redis = _redis()
    redis.flushdb()
    with live_apps.core.app_context():
        channels = connect_channels()
        use_simulator(channels, simulator)
        db.session.commit()
        channel_id = channels["pinduoduo"].id
    for _ in range(25):
        simulator.add_order("pinduoduo", state="paid")
    Queue(queues.SYNC, connection=redis).enqueue("jobs.sync.poll_channel", channel_id)
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst", "--simple"]
    finished = subprocess.run(command, env=_worker_env(live_apps.url), capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parent.parent)
    assert finished.returncode == 0, finished.stderr
    assert "job=process_inbox" in finished.stderr  # the poll queued processing jobs, and the worker ran them
    with live_apps.core.app_context():
        made = db.session.execute(select(func.count()).select_from(Order).where(Order.channel_id == channel_id)
                                  ).scalar()
        runs = db.session.execute(select(SyncRun.status)).scalars().all()
        assert made == 25 and runs == ["ok"]
        assert db.session.execute(select(func.count()).select_from(InboxItem)
                                  .where(InboxItem.status != "done")).scalar() == 0
    # the tests flush their Redis database: never the default one (a URL without a number means db 0)
    assert Redis.from_url(REDIS_URL).connection_pool.connection_kwargs.get("db", 0) != 0


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_burst_of_webhooks_starts_one_drain_job_that_a_real_worker_runs(live_apps):
    """Twenty webhooks, one job in the queue: the drain takes them in batches, not one job each."""
    from rq import Queue

    from portal import create_app
    from tests import channel_payloads as p
    from tests.conftest import app_config

    redis = _redis()
    redis.flushdb()
    with live_apps.core.app_context():
        connect_channels()
        db.session.commit()
    portal = create_app(app_config(live_apps.url) | {"REDIS_URL": REDIS_URL, "JOBS_INLINE": False})
    client = portal.test_client()
    for number in range(20):
        raw = p.body(p.shopify(order_id=7_000_000 + number))
        assert client.post("/hooks/SH", data=raw, headers=p.signed_headers("shopify", raw)).status_code == 202
    assert Queue(queues.SYNC, connection=redis).count == 1
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst", "--simple"]
    finished = subprocess.run(command, env=_worker_env(live_apps.url), capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parent.parent)
    assert finished.returncode == 0, finished.stderr
    with live_apps.core.app_context():
        statuses = db.session.execute(select(InboxItem.status, func.count()).group_by(InboxItem.status)).all()
        assert statuses == [("done", 20)]
        assert db.session.execute(select(func.count()).select_from(Order)).scalar() == 20
    with portal.app_context():
        db.engine.dispose()
