"""The channel pages of the portal over HTTP: sync health, the inbox and replay, payload reveals, mappings,
spreadsheet imports, reconciliation downloads and outbound webhook subscriptions, by role and in both languages."""
import html
import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, func, select

from jobs.sync import process_inbox
from shared.extensions import db
from shared.models import (AccessLogEntry, AuditEvent, InboxItem, Order, SkuMapping, StatusMapping,
                           WebhookDelivery, WebhookSubscription)
from shared.services import inbox, reconciliation
from tests import channel_payloads as p
from tests.factories import ADMIN
from tests.portal_client import csrf_token, exported_file, start_export

UNMAPPED = "TB-TEA-NEW"


def ingest(channel, *bodies, source="poll") -> list[InboxItem]:
    ids = inbox.store(channel, source, [b if isinstance(b, bytes) else p.body(b) for b in bodies])
    db.session.commit()
    process_inbox(ids)
    return [db.session.get(InboxItem, item_id) for item_id in ids]


@pytest.fixture
def failed_item(sync_channels) -> InboxItem:
    """A Taobao trade whose SKU no one has mapped yet: it waits in review."""
    [item] = ingest(sync_channels["taobao"], p.taobao(tid="3809999000000001", sku=UNMAPPED))
    assert item.status == "review" and item.error_code == "unmapped_sku"
    return item


def post(client, url: str, data: dict | None = None, page: str = "/channels/", **kwargs):
    return client.post(url, data={"csrf_token": csrf_token(client, page), **(data or {})}, **kwargs)


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def audit_count(action: str) -> int:
    return count(AuditEvent, AuditEvent.action == action)


def order_of(channel, channel_order_id: str) -> Order | None:
    return db.session.execute(select(Order).where(Order.channel_id == channel.id,
                                                  Order.channel_order_id == channel_order_id)).scalar_one_or_none()


def manual_report(channel, *platform_orders):
    return reconciliation.reconcile(channel.id, ADMIN, db.session.commit, trigger="manual",
                                    platform_orders=list(platform_orders))


# --- every page, both languages ------------------------------------------------------------------------------

def test_pages_render_for_an_ops_manager_in_english_and_chinese(client_for, sync_channels, failed_item):
    report = manual_report(sync_channels["taobao"], p.taobao(tid="3801111000000001"))
    english, chinese = client_for("ops_manager"), client_for("ops_manager", "zh_CN")
    pages = ["/channels/", "/channels/inbox", f"/channels/inbox/{failed_item.id}", "/channels/TB", "/channels/OF",
             "/channels/import", "/channels/import?channel=OF", "/channels/import/progress?channel=OF",
             "/channels/reconciliation", f"/channels/reconciliation/{report.id}", "/webhooks/"]
    for url in pages:
        en, zh = english.get(url), chinese.get(url)
        assert en.status_code == 200 and zh.status_code == 200, url
    health = english.get("/channels/").text
    assert "Channel sync health" in health and 'data-testid="health-TB"' in health and "<svg" in health
    assert 'data-testid="failed-TB"' in health and 'data-testid="poll-TB"' in health
    assert "Channel sync health" not in chinese.get("/channels/").text
    assert "渠道同步状况" in chinese.get("/channels/").text
    assert "状态映射" in chinese.get("/channels/TB").text and "待人工处理" in chinese.get("/channels/inbox").text
    assert "对账报告" in chinese.get("/channels/reconciliation").text
    assert "出站 Webhook" in chinese.get("/webhooks/").text
    inbox_page = english.get("/channels/inbox").text  # the default shows what failed
    assert f'data-testid="inbox-row-{failed_item.id}"' in inbox_page and f"replay-{failed_item.id}" in inbox_page
    assert "Paid, waiting for the seller to ship" in english.get("/channels/TB").text  # platform status explained
    nav = english.get("/").text
    assert 'href="/channels/"' in nav and 'href="/webhooks/"' in nav


def test_roles_without_the_permission_see_no_channel_pages(client_for, sync_channels):
    warehouse = client_for("warehouse")
    assert 'href="/channels/"' not in warehouse.get("/").text
    assert warehouse.get("/channels/").status_code == 403 and warehouse.get("/webhooks/").status_code == 403
    finance = client_for("finance")
    assert finance.get("/channels/reconciliation").status_code == 200
    assert finance.get("/webhooks/").status_code == 403 and 'href="/webhooks/"' not in finance.get("/").text


# --- inbox: who sees what, replay ---------------------------------------------------------------------------

def test_customer_service_sees_the_inbox_but_not_the_payload_and_cannot_replay(client_for, failed_item):
    client = client_for("customer_service")
    listing = client.get("/channels/inbox").text
    assert f'data-testid="inbox-row-{failed_item.id}"' in listing and "unmapped_sku" in listing
    assert "replay-" not in listing
    detail = client.get(f"/channels/inbox/{failed_item.id}").text
    assert 'data-testid="payload-hidden"' in detail and 'data-testid="replay"' not in detail
    assert "13912345678" not in detail and "李娜" not in detail and "show-payload" not in detail
    token = csrf_token(client, "/channels/inbox")
    replayed = client.post(f"/channels/inbox/{failed_item.id}/replay", data={"csrf_token": token})
    revealed = client.post(f"/channels/inbox/{failed_item.id}/payload", data={"csrf_token": token})
    everything = client.post("/channels/inbox/replay-failed", data={"csrf_token": token})
    assert replayed.status_code == revealed.status_code == everything.status_code == 403
    db.session.refresh(failed_item)
    assert failed_item.status == "review" and failed_item.attempts == 1
    assert audit_count("inbox.replay") == 0 and count(AccessLogEntry, AccessLogEntry.entity_type == "inbox_item") == 0


def test_ops_manager_maps_the_sku_through_the_page_replays_and_the_order_appears(client_for, sync_channels,
                                                                                 failed_item):
    channel = sync_channels["taobao"]
    client = client_for("ops_manager")
    assert order_of(channel, "3809999000000001") is None
    mapped = post(client, "/channels/TB/sku-mappings", {"channel_sku": UNMAPPED, "sku": "SKU-0002"}, "/channels/TB")
    assert mapped.status_code == 303
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "channel.sku_mapping",
                                                        AuditEvent.entity_id == "TB")
                               .order_by(AuditEvent.id.desc())).scalars().first()
    assert event.actor_label == "ops_manager_en" and event.after == {"key_kind": "code", "channel_sku": UNMAPPED,
                                                                     "sku": "SKU-0002"}
    replayed = post(client, f"/channels/inbox/{failed_item.id}/replay", page="/channels/inbox")
    assert replayed.status_code == 303
    db.session.refresh(failed_item)
    order = order_of(channel, "3809999000000001")
    assert failed_item.status == "done" and order is not None and failed_item.order_id == order.id
    assert order.lines[0].sku.code == "SKU-0002"
    assert audit_count("inbox.replay") == 1
    detail = client.get(f"/channels/inbox/{failed_item.id}").text
    assert order.order_no in detail and "inbox.replay" in detail  # in the raw event, one click away
    assert f"ops_manager_en sent inbox item {failed_item.id} to be processed again" in detail  # the sentence


def test_replay_all_failed_of_one_channel_leaves_other_channels_alone(client_for, sync_channels, failed_item):
    [jd_item] = ingest(sync_channels["jd"], p.jd(order_id="290099990001", sku="JD-UNMAPPED"))
    assert jd_item.status == "review"
    client = client_for("ops_manager")
    response = post(client, "/channels/inbox/replay-failed", {"channel": "TB"}, "/channels/inbox?channel=TB",
                    follow_redirects=True)
    assert "Failed items sent through processing again: 1." in response.text
    db.session.refresh(failed_item)
    db.session.refresh(jd_item)
    assert failed_item.attempts == 1 and failed_item.status == "review"  # replayed; still unmapped, so back
    assert jd_item.status == "review"
    assert count(AuditEvent, AuditEvent.action == "inbox.replay", AuditEvent.entity_id == str(jd_item.id)) == 0
    assert count(AuditEvent, AuditEvent.action == "inbox.replay", AuditEvent.entity_id == str(failed_item.id)) == 1


def test_showing_the_raw_payload_writes_the_access_log(client_for, failed_item):
    client = client_for("ops_manager")
    detail = client.get(f"/channels/inbox/{failed_item.id}").text
    assert "13912345678" not in detail and 'data-testid="show-payload"' in detail
    response = post(client, f"/channels/inbox/{failed_item.id}/payload", page=f"/channels/inbox/{failed_item.id}",
                    headers={"HX-Request": "true"})
    assert response.status_code == 200
    shown = html.unescape(response.text)
    assert '\n  "tid_str": "3809999000000001",\n' in shown and "13912345678" in shown  # pretty-printed JSON
    entry = db.session.execute(select(AccessLogEntry).where(AccessLogEntry.entity_type == "inbox_item")).scalar_one()
    assert entry.entity_id == str(failed_item.id) and entry.actor_label == "ops_manager_en"
    assert entry.action == "reveal" and entry.fields == "raw_payload"


def test_a_payload_that_is_not_json_is_shown_escaped(client_for, sync_channels):
    [item] = ingest(sync_channels["taobao"], b'<script>alert("x")</script>')
    assert item.status == "review" and item.error_code == "invalid_json"
    client = client_for("ops_manager")
    page = post(client, f"/channels/inbox/{item.id}/payload", page=f"/channels/inbox/{item.id}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(" in page and "Not valid JSON" in page


def test_inbox_filters_sorting_and_search(client_for, sync_channels, failed_item):
    [done] = ingest(sync_channels["jd"], p.jd(order_id="290012340001"))
    assert done.status == "done"
    client = client_for("customer_service")
    default = client.get("/channels/inbox").text
    assert f"inbox-row-{failed_item.id}" in default and f"inbox-row-{done.id}" not in default
    everything = client.get("/channels/inbox?status=all&sort=received_asc").text
    assert f"inbox-row-{failed_item.id}" in everything and f"inbox-row-{done.id}" in everything
    assert everything.index(f"inbox-row-{failed_item.id}") < everything.index(f"inbox-row-{done.id}")
    only_jd = client.get("/channels/inbox?status=all&channel=JD").text
    assert f"inbox-row-{done.id}" in only_jd and f"inbox-row-{failed_item.id}" not in only_jd
    found = client.get("/channels/inbox?status=all&q=290012340001").text
    assert f"inbox-row-{done.id}" in found and f"inbox-row-{failed_item.id}" not in found
    assert f"inbox-row-{done.id}" not in client.get("/channels/inbox?status=all&source=webhook").text
    partial = client.get("/channels/inbox?status=all", headers={"HX-Request": "true", "HX-Target": "inbox-table"})
    assert "<html" not in partial.text and f"inbox-row-{done.id}" in partial.text


# --- mappings through the settings page ---------------------------------------------------------------------

def test_status_mapping_edits_through_the_page_are_audited(client_for, sync_channels):
    client = client_for("ops_manager")
    edited = post(client, "/channels/TB/status-mappings",
                  {"platform_status": "TRADE_BUYER_SIGNED", "lifecycle": "completed", "payment_status": "paid",
                   "refund_status": "", "note": "signed is done for us"}, "/channels/TB")
    added = post(client, "/channels/TB/status-mappings",
                 {"platform_status": "PAID_FORBID_CONSIGN", "lifecycle": "on_hold", "payment_status": "paid",
                  "refund_status": "requested"}, "/channels/TB")
    assert edited.status_code == added.status_code == 303
    rows = {m.platform_status: m for m in db.session.execute(
        select(StatusMapping).where(StatusMapping.channel_id == sync_channels["taobao"].id)).scalars()}
    signed = rows["TRADE_BUYER_SIGNED"]
    assert signed.lifecycle == "completed" and signed.note == "signed is done for us"
    assert rows["PAID_FORBID_CONSIGN"].refund_status == "requested"
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "channel.status_mapping")
                                .order_by(AuditEvent.id)).scalars().all()
    assert [e.actor_label for e in events] == ["ops_manager_en", "ops_manager_en"]
    assert events[0].before["lifecycle"] == "shipped" and events[0].after["lifecycle"] == "completed"
    assert events[1].before is None
    page = client.get("/channels/TB").text
    assert 'data-testid="mapping-PAID_FORBID_CONSIGN"' in page


def test_connection_form_keeps_stored_secrets_when_left_empty_and_never_shows_them(client_for, sync_channels):
    client = client_for("ops_manager")
    saved = post(client, "/channels/TB/connection",
                 {"base_url": "https://eco.taobao.example", "app_key": "new-key", "app_secret": "",
                  "access_token": "", "webhook_secret": "", "poll_minutes": "10"}, "/channels/TB")
    assert saved.status_code == 303
    from shared.services.channel_settings import connection_for
    connection = connection_for(sync_channels["taobao"])
    assert connection.app_secret == "taobao-secret" and connection.app_key == "new-key"
    assert connection.poll_minutes == 10 and connection.polling_enabled is False  # unticked box: off
    page = client.get("/channels/TB").text
    assert "taobao-secret" not in page and "taobao-token" not in page and p.WEBHOOK_SECRET not in page
    bad = post(client, "/channels/TB/connection", {"base_url": "ftp://nowhere", "poll_minutes": "10"}, "/channels/TB")
    assert bad.status_code == 422 and "must start with https://" in bad.text
    db.session.refresh(connection)
    assert connection.base_url == "https://eco.taobao.example"


@pytest.mark.parametrize("url, data, message", [
    ("/channels/TB/status-mappings", {"platform_status": "TRADE_FINISHED", "lifecycle": "exploded",
                                      "payment_status": "", "refund_status": ""}, "Not a valid choice"),
    ("/channels/TB/status-mappings", {"platform_status": "", "lifecycle": "completed",
                                      "payment_status": "", "refund_status": ""}, "This field is required"),
    ("/channels/TB/sku-mappings", {"channel_sku": "", "sku": "SKU-0001"}, "This field is required"),
    ("/channels/TB/sku-mappings", {"channel_sku": "TB-NEW", "sku": "NO-SUCH-SKU"}, "NO-SUCH-SKU"),
])
def test_bad_mapping_input_is_shown_again_with_the_error_and_changes_nothing(client_for, sync_channels, url, data,
                                                                             message):
    client = client_for("ops_manager")
    mappings_before = count(SkuMapping) + count(StatusMapping)
    finished = db.session.execute(select(StatusMapping.lifecycle).where(
        StatusMapping.platform_status == "TRADE_FINISHED")).scalar_one()
    response = post(client, url, data, "/channels/TB")
    assert response.status_code == 422
    assert message in response.text and 'role="alert"' in response.text
    assert count(SkuMapping) + count(StatusMapping) == mappings_before
    assert db.session.execute(select(StatusMapping.lifecycle).where(
        StatusMapping.platform_status == "TRADE_FINISHED")).scalar_one() == finished
    assert audit_count("channel.status_mapping") == 0
    assert count(AuditEvent, AuditEvent.action == "channel.sku_mapping",
                 AuditEvent.actor_label == "ops_manager_en") == 0


def test_removing_a_sku_mapping_is_audited(client_for, sync_channels):
    client = client_for("ops_manager")
    removed = post(client, "/channels/TB/sku-mappings/remove", {"channel_sku": "SKU-0005"}, "/channels/TB",
                   follow_redirects=True)
    assert "The mapping of SKU-0005 was removed." in removed.text
    assert count(SkuMapping, SkuMapping.channel_id == sync_channels["taobao"].id, SkuMapping.key_kind == "code") == 4
    assert audit_count("channel.sku_unmap") == 1


# --- spreadsheet import -------------------------------------------------------------------------------------

CSV = ("channel_order_id,placed_at,paid_at,currency,customer_name,customer_phone,receiver,receiver_phone,province,"
       "city,district,street,postal_code,sku,quantity,unit_price,shipping_fee,discount,paid_amount\n"
       "OF-1001,2026-11-20 10:00:00,2026-11-20 10:01:00,CNY,王芳,13700000001,王芳,13700000001,浙江省,杭州市,西湖区,"
       "文三路 1 号,310012,SKU-0001,2,10.00,5.00,0.00,25.00\n"
       "OF-1002,2026-11-20 11:00:00,2026-11-20 11:00:30,CNY,李雷,13700000002,李雷,13700000002,浙江省,杭州市,上城区,"
       "解放路 2 号,,SKU-0002,1,30.00,0.00,0.00,50.00\n"
       "OF-1002,,,,,,,,,,,,,SKU-0003,1,20.00,,,\n")


def upload(client, filename: str, data: bytes, channel: str = "OF"):
    return client.post("/channels/import", data={
        "csrf_token": csrf_token(client, "/channels/import"), "channel": channel,
        "file": (io.BytesIO(data), filename)}, content_type="multipart/form-data")


def test_a_csv_upload_creates_the_orders_and_shows_progress(client_for, sync_channels):
    client = client_for("ops_manager")
    response = upload(client, "store-orders.csv", CSV.encode("utf-8-sig"))
    assert response.status_code == 303 and response.headers["Location"].endswith("/channels/import?channel=OF")
    channel = sync_channels["offline"]
    first, second = order_of(channel, "OF-1001"), order_of(channel, "OF-1002")
    assert first is not None and second is not None and len(second.lines) == 2
    assert first.status == "confirmed" and str(first.total) == "25.00"
    page = client.get(response.headers["Location"]).text
    assert "Orders stored from store-orders.csv for 线下门店: 2." in page
    progress = client.get("/channels/import/progress?channel=OF").text
    assert re.search(r'data-testid="progress-done">2<', progress) and "every 2s" not in progress
    assert audit_count("channel.import") == 1
    template = client.get("/channels/import/template.csv")
    assert template.mimetype == "text/csv" and "channel_order_id,placed_at" in template.data.decode("utf-8-sig")


@pytest.mark.parametrize("filename, data, message", [
    ("orders.xlsx", b"this is not a zip file", "Not a readable .xlsx file"),
    ("orders.csv", b"order,when\nA,today\n", "The header row lacks"),
    ("orders.pdf", b"%PDF-1.4", "Upload a .csv or .xlsx file."),
    ("orders.csv", CSV.encode().replace(b"SKU-0001", b"x" * 200_000), "The CSV file cannot be read"),
])
def test_an_unreadable_file_gets_a_clear_error_and_stores_nothing(client_for, sync_channels, filename, data,
                                                                   message):
    client = client_for("ops_manager")
    response = upload(client, filename, data)
    assert response.status_code == 422 and message in response.text
    assert count(InboxItem) == 0 and audit_count("channel.import") == 0


def test_files_over_the_portal_request_limit_are_taken_up_to_the_import_limit(client_for, sync_channels):
    client = client_for("ops_manager")
    padded = CSV.encode() + b"\n" * (3 * 1024 * 1024)  # 3 MB of blank lines: over 1 MB, under 10 MB
    response = upload(client, "big.csv", padded)
    assert response.status_code == 303 and order_of(sync_channels["offline"], "OF-1001") is not None
    response = upload(client, "huge.csv", CSV.encode() + b"\n" * (11 * 1024 * 1024))
    assert response.status_code == 413 and count(InboxItem) == 2


def test_customer_service_may_not_upload(client_for, sync_channels):
    client = client_for("customer_service")
    assert "import-form" not in client.get("/channels/import").text
    response = client.post("/channels/import", data={"csrf_token": csrf_token(client, "/channels/import"),
                                                     "channel": "OF", "file": (io.BytesIO(CSV.encode()), "a.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 403 and count(InboxItem) == 0


# --- reconciliation -----------------------------------------------------------------------------------------

def test_reconciliation_report_and_its_downloads(client_for, sync_channels):
    channel = sync_channels["taobao"]
    ingest(channel, p.taobao(tid="3801000000000001"))
    report = manual_report(channel, p.taobao(tid="3801000000000001"), p.taobao(tid="3802000000000002"))
    assert report.missing_here == 1
    client = client_for("finance")
    page = client.get(f"/channels/reconciliation/{report.id}").text
    assert "3802000000000002" in page and 'data-testid="missing-here">1<' in page
    assert "3802000000000002" not in client.get(f"/channels/reconciliation/{report.id}?kind=missing_there").text
    listing = client.get("/channels/reconciliation?channel=TB").text
    assert f"/channels/reconciliation/{report.id}" in listing
    assert f"/channels/reconciliation/{report.id}" not in client.get("/channels/reconciliation?channel=JD").text
    # The downloads are governed exports started from the report page (the file then waits on My exports).
    assert 'name="kind" value="reconciliation"' in page and f'name="report_id" value="{report.id}"' in page
    export_id, csv_response = exported_file(client, "reconciliation", "csv", report_id=str(report.id))
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    assert f"orderloom-reconciliation-{export_id}.csv" in csv_response.headers["Content-Disposition"]
    lines = csv_response.data.decode("utf-8-sig").splitlines()
    assert lines[0].startswith(f"# orderloom export {export_id} by finance_en")
    assert lines[1].startswith("kind,channel_order_id") and "missing_here,3802000000000002,WAIT_SELLER_SEND_GOODS" \
        in lines[2]
    export_id, xlsx_response = exported_file(client, "reconciliation", "xlsx", report_id=str(report.id))
    assert xlsx_response.status_code == 200 and xlsx_response.mimetype.endswith("spreadsheetml.sheet")
    rows = list(load_workbook(io.BytesIO(xlsx_response.data)).active.iter_rows(values_only=True))
    assert export_id in rows[0][0]
    assert rows[1][:2] == ("kind", "channel_order_id") and rows[2][:3] == ("missing_here", "3802000000000002",
                                                                            "WAIT_SELLER_SEND_GOODS")
    missing = start_export(client, "reconciliation", "csv", report_id="999999")
    assert missing.status_code == 422 and "No reconciliation report 999999" in missing.text


def test_poll_now_refuses_a_channel_without_a_platform_api(client_for, sync_channels):
    client = client_for("ops_manager")
    response = post(client, "/channels/OF/poll", follow_redirects=True)
    assert "has no platform API connection" in response.text


# --- outbound webhooks --------------------------------------------------------------------------------------

def test_webhook_subscriptions_refuse_a_short_secret_and_never_show_one(client_for, session):
    client = client_for("ops_manager")
    data = {"name": "ERP", "url": "https://erp.example.com/hooks", "events": "order.*"}
    short = post(client, "/webhooks/subscriptions", {**data, "secret": "short-one"}, "/webhooks/")
    assert short.status_code == 422 and "at least 16 characters" in short.text and "short-one" not in short.text
    assert count(WebhookSubscription) == 0
    secret = "erp-signing-secret-0123456789"
    created = post(client, "/webhooks/subscriptions", {**data, "secret": secret}, "/webhooks/")
    assert created.status_code == 303
    page = client.get("/webhooks/").text
    assert "https://erp.example.com/hooks" in page and "ERP" in page and secret not in page
    subscription = db.session.execute(select(WebhookSubscription)).scalar_one()
    assert subscription.secret == secret and subscription.active
    paused = post(client, f"/webhooks/subscriptions/{subscription.id}/state", {"state": "off"}, "/webhooks/")
    assert paused.status_code == 303
    db.session.refresh(subscription)
    assert not subscription.active and audit_count("webhook.deactivate") == 1
    auditor = client_for("auditor")
    seen = auditor.get("/webhooks/").text
    assert "ERP" in seen and "subscription-form" not in seen and secret not in seen
    refused = auditor.post(f"/webhooks/subscriptions/{subscription.id}/state",
                           data={"csrf_token": csrf_token(auditor, "/webhooks/"), "state": "on"})
    assert refused.status_code == 403


# --- queries and escaping -----------------------------------------------------------------------------------

def statements_for(client, url: str) -> list[str]:
    """The SQL one GET sends (the request's session shares the test connection)."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    engine = db.session.get_bind().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(url).status_code == 200, url
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def test_lists_need_the_same_queries_for_many_rows_and_never_load_bodies_or_secrets(client_for, sync_channels):
    from shared.services import outbox

    outbox.create_subscription("ERP", "https://erp.example.com/hooks", "erp-signing-secret-0123456789", "order.*",
                               ADMIN)
    db.session.commit()
    client = client_for("ops_manager")
    ingest(sync_channels["taobao"], p.taobao(tid="3803000000000001", sku=UNMAPPED))
    ingest(sync_channels["jd"], p.jd(order_id="290030000001"))
    outbox.fan_out()
    db.session.commit()
    urls = ("/channels/inbox?status=all", "/webhooks/", "/channels/", "/channels/TB", "/channels/reconciliation")
    few = {url: len(statements_for(client, url)) for url in urls}
    for n in range(2, 8):
        ingest(sync_channels["taobao"], p.taobao(tid=f"380300000000000{n}", sku=UNMAPPED if n % 2 else "SKU-0001"))
        ingest(sync_channels["jd"], p.jd(order_id=f"29003000000{n}"))
        manual_report(sync_channels["jd"], p.jd(order_id=f"29003000000{n}"))
    outbox.fan_out()
    db.session.commit()
    assert count(WebhookDelivery) >= 8 and count(InboxItem) == 14
    many = {url: statements_for(client, url) for url in urls}
    assert {url: len(sent) for url, sent in many.items()} == few
    inbox_sql = " ".join(many["/channels/inbox?status=all"]).lower()
    assert "inbox_items.body" not in inbox_sql and "webhook_subscriptions.secret" not in \
        " ".join(many["/webhooks/"]).lower()


def test_markup_in_channel_data_is_shown_escaped(client_for, sync_channels):
    from shared.models import WebhookRejection
    from shared.services import outbox

    markup = '<script>alert("x")</script>'
    db.session.add(WebhookRejection(channel_code=markup[:40], reason="unknown_channel", detail=markup,
                                    remote_addr="203.0.113.9", size=10))
    outbox.create_subscription(markup, "https://example.com/<b>", "erp-signing-secret-0123456789", markup, ADMIN)
    db.session.commit()
    ingest(sync_channels["taobao"], p.taobao(tid="3804000000000001", sku=markup[:60]))
    client = client_for("ops_manager")
    post(client, "/channels/TB/status-mappings", {"platform_status": markup, "lifecycle": "confirmed",
                                                  "payment_status": "", "refund_status": "", "note": markup},
         "/channels/TB")
    for url in ("/channels/", "/channels/inbox", "/channels/TB", "/webhooks/"):
        page = client.get(url).text
        assert "<script>alert" not in page and "&lt;script&gt;alert(" in page, url
