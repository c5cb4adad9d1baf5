"""History people can read (issue 14 item 2): every audit event name used in the code has its sentence; sentences in
Chinese and English with states, fields, money and time in words; masked and hidden values as the viewer's role
sees them; the audit viewer and the order page show the sentence with the raw event one click away, escaped."""
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from shared import history
from shared.actors import Actor
from shared.extensions import db
from shared.models import AuditEvent
from shared.services import audit, orders
from tests.portal_client import csrf_token

ROOT = Path(__file__).resolve().parents[1]
ADMIN_ACTOR = Actor(id=None, label="u_admin", role="admin")
SOURCES = ("shared", "portal", "jobs", "customer_site", "cli")
CALL = re.compile(r"audit\.record(?:_many)?\(\s*[^,()]+(?:\([^()]*\))?,\s*(?P<action>[^,]+),")
LITERAL = re.compile(r'^"([a-z_]+\.[a-z_]+)"$')
# Call sites whose event name is computed, with every name they can record. A new computed name fails the test until
# it is listed here, with its sentence in shared/history.py.
COMPUTED = {
    ("shared/services/exports.py", "action"): ["export.expire", "export.clearance_lapsed", "export.stalled",
                                               "export.purge"],
    ("shared/services/exceptions.py", "action"): ["exception.warn", "exception.breach", "exception.escalate",
                                                  "exception.close"],
    ("shared/services/invoice_mail.py", "MAILED"): ["invoice.mailed"],
    ("shared/services/staff.py", 'f"user.{reason}"'): ["user.sign_out_everywhere", "user.sign_out"],
    ("shared/services/customers.py", 'f"customer.{reason}"'): ["customer.sign_out"],
    ("shared/services/invoices.py", 'f"invoice.{target}"'): ["invoice.issued", "invoice.failed"],
    ("shared/services/stock_ops.py", 'f"stock_take.{take.status}"'): ["stock_take.approved", "stock_take.rejected"],
    ("shared/services/red_letters.py", 'f"invoice.red_{target}"'): ["invoice.red_refused", "invoice.red_submitted",
                                                                     "invoice.red_confirmed", "invoice.red_issued"],
    ("shared/services/sign_in.py", 'f"{prefix}.sign_in_refused"'): ["user.sign_in_refused",
                                                                    "customer.sign_in_refused"],
    ("shared/services/sign_in.py", 'f"{prefix}.sign_in_failed"'): ["user.sign_in_failed", "customer.sign_in_failed"],
    ("shared/services/sign_in.py", 'f"{prefix}.sign_in"'): ["user.sign_in", "customer.sign_in"],
    ("shared/services/channel_settings.py", '"channel.connect" if created else "channel.connection_change"'): [
        "channel.connect", "channel.connection_change"],
    ("shared/services/waves.py", '"wave.release" if wave.status == "planned" else "wave.resume_release"'): [
        "wave.release", "wave.resume_release"],
    ("shared/services/approvals.py", '"approval_rule.create" if creating else "approval_rule.update"'): [
        "approval_rule.create", "approval_rule.update"],
    ("shared/services/outbox.py", '"webhook.activate" if active else "webhook.deactivate"'): [
        "webhook.activate", "webhook.deactivate"],
    ("shared/services/carrier_scores.py", '"carrier.deweight" if under else "carrier.restore"'): [
        "carrier.deweight", "carrier.restore"],
    ("shared/services/after_sales.py", 'f"after_sale.{target}"'): [
        "after_sale.approved", "after_sale.declined", "after_sale.awaiting_return", "after_sale.received",
        "after_sale.inspected", "after_sale.refunded", "after_sale.replaced", "after_sale.resent",
        "after_sale.closed", "after_sale.cancelled"],
}


def event_names_in_the_code() -> tuple[set[str], set[tuple[str, str]]]:
    """Every literal event name passed to audit.record/record_many, and the call sites that compute theirs."""
    literal, computed = set(), set()
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for match in CALL.finditer(text):
                action = " ".join(match.group("action").split())
                name = LITERAL.match(action)
                if name:
                    literal.add(name.group(1))
                else:
                    computed.add((str(path.relative_to(ROOT)), action))
    return literal, computed


def test_every_event_name_in_the_code_has_its_sentence():
    literal, computed = event_names_in_the_code()
    assert len(literal) > 100  # the grep found the calls (a broken pattern finds none and proves nothing)
    assert computed == set(COMPUTED), "a call site computes its event name: list its names in COMPUTED"
    used = literal | {name for names in COMPUTED.values() for name in names}
    missing = sorted(name for name in used if not history.has_sentence(name))
    assert not missing, f"events without a sentence in shared/history.py: {missing}"
    unused = sorted(set(history.SENTENCES) - used)
    assert not unused, f"sentences for events nothing records: {unused}"


def event(action="order.transition", entity_type="order", entity_id="SO-1", before=None, after=None, reason=None,
          actor="张三"):
    return AuditEvent(action=action, entity_type=entity_type, entity_id=entity_id, before=before, after=after,
                      reason=reason, actor_label=actor, occurred_at=datetime(2026, 12, 4, 2, 30, tzinfo=UTC))


def told(made, role="admin", locale="en"):
    with force_locale(locale):
        return history.describe(made, role)


@pytest.fixture
def ctx(portal):
    with portal.test_request_context():
        yield portal


HOLD = event(before={"status": "confirmed", "total": "10.00", "currency": "CNY"},
             after={"status": "on_hold", "total": "10.00", "currency": "CNY"}, reason="客户要求改期")


def test_a_state_change_with_its_reason_in_english_and_chinese(ctx):
    english = told(HOLD)
    assert english.sentence == "张三 moved order SO-1 from Confirmed to On hold, reason: 客户要求改期"
    assert english.changes == []  # the state is in the sentence; the unchanged total is not repeated
    assert told(HOLD, locale="zh_CN").sentence == "张三 把订单 SO-1 从 已确认 改为 已挂起，原因：客户要求改期"
    system = told(event(action="order.create", before=None, after={"status": "pending_review"}, actor="system"),
                  locale="zh_CN")
    assert system.sentence == "系统 创建了订单 SO-1（待审核）"


def test_a_reason_the_system_wrote_reads_in_the_viewers_language(ctx):
    confirmed = event(before={"status": "pending_review"}, after={"status": "confirmed"}, actor="system",
                      reason="paid order passed auto-review")
    assert told(confirmed, locale="zh_CN").sentence == "系统 把订单 SO-1 从 待审核 改为 已确认，原因：已付款订单自动审核通过"
    moved = event(action="order.address_change", before={}, after={}, actor="system",
                  reason="changed on the platform: district, street")
    assert told(moved, locale="zh_CN").sentence.endswith("原因：在平台上修改：区/县、街道地址")
    assert told(moved).sentence.endswith("reason: changed on the platform: District, Street")
    typed = event(reason="changed on the platform: please call")  # not what the system writes: as typed
    assert told(typed, locale="zh_CN").sentence.endswith("原因：changed on the platform: please call")


ADDRESS = event(action="order.address_change",
                before={"receiver": "张*", "phone": "173****5372", "address": "浙江省 杭州市 西湖区"},
                after={"receiver": "李*", "phone": "139****0001", "address": "浙江省 杭州市 滨江区",
                       "fields": ["receiver_phone", "district"]}, reason="买家来电")


def test_an_address_change_shows_what_each_role_may_see(ctx):
    for role in ("admin", "customer_service"):  # full and masked: the trail only ever kept the masked forms
        shown = [str(c) for c in told(ADDRESS, role).changes]
        assert "Phone: 173****5372 → 139****0001" in shown and "Address: 浙江省 杭州市 西湖区 → 浙江省 杭州市 滨江区" in shown
        assert "Receiver: 张* → 李*" in shown
    hidden = told(ADDRESS, "auditor")
    words = json.dumps([str(c) for c in hidden.changes] + [hidden.raw], ensure_ascii=False)
    for value in ("173****5372", "139****0001", "西湖区", "滨江区", "张*", "李*"):
        assert value not in words and value not in hidden.sentence
    assert "Phone: hidden → hidden" in [str(c) for c in hidden.changes]
    assert hidden.raw["after"]["phone"] == audit.HIDDEN
    chinese = [str(c) for c in told(ADDRESS, "auditor", "zh_CN").changes]
    assert "手机号：隐藏 → 隐藏" in chinese and "修改的字段：收货人手机号、区/县" in chinese
    assert told(ADDRESS, "admin", "zh_CN").sentence == "张三 修改了订单 SO-1 的收货地址，原因：买家来电"


def test_a_price_change_formats_money_with_its_currency(ctx):
    change = event(action="order.price_change",
                   before={"goods_total": "100", "shipping_fee": "10.00", "discount": "0.00", "total": "110.00",
                           "currency": "CNY", "lines": {"7": "50.00"}},
                   after={"goods_total": "90.00", "shipping_fee": "10.00", "discount": "0.00", "total": "100.00",
                          "currency": "CNY", "lines": {"7": "45.00"}}, reason="老客户优惠")
    english = [str(c) for c in told(change).changes]
    assert english == ["Goods total: CNY 100.00 → CNY 90.00", "Total: CNY 110.00 → CNY 100.00",
                       "Line prices: line 7: CNY 50.00 → line 7: CNY 45.00"]
    chinese = told(change, locale="zh_CN")
    assert chinese.sentence == "张三 修改了订单 SO-1 的价格，原因：老客户优惠"
    assert "合计：CNY 110.00 → CNY 100.00" in [str(c) for c in chinese.changes]


def test_a_time_is_shown_in_the_merchant_zone_with_the_zone_named(ctx, monkeypatch):
    locked = event(action="second_factor.locked", entity_type="staff_user", entity_id="bob", actor="system",
                   after={"locked_until": "2026-12-04T10:00:00+00:00", "purpose": "sign_in"})
    assert told(locked).sentence == "The second factor of bob was locked until 2026-12-04 18:00 (Asia/Shanghai)"
    with monkeypatch.context() as patched:
        patched.setitem(ctx.config, "MERCHANT_TIMEZONE", "Europe/Berlin")
        assert told(locked, locale="zh_CN").sentence == "bob 的第二重验证已锁定至 2026-12-04 11:00（Europe/Berlin）"


def test_booleans_and_labels_read_as_words_and_an_unknown_event_falls_back(ctx):
    sku = told(event(action="sku.update", entity_type="sku", entity_id="TEA", before={"batch_tracked": False},
                     after={"batch_tracked": True}))
    assert sku.sentence == "张三 changed SKU TEA" and [str(c) for c in sku.changes] == ["Batch tracked: no → yes"]
    unknown = told(event(action="novel.thing", entity_type="thing", entity_id="9", after={"count": 3}))
    assert unknown.sentence == "张三: novel.thing" and [str(c) for c in unknown.changes] == ["count: 3"]


MARKUP = '<script>alert("x")</script>'


def test_the_audit_viewer_shows_the_sentence_and_the_raw_event_in_both_languages(client_for, create_order):
    order = create_order(status="confirmed")
    orders.transition_order(order, "on_hold", ADMIN_ACTOR, reason="客户要求改期")
    db.session.commit()
    client = client_for("admin")
    page = client.get(f"/audit/?entity={order.order_no}&action=order.transition").text
    assert f"u_admin moved order {order.order_no} from Confirmed to On hold, reason: 客户要求改期" in page
    raw = page.split('data-testid="history-raw"')[1].split("</details>")[0]
    assert "<summary" in raw and '"action": "order.transition"' in raw
    assert '"status": "on_hold"' in raw and '"reason": "客户要求改期"' in raw  # the stored event, one click away
    client.post("/language", data={"lang": "zh_CN", "csrf_token": csrf_token(client, "/")})
    chinese = client.get(f"/audit/?entity={order.order_no}&action=order.transition").text
    assert f"u_admin 把订单 {order.order_no} 从 已确认 改为 已挂起，原因：客户要求改期" in chinese
    assert "原始记录" in chinese


def test_the_order_history_tells_each_event_as_a_sentence(client_for, create_order):
    order = create_order(status="confirmed")
    orders.transition_order(order, "on_hold", ADMIN_ACTOR, reason="客户要求改期")
    db.session.commit()
    page = client_for("customer_service").get(f"/orders/{order.order_no}").text
    timeline = page.split('data-testid="order-history"')[1].split("</ol>")[0]
    assert f"u_admin moved order {order.order_no} from Confirmed to On hold, reason: 客户要求改期" in timeline
    assert timeline.count('data-testid="history-raw"') == timeline.count('data-testid="history-sentence"') >= 3
    assert "order.transition" in timeline  # in the raw event only
    assert "<strong>order.transition</strong>" not in timeline
    assert f"u_admin moved order {order.order_no}" in timeline and "Warehouse: HZ1" in timeline  # a code, not an id


def test_a_reason_with_markup_is_escaped_in_the_sentence_and_the_raw_event(client_for, create_order):
    order = create_order(status="confirmed")
    orders.transition_order(order, "on_hold", ADMIN_ACTOR, reason=MARKUP)
    db.session.commit()
    client = client_for("admin")
    for url in (f"/audit/?entity={order.order_no}", f"/orders/{order.order_no}"):
        page = client.get(url).text
        assert "<script>alert" not in page, url
        assert "reason: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page, url
    stored = db.session.execute(select(AuditEvent.reason).where(AuditEvent.entity_id == order.order_no,
                                                                AuditEvent.reason == MARKUP)).scalar_one()
    assert stored == MARKUP  # stored as typed, escaped when shown



# --- The access log in words (issue 14 item 1: the viewer showed raw action codes) ------------------------------

ACCESS_CALL = re.compile(r"(?<!def )log_access\(\s*[^,()]+(?:\([^()]*\))?,\s*(?P<action>[^,]+),")


def test_every_access_log_action_in_the_code_has_its_words():
    from shared import labels

    actions = set()
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            for found in ACCESS_CALL.finditer(path.read_text(encoding="utf-8")):
                written = found.group("action").strip()
                if re.fullmatch(r'"[a-z_]+"', written):
                    actions.add(written.strip('"'))
                elif written.startswith('f"{purpose}:'):  # platform_privacy.decrypt: "<purpose>:<outcome>"
                    assert written[len('f"{purpose}:'):-1] in labels.ACCESS_OUTCOME, written
                else:
                    assert written == "purpose", f"{path}: a computed access-log action {written}: list its words"
    purposes = {"reveal", "print_label", "waybill"}  # platform_privacy's purposes, as its callers pass them
    assert {"search", "search_refused", "view", "download", "export", "trace"} <= actions
    assert actions | purposes <= set(labels.ACCESS_ACTION), sorted(actions | purposes - set(labels.ACCESS_ACTION))


def test_the_access_log_shows_actions_entities_fields_and_doors_in_words(client_for, create_order):
    order = create_order(status="confirmed")
    viewer = Actor(id=None, label="u_cs", role="customer_service")
    audit.log_access(viewer, "search", "orders", "by:phone_last4; found:3", ["phone"], channel="portal")
    audit.log_access(viewer, "reveal:platform_decrypt", "order", order.order_no, ["receiver", "phone", "address"],
                     channel="api")
    audit.log_access(viewer, "download", "export:orders", "EXP-1", ["name"], channel="export")
    audit.log_access(viewer, "made_up_action", "something_new", "7", ["odd_field"], channel="portal")
    db.session.commit()
    client = client_for("auditor")
    page = client.get("/audit/access-log").text
    assert "Searched by a personal value" in page and "Orders by last four digits of the phone, 3 found" in page
    assert "Revealed in full (decrypted by the platform)" in page and f"Order {order.order_no}" in page
    assert "Address, Phone, Receiver" in page and ">API<" in page
    assert "Downloaded" in page and "Export: Orders EXP-1" in page and ">Export file<" in page
    assert "made_up_action" in page and "something_new 7" in page and "odd_field" in page  # unknown: as stored
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    assert not {"search", "reveal:platform_decrypt", "download", "by:phone_last4; found:3", "portal"} & set(cells)
    client.post("/language", data={"lang": "zh_CN", "csrf_token": csrf_token(client, "/")})
    chinese = client.get("/audit/access-log").text
    for words in ("按个人信息搜索", "按手机号后四位，找到 3 条", "完整查看（由平台解密）", "收货地址、手机号、收货人", "下载", "导出：订单 EXP-1"):
        assert words in chinese, words
