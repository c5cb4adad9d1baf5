"""Channel sync through the inbox: each adapter, idempotency, order of events, mappings, and every bad input.

Payloads go in as the platform sends them (tests/channel_payloads.py), are stored, processed by the same job
the worker runs (inline here), and the order center is checked afterwards, on SQLite and PostgreSQL.
"""
from datetime import UTC, datetime, timedelta
from pathlib import Path
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from jobs.sync import process_inbox
from shared.extensions import db
from shared.models import AuditEvent, InboxItem, Order, StockLevel
from shared.services import channel_settings, inbox
from tests import channel_payloads as p
from tests.factories import ADMIN


def ingest(channel, *orders, source="poll") -> list[InboxItem]:
    """Store raw payloads as a poll would, then run the processing job on them."""
    bodies = [order if isinstance(order, bytes) else p.body(order) for order in orders]
    ids = inbox.store(channel, source, bodies)
    db.session.commit()
    process_inbox(ids)
    return [db.session.get(InboxItem, item_id) for item_id in ids]


def order_of(channel, channel_order_id) -> Order | None:
    return db.session.execute(select(Order).where(Order.channel_id == channel.id,
                                                  Order.channel_order_id == str(channel_order_id))
                              ).scalar_one_or_none()


def reserved(sku="SKU-0001") -> int:
    return db.session.execute(select(func.sum(StockLevel.reserved)).join(StockLevel.sku)
                              .where(StockLevel.sku.has(code=sku))).scalar() or 0


def order_count() -> int:
    return db.session.execute(select(func.count()).select_from(Order)).scalar()


# --- each adapter reads its platform's format -----------------------------------------------------------

def test_taobao_paid_trade_becomes_a_confirmed_order_in_utc(sync_channels):
    created = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 Beijing
    [item] = ingest(sync_channels["taobao"], p.taobao(created=created))
    order = order_of(sync_channels["taobao"], "3801234567890123")
    assert item.status == "done" and item.outcome == "created" and item.order_id == order.id
    assert order.status == "confirmed" and order.payment_status == "paid"
    assert order.placed_at == created  # Beijing 10:00:00 is 02:00 UTC: the channel's zone was applied
    assert order.goods_total == Decimal("119.80") and order.discount == Decimal("10.00")
    assert order.total == Decimal("117.80") and order.shipping_fee == Decimal("8.00")
    assert order.platform_status == "WAIT_SELLER_SEND_GOODS" and order.order_no.startswith("TB")
    assert reserved() == 2


def test_jd_order_and_its_lock_hold_and_release(sync_channels):
    channel = sync_channels["jd"]
    start = p.recent(60)
    ingest(channel, p.jd(modified=start + timedelta(minutes=1)))
    order = order_of(channel, "290012345678")
    assert order.status == "confirmed" and order.total == Decimal("99.00")
    ingest(channel, p.jd(state="LOCKED", modified=start + timedelta(minutes=2)))
    assert order.status == "on_hold" and order.hold_reason.startswith("platform:")
    assert order.refund_status == "requested"
    ingest(channel, p.jd(state="WAIT_SELLER_STOCK_OUT", modified=start + timedelta(minutes=3)))
    assert order.status == "confirmed"  # the platform lifted its own lock


def test_pinduoduo_float_amounts_within_a_cent_and_composite_status(sync_channels):
    # 19.9 * 3 = 59.7 − 5.7 = 54.0; PDD sends 54.01 after its own rounding: within the platform's tolerance.
    [item] = ingest(sync_channels["pinduoduo"], p.pinduoduo(pay_amount=54.01))
    order = order_of(sync_channels["pinduoduo"], "261121-045623189012345")
    assert item.status == "done" and order.platform_status == "1/1" and order.status == "confirmed"
    assert order.goods_total == Decimal("59.70") and order.discount == Decimal("5.70")


def test_douyin_fen_and_unix_seconds(sync_channels):
    raw = p.douyin()
    [item] = ingest(sync_channels["douyin"], raw)
    order = order_of(sync_channels["douyin"], raw["order_id"])
    assert item.status == "done", item.last_error
    assert order.lines[0].unit_price == Decimal("19.90") and order.shipping_fee == Decimal("6.00")
    assert order.total == Decimal("40.80")
    assert order.placed_at == datetime.fromtimestamp(raw["create_time"], UTC)


def test_shopify_offset_times_and_usd(sync_channels):
    [item] = ingest(sync_channels["shopify"], p.shopify(), source="webhook")
    order = order_of(sync_channels["shopify"], 5801234567890)
    assert item.status == "done", item.last_error
    assert order.placed_at == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)  # 09:30 at −05:00
    assert order.currency == "USD" and order.total == Decimal("30.00") and order.platform_status == "paid/unfulfilled"


def test_woocommerce_gmt_fields_are_utc_and_ping_is_acknowledged(sync_channels):
    channel = sync_channels["woocommerce"]
    [item, ping] = ingest(channel, p.woocommerce(), {"webhook_id": 12}, source="webhook")
    order = order_of(channel, 7301)
    assert item.status == "done", item.last_error
    assert order.placed_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC) and order.currency == "EUR"
    assert order.lines[0].unit_price == Decimal("15.00") and order.total == Decimal("32.00")
    assert ping.status == "done" and ping.outcome == "ping"


# --- idempotency and order of events -----------------------------------------------------------------------

def test_the_same_payload_twice_is_one_row_and_one_order(sync_channels):
    raw = p.taobao()
    first = ingest(sync_channels["taobao"], raw)[0]
    second = ingest(sync_channels["taobao"], raw)[0]
    assert first.id == second.id and second.times_received == 2
    assert order_count() == 1 and reserved() == 2


def test_an_older_update_never_overwrites_a_newer_one(sync_channels):
    channel = sync_channels["taobao"]
    created = p.recent(60)
    ingest(channel, p.taobao(created=created, modified=created + timedelta(minutes=10), status="WAIT_SELLER_SEND_GOODS",
                             address="新地址 1 号"))
    [old] = ingest(channel, p.taobao(created=created, modified=created + timedelta(minutes=5),
                                     status="WAIT_BUYER_PAY", paid=False, address="旧地址 9 号"))
    order = order_of(channel, "3801234567890123")
    assert old.status == "done" and old.outcome == "stale"
    assert order.payment_status == "paid" and order.street == "新地址 1 号"


def test_create_and_updates_in_one_batch_end_in_the_newest_state(sync_channels):
    channel = sync_channels["taobao"]
    created = p.recent(60)
    newest = p.taobao(created=created, modified=created + timedelta(minutes=9), status="TRADE_CLOSED")
    unpaid = p.taobao(created=created, modified=created + timedelta(minutes=1), status="WAIT_BUYER_PAY", paid=False)
    paid = p.taobao(created=created, modified=created + timedelta(minutes=4))
    items = ingest(channel, newest, unpaid, paid)  # arrival order differs from modification order
    order = order_of(channel, "3801234567890123")
    assert [i.outcome for i in items] == ["updated", "created", "updated"]
    assert order.status == "cancelled" and order.refund_status == "refunded" and reserved() == 0


def test_unpaid_then_paid_confirms_and_times_visibility(sync_channels):
    channel = sync_channels["taobao"]
    created = p.recent(60)
    ingest(channel, p.taobao(created=created, status="WAIT_BUYER_PAY", paid=False))
    order = order_of(channel, "3801234567890123")
    assert order.status == "pending_review" and order.payment_status == "unpaid" and reserved() == 2
    assert all(r.expires_at is None for r in order.reservations)  # the platform closes unpaid orders, not us
    [item] = ingest(channel, p.taobao(created=created, modified=created + timedelta(minutes=7)))
    assert order.status == "confirmed" and order.payment_status == "paid"
    assert item.visible_delay_ms is not None and item.visible_delay_ms > 0


def test_refund_before_shipping_cancels_and_releases_stock(sync_channels):
    channel = sync_channels["pinduoduo"]
    start = p.recent(60)
    ingest(channel, p.pinduoduo(modified=start))
    assert reserved("SKU-0002") == 3
    ingest(channel, p.pinduoduo(refund_status=4, modified=start + timedelta(minutes=5)))
    order = order_of(channel, "261121-045623189012345")
    assert order.status == "cancelled" and order.refund_status == "refunded"
    assert reserved("SKU-0002") == 0


def test_address_change_is_applied_and_audited_masked(sync_channels):
    channel = sync_channels["taobao"]
    created = p.recent(60)
    ingest(channel, p.taobao(created=created))
    ingest(channel, p.taobao(created=created, modified=created + timedelta(minutes=8), receiver="李娜娜",
                             mobile="13900001111", address="学院路 7 号"))
    order = order_of(channel, "3801234567890123")
    assert (order.receiver_name, order.receiver_phone, order.street) == ("李娜娜", "13900001111", "学院路 7 号")
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.address_change")).scalar_one()
    assert event.after["phone"] == "139****1111" and "13900001111" not in str(event.after)
    assert "receiver_phone" in event.reason and "street" in event.reason


def test_address_change_after_shipping_goes_to_review(sync_channels):
    channel = sync_channels["taobao"]
    created = p.recent(60)
    ingest(channel, p.taobao(created=created))
    order = order_of(channel, "3801234567890123")
    from shared.services import orders
    for step in ("allocated", "picking", "packed", "shipped"):
        orders.transition_order(order, step, ADMIN)
    db.session.commit()
    [item] = ingest(channel, p.taobao(created=created, modified=created + timedelta(minutes=9), address="别处 1 号"))
    assert item.status == "review" and item.error_code == "address_change_too_late"
    assert order.street == "文三路 90 号"


def test_first_seen_closed_or_shipped_orders_are_recorded_without_stock(sync_channels):
    channel = sync_channels["taobao"]
    ingest(channel, p.taobao(tid="1111", status="TRADE_CLOSED_BY_TAOBAO", paid=False),
           p.taobao(tid="2222", status="WAIT_BUYER_CONFIRM_GOODS"))
    assert order_of(channel, "1111").status == "cancelled" and order_of(channel, "1111").refund_status == "none"
    assert order_of(channel, "2222").status == "shipped"
    assert reserved() == 0


# --- mappings -------------------------------------------------------------------------------------------

def test_unknown_status_goes_to_review_then_replays_after_mapping(sync_channels):
    channel = sync_channels["taobao"]
    [item] = ingest(channel, p.taobao(status="PAID_FORBID_CONSIGN"))
    assert item.status == "review" and item.error_code == "unknown_status" and order_count() == 0
    assert "PAID_FORBID_CONSIGN" in item.last_error
    channel_settings.set_status_mapping(channel, "PAID_FORBID_CONSIGN", "on_hold", "paid", None, ADMIN)
    inbox.replay(item.id, ADMIN)
    db.session.commit()
    process_inbox([item.id])
    assert item.status == "done" and order_of(channel, "3801234567890123").status == "on_hold"


def test_unmapped_sku_goes_to_review_then_replays_after_mapping(sync_channels):
    channel = sync_channels["douyin"]
    [item] = ingest(channel, p.douyin(sku="DY-SPECIAL-9"))
    assert item.status == "review" and item.error_code == "unmapped_sku" and "DY-SPECIAL-9" in item.last_error
    assert order_count() == 0 and reserved("SKU-0003") == 0
    channel_settings.map_sku(channel, "DY-SPECIAL-9", "SKU-0003", ADMIN)
    replayed = inbox.replay_failed(ADMIN, channel.id)
    db.session.commit()
    process_inbox(replayed)
    assert item.status == "done" and reserved("SKU-0003") == 2


def test_mapping_changes_are_validated_and_audited(sync_channels):
    channel = sync_channels["jd"]
    from shared.services.errors import ValidationFailed
    with pytest.raises(ValidationFailed):
        channel_settings.set_status_mapping(channel, "LOCKED", "teleported", None, None, ADMIN)
    with pytest.raises(ValidationFailed):
        channel_settings.set_status_mapping(channel, "LOCKED", "on_hold", "maybe", None, ADMIN)
    channel_settings.set_status_mapping(channel, "LOCKED", "cancelled", "paid", "refunded", ADMIN)
    db.session.commit()
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "channel.status_mapping")
                               .order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
    assert event.before["lifecycle"] == "on_hold" and event.after["lifecycle"] == "cancelled"


# --- bad input: each goes to review with its reason, nothing flows on ------------------------------------

@pytest.mark.parametrize("platform, payload, code", [
    ("taobao", b'{"tid": 1, "status": "WAIT_SEL', "invalid_json"),
    ("taobao", p.body(p.taobao(payment="-5.00")), "invalid_amount"),
    ("jd", p.body(p.jd() | {"orderPayment": "lots"}), "invalid_amount"),
    ("taobao", p.body(p.taobao(payment="200.00")), "amounts_do_not_add_up"),
    ("woocommerce", p.body(p.woocommerce(total="99.99")), "amounts_do_not_add_up"),
    ("taobao", p.body(p.taobao(price="12.345")), "invalid_amount"),
    ("taobao", p.body(p.taobao(price="123456789012.00")), "invalid_amount"),
    ("taobao", p.body(p.taobao(num=0)), "invalid_quantity"),
    ("pinduoduo", p.body(p.pinduoduo(count=-1)), "invalid_quantity"),
    ("shopify", p.body(p.shopify(quantity=1.5)), "invalid_quantity"),
    ("shopify", p.body(p.shopify(created="2026-11-20T09:30:00")), "naive_timestamp"),
    ("taobao", p.body(p.taobao() | {"created": "2026/11/20 10:00"}), "invalid_timestamp"),
    ("douyin", p.body(p.douyin(origin_amount=1001, num=2)), "amounts_do_not_add_up"),
    ("taobao", p.body(p.taobao() | {"receiver_mobile": None}), "missing_field"),
    ("taobao", p.body(p.taobao() | {"receiver_mobile": "call me"}), "invalid_phone"),
    ("shopify", p.body(p.shopify() | {"total_tax": "2.00"}), "amounts_do_not_add_up"),  # tax not in the total
    ("taobao", b"[1, 2, 3]", "invalid_json"),
    ("shopify", p.body(p.shopify() | {"total_shipping_price_set": ["5.00"]}), "unreadable_payload"),
    ("jd", p.body(p.jd() | {"itemInfoList": [["SKU-0001", 1]]}), "invalid_type"),
])
def test_bad_payloads_go_to_review_and_change_nothing(sync_channels, platform, payload, code):
    before = reserved("SKU-0001"), order_count()
    [item] = ingest(sync_channels[platform], payload)
    assert item.status == "review" and item.error_code == code, item.last_error
    assert item.last_error and item.body == payload.decode()  # the payload is kept as received
    assert (reserved("SKU-0001"), order_count()) == before


def test_insufficient_stock_goes_to_review_and_replays_once_stock_arrives(sync_channels):
    from shared.services import stock
    [item] = ingest(sync_channels["taobao"], p.taobao(num=150))
    assert item.status == "review" and item.error_code == "insufficient_stock"
    stock.adjust_stock("SKU-0001", "HZ1", 100, "delivery", ADMIN, kind="receipt")
    inbox.replay(item.id, ADMIN)
    db.session.commit()
    process_inbox([item.id])
    assert item.status == "done" and reserved() == 150


def test_replay_refuses_items_that_did_not_fail(sync_channels):
    from shared.services.errors import Conflict
    [item] = ingest(sync_channels["taobao"], p.taobao())
    with pytest.raises(Conflict):
        inbox.replay(item.id, ADMIN)


# --- failures are retried with backoff, then dead-lettered; the sweeper requeues -----------------------

def test_unexpected_errors_retry_with_backoff_then_dead_letter(sync_channels, monkeypatch):
    def broken(context, canonical):
        raise RuntimeError("database went away")

    monkeypatch.setattr("shared.services.inbox.apply", broken)
    monkeypatch.setattr("shared.services.bulk_orders.create_new", lambda context, entries: broken(None, None))
    [item] = ingest(sync_channels["taobao"], p.taobao())
    waits = []
    while item.status == "retry":
        waits.append((item.next_attempt_at - item.claimed_at).total_seconds())
        db.session.execute(InboxItem.__table__.update().where(InboxItem.id == item.id)
                           .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
        assert item.id in inbox.sweep()
        process_inbox([item.id])
        db.session.refresh(item)
    assert item.status == "dead" and item.attempts == inbox.MAX_ATTEMPTS and "database went away" in item.last_error
    assert [round(w) for w in waits] == [5, 10, 20, 40]  # at least 3 retries, doubling
    assert order_count() == 0
    monkeypatch.undo()
    inbox.replay(item.id, ADMIN)
    db.session.commit()
    process_inbox([item.id])
    assert item.status == "done" and order_count() == 1


def test_sweeper_finds_rows_left_behind_by_a_redis_outage_or_a_dead_worker(sync_channels):
    channel = sync_channels["taobao"]
    never_queued = inbox.store(channel, "webhook", [p.body(p.taobao(tid="1001"))])[0]
    orphaned = inbox.store(channel, "webhook", [p.body(p.taobao(tid="1002"))])[0]
    db.session.commit()
    inbox.claim([orphaned])  # a worker took it and died
    db.session.commit()
    now = datetime.now(UTC)
    assert inbox.sweep(now) == []  # too fresh: a job may still be on its way
    later = now + timedelta(minutes=6)
    assert sorted(inbox.sweep(later)) == [never_queued, orphaned]
    db.session.commit()
    process_inbox([never_queued, orphaned])
    assert order_of(channel, "1001") and order_of(channel, "1002")


# --- CSV / Excel import -----------------------------------------------------------------------------------

CSV = ("channel_order_id,placed_at,paid_at,currency,customer_name,customer_phone,receiver,receiver_phone,province,"
       "city,district,street,postal_code,sku,quantity,unit_price,shipping_fee,discount,paid_amount\n"
       "POS-1,2026-11-20 10:00:00,2026-11-20 10:00:30,CNY,孙丽,13811112222,孙丽,13811112222,浙江省,杭州市,上城区,"
       "湖滨路 1 号,,SKU-0001,1,59.90,0.00,0.00,79.80\n"
       "POS-1,,,,,,,,,,,,,SKU-0002,1,19.90,,,\n"
       "POS-2,2026-11-20 11:00:00,,CNY,周强,13833334444,周强,13833334444,浙江省,杭州市,上城区,延安路 2 号,,"
       "SKU-0001,x,59.90,0.00,0.00,59.90\n")


def test_csv_import_groups_rows_into_orders_and_reviews_bad_rows(sync_channels):
    from shared.channels.spreadsheet import group_orders, read_rows
    channel = sync_channels["offline"]
    orders = group_orders(read_rows("store.csv", CSV.encode("utf-8-sig")))
    items = ingest(channel, *orders, source="import")
    first = order_of(channel, "POS-1")
    assert items[0].status == "done" and len(first.lines) == 2 and first.total == Decimal("79.80")
    assert first.placed_at == datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    assert items[1].status == "review" and items[1].error_code == "invalid_quantity"
    assert "rows 4" in items[1].last_error  # the spreadsheet row is named


def test_xlsx_import_reads_the_same_rows(sync_channels):
    import csv
    import io

    from openpyxl import Workbook

    from shared.channels.spreadsheet import group_orders, read_rows
    book = Workbook()
    for row in csv.reader(io.StringIO(CSV)):
        book.active.append(row)
    data = io.BytesIO()
    book.save(data)
    orders = group_orders(read_rows("store.xlsx", data.getvalue()))
    assert [o["channel_order_id"] for o in orders] == ["POS-1", "POS-2"] and len(orders[0]["lines"]) == 2


@pytest.mark.parametrize("name, data, message", [
    ("orders.pdf", b"%PDF", "Upload a .csv or .xlsx"),
    ("orders.xlsx", b"not a zip", "Not a readable .xlsx"),
    ("orders.csv", b"sku,quantity\nSKU-1,1\n", "The header row lacks"),
    ("orders.csv", b"", "The file is empty"),
    ("orders.csv", b"\xff\xfe\x00bad", "neither UTF-8 nor GB18030"),
])
def test_unreadable_spreadsheets_are_refused_whole(name, data, message):
    from shared.channels.spreadsheet import SpreadsheetError, read_rows
    with pytest.raises(SpreadsheetError, match=message):
        read_rows(name, data)


# --- the batch fast path and the one-at-a-time path give the same result ----------------------------------

def _outcomes(channel) -> dict:
    from shared.models import Reservation
    result = {}
    for order in db.session.execute(select(Order).where(Order.channel_id == channel.id)).scalars():
        actions = db.session.execute(select(AuditEvent.action, AuditEvent.after).where(
            AuditEvent.entity_type == "order", AuditEvent.entity_id == order.order_no).order_by(AuditEvent.id)).all()
        reserved_units = db.session.execute(select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.order_id == order.id, Reservation.status == "active")).scalar()
        result[order.channel_order_id] = (
            order.status, order.payment_status, order.refund_status, order.total, order.tax, order.platform_status,
            order.warehouse_id is None, reserved_units, order.hold_reason is None, order.cancel_reason is None,
            [(action, after.get("status")) for action, after in actions])
    return result


def test_the_batch_path_and_the_one_at_a_time_path_agree(sync_channels, monkeypatch):
    from shared.services import catalog
    from tests.factories import SYNC_SKUS
    twin = catalog.create_channel("TT", "天猫旗舰店", "taobao", ADMIN)
    channel_settings.connect(twin, ADMIN, base_url="http://127.0.0.1:9/taobao")
    for sku in SYNC_SKUS:
        channel_settings.map_sku(twin, sku, sku, ADMIN)
    db.session.commit()
    payloads = [p.taobao(tid=str(1000 + n), status=status, paid=paid, sku=f"SKU-000{n % 5 + 1}")
                for n, (status, paid) in enumerate([
                    ("WAIT_SELLER_SEND_GOODS", True), ("WAIT_BUYER_PAY", False), ("TRADE_CLOSED", True),
                    ("TRADE_CLOSED_BY_TAOBAO", False), ("WAIT_BUYER_CONFIRM_GOODS", True), ("TRADE_FINISHED", True),
                    ("PAID_FORBID_CONSIGN", True)])]
    channel_settings.set_status_mapping(sync_channels["taobao"], "PAID_FORBID_CONSIGN", "on_hold", "paid", None, ADMIN)
    channel_settings.set_status_mapping(twin, "PAID_FORBID_CONSIGN", "on_hold", "paid", None, ADMIN)
    db.session.commit()
    batch_items = ingest(sync_channels["taobao"], *payloads)
    monkeypatch.setattr(inbox, "create_in_bulk", lambda contexts, parsed: (0, parsed))
    single_items = ingest(twin, *payloads)
    assert {i.status for i in batch_items} == {i.status for i in single_items} == {"done"}
    batch, single = _outcomes(sync_channels["taobao"]), _outcomes(twin)
    assert batch == single
    assert batch["1000"][0] == "confirmed" and batch["1002"][0] == "cancelled" and batch["1006"][0] == "on_hold"
    assert batch["1004"][0] == "shipped" and batch["1004"][7] == 0  # recorded, no stock held


# --- the fixtures written from the platforms' published field definitions ---------------------------------

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "channels").glob("*/*.json"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_platform_fixture_reads_into_a_canonical_order_that_adds_up(path):
    import json

    from shared.channels import adapter_for
    adapter = adapter_for(path.parent.name)
    canonical = adapter.parse(json.loads(path.read_text(encoding="utf-8")), "Asia/Shanghai")
    assert canonical.status_key in adapter.default_status_map, canonical.status_key
    assert abs(canonical.amount_gap()) <= adapter.rounding_tolerance
    assert canonical.lines and all(line.quantity > 0 for line in canonical.lines)
    assert canonical.placed_at.tzinfo is not None and canonical.modified_at >= canonical.placed_at


def test_the_fixtures_cover_every_platform():
    assert {path.parent.name for path in FIXTURES} == {"taobao", "jd", "pinduoduo", "douyin", "shopify",
                                                      "woocommerce"}
