"""Refunds of orders (shared.services.refunds): through the payment simulator's WeChat Pay and Alipay refund APIs
over loopback HTTP (our signature checked, theirs checked), the refund notifications through the payment hooks and
inbox (once, an unknown order waits, a forged one refused), the provider's refusal, a provider timing out and the
refund resolved by its number, approvals, platform refunds completing a refund asked for here, red letters for
invoiced orders on both paths, the API, and a real RQ worker resolving a refund."""
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from sqlalchemy import func, select

from devtools.simulators.payments import PaymentSimulator
from shared.extensions import db
from shared.models import AuditEvent, Order, PlatformRefund, StockLevel
from shared.models.invoices import RedLetter
from shared.models.payments import OrderRefund, PaymentNotice
from shared.payments import PaymentMessageError, alipay, refund_api, wechatpay
from shared.services import approvals, orders, payments, refunds
from shared.services.errors import ValidationFailed
from shared.timekeeping import local_date
from tests.factories import ADMIN, open_paying_shop, order_payload
from tests.test_api import token_for  # noqa: F401  (fixture)
from tests.test_invoices import sim  # noqa: F401  (fixture: the invoicing simulator)

FIXTURES = Path(__file__).parent / "fixtures" / "payments"
FIXTURE_KEY = "0123456789abcdefghijklmnopqrstuv"
WECHAT_URL, ALIPAY_URL = "/hooks/pay/wechatpay/OS", "/hooks/pay/alipay/OS"


@pytest.fixture(scope="module")
def payer():
    """The payment provider simulator, serving its refund APIs on loopback for the module."""
    sim = PaymentSimulator()
    sim.start()
    sim.deliver = False  # the tests post the notifications themselves (the portal is a test client here)
    yield sim
    sim.stop()


@pytest.fixture
def shop(session, payer):
    payer.reset()
    return open_paying_shop(payer)


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar()


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def paid_by_wechat(portal, payer, number: str, fen: int = 6790) -> Order:
    order = orders.create_order(order_payload(channel_order_id=number, paid=False), ADMIN)
    db.session.commit()
    headers, body = payer.wechatpay_notification(number, fen)
    assert portal.test_client().post(WECHAT_URL, data=body, headers=headers).status_code == 200
    return confirmed(fresh(Order, order.id))


def confirmed(order: Order) -> Order:
    """Paid by the notify, then reviewed and confirmed as customer service does."""
    assert order.payment_status == "paid"
    if order.status == "pending_review":
        orders.transition_order(order, "confirmed", ADMIN, reason="reviewed")
        db.session.commit()
    return order


def paid_by_alipay(portal, payer, number: str, amount: str = "67.90") -> Order:
    order = orders.create_order(order_payload(channel_order_id=number, paid=False), ADMIN)
    db.session.commit()
    params = payer.alipay_notification(number, amount)
    answer = portal.test_client().post(ALIPAY_URL, data=urlencode(params), headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert answer.get_data(as_text=True) == "success"
    return confirmed(fresh(Order, order.id))


def post_notification(portal, provider: str, headers: dict, body: bytes):
    url = WECHAT_URL if provider == "wechatpay" else ALIPAY_URL
    return portal.test_client().post(url, data=body, headers=headers)


def available(sku: str = "SKU-1") -> int:
    from shared.models import Sku
    level = db.session.execute(select(StockLevel).join(Sku, Sku.id == StockLevel.sku_id).where(Sku.code == sku)
                               ).scalar_one()
    return level.on_hand - level.reserved - level.held


# --- the formats ----------------------------------------------------------------------------------------------

def test_the_documented_refund_notification_resource_reads_after_decryption_and_only_as_a_refund():
    plain = json.loads((FIXTURES / "wechatpay_refund_notify_resource.json").read_text(encoding="utf-8"))
    resource = wechatpay.encrypt_resource(FIXTURE_KEY, plain, "0123456789ab", associated_data="refund",
                                          original_type="refund")
    body = json.dumps({"id": "1", "event_type": "REFUND.SUCCESS", "resource_type": "encrypt-resource",
                       "resource": resource}).encode()
    assert wechatpay.is_refund_notification(body)
    read = wechatpay.read_refund_notification(body, FIXTURE_KEY)
    assert (read["out_refund_no"], read["refund_id"], read["state"], read["amount"], read["total"]) == (
        "RF1217752501201407033233368018", "50000000382019052709732678859", "SUCCESS", Decimal("10.00"),
        Decimal("67.90"))
    assert read["refunded_at"].isoformat() == "2026-12-02T13:29:35+08:00"
    payment_like = dict(resource, associated_data="transaction")  # a refund's resource is bound to "refund"
    with pytest.raises(PaymentMessageError):
        wechatpay.read_refund_notification(json.dumps({"resource": payment_like}).encode(), FIXTURE_KEY)


def test_the_wechat_request_signature_is_the_documented_message_and_header(payer):
    body = (FIXTURES / "wechatpay_refund_request.json").read_bytes()
    header = wechatpay.authorization("1900000109", "ABC123", payer.merchant_private, "POST",
                                     "/v3/refund/domestic/refunds", body, timestamp="1554208460",
                                     nonce="593BEC0C930BF1AFEB40B4A08C8FB242")
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB'
                             '242",signature="')
    fields = wechatpay.read_authorization(header)
    assert (fields["timestamp"], fields["serial_no"]) == ("1554208460", "ABC123")
    message = b"POST\n/v3/refund/domestic/refunds\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n" + body + b"\n"
    assert wechatpay.request_message("POST", "/v3/refund/domestic/refunds", "1554208460",
                                     "593BEC0C930BF1AFEB40B4A08C8FB242", body) == message
    # the full URL requested signs as its path: the refund client and the bill download sign alike
    assert wechatpay.request_message("POST", "https://api.mch.weixin.qq.com/v3/refund/domestic/refunds",
                                     "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", body) == message
    assert set(json.loads(body)) == {"out_trade_no", "out_refund_no", "reason", "notify_url", "amount"}


def test_an_alipay_answer_is_verified_over_the_exact_text_of_its_response_object(payer):
    documented = (FIXTURES / "alipay_refund_answer.json").read_text(encoding="utf-8")
    value, text = alipay.response_text(documented, "alipay_trade_refund_response")
    assert value["fund_change"] == "Y" and text.startswith('{"code":"10000"') and text.endswith('"10.00"}')
    signed = documented.replace("ERITJKEIJKJHKKKKKKKHJEREEEEEEEEEEE", alipay.sign_text(text, payer.alipay_private))
    assert alipay.read_response(signed, "alipay.trade.refund", payer.alipay_public)["refund_fee"] == "10.00"
    with pytest.raises(PaymentMessageError) as forged:  # the doc's placeholder sign is nobody's
        alipay.read_response(documented, "alipay.trade.refund", payer.alipay_public)
    assert forged.value.code == "bad_signature"
    refused = json.loads((FIXTURES / "alipay_refund_refused.json").read_text(encoding="utf-8"))
    assert refund_api.AlipayRefunds._refusal(refused["alipay_trade_refund_response"]).code == \
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    params = dict(parse_qsl((FIXTURES / "alipay_refund_notify.txt").read_text(encoding="utf-8").replace("\n", "&"),
                            keep_blank_values=True))
    assert alipay.is_refund_notification(params)
    read = alipay.read_refund_notification(params)
    assert (read["out_refund_no"], read["refunded_total"]) == ("RFAL2001REFUND01", Decimal("10.00"))


# --- WeChat Pay -----------------------------------------------------------------------------------------------

def test_a_wechat_refund_goes_to_the_provider_and_its_notification_completes_it_once(shop, payer, portal):
    order = paid_by_wechat(portal, payer, "WX-RF-1")
    row = refunds.refund(order.order_no, "10.00", "缺货部分退款", ADMIN)
    db.session.commit()
    assert (row.status, row.provider) == ("processing", "wechatpay")  # WeChat answers PROCESSING first
    assert payer.refunds["wechatpay"][row.out_refund_no]["amount"] == Decimal("10.00")
    [(provider, headers, body)] = payer.notifications
    assert json.loads(body)["event_type"] == "REFUND.SUCCESS"
    assert post_notification(portal, provider, headers, body).status_code == 200
    row = fresh(OrderRefund, row.id)
    assert row.status == "succeeded" and row.provider_refund_id.startswith("50")
    order = fresh(Order, order.id)
    assert (order.status, order.refund_status) == ("confirmed", "partially_refunded")
    [recorded] = db.session.execute(select(PlatformRefund)).scalars().all()
    assert (recorded.amount, recorded.platform_refund_id) == (Decimal("10.00"), row.out_refund_no)
    # the very same notification again, and WeChat's retry of it (new id, new signature): nothing changes
    assert post_notification(portal, provider, headers, body).status_code == 200
    again_headers, again_body = payer.wechatpay_refund_notification(payer.refunds["wechatpay"][row.out_refund_no])
    assert post_notification(portal, provider, again_headers, again_body).status_code == 200
    notices = db.session.execute(select(PaymentNotice).where(PaymentNotice.provider == "wechatpay",
                                                             PaymentNotice.transaction_id.like("50%"))
                                 .order_by(PaymentNotice.id)).scalars().all()
    assert [(n.times_received, n.outcome) for n in notices] == [(2, "refunded"), (1, "duplicate")]
    assert count(PlatformRefund) == 1 and fresh(Order, order.id).refund_status == "partially_refunded"
    assert count(AuditEvent, AuditEvent.action == "refund.succeeded") == 1
    # the day's bill (the simulator's, with the payment and the refund line) reconciles clean: the refund is seen
    account = payments.account_for("OS", "wechatpay")
    today = local_date(datetime.now(UTC), "Asia/Shanghai")
    payer.today = today + timedelta(days=1)  # today's bill exists from tomorrow: the simulator is a day ahead
    bill = payments.download_bill(account, today)
    assert bill.decode().count("`REFUND") == 1
    run = payments.reconcile(account, today, bill, ADMIN)
    assert (run.refund_mismatch, run.paid_not_recorded, run.recorded_not_paid) == (0, 0, 0)


def test_a_refund_over_what_was_paid_is_refused_and_nothing_is_sent(shop, payer, portal):
    order = paid_by_wechat(portal, payer, "WX-RF-OVER")
    for bad in ("67.91", "0", "-1", "1.234", "abc"):
        with pytest.raises(ValidationFailed) as refused:
            refunds.refund(order.order_no, bad, "too much", ADMIN)
        assert refused.value.code in ("over_refundable", "invalid_amount")
    db.session.rollback()
    with pytest.raises(ValidationFailed) as currency:
        refunds.refund(order.order_no, "1.00", "usd", ADMIN, currency="USD")
    assert currency.value.code == "currency_mismatch"
    db.session.rollback()
    refunds.refund(order.order_no, "60.00", "most of it", ADMIN)
    db.session.commit()
    with pytest.raises(ValidationFailed) as second:  # 60.00 of 67.90 is on its way: 7.90 is left
        refunds.refund(order.order_no, "8.00", "the rest and more", ADMIN)
    assert second.value.code == "over_refundable" and "7.90" in str(second.value)
    db.session.rollback()
    assert count(OrderRefund) == 1 and len(payer.refunds["wechatpay"]) == 1
    assert [what for _p, what in payer.requests if what.startswith("refund:")] == [
        f"refund:{db.session.execute(select(OrderRefund.out_refund_no)).scalar_one()}"]


def test_a_refund_notification_with_a_bad_signature_is_refused_and_stored_nowhere(shop, payer, portal):
    order = paid_by_wechat(portal, payer, "WX-RF-FORGED")
    refunds.refund(order.order_no, "10.00", "partial", ADMIN)
    db.session.commit()
    [(provider, headers, body)] = payer.notifications
    before = count(PaymentNotice)
    forged = body.replace(b"REFUND.SUCCESS", b"REFUND.SUCCESS ")
    assert post_notification(portal, provider, headers, forged).status_code == 401
    other = PaymentSimulator()  # signed, by a key that is not the platform's
    refund = dict(payer.refunds["wechatpay"][next(iter(payer.refunds["wechatpay"]))])
    other_headers, other_body = other.wechatpay_refund_notification(refund)
    other_headers["Wechatpay-Serial"] = payer.platform_serial
    assert post_notification(portal, provider, other_headers, other_body).status_code == 401
    assert count(PaymentNotice) == before and count(PlatformRefund) == 0
    assert fresh(Order, order.id).refund_status == "none"


def test_a_refund_notification_for_an_unknown_order_waits_and_applies_when_the_order_arrives(shop, payer, portal):
    from jobs.payments import sweep_payment_notices

    payer._record("wechatpay", datetime.now(UTC), "payment", "WX-RF-LATER", "4200000000000000001", Decimal("67.90"))
    refund = payer._make_refund("wechatpay", "WX-RF-LATER", "RFCONSOLE0001", Decimal("5.00"), None)
    headers, body = payer.wechatpay_refund_notification(refund)  # made in the merchant's console, not here
    assert post_notification(portal, "wechatpay", headers, body).status_code == 200
    [notice] = db.session.execute(select(PaymentNotice)).scalars().all()
    assert (notice.status, notice.error_code) == ("waiting", "order_not_found") and count(PlatformRefund) == 0
    order = orders.create_order(order_payload(channel_order_id="WX-RF-LATER"), ADMIN)
    db.session.commit()
    sweep_payment_notices()
    assert (fresh(PaymentNotice, notice.id).status, fresh(PaymentNotice, notice.id).outcome) == ("done", "refunded")
    assert fresh(Order, order.id).refund_status == "partially_refunded"
    assert db.session.execute(select(PlatformRefund.amount)).scalar_one() == Decimal("5.00")


def test_the_provider_refusing_a_refund_over_the_total_fails_it_and_changes_nothing(shop, payer, portal):
    order = paid_by_wechat(portal, payer, "WX-RF-REFUSED")
    # 60.00 was refunded in WeChat Pay's own console (not here): WeChat has only 7.90 left of the trade
    payer._make_refund("wechatpay", "WX-RF-REFUSED", "RFCONSOLE0002", Decimal("60.00"), None)
    row = refunds.refund(order.order_no, "20.00", "partial", ADMIN)
    db.session.commit()
    assert (row.status, row.error_code) == ("failed", "INVALID_REQUEST")
    assert "超过订单可退金额" in row.last_error
    assert count(PlatformRefund) == 0 and fresh(Order, order.id).refund_status == "none"
    assert refunds.refundable(fresh(Order, order.id)) == Decimal("67.90")  # a failed refund holds nothing
    assert count(AuditEvent, AuditEvent.action == "refund.failed") == 1


def test_alipay_refuses_over_the_total_and_a_full_refund_before_shipping_cancels_and_releases(shop, payer, portal):
    order = paid_by_alipay(portal, payer, "AL-RF-1")
    assert available() == 19
    payer._make_refund("alipay", "AL-RF-1", "RFCONSOLE0003", Decimal("60.00"), None)
    refused = refunds.refund(order.order_no, "67.90", "all", ADMIN)
    db.session.commit()
    assert (refused.status, refused.error_code) == ("failed", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    del payer.refunds["alipay"]["RFCONSOLE0003"]  # set-up: the console refund was a mistake of the test's world
    row = refunds.refund(order.order_no, "67.90", "customer cancelled", ADMIN)
    db.session.commit()
    assert row.status == "succeeded"  # Alipay answers fund_change Y at once
    order = fresh(Order, order.id)
    assert (order.status, order.refund_status) == ("cancelled", "refunded") and available() == 20
    # Alipay's trade notify about the refund (refund_fee, out_biz_no) afterwards: once
    [(provider, headers, body)] = [n for n in payer.notifications if b"out_biz_no=" + row.out_refund_no.encode()
                                   in body_of(n)]
    assert post_notification(portal, provider, headers, body).get_data(as_text=True) == "success"
    notice = db.session.execute(select(PaymentNotice).order_by(PaymentNotice.id.desc()).limit(1)).scalar_one()
    assert notice.outcome == "duplicate" and count(PlatformRefund) == 1
    with pytest.raises(ValidationFailed):
        refunds.refund(order.order_no, "0.01", "again", ADMIN)


def body_of(notification) -> bytes:
    return notification[2]


def test_a_provider_timing_out_leaves_the_refund_processing_and_resolving_it_is_idempotent(shop, payer, portal):
    order = paid_by_wechat(portal, payer, "WX-RF-SLOW")
    payer.stall_seconds = 3.0
    from flask import current_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(current_app.config, "PAYMENT_API_TIMEOUT", 0.5)
        row = refunds.refund(order.order_no, "10.00", "slow provider", ADMIN)
        db.session.commit()
    assert (row.status, row.error_code) == ("processing", "provider_unreachable")
    assert len(payer.refunds["wechatpay"]) == 1  # the provider made it; we did not hear
    payer.stall_seconds = 0.0
    assert refunds.resolve(fresh(OrderRefund, row.id)) == "succeeded"
    db.session.commit()
    assert refunds.resolve(fresh(OrderRefund, row.id)) == "succeeded"  # asked again: nothing more
    assert count(PlatformRefund) == 1 and len(payer.refunds["wechatpay"]) == 1
    assert [what.split(":")[0] for _p, what in payer.requests] == ["refund", "query"]


def test_a_refund_the_provider_never_got_is_sent_again_with_the_same_number(shop, payer, portal):
    order = paid_by_alipay(portal, payer, "AL-RF-LOST")
    account = payments.account_for("OS", "alipay")
    kept = account.api_url
    account.api_url = "http://127.0.0.1:9/nowhere"  # set-up: the gateway unreachable for this one call
    db.session.commit()
    row = refunds.refund(order.order_no, "5.00", "network down", ADMIN)
    db.session.commit()
    assert row.status == "processing" and payer.refunds["alipay"] == {}
    account.api_url = kept
    db.session.commit()
    assert refunds.resolve(fresh(OrderRefund, row.id)) == "succeeded"
    db.session.commit()
    assert list(payer.refunds["alipay"]) == [row.out_refund_no]
    assert fresh(Order, order.id).refund_status == "partially_refunded"


# --- approvals, platform channels, red letters ----------------------------------------------------------------

def test_a_refund_rule_holds_the_refund_until_approved_then_it_is_made(shop, payer, portal):
    from shared.actors import Actor
    from shared.services import staff
    from tests.factories import PASSWORD

    finance = staff.create_user("fin1", PASSWORD, "finance", ADMIN, locale="en")
    boss = staff.create_user("boss1", PASSWORD, "admin", ADMIN, locale="en")
    approvals.save_rule(ADMIN, code="big_refund", operation="order.refund", name_zh="大额退款",
                        name_en="Big refund", conditions={"min_amount": "50.00"},
                        steps=[{"kind": "users", "target": str(boss.id), "quorum": 1}])
    db.session.commit()
    assert approvals.OPERATIONS["order.refund"].wired
    order = paid_by_wechat(portal, payer, "WX-RF-APPROVE")
    small = refunds.refund(order.order_no, "10.00", "small", Actor.for_staff(finance, ip="127.0.0.1"))
    db.session.commit()
    assert small.status == "processing"
    row = refunds.refund(order.order_no, "50.00", "big", Actor.for_staff(finance, ip="127.0.0.1"))
    db.session.commit()
    assert row.status == "pending_approval" and len(payer.refunds["wechatpay"]) == 1
    with pytest.raises(ValidationFailed):  # the held 50.00 counts: only 7.90 left
        refunds.refund(order.order_no, "8.00", "more", ADMIN)
    db.session.rollback()
    held = db.session.get(approvals.ApprovalRequest, row.approval_request_id)
    approvals.decide(held, boss, "approve", None, Actor.for_staff(boss, ip="127.0.0.1"))
    db.session.commit()
    row = fresh(OrderRefund, row.id)
    assert row.status == "processing" and row.out_refund_no in payer.refunds["wechatpay"]


def test_a_refund_on_a_platform_channel_waits_for_the_platforms_refund_which_completes_it(portal, sync_channels):
    from tests.test_webhook_topics import body_of as webhook_body, order_of, send

    client = portal.test_client()
    send(client, "shopify/orders_create.json")
    order = order_of("shopify", webhook_body("shopify/orders_create.json")["id"])
    row = refunds.refund(order.order_no, "24.95", "returned one item", ADMIN, goods_returned=True)
    db.session.commit()
    # Pushed to Shopify's refund API (tests/test_platform_refunds.py), which this channel's address does not reach:
    # the refund stays processing until the platform's own report of it arrives.
    assert (row.status, row.provider, row.error_code) == ("processing", "shopify", "platform_unreachable")
    send(client, "shopify/refunds_create_partial.json")  # the platform refunded the buyer: 24.95
    row = fresh(OrderRefund, row.id)
    assert row.status == "succeeded" and row.platform_refund_id is not None
    assert fresh(Order, order.id).refund_status == "partially_refunded"


def test_refunds_of_an_invoiced_order_open_red_letters_on_both_paths(sim, shop, payer, portal):  # noqa: F811
    from shared.channels.topics import PlatformRefundNotice
    from shared.services import channel_orders, invoices, red_letters
    from shared.timekeeping import utc_now
    from tests.test_invoices import NuonuoProvider, VALID_USCC, profile_for, taxed

    invoicing = NuonuoProvider(sim.base_url, sim.app_key, sim.app_secret, VALID_USCC, timeout=0.5)
    taxed()
    order = paid_by_wechat(portal, payer, "WX-RF-INV")
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    db.session.commit()
    invoices.submit(request, invoicing)
    invoices.poll(request, invoicing)
    db.session.commit()
    (part,) = request.parts
    # the provider path: a partial refund, goods kept → 销售折让 for 10.00
    row = refunds.refund(order.order_no, "10.00", "allowance", ADMIN)
    db.session.commit()
    [(provider, headers, body)] = payer.notifications
    post_notification(portal, provider, headers, body)
    [red] = db.session.execute(select(RedLetter)).scalars().all()
    assert (red.reason, red.total_gross, red.full) == ("allowance", Decimal("-10.00"), False)
    assert fresh(OrderRefund, row.id).status == "succeeded"
    # the platform path (channel_orders.apply_refund): the rest in full before shipping → 服务中止, in full
    context = channel_orders.ChannelContext(order.channel, None, {}, {}, {})
    notice = PlatformRefundNotice("PLATFORM-R1", order.channel_order_id, Decimal("57.90"), "CNY", utc_now(), None,
                                  (), False)
    outcome, _ = channel_orders.apply_refund(context, notice)
    db.session.commit()
    assert outcome == "refunded"
    reds = db.session.execute(select(RedLetter).order_by(RedLetter.id)).scalars().all()
    assert [(r.reason, r.total_gross) for r in reds] == [("allowance", Decimal("-10.00")),
                                                         ("stopped", Decimal("-57.90"))]
    assert red_letters.remaining(fresh(type(part), part.id)) == Decimal("0.00")
    order = fresh(Order, order.id)
    assert (order.status, order.refund_status) == ("cancelled", "refunded")
    assert count(AuditEvent, AuditEvent.action == "refund.invoices_reversed") == 2
    assert channel_orders.apply_refund(context, notice)[0] == "unchanged"  # once
    assert count(RedLetter) == 2


# --- the API --------------------------------------------------------------------------------------------------

def test_the_api_refunds_202_lists_refuses_over_and_needs_the_permission(shop, payer, portal, token_for):  # noqa: F811
    order = paid_by_alipay(portal, payer, "AL-RF-API")
    client = portal.test_client()
    finance = {"Authorization": f"Bearer {token_for('finance')}"}
    answer = client.post(f"/api/v1/orders/{order.order_no}/refunds", json={"amount": "7.90", "reason": "破损"},
                         headers=finance)
    assert answer.status_code == 202 and answer.get_json()["status"] == "succeeded"
    over = client.post(f"/api/v1/orders/{order.order_no}/refunds", json={"amount": "60.01", "reason": "x"},
                       headers=finance)
    assert over.status_code == 422 and over.get_json()["error"]["code"] == "over_refundable"
    listed = client.get(f"/api/v1/orders/{order.order_no}/refunds", headers=finance).get_json()
    assert (listed["refunded"], listed["refundable"], len(listed["items"])) == ("7.90", "60.00", 1)
    agent = {"Authorization": f"Bearer {token_for('customer_service')}"}
    refused = client.post(f"/api/v1/orders/{order.order_no}/refunds", json={"amount": "1.00", "reason": "x"},
                          headers=agent)
    assert refused.status_code == 403 and count(OrderRefund) == 1
    payer._make_refund("alipay", "AL-RF-API", "RFCONSOLE0004", Decimal("60.00"), None)
    rejected = client.post(f"/api/v1/orders/{order.order_no}/refunds", json={"amount": "1.00", "reason": "x"},
                           headers=finance)
    assert rejected.status_code == 409 and rejected.get_json()["error"]["code"] == "refund_refused"
    assert "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" in rejected.get_json()["error"]["message"]


def test_finance_refunds_on_the_order_page_and_a_bad_amount_is_refused_with_nothing_changed(shop, payer, portal,
                                                                                             client_for):
    from tests.portal_client import csrf_token

    order = paid_by_wechat(portal, payer, "WX-RF-PAGE")
    client = client_for("finance")
    page = client.get(f"/orders/{order.order_no}")
    assert page.status_code == 200 and b'data-testid="refund-form"' in page.data
    token = csrf_token(client, f"/orders/{order.order_no}")
    bad = client.post(f"/orders/{order.order_no}/refunds", data={"csrf_token": token, "amount": "99.00",
                                                                 "reason": "too much"})
    assert bad.status_code == 303 and count(OrderRefund) == 0 and payer.requests == []
    assert b"more than can be refunded" in client.get(f"/orders/{order.order_no}").data  # the refusal, flashed
    good = client.post(f"/orders/{order.order_no}/refunds", data={"csrf_token": token, "amount": "12.00",
                                                                  "reason": "<b>破损</b>", "goods_returned": "y"})
    assert good.status_code == 303
    [row] = db.session.execute(select(OrderRefund)).scalars().all()
    assert (row.amount, row.goods_returned, row.requested_by) == (Decimal("12.00"), True, "finance_en")
    shown = client.get(f"/orders/{order.order_no}").data
    assert b"&lt;b&gt;" in shown and "<b>破损".encode() not in shown and row.out_refund_no.encode() in shown
    agent = client_for("customer_service")
    assert b"refund-form" not in agent.get(f"/orders/{order.order_no}").data
    refused = agent.post(f"/orders/{order.order_no}/refunds", data={
        "csrf_token": csrf_token(agent, f"/orders/{order.order_no}"), "amount": "1.00", "reason": "x"})
    assert refused.status_code == 403 and count(OrderRefund) == 1


# --- a real RQ worker -----------------------------------------------------------------------------------------

@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_worker_resolves_a_refund_left_processing(live_apps, payer):
    from rq import Queue

    from jobs import queues
    from tests.test_worker import _redis, _worker_env

    redis = _redis()
    redis.flushdb()
    payer.reset()
    with live_apps.core.app_context():
        from flask import current_app

        open_paying_shop(payer)
        order = orders.create_order(order_payload(channel_order_id="AL-RF-WORKER", paid=False), ADMIN)
        db.session.commit()
        params = payer.alipay_notification("AL-RF-WORKER", "67.90")
        notice_id = payments.receive_notice(payments.account_for("OS", "alipay"), urlencode(params).encode(),
                                            "application/x-www-form-urlencoded")
        payments.process_notices([notice_id])
        db.session.commit()
        payer.stall_seconds = 3.0
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(current_app.config, "PAYMENT_API_TIMEOUT", 0.5)
            row_id = refunds.refund(order.order_no, "10.00", "slow", ADMIN).id
            db.session.commit()
        payer.stall_seconds = 0.0
        assert db.session.get(OrderRefund, row_id).status == "processing"
    Queue(queues.SYNC, connection=redis).enqueue("jobs.refunds.resolve_processing_refunds")
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst", "--simple"]
    finished = subprocess.run(command, env=_worker_env(live_apps.url), capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parent.parent)
    assert finished.returncode == 0, finished.stderr
    assert "job=resolve_processing_refunds" in finished.stderr
    with live_apps.core.app_context():
        assert db.session.get(OrderRefund, row_id).status == "succeeded"
        assert db.session.execute(select(func.count()).select_from(PlatformRefund)).scalar() == 1
