"""Outbound webhooks (outbox written with the change, signed delivery, backoff, dead letter), sync alerts
delivered to a group robot, and reconciliation against the platform's ids."""
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from jobs.sync import check_sync_health, process_inbox
from jobs.webhooks import deliver_outbox
from shared.channels.signing import verify_body_hmac
from shared.extensions import db
from shared.models import (ChannelConnection, InboxItem, Order, OutboxEvent, ReconciliationReport, SyncAlert,
                           WebhookDelivery)
from shared.services import inbox, orders, outbox, reconciliation
from shared.services.errors import ValidationFailed
from shared.timekeeping import utc_now
from tests import channel_payloads as p
from tests.factories import ADMIN
from tests.robot_receiver import RobotReceiver

SECRET = "subscriber-secret-0123456789"


def ingest(channel, *raw_orders):
    ids = inbox.store(channel, "poll", [p.body(order) for order in raw_orders])
    db.session.commit()
    process_inbox(ids)


def test_every_order_change_writes_an_outbox_row_in_the_same_transaction(create_order):
    order = create_order()
    orders.transition_order(order, "on_hold", ADMIN, reason="customer asked")
    db.session.rollback()  # the hold is undone, and so is its event
    events = db.session.execute(select(OutboxEvent.event_type).where(OutboxEvent.order_id == order.id)
                                .order_by(OutboxEvent.id)).scalars().all()
    assert events == ["order.created"]
    orders.transition_order(order, "cancelled", ADMIN, reason="customer asked")
    db.session.commit()
    event = db.session.execute(select(OutboxEvent).where(OutboxEvent.event_type == "order.cancelled")).scalar_one()
    assert event.payload["order"]["status"] == "cancelled" and event.payload["event_id"] == event.event_id
    assert event.payload["order"]["shipping_address"]["phone"] == "138****5678"  # subscribers get masked contacts


def test_deliveries_are_signed_and_logged(create_order):
    with RobotReceiver(answer={"ok": True}) as receiver:
        outbox.create_subscription("ERP", receiver.url + "/orderloom", SECRET, "order.*", ADMIN)
        db.session.commit()
        order = create_order()
        deliver_outbox()
        assert len(receiver.requests) == 1
        request = receiver.requests[0]
        assert verify_body_hmac(SECRET, request.raw, request.headers["X-Orderloom-Hmac-Sha256"])
        body = json.loads(request.raw)
        assert body["order"]["order_no"] == order.order_no and body["event"] == "order.created"
        assert request.headers["X-Orderloom-Event-Id"] == body["event_id"]
    delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert delivery.status == "delivered" and delivery.last_status_code == 200 and delivery.attempts == 1


def test_failed_deliveries_back_off_then_dead_letter_and_can_be_sent_again(create_order):
    with RobotReceiver(answer="down for maintenance", status=503) as receiver:
        subscription = outbox.create_subscription("ERP", receiver.url, SECRET, "order.created", ADMIN)
        db.session.commit()
        create_order()
        waits = []
        for _ in range(outbox.MAX_ATTEMPTS):
            deliver_outbox()
            delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
            if delivery.status == "retry":
                waits.append(round((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()))
                delivery.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
                db.session.commit()
        assert delivery.status == "dead" and delivery.attempts == outbox.MAX_ATTEMPTS
        assert waits == [30, 60, 120, 240, 480] and "HTTP 503" in delivery.last_error
        receiver.set_answer({"ok": True})
        outbox.redeliver(delivery.id, ADMIN)
        db.session.commit()
        deliver_outbox()
        assert delivery.status == "delivered" and len(receiver.requests) == outbox.MAX_ATTEMPTS + 1
    assert subscription.active


def test_an_unreachable_subscriber_is_a_retry_not_a_crash(create_order):
    outbox.create_subscription("gone", "http://127.0.0.1:9/nothing", SECRET, "order.*", ADMIN)
    db.session.commit()
    create_order()
    deliver_outbox()
    delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert delivery.status == "retry" and "ConnectError" in delivery.last_error


@pytest.mark.parametrize("url, secret, field", [("ftp://x", SECRET, "url"), ("https://erp.example", "short", "secret")])
def test_bad_subscriptions_are_refused(session, url, secret, field):
    with pytest.raises(ValidationFailed) as refused:
        outbox.create_subscription("ERP", url, secret, "order.*", ADMIN)
    assert refused.value.field == field


def test_a_silent_channel_raises_one_alert_delivered_to_the_robot(apps, sync_channels):
    connection = db.session.execute(select(ChannelConnection).where(
        ChannelConnection.channel_id == sync_channels["taobao"].id)).scalar_one()
    connection.last_success_at = datetime.now(UTC) - timedelta(minutes=11)  # two 5-minute periods and more
    connection.last_error = "TOP error 27: invalid session"
    db.session.commit()
    with RobotReceiver() as receiver:
        apps.core.config.update(ALERT_ROBOT_KIND="wecom", ALERT_ROBOT_URL=receiver.url + "/cgi-bin/webhook/send")
        try:
            assert check_sync_health() >= 1
            assert check_sync_health() == 0  # still open: not sent again
        finally:
            apps.core.config.update(ALERT_ROBOT_KIND="", ALERT_ROBOT_URL="")
        texts = [r.json["markdown"]["content"] for r in receiver.requests]
    alert = db.session.execute(select(SyncAlert).where(SyncAlert.kind == "not_syncing",
                                                       SyncAlert.channel_id == sync_channels["taobao"].id)
                               ).scalar_one()
    assert alert.delivered and any("天猫旗舰店" in text and "invalid session" in text for text in texts)
    connection.last_success_at = datetime.now(UTC)
    db.session.commit()
    check_sync_health()
    assert alert.resolved_at is not None


def test_a_failure_rate_over_the_threshold_raises_an_alert_shown_without_a_robot(sync_channels):
    channel = sync_channels["jd"]
    good = [p.jd(order_id=f"9{n:05d}") for n in range(15)]
    bad = [p.jd(order_id=f"8{n:05d}", state="SOMETHING_NEW") for n in range(10)]
    ingest(channel, *good, *bad)
    check_sync_health()
    alert = db.session.execute(select(SyncAlert).where(SyncAlert.kind == "failure_rate")).scalar_one()
    assert alert.channel_id == channel.id and "10 of 25" in alert.message and not alert.delivered


def test_reconciliation_reports_and_refetches_what_is_missing(sync_channels):
    channel = sync_channels["taobao"]
    base = p.recent(120)
    ingest(channel, p.taobao(tid="1001", created=base), p.taobao(tid="1002", created=base),
           p.taobao(tid="1003", created=base))
    platform_orders = [
        p.taobao(tid="1001", created=base),  # same
        p.taobao(tid="1002", created=base, status="TRADE_CLOSED", modified=base + timedelta(minutes=30)),  # behind
        p.taobao(tid="1004", created=base),  # never arrived here
    ]  # 1003 is gone from the platform's list
    report = reconciliation.reconcile(channel.id, ADMIN, db.session.commit, trigger="manual",
                                      platform_orders=platform_orders)
    assert (report.channel_count, report.local_count) == (3, 3)
    assert (report.missing_here, report.missing_there, report.mismatched, report.refetched) == (1, 1, 1, 2)
    kinds = {d.channel_order_id: d.kind for d in reconciliation.differences(report.id)}
    assert kinds == {"1004": "missing_here", "1003": "missing_there", "1002": "status_mismatch"}
    headers, rows = reconciliation.report_rows(report.id)
    assert headers[0] == "kind" and len(rows) == 3
    refetched = db.session.execute(select(InboxItem.id).where(InboxItem.source == "refetch")).scalars().all()
    process_inbox(refetched)  # inline mode processed them already; the job is idempotent
    statuses = dict(db.session.execute(select(Order.channel_order_id, Order.status)).all())
    assert statuses["1004"] == "confirmed" and statuses["1002"] == "cancelled"
    again = reconciliation.reconcile(channel.id, ADMIN, db.session.commit, trigger="manual",
                                     platform_orders=platform_orders)
    assert (again.missing_here, again.mismatched) == (0, 0)


def test_reconciliation_runs_once_a_day_after_two_in_the_morning_merchant_time(sync_channels):
    night = datetime(2026, 11, 21, 17, 30, tzinfo=UTC)  # 01:30 in Shanghai
    assert reconciliation.due_channel_ids(night) == []
    morning = datetime(2026, 11, 21, 18, 5, tzinfo=UTC)  # 02:05 in Shanghai
    due = reconciliation.due_channel_ids(morning)
    assert sync_channels["taobao"].id in due and sync_channels["offline"].id not in due
    db.session.add(ReconciliationReport(channel_id=sync_channels["taobao"].id, window_start=morning,
                                        window_end=morning, trigger="schedule", started_at=morning))
    db.session.commit()
    assert sync_channels["taobao"].id not in reconciliation.due_channel_ids(morning + timedelta(minutes=10))


def test_outbox_rows_count_one_per_change(sync_channels):
    ingest(sync_channels["taobao"], p.taobao())
    assert db.session.execute(select(func.count()).select_from(OutboxEvent)).scalar() == 1


def test_reconciliation_compares_ids_with_tabs_backslashes_and_missing_statuses_exactly(create_order, backend):
    """Both sides become COPY-text lines (SQLite) or COPY rows joined by the database (PostgreSQL); an id or status
    with characters COPY escapes must not look different."""
    awkward = ["A\\B", "TAB\tID", "LINE\nBREAK", "CR\rID", "plain-1", "中文单号"]
    orders = [create_order(channel_order_id=external) for external in awkward]
    for order, status in zip(orders, ("WAIT", "WAIT\\X", None, "A\r\nB", "DONE", "已发货"), strict=True):
        order.platform_status, order.platform_modified_at = status, utc_now()
    db.session.flush()
    since = utc_now() - timedelta(hours=1)
    same = {"A\\B": "WAIT", "TAB\tID": "WAIT\\X", "LINE\nBREAK": None, "CR\rID": "A\r\nB", "plain-1": "DONE",
            "中文单号": "已发货"}
    changed = {**same, "TAB\tID": "OTHER", "LINE\nBREAK": "NOW SET", "NEW\\ONE": "WAIT", "NEW\tNULL": None}
    del changed["plain-1"]
    expected = ({"NEW\\ONE", "NEW\tNULL"}, {"plain-1"}, {"TAB\tID", "LINE\nBREAK"})
    if backend == "postgresql":
        channel_id = orders[0].channel_id
        assert reconciliation.compare_in_database(channel_id, since, same) == (set(), set(), set(), len(awkward))
        assert reconciliation.compare_in_database(channel_id, since, changed) == (*expected, len(awkward))
        assert reconciliation.compare_in_database(channel_id, since, {}) == (set(), set(awkward), set(), len(awkward))
    ours = reconciliation.local_lines(orders[0].channel_id, since)  # SQLite's way, on both backends
    assert reconciliation.compare(reconciliation.item_lines(same), ours) == (set(), set(), set())
    assert reconciliation.compare(reconciliation.item_lines(changed), ours) == expected


@pytest.mark.parametrize("size", [1, 2, 5])
def test_copy_batches_are_whole_rows_and_join_to_the_same_copy_text(size):
    """The COPY text is sent in pieces of `size` rows: every piece ends a row, nothing is lost or doubled at a piece's
    edge, and escaping (chosen once for all items) is the same in every piece."""
    plain = {f"38{i:011d}": "WAIT_SELLER_SEND_GOODS" for i in range(7)}
    awkward = {**plain, "TAB\tID": None, "CR\rID": "A\\B\n"}
    for pairs in (plain, awkward):
        pieces = list(reconciliation.copy_batches(pairs, size=size))
        assert len(pieces) == -(-len(pairs) // size) and all(piece.endswith("\n") for piece in pieces)
        assert sum(piece.count("\n") for piece in pieces) == len(pairs)
        assert "".join(pieces).encode() == reconciliation.copy_text(pairs)
    assert reconciliation.copy_text(plain) == "".join(f"{key}\tWAIT_SELLER_SEND_GOODS\n" for key in plain).encode()
    assert reconciliation.copy_text(awkward).endswith(b"TAB\\tID\t\\N\nCR\\rID\tA\\\\B\\n\n")
    assert list(reconciliation.copy_batches({})) == []
    for special, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        for alone in ({**plain, f"X{special}Y": "S"}, {**plain, "XY": f"S{special}"}):  # one special, id or status
            assert escaped in "".join(reconciliation.copy_batches(alone, size=size))
    assert "\\N" in "".join(reconciliation.copy_batches({**plain, "XY": None}, size=size))


@pytest.mark.parametrize("apps", ["postgresql"], indirect=True)  # the COPY and the database join: PostgreSQL's path
def test_reconciliation_in_the_database_is_the_same_whatever_the_copy_piece_size(create_order, backend, monkeypatch):
    """PostgreSQL receives the items in COPY pieces; piece edges (one row per piece, or a piece that holds the
    awkward rows) change nothing in the report."""
    assert backend == "postgresql"
    ids = ["TAB\tID", "A\\B", "p-1", "p-2", "p-3", "中文单号"]
    orders = [create_order(channel_order_id=external) for external in ids]
    for order in orders:
        order.platform_status, order.platform_modified_at = "WAIT", utc_now()
    db.session.flush()
    since = utc_now() - timedelta(hours=1)
    theirs = {"TAB\tID": "DONE", "A\\B": "WAIT", "p-1": None, "p-3": "WAIT", "中文单号": "WAIT", "NEW\nONE": "WAIT"}
    expected = ({"NEW\nONE"}, {"p-2"}, {"TAB\tID", "p-1"}, len(ids))
    for size in (1, 2, 4, reconciliation.COPY_BATCH):
        monkeypatch.setattr(reconciliation, "COPY_BATCH", size)
        assert reconciliation.compare_in_database(orders[0].channel_id, since, theirs) == expected


def test_report_differences_written_by_copy_equal_those_written_by_insert(create_order, backend, monkeypatch):
    """PostgreSQL writes the report's differences with one COPY: the rows read back are the ones the multi-row
    insert writes (SQLite's way), values with tabs, backslashes, newlines, Chinese and missing statuses included."""
    from shared.models import Channel, ReconciliationDifference

    ids = ["TAB\tID", "A\\B", "LINE\nBREAK", "p-1", "中文单号"]
    orders = [create_order(channel_order_id=external) for external in ids]
    for order, status in zip(orders, ("WAIT\\X", "WAIT", None, "DONE", "已发货"), strict=True):
        order.platform_status, order.platform_modified_at = status, utc_now()
    db.session.flush()
    channel = db.session.get(Channel, orders[0].channel_id)
    theirs = {"TAB\tID": "WAIT_BUYER\tPAY", "A\\B": "WAIT", "LINE\nBREAK": "TRADE_CLOSED", "中文单号": None,
              "NEW\\ONE": "WAIT\nX", "新单": "已发货"}

    def written(write) -> list[tuple]:
        monkeypatch.setattr(reconciliation, "copy_rows", write)
        now = utc_now()
        report = ReconciliationReport(channel_id=channel.id, window_start=now - reconciliation.WINDOW, window_end=now,
                                      trigger="manual", status="running", started_at=now)
        db.session.add(report)
        db.session.flush()
        returned = reconciliation.write_report(report, channel, theirs)
        rows = db.session.execute(select(
            ReconciliationDifference.kind, ReconciliationDifference.channel_order_id,
            ReconciliationDifference.platform_status, ReconciliationDifference.expected_status,
            ReconciliationDifference.local_status, ReconciliationDifference.order_no)
            .where(ReconciliationDifference.report_id == report.id).order_by(ReconciliationDifference.id)).all()
        assert [tuple(row) for row in rows] == [
            (d["kind"], d["channel_order_id"], d["platform_status"], d["expected_status"], d["local_status"],
             d["order_no"]) for d in returned]
        return [tuple(row) for row in rows]

    by_copy = written(reconciliation.copy_rows)
    by_insert = written(lambda table, rows: db.session.execute(insert(table), rows))
    assert by_copy == by_insert
    assert sorted((kind, external) for kind, external, *_ in by_copy) == [
        ("missing_here", "NEW\\ONE"), ("missing_here", "新单"), ("missing_there", "p-1"),
        ("status_mismatch", "LINE\nBREAK"), ("status_mismatch", "TAB\tID"), ("status_mismatch", "中文单号")]
    assert ("status_mismatch", "中文单号", None) in [row[:3] for row in by_copy]
    assert any(row[1] == "LINE\nBREAK" and row[4] is not None and row[5] for row in by_copy)
