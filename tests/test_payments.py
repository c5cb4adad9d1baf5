"""Payments of the direct channels: WeChat Pay API v3 and Alipay notifications verified, stored, applied once; the
bad inputs (a forged signature, a replay, an unknown order, a different amount, a forged RSA2 sign); the providers'
bills read from the published layouts and reconciled, a malformed line reported with its number; the simulator
over real HTTP and a real RQ worker applying a notice."""
import io
import json
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from sqlalchemy import func, select, text

from devtools.simulators.payments import PaymentSimulator
from shared.extensions import db
from shared.models import AuditEvent, Channel, ExceptionCase, Order, WebhookRejection
from shared.models.payments import Payment, PaymentMismatch, PaymentNotice
from shared.payments import PaymentMessageError, alipay, bills, wechatpay
from shared.services import orders, payments
from tests.factories import ADMIN, open_paying_shop, open_shop, order_payload

FIXTURES = Path(__file__).parent / "fixtures" / "payments"
FIXTURE_KEY = "0123456789abcdefghijklmnopqrstuv"
BILL_DAY = date(2026, 12, 2)
WECHAT_URL, ALIPAY_URL = "/hooks/pay/wechatpay/OS", "/hooks/pay/alipay/OS"


@pytest.fixture(scope="module")
def provider():
    """One simulator (its RSA keys take a moment to make) for the module; its bill server starts on demand."""
    sim = PaymentSimulator()
    yield sim
    sim.stop()


@pytest.fixture
def shop(session, provider):
    """Own shop OS with its WeChat Pay and Alipay accounts set to the simulator's keys."""
    provider.reset()
    return open_paying_shop(provider)


def unpaid_order(number: str) -> Order:
    order = orders.create_order(order_payload(channel_order_id=number, paid=False), ADMIN)
    db.session.commit()
    return order


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar()


def post_wechat(client, headers: dict, body: bytes):
    return client.post(WECHAT_URL, data=body, headers=headers)


def post_alipay(client, params: dict):
    return client.post(ALIPAY_URL, data=urlencode(params),
                       headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})


# --- the formats, from the fixtures ---------------------------------------------------------------------------

def test_the_documented_notification_envelope_decrypts_with_the_api_v3_key_and_not_without():
    body = (FIXTURES / "wechatpay_notify_envelope.json").read_bytes()
    envelope = json.loads(body)
    assert envelope["resource"]["algorithm"] == "AEAD_AES_256_GCM" and envelope["event_type"] == "TRANSACTION.SUCCESS"
    paid = wechatpay.read_notification(body, FIXTURE_KEY)
    assert (paid["out_trade_no"], paid["transaction_id"], paid["state"]) == ("WX-1001", "4200002026120200001",
                                                                             "SUCCESS")
    assert paid["amount"] == Decimal("67.90") and paid["paid_at"].isoformat() == "2026-12-02T09:15:02+08:00"
    with pytest.raises(PaymentMessageError) as wrong:
        wechatpay.read_notification(body, "v" * 32)
    assert wrong.value.code == "undecryptable"
    tampered = dict(envelope, resource=dict(envelope["resource"], associated_data="refund"))
    with pytest.raises(PaymentMessageError):  # the associated data is authenticated too
        wechatpay.read_notification(json.dumps(tampered).encode(), FIXTURE_KEY)


def test_the_alipay_signing_string_leaves_out_sign_sign_type_and_empty_values_sorted_by_name(provider):
    params = dict(parse_qsl((FIXTURES / "alipay_notify.txt").read_text(encoding="utf-8").replace("\n", "&"),
                            keep_blank_values=True))
    text = alipay.signing_string(params)
    assert "sign=" not in text.replace("sign_type", "") and "sign_type" not in text
    names = [pair.split("=", 1)[0] for pair in text.split("&")]
    assert names == sorted(names) and names[0] == "app_id" and "subject" in names
    params["sign"] = alipay.sign(params, provider.alipay_private)
    alipay.verify(params, provider.alipay_public)
    bare = "".join(provider.alipay_public.strip().splitlines()[1:-1])  # Alipay hands out bare base64 keys
    alipay.verify(params, bare)
    assert alipay.read_notification(params)["amount"] == Decimal("67.90")


def test_the_wechat_trade_bill_fixture_reads_payments_refunds_and_reports_its_malformed_lines():
    bill = bills.read_bill("wechatpay", (FIXTURES / "wechatpay_trade_bill.csv").read_bytes())
    assert [(r.line_no, r.kind, r.out_trade_no, r.amount) for r in bill.rows] == [
        (2, "payment", "WX-1001", Decimal("67.90")), (3, "payment", "WX-1002", Decimal("120.00")),
        (4, "refund", "WX-1001", Decimal("10.00"))]
    assert [line for line, _reason in bill.problems] == [5, 6]
    assert "27" in bill.problems[0][1] and "abc" in bill.problems[1][1]
    assert bill.summary["总交易单数"] == "5"


def test_the_alipay_bill_fixture_is_gbk_and_reads_with_its_comment_lines():
    data = (FIXTURES / "alipay_bill.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    bill = bills.read_bill("alipay", data)
    assert [(r.line_no, r.kind, r.out_trade_no, r.amount) for r in bill.rows] == [
        (6, "payment", "AL-2001", Decimal("67.90")), (7, "payment", "AL-2002", Decimal("120.00")),
        (9, "refund", "AL-2001", Decimal("10.00"))]
    assert bill.problems == [(8, "'六十七元' is not an amount")]
    assert "交易合计" in bill.summary


def test_a_bill_without_its_header_is_refused_whole():
    with pytest.raises(PaymentMessageError) as refused:
        bills.read_bill("wechatpay", "交易时间,商户号\n`2026-12-02 10:00:00,`1\n")
    assert refused.value.code == "bad_header"


# --- WeChat Pay notifications ---------------------------------------------------------------------------------

def test_a_signed_wechat_notification_marks_the_order_paid_once_by_the_system(shop, provider, portal):
    order = unpaid_order("WX-OK-1")
    headers, body = provider.wechatpay_notification("WX-OK-1", 6790)
    answer = post_wechat(portal.test_client(), headers, body)
    assert answer.status_code == 200 and answer.get_json() == {"code": "SUCCESS", "message": "成功"}
    order = fresh(Order, order.id)
    assert order.payment_status == "paid"
    [notice] = db.session.execute(select(PaymentNotice)).scalars().all()
    assert (notice.status, notice.outcome, notice.amount) == ("done", "paid", Decimal("67.90"))
    assert notice.body == body.decode()  # kept raw (encrypted at rest by its column type)
    raw = db.session.execute(text("SELECT body FROM payment_notices")).scalar()
    assert "resource" not in str(raw)  # the column holds ciphertext, not the body
    assert count(Payment, Payment.order_id == order.id) == 1
    actors = db.session.execute(select(AuditEvent.actor_label).where(AuditEvent.action == "order.payment")).scalars()
    assert list(actors) == ["system"]


def test_a_wechat_notification_with_a_bad_signature_is_refused_and_stored_nowhere(shop, provider, portal):
    order = unpaid_order("WX-BAD-1")
    headers, body = provider.wechatpay_notification("WX-BAD-1", 6790)
    forged = body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESS ")
    answer = post_wechat(portal.test_client(), headers, forged)
    assert answer.status_code == 401 and answer.get_json()["code"] == "FAIL"
    other = PaymentSimulator()  # signed, but by a key that is not the platform's
    headers2, body2 = other.wechatpay_notification("WX-BAD-1", 6790)
    headers2["Wechatpay-Serial"] = provider.platform_serial
    assert post_wechat(portal.test_client(), headers2, body2).status_code == 401
    assert count(PaymentNotice) == 0 and fresh(Order, order.id).payment_status == "unpaid"
    reasons = db.session.execute(select(WebhookRejection.reason)).scalars().all()
    assert reasons == ["bad_signature", "bad_signature"]


def test_an_old_timestamp_or_another_serial_is_refused(shop, provider, portal):
    headers, body = provider.wechatpay_notification("WX-OLD", 6790, timestamp=int(time.time()) - 3600)
    assert post_wechat(portal.test_client(), headers, body).status_code == 401
    headers, body = provider.wechatpay_notification("WX-OLD", 6790)
    headers["Wechatpay-Serial"] = "0" * 40
    assert post_wechat(portal.test_client(), headers, body).status_code == 401
    del headers["Wechatpay-Signature"]
    assert post_wechat(portal.test_client(), headers, body).status_code == 401
    assert sorted(db.session.execute(select(WebhookRejection.reason)).scalars()) == [
        "missing_signature", "stale_timestamp", "unknown_serial"]
    assert count(PaymentNotice) == 0


def test_a_replayed_notification_changes_nothing(shop, provider, portal):
    order = unpaid_order("WX-REPLAY")
    headers, body = provider.wechatpay_notification("WX-REPLAY", 6790, transaction_id="4200009999000001")
    client = portal.test_client()
    assert post_wechat(client, headers, body).status_code == 200
    paid_at = fresh(Order, order.id).paid_at
    assert post_wechat(client, headers, body).status_code == 200  # the very same request again
    again_headers, again_body = provider.wechatpay_notification(  # WeChat's retry: new id, new signature
        "WX-REPLAY", 6790, transaction_id="4200009999000001")
    assert post_wechat(client, again_headers, again_body).status_code == 200
    notices = db.session.execute(select(PaymentNotice).order_by(PaymentNotice.id)).scalars().all()
    assert [(n.times_received, n.outcome) for n in notices] == [(2, "paid"), (1, "duplicate")]
    assert count(Payment) == 1 and fresh(Order, order.id).paid_at == paid_at
    assert count(AuditEvent, AuditEvent.action == "order.payment") == 1


def test_a_notification_for_an_unknown_order_waits_and_is_applied_when_the_order_arrives(shop, provider, portal):
    from jobs.payments import sweep_payment_notices

    headers, body = provider.wechatpay_notification("WX-LATER", 6790)
    assert post_wechat(portal.test_client(), headers, body).status_code == 200  # answered: never lost
    [notice] = db.session.execute(select(PaymentNotice)).scalars().all()
    assert (notice.status, notice.error_code) == ("waiting", "order_not_found")
    order = unpaid_order("WX-LATER")
    sweep_payment_notices()  # the minute's sweep (and every drain) wakes it
    assert fresh(PaymentNotice, notice.id).status == "done"
    assert fresh(Order, order.id).payment_status == "paid"


def test_a_notification_whose_amount_differs_is_not_applied_and_raises_a_payment_exception(shop, provider, portal):
    order = unpaid_order("WX-SHORT")
    headers, body = provider.wechatpay_notification("WX-SHORT", 100)  # 1.00 for an order of 67.90
    assert post_wechat(portal.test_client(), headers, body).status_code == 200
    [notice] = db.session.execute(select(PaymentNotice)).scalars().all()
    assert (notice.status, notice.error_code) == ("review", "amount_mismatch")
    assert fresh(Order, order.id).payment_status == "unpaid" and count(Payment) == 0
    [case] = db.session.execute(select(ExceptionCase).where(ExceptionCase.kind == "payment_amount_mismatch")
                                ).scalars().all()
    assert case.order_id == order.id and case.category == "payment" and "67.90" in case.summary


# --- Alipay notifications -------------------------------------------------------------------------------------

def test_a_signed_alipay_notification_is_answered_success_and_marks_the_order_paid(shop, provider, portal):
    order = unpaid_order("AL-OK-1")
    answer = post_alipay(portal.test_client(), provider.alipay_notification("AL-OK-1", "67.90"))
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "success")
    assert fresh(Order, order.id).payment_status == "paid"


def test_an_alipay_notification_with_a_bad_rsa2_sign_is_refused_and_stored_nowhere(shop, provider, portal):
    order = unpaid_order("AL-BAD-1")
    params = provider.alipay_notification("AL-BAD-1", "67.90")
    params["total_amount"] = "0.01"  # changed after signing
    answer = post_alipay(portal.test_client(), params)
    assert (answer.status_code, answer.get_data(as_text=True)) == (401, "failure")
    unsigned = {k: v for k, v in provider.alipay_notification("AL-BAD-1", "67.90").items() if k != "sign"}
    assert post_alipay(portal.test_client(), unsigned).get_data(as_text=True) == "failure"
    assert count(PaymentNotice) == 0 and fresh(Order, order.id).payment_status == "unpaid"
    assert sorted(db.session.execute(select(WebhookRejection.reason)).scalars()) == ["bad_signature",
                                                                                      "missing_signature"]


def test_a_channel_without_a_payment_account_refuses(shop, provider, portal):
    headers, body = provider.wechatpay_notification("X", 1)
    assert portal.test_client().post("/hooks/pay/wechatpay/ZZ", data=body, headers=headers).status_code == 404
    assert count(PaymentNotice) == 0


def test_a_platform_channel_cannot_have_a_payment_account(session, provider):
    from shared.services import catalog
    from shared.services.errors import ValidationFailed

    channel = catalog.create_channel("TB", "天猫旗舰店", "taobao", ADMIN)
    with pytest.raises(ValidationFailed) as refused:
        payments.configure_account(channel, "alipay", ADMIN, **provider.alipay_settings())
    assert refused.value.code == "not_direct"


# --- reconciliation -------------------------------------------------------------------------------------------

def _paid_on_bill_day(provider, portal, number: str, transaction_id: str, fen: int = 6790):
    unpaid_order(number)
    at = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 Beijing on the bill day
    headers, body = provider.wechatpay_notification(number, fen, transaction_id=transaction_id, paid_at=at)
    assert post_wechat(portal.test_client(), headers, body).status_code == 200


def test_a_bill_with_a_malformed_line_is_reconciled_and_every_difference_raised(shop, provider, portal):
    _paid_on_bill_day(provider, portal, "WX-1001", "4200002026120200001")  # in the bill: matched
    _paid_on_bill_day(provider, portal, "WX-9999", "4200002026120299999")  # not in the bill
    account = payments.account_for("OS", "wechatpay")
    run = payments.reconcile(account, BILL_DAY, (FIXTURES / "wechatpay_trade_bill.csv").read_bytes(), ADMIN,
                             filename="wechatpay_trade_bill.csv")
    db.session.commit()
    assert (run.status, run.bill_rows, run.matched) == ("ok", 5, 1)
    found = {(m.kind, m.line_no, m.out_trade_no) for m in payments.mismatches_of(run)}
    assert found == {("paid_not_recorded", 3, "WX-1002"), ("recorded_not_paid", None, "WX-9999"),
                     ("refund_mismatch", 4, "WX-1001"), ("malformed_row", 5, None), ("malformed_row", 6, None)}
    kinds = db.session.execute(select(ExceptionCase.kind, func.count()).where(ExceptionCase.category == "payment")
                               .group_by(ExceptionCase.kind)).all()
    assert dict(kinds) == {"paid_not_recorded": 1, "recorded_not_paid": 1, "refund_mismatch": 1,
                           "bill_row_unreadable": 2}
    again = payments.reconcile(account, BILL_DAY, (FIXTURES / "wechatpay_trade_bill.csv").read_bytes(), ADMIN)
    db.session.commit()
    assert again.paid_not_recorded == 1 and count(ExceptionCase, ExceptionCase.category == "payment") == 5


def test_an_amount_mismatch_in_the_alipay_bill_is_reported(shop, provider, portal):
    unpaid_order("AL-2001")
    answer = post_alipay(portal.test_client(), provider.alipay_notification(
        "AL-2001", "67.90", trade_no="2026120222001100010001", paid_at=datetime(2026, 12, 2, 0, 1, tzinfo=UTC)))
    assert answer.get_data(as_text=True) == "success"
    order = unpaid_order("AL-2002")
    order.total = Decimal("119.00")  # set-up: the order here says 119.00, the bill 120.00
    db.session.commit()
    run = payments.reconcile(payments.account_for("OS", "alipay"), BILL_DAY,
                             (FIXTURES / "alipay_bill.csv").read_bytes(), ADMIN)
    [mismatch] = [m for m in payments.mismatches_of(run) if m.kind == "amount_mismatch"]
    assert (mismatch.bill_amount, mismatch.our_amount, mismatch.order_no) == (Decimal("120.00"), Decimal("119.00"),
                                                                              order.order_no)
    assert run.malformed == 1 and run.matched == 1


def test_a_bill_that_cannot_be_read_fails_the_run_and_changes_nothing_else(shop):
    run = payments.reconcile(payments.account_for("OS", "wechatpay"), BILL_DAY, b"not a bill", ADMIN)
    assert run.status == "failed" and "bad_header" in run.error
    assert count(PaymentMismatch) == 0 and count(ExceptionCase) == 0


def test_the_simulator_serves_its_bill_over_http_and_the_day_reconciles_clean(shop, provider, portal):
    if provider.base_url is None:
        provider.start()
    payments.configure_account(shop, "wechatpay", ADMIN, **provider.wechatpay_settings())
    db.session.commit()
    for number in ("WX-S1", "WX-S2"):
        _paid_on_bill_day(provider, portal, number, f"42000{number}")
    account = payments.account_for("OS", "wechatpay")
    data = payments.download_bill(account, BILL_DAY)
    assert data.decode().count("`SUCCESS") == 2
    run = payments.reconcile(account, BILL_DAY, data, ADMIN, source="download")
    assert (run.matched, run.paid_not_recorded + run.recorded_not_paid + run.amount_mismatch) == (2, 0)


# --- the portal page ------------------------------------------------------------------------------------------

def test_finance_imports_a_bill_sees_its_differences_and_downloads_the_report(shop, client_for):
    from openpyxl import load_workbook

    from tests.portal_client import csrf_token

    client = client_for("finance")
    page = client.get("/finance/payments/")
    assert page.status_code == 200 and b"bill-form" in page.data
    account = payments.account_for("OS", "wechatpay")
    answer = client.post("/finance/payments/reconcile", data={
        "csrf_token": csrf_token(client, "/finance/payments/"), "account_id": account.id,
        "bill_date": BILL_DAY.isoformat(),
        "file": (io.BytesIO((FIXTURES / "wechatpay_trade_bill.csv").read_bytes()), "bill.csv")},
        content_type="multipart/form-data")
    assert answer.status_code == 303
    shown = client.get(answer.headers["Location"])
    assert shown.status_code == 200 and b"WX-1002" in shown.data
    run_id = answer.headers["Location"].rstrip("/").split("/")[-1]
    report = client.get(f"/finance/payments/{run_id}/report.csv")
    assert report.status_code == 200 and "paid_not_recorded" in report.data.decode("utf-8-sig")
    book = load_workbook(io.BytesIO(client.get(f"/finance/payments/{run_id}/report.xlsx").data))
    assert book.active.max_row == 1 + count(PaymentMismatch)
    auditor = client_for("auditor")
    assert auditor.get("/finance/payments/").status_code == 200  # view only: no form
    token = csrf_token(auditor, "/finance/payments/")
    refused = auditor.post("/finance/payments/reconcile", data={"csrf_token": token})
    assert refused.status_code == 403


# --- a real RQ worker -----------------------------------------------------------------------------------------

@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_worker_applies_a_stored_notification(live_apps, provider):
    from rq import Queue

    from jobs import queues
    from portal import create_app
    from tests.conftest import REDIS_URL, app_config
    from tests.test_worker import _redis, _worker_env

    redis = _redis()
    redis.flushdb()
    with live_apps.core.app_context():
        open_shop()
        channel = db.session.execute(select(Channel).where(Channel.code == "OS")).scalar_one()
        payments.configure_account(channel, "wechatpay", ADMIN, **provider.wechatpay_settings())
        db.session.commit()
        order_id = orders.create_order(order_payload(channel_order_id="WX-WORKER", paid=False), ADMIN).id
        db.session.commit()
    portal = create_app(app_config(live_apps.url) | {"REDIS_URL": REDIS_URL, "JOBS_INLINE": False})
    headers, body = provider.wechatpay_notification("WX-WORKER", 6790)
    assert portal.test_client().post(WECHAT_URL, data=body, headers=headers).status_code == 200
    assert Queue(queues.SYNC, connection=redis).count == 1
    with live_apps.core.app_context():  # stored, not yet applied
        assert db.session.get(Order, order_id).payment_status == "unpaid"
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst", "--simple"]
    finished = subprocess.run(command, env=_worker_env(live_apps.url), capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parent.parent)
    assert finished.returncode == 0, finished.stderr
    assert "job=drain_payment_notices" in finished.stderr
    with live_apps.core.app_context():
        assert db.session.get(Order, order_id).payment_status == "paid"
        assert db.session.execute(select(PaymentNotice.status)).scalars().all() == ["done"]
    with portal.app_context():
        db.engine.dispose()



def test_a_bill_line_that_looks_like_a_formula_stays_text_in_the_report(shop):
    from openpyxl import load_workbook

    bill = bills.write_wechat_trade_bill([("2026-12-02 10:00:00", "payment", "=HYPERLINK(\"http://x\")", "4200X",
                                           "1.00")])
    run = payments.reconcile(payments.account_for("OS", "wechatpay"), BILL_DAY, bill, ADMIN)
    assert "'=HYPERLINK" in payments.report_csv(run).decode("utf-8-sig")
    sheet = load_workbook(io.BytesIO(payments.report_xlsx(run))).active
    values = [cell.value for row in sheet.iter_rows() for cell in row]
    assert "'=HYPERLINK(\"http://x\")" in values and not any(str(v).startswith("=") for v in values if v)


def test_simulate_payments_refuses_a_payment_that_is_not_number_equals_amount():
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["simulate-payments", "--pay", "OS1=abc"])
    assert result.exit_code == 2 and "OUT_TRADE_NO=AMOUNT" in result.output


def test_finance_applies_a_notice_in_review_again_once_the_order_is_put_right(shop, provider, portal, client_for):
    from tests.portal_client import csrf_token

    order = unpaid_order("WX-FIX")
    headers, body = provider.wechatpay_notification("WX-FIX", 7000)  # 70.00 paid, the order says 67.90
    assert post_wechat(portal.test_client(), headers, body).status_code == 200
    [notice] = db.session.execute(select(PaymentNotice)).scalars().all()
    assert notice.status == "review"
    client = client_for("finance")
    done_by_auditor = client_for("auditor").post(f"/finance/payments/notices/{notice.id}/replay")
    assert done_by_auditor.status_code in (400, 403) and fresh(PaymentNotice, notice.id).status == "review"
    fresh(Order, order.id).total = Decimal("70.00")  # set-up: customer service corrected the order
    db.session.commit()
    answer = client.post(f"/finance/payments/notices/{notice.id}/replay",
                         data={"csrf_token": csrf_token(client, "/finance/payments/")})
    assert answer.status_code == 303
    assert fresh(PaymentNotice, notice.id).outcome == "paid" and fresh(Order, order.id).payment_status == "paid"
    assert count(AuditEvent, AuditEvent.action == "inbox.replay", AuditEvent.entity_type == "payment_notice") == 1


def test_an_admin_sets_a_payment_account_on_the_page_and_a_bad_key_is_refused_beside_nothing_saved(
        session, provider, client_for):
    from shared.models.payments import PaymentAccount
    from tests.portal_client import csrf_token

    open_shop()
    db.session.commit()
    client = client_for("admin")
    form = {"channel_code": "os", "provider": "wechatpay", "merchant_id": "1900000109", "app_id": "wx1",
            "api_v3_key": provider.api_v3_key, "provider_public_key": provider.wechat_public,
            "platform_serial": provider.platform_serial, "api_url": ""}
    bad = client.post("/finance/payments/accounts",
                      data={**form, "api_v3_key": "short", "csrf_token": csrf_token(client, "/finance/payments/")})
    assert bad.status_code == 303 and count(PaymentAccount) == 0
    good = client.post("/finance/payments/accounts",
                       data={**form, "csrf_token": csrf_token(client, "/finance/payments/")})
    assert good.status_code == 303
    [account] = db.session.execute(select(PaymentAccount)).scalars().all()
    assert account.api_v3_key == provider.api_v3_key
    raw = db.session.execute(text("SELECT api_v3_key FROM payment_accounts")).scalar()
    assert provider.api_v3_key not in raw  # encrypted at rest
    kept = client.post("/finance/payments/accounts", data={**form, "api_v3_key": "",
                                                           "csrf_token": csrf_token(client, "/finance/payments/")})
    assert kept.status_code == 303 and fresh(PaymentAccount, account.id).api_v3_key == provider.api_v3_key
    # the provider's API (refunds and bills): one address, the merchant key and serial, set on the same form
    api = {**form, "merchant_private_key": provider.merchant_private, "merchant_serial": provider.merchant_serial,
           "api_url": "https://api.example/wechatpay"}
    refused = client.post("/finance/payments/accounts", data={
        **api, "api_url": "ftp://api.example", "csrf_token": csrf_token(client, "/finance/payments/")})
    assert refused.status_code == 303
    assert fresh(PaymentAccount, account.id).merchant_private_key is None  # refused: nothing saved
    assert client.post("/finance/payments/accounts", data={
        **api, "csrf_token": csrf_token(client, "/finance/payments/")}).status_code == 303
    assert client.post("/finance/payments/accounts", data={
        **api, "merchant_private_key": "", "csrf_token": csrf_token(client, "/finance/payments/")}).status_code == 303
    saved = fresh(PaymentAccount, account.id)
    assert (saved.api_url, saved.merchant_serial, saved.merchant_private_key) == (
        "https://api.example/wechatpay", provider.merchant_serial, provider.merchant_private)  # the key kept
    page = client.get("/finance/payments/")
    assert b"/hooks/pay/wechatpay/OS" in page.data and provider.api_v3_key.encode() not in page.data
    assert b"https://api.example/wechatpay" in page.data and b"PRIVATE KEY" not in page.data
    finance = client_for("finance")  # finance reconciles; configuring a channel's keys is the channel admins'
    assert finance.post("/finance/payments/accounts", data={
        **form, "csrf_token": csrf_token(finance, "/finance/payments/")}).status_code == 403


def test_a_wechat_notification_not_sent_as_json_or_too_large_is_refused(shop, provider, portal):
    headers, body = provider.wechatpay_notification("WX-TYPE", 6790)
    answer = post_wechat(portal.test_client(), {**headers, "Content-Type": "text/plain"}, body)
    assert answer.status_code == 415 and answer.get_json()["code"] == "FAIL"
    limit = portal.config["WEBHOOK_MAX_BYTES"]
    assert post_wechat(portal.test_client(), headers, b" " * (limit + 1)).status_code == 413
    assert count(PaymentNotice) == 0
    assert sorted(db.session.execute(select(WebhookRejection.reason)).scalars()) == ["too_large",
                                                                                      "unsupported_media_type"]
