"""The providers' bills through their signed APIs: WeChat Pay /v3/bill/tradebill (our request signed with the
merchant key, the answer verified with the platform key, the file checked by its SHA1) and Alipay
alipay.data.dataservice.bill.downloadurl.query (RSA2 both ways, the 业务明细 CSV out of the ZIP); the refusals (a
tampered hash, a forged answer, a request signed with another key, a day not billed yet); a real RQ worker running
reconcile_yesterday through the simulator's APIs."""
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from devtools.simulators.payments import PaymentSimulator, key_pair
from shared.extensions import db
from shared.models import Order
from shared.models.payments import PaymentReconciliation
from shared.payments import PaymentMessageError, alipay, wechatpay
from shared.services import orders, payments
from shared.services.errors import ServiceError, ValidationFailed
from tests.factories import ADMIN, open_paying_shop, order_payload

FIXTURES = Path(__file__).parent / "fixtures" / "payments"
BILL_DAY = date(2026, 12, 2)
AT = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 Beijing on the bill day


@pytest.fixture(scope="module")
def provider():
    sim = PaymentSimulator()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def shop(session, provider):
    provider.reset()
    provider.today = date(2026, 12, 4)
    return open_paying_shop(provider)


def _bill_day_trades(provider):
    """One order paid at the provider but unpaid here, one paid at another amount, one we never had."""
    orders.create_order(order_payload(channel_order_id="B-1", paid=False), ADMIN)  # 67.90
    orders.create_order(order_payload(channel_order_id="B-2", paid=False), ADMIN)
    db.session.commit()
    provider.wechatpay_notification("B-1", 6790, transaction_id="4200000001", paid_at=AT)
    provider.wechatpay_notification("B-2", 5000, transaction_id="4200000002", paid_at=AT)
    provider.alipay_notification("B-1", "67.90", trade_no="2026120222001", paid_at=AT)
    provider.alipay_notification("B-9", "12.00", trade_no="2026120222009", paid_at=AT)


def _runs() -> int:
    return db.session.execute(select(func.count()).select_from(PaymentReconciliation)).scalar()


# --- the formats, from the published answers -------------------------------------------------------------------

def test_the_documented_tradebill_answer_and_error_read_as_the_docs_say():
    answer = wechatpay.read_bill_answer((FIXTURES / "wechatpay_tradebill_answer.json").read_bytes())
    assert answer["hash_type"] == "SHA1" and answer["download_url"].startswith("https://api.mch.weixin.qq.com/v3/")
    assert wechatpay.read_error((FIXTURES / "wechatpay_tradebill_not_exist.json").read_bytes())[0] == \
        "NO_STATEMENT_EXIST"
    with pytest.raises(PaymentMessageError) as refused:
        wechatpay.read_bill_answer(b'{"hash_type": "SHA1", "download_url": "https://x"}')
    assert refused.value.code == "bad_answer"
    with pytest.raises(PaymentMessageError) as refused:
        wechatpay.check_bill_hash(b"a bill", "SHA1", answer["hash_value"])
    assert refused.value.code == "bad_hash"


def test_the_documented_alipay_answers_refuse_a_placeholder_sign_and_name_a_missing_bill():
    _private, public = key_pair()
    with pytest.raises(PaymentMessageError) as refused:
        alipay.read_response((FIXTURES / "alipay_bill_downloadurl_answer.json").read_bytes(), alipay.BILL_METHOD,
                             public)
    assert refused.value.code == "bad_signature"
    not_billed = (FIXTURES / "alipay_bill_not_exist.json").read_text(encoding="utf-8")
    with pytest.raises(PaymentMessageError) as refused:  # a refusal carrying a sign is checked too
        alipay.read_response(not_billed, alipay.BILL_METHOD, public)
    assert refused.value.code == "bad_signature"
    unsigned = json.dumps({key: value for key, value in json.loads(not_billed).items() if key != "sign"},
                          ensure_ascii=False)
    with pytest.raises(alipay.AlipayRefusal) as refused:  # an unsigned refusal moves nothing: named, not trusted
        alipay.read_response(unsigned, alipay.BILL_METHOD, public)
    assert refused.value.code == "isp.bill_not_exist"
    success = json.loads((FIXTURES / "alipay_bill_downloadurl_answer.json").read_text(encoding="utf-8"))
    del success["sign"]
    with pytest.raises(PaymentMessageError) as refused:  # a success without a sign never passes
        alipay.read_response(json.dumps(success), alipay.BILL_METHOD, public)
    assert refused.value.code == "missing_signature"


def test_the_authorization_signs_method_url_timestamp_nonce_and_body():
    private, public = key_pair()
    header = wechatpay.authorization("1900000109", "SERIAL1", private, "GET",
                                     "/v3/bill/tradebill?bill_date=2026-12-02&bill_type=ALL",
                                     timestamp="1764800000", nonce="ABC")
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="ABC",signature="')
    assert header.endswith('timestamp="1764800000",serial_no="SERIAL1"')
    fields = wechatpay.check_authorization(header, "GET", "/v3/bill/tradebill?bill_date=2026-12-02&bill_type=ALL",
                                           b"", public)
    assert fields["mchid"] == "1900000109"
    with pytest.raises(PaymentMessageError):  # another day is another message
        wechatpay.check_authorization(header, "GET", "/v3/bill/tradebill?bill_date=2026-12-03&bill_type=ALL", b"",
                                      public)


def test_the_alipay_request_signs_every_parameter_but_sign_and_the_provider_checks_it():
    private, public = key_pair()
    params = alipay.signed_request("2021000117600001", alipay.BILL_METHOD,
                                   {"bill_type": "trade", "bill_date": "2026-12-02"}, private,
                                   datetime(2026, 12, 3, 1, 0, tzinfo=UTC))
    assert params["timestamp"] == "2026-12-03 09:00:00"  # Beijing time
    assert "sign_type=RSA2" in alipay.request_signing_string(params) and "sign=" not in \
        alipay.request_signing_string(params).replace("sign_type=", "")
    alipay.verify_request(params, public)
    with pytest.raises(PaymentMessageError):
        alipay.verify_request({**params, "biz_content": '{"bill_type":"trade","bill_date":"2026-12-01"}'}, public)


# --- through the simulator's APIs ------------------------------------------------------------------------------

def test_the_wechat_bill_comes_through_the_signed_api_and_reconciles(shop, provider):
    _bill_day_trades(provider)
    account = payments.account_for("OS", "wechatpay")
    data = payments.download_bill(account, BILL_DAY)
    assert data.decode().count("`SUCCESS") == 2
    run = payments.reconcile(account, BILL_DAY, data, ADMIN, source="download")
    assert (run.paid_not_recorded, run.amount_mismatch, run.matched) == (1, 1, 0)


def test_the_alipay_bill_is_the_detail_csv_out_of_the_zip_and_reconciles(shop, provider):
    _bill_day_trades(provider)
    account = payments.account_for("OS", "alipay")
    data = payments.download_bill(account, BILL_DAY)
    assert data.decode("gb18030").startswith("#支付宝业务明细查询")
    run = payments.reconcile(account, BILL_DAY, data, ADMIN, source="download")
    assert (run.status, run.paid_not_recorded, run.bill_rows) == ("ok", 2, 2)


@pytest.mark.parametrize("provider_code", ["wechatpay", "alipay"])
def test_a_day_not_billed_yet_is_answered_with_the_providers_error(shop, provider, provider_code):
    with pytest.raises(ServiceError) as refused:
        payments.download_bill(payments.account_for("OS", provider_code), provider.today)
    assert refused.value.code == "bill_not_ready"
    assert ("NO_STATEMENT_EXIST" if provider_code == "wechatpay" else "isp.bill_not_exist") in refused.value.message


def test_a_tampered_hash_is_refused_and_nothing_reconciled(shop, provider):
    _bill_day_trades(provider)
    provider.tamper = {"hash"}
    with pytest.raises(ServiceError) as refused:
        payments.download_bill(payments.account_for("OS", "wechatpay"), BILL_DAY)
    assert refused.value.code == "bill_bad_hash" and _runs() == 0


@pytest.mark.parametrize("provider_code", ["wechatpay", "alipay"])
def test_an_answer_not_signed_by_the_provider_is_refused(shop, provider, provider_code):
    _bill_day_trades(provider)
    provider.tamper = {"signature"}
    with pytest.raises(ServiceError) as refused:
        payments.download_bill(payments.account_for("OS", provider_code), BILL_DAY)
    assert refused.value.code == "bill_bad_signature"


@pytest.mark.parametrize("provider_code", ["wechatpay", "alipay"])
def test_a_request_signed_with_another_key_is_refused_by_the_provider(shop, provider, provider_code):
    account = payments.account_for("OS", provider_code)
    account.merchant_private_key = key_pair()[0]
    with pytest.raises(ServiceError) as refused:
        payments.download_bill(account, BILL_DAY)
    assert refused.value.code in ("bill_SIGN_ERROR", "bill_isv.invalid-signature")


def test_the_merchant_key_is_kept_encrypted_and_an_account_without_it_cannot_download(shop, provider):
    raw = db.session.execute(text("SELECT merchant_private_key FROM payment_accounts WHERE provider = 'wechatpay'")
                             ).scalar_one()
    assert "PRIVATE KEY" not in raw
    account = payments.configure_account(shop, "wechatpay", ADMIN, **{**provider.wechatpay_settings(),
                                                                       "merchant_private_key": None})
    assert account.merchant_private_key == provider.merchant_private  # left empty: kept
    with pytest.raises(ValidationFailed) as refused:
        payments.configure_account(shop, "wechatpay", ADMIN, **{**provider.wechatpay_settings(),
                                                                 "merchant_private_key": "not a key"})
    assert refused.value.field == "merchant_private_key"
    account.merchant_private_key = None
    with pytest.raises(ValidationFailed) as refused:
        payments.download_bill(account, BILL_DAY)
    assert refused.value.code == "no_api_key"


# --- a real RQ worker -------------------------------------------------------------------------------------------

@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_worker_downloads_yesterdays_bills_through_the_apis_and_reconciles(live_apps, provider):
    from rq import Queue

    from jobs import queues
    from shared.timekeeping import local_date, utc_now
    from tests.test_worker import _redis, _run_worker

    provider.reset()
    yesterday = local_date(utc_now(), payments.BEIJING) - timedelta(days=1)
    at = datetime.combine(yesterday, datetime.min.time(), UTC) + timedelta(hours=4)  # noon in Beijing
    redis = _redis()
    redis.flushdb()
    with live_apps.core.app_context():
        open_paying_shop(provider)
        order_no = orders.create_order(order_payload(channel_order_id="W-1", paid=False), ADMIN).order_no
        db.session.commit()
    provider.wechatpay_notification("W-1", 6790, transaction_id="4200000099", paid_at=at)
    provider.alipay_notification("W-1", "60.00", trade_no="2026120222099", paid_at=at)
    Queue(queues.SYNC, connection=redis).enqueue("jobs.payments.reconcile_yesterday")
    finished = _run_worker(live_apps.url, "--simple")
    assert finished.returncode == 0, finished.stderr
    with live_apps.core.app_context():
        runs = db.session.execute(select(PaymentReconciliation).order_by(PaymentReconciliation.provider)).scalars()
        found = {(r.provider, r.source, r.bill_date, r.status, r.paid_not_recorded, r.amount_mismatch)
                 for r in runs}
        assert found == {("alipay", "download", yesterday, "ok", 0, 1),
                         ("wechatpay", "download", yesterday, "ok", 1, 0)}, finished.stderr
        assert db.session.execute(select(Order.payment_status).where(Order.order_no == order_no)).scalar() == "unpaid"


def test_the_detail_file_is_found_by_its_gbk_name_and_a_zip_without_one_is_refused():
    import io
    import zipfile

    sim = PaymentSimulator()
    archive = sim.alipay_bill_zip("2026-12-02")
    assert all(not info.flag_bits & 0x800 for info in zipfile.ZipFile(io.BytesIO(archive)).infolist())  # as Alipay
    name, data = alipay.bill_from_zip(archive)
    assert name.endswith("_业务明细.csv") and data.decode("gb18030").startswith("#支付宝业务明细查询")
    only_summary = io.BytesIO()
    with zipfile.ZipFile(only_summary, "w") as out:
        out.writestr("2088_20261202_业务明细(汇总).csv", b"#")
    for content, code in ((only_summary.getvalue(), "no_detail_file"), (b"not a zip", "bad_archive")):
        with pytest.raises(PaymentMessageError) as refused:
            alipay.bill_from_zip(content)
        assert refused.value.code == code
