"""Payments of the direct channels: provider accounts, notifications into an inbox, applied once, and the daily
reconciliation of the providers' bills.

Notifications go through an inbox like channel webhooks (`payment_notices`): the hook verifies the provider's
signature (a forged or unsigned one is refused, counted by shared.services.knocking, stored nowhere), stores the raw
body encrypted (`receive_notice`), answers, and a job applies what waits (`process_notices`). Applying is idempotent
by construction: the same body twice is one row counted twice; a payment is recorded once per (provider, transaction
id) under a unique key, so a notify sent again or replayed changes nothing. A payment for an order we do not have
yet waits (`waiting`) and is applied when the order arrives (`wake_waiting`, each drain and every minute). A payment
whose amount is not the order's total is not applied: the notice goes to review and a payment exception
`payment_amount_mismatch` is raised.

Reconciliation reads a bill (shared.payments.bills), looks up every order and payment it names in a few chunked
queries (never one per row), and reports paid-not-recorded, recorded-not-paid, amount and refund mismatches and the
unreadable lines, each raised as a payment exception (keyed by the transaction, so a rerun raises nothing new).
"""
import hashlib
import logging
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

from sqlalchemy import Integer, String, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from shared import dispatch
from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.labels import role_name
from shared.models import Channel, Order, PlatformRefund
from shared.models.payments import (PAYMENT_PROVIDERS, Payment, PaymentAccount, PaymentMismatch, PaymentNotice,
                                    PaymentReconciliation)
from shared.payments import PaymentMessageError, alipay, bills, wechatpay
from shared.security.permissions import can
from shared.services import audit
from shared.services import inbox as inbox_states
from shared.services import orders as order_service
from shared.services.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationFailed
from shared.services.validation import N_, say
from shared.services.exceptions import Problem, raise_many
from shared.timekeeping import utc_now

ROLE_MAY_NOT_CONFIGURE = N_("The %(role)s role may not configure payment accounts")
UNKNOWN_PROVIDER = N_("\"%(provider)s\" is not a payment provider")
NOT_DIRECT = N_("%(channel)s is not a direct channel: the platform collects its payments")
BAD_API_URL = N_("The API address is an http(s) URL")
NO_ACCOUNT = N_("No payment account \"%(id)s\"")
NO_NOTICE = N_("No payment notice \"%(id)s\"")
ROLE_MAY_NOT_RECONCILE = N_("The %(role)s role may not reconcile payments")
NO_RECONCILIATION = N_("No reconciliation \"%(id)s\"")

log = logging.getLogger("orderloom.payments")

DRAIN_JOB = "jobs.payments.drain_payment_notices"
DRAIN_KEY = "drain-payment-notices"
BATCH = 500
CHUNK = 20_000  # keys per lookup query in a reconciliation (SQLite: under its 32,766 bound values)
BEIJING = "Asia/Shanghai"
MISMATCH_KINDS = ("paid_not_recorded", "recorded_not_paid", "amount_mismatch", "refund_mismatch", "malformed_row")
EXCEPTION_OF = {"paid_not_recorded": "paid_not_recorded", "recorded_not_paid": "recorded_not_paid",
                "amount_mismatch": "payment_amount_mismatch", "refund_mismatch": "refund_mismatch",
                "malformed_row": "bill_row_unreadable"}


# --- accounts -------------------------------------------------------------------------------------------------

def configure_account(channel: Channel, provider: str, actor: Actor, *, merchant_id: str | None = None,
                      app_id: str | None = None, api_v3_key: str | None = None,
                      provider_public_key: str | None = None, platform_serial: str | None = None,
                      merchant_private_key: str | None = None, merchant_serial: str | None = None,
                      api_url: str | None = None) -> PaymentAccount:
    """Set a direct channel's account at WeChat Pay or Alipay (keys checked before they are kept; audited without
    the secrets). The provider's API (refunds, bill downloads) is called at `api_url` (empty: the provider's own)
    with the merchant's private key, which is kept as it is when not given (it is never shown again)."""
    if not can(actor.role, "channels", "edit"):
        raise Forbidden(say(ROLE_MAY_NOT_CONFIGURE, role=role_name(actor.role)), code="forbidden")
    if provider not in PAYMENT_PROVIDERS:
        raise ValidationFailed(say(UNKNOWN_PROVIDER, provider=str(provider)[:40]), field="provider",
                               code="unknown_provider")
    if not channel.is_direct:
        raise ValidationFailed(say(NOT_DIRECT, channel=channel.name),
                               field="channel", code="not_direct")
    account = db.session.execute(select(PaymentAccount).where(PaymentAccount.channel_id == channel.id,
                                                              PaymentAccount.provider == provider)).scalar_one_or_none()
    if provider == "wechatpay" and not api_v3_key and account is not None:
        api_v3_key = account.api_v3_key  # left empty on the form: the key kept is not shown again, nor lost
    if not merchant_private_key and account is not None:
        merchant_private_key = account.merchant_private_key  # likewise the merchant's API private key
    if merchant_private_key:
        try:
            (wechatpay.private_key if provider == "wechatpay" else alipay.check_private_key)(merchant_private_key)
        except PaymentMessageError as error:
            raise ValidationFailed(str(error), field="merchant_private_key", code="bad_key")
    if api_url and not api_url.startswith(("http://", "https://")):
        raise ValidationFailed(say(BAD_API_URL), field="api_url", code="bad_url")
    try:
        if provider == "wechatpay":
            wechatpay.public_key(provider_public_key or "")
        else:
            alipay.verify({"sign": "AA==", "x": "1"}, provider_public_key or "")
    except PaymentMessageError as error:
        if error.code == "bad_key":
            raise ValidationFailed(str(error), field="provider_public_key", code="bad_key")
    if provider == "wechatpay":
        try:
            wechatpay.aes_key(api_v3_key or "")
        except PaymentMessageError as error:
            raise ValidationFailed(str(error), field="api_v3_key", code="bad_key")
    if account is None:
        account = PaymentAccount(channel_id=channel.id, provider=provider, active=True)
        db.session.add(account)
    account.merchant_id, account.app_id = merchant_id, app_id
    account.api_v3_key, account.provider_public_key = api_v3_key, provider_public_key
    account.platform_serial = platform_serial
    account.merchant_private_key, account.merchant_serial = merchant_private_key, merchant_serial or None
    account.api_url = api_url or None
    db.session.flush()
    audit.record(actor, "payment_account.configure", "channel", channel.code,
                 after={"provider": provider, "merchant_id": merchant_id, "app_id": app_id,
                        "platform_serial": platform_serial, "merchant_serial": account.merchant_serial,
                        "api_url": account.api_url, "merchant_key_set": bool(merchant_private_key)})
    return account


def account_for(channel_code: str, provider: str) -> PaymentAccount | None:
    """The active account of an active direct channel (by its two-letter code), or None."""
    if len(channel_code or "") != 2 or provider not in PAYMENT_PROVIDERS:
        return None
    account = db.session.execute(
        select(PaymentAccount).join(Channel, Channel.id == PaymentAccount.channel_id)
        .where(Channel.code == channel_code.upper(), Channel.active, PaymentAccount.provider == provider,
               PaymentAccount.active)).scalar_one_or_none()
    return account if account is not None and account.channel.is_direct else None


def get_account(account_id) -> PaymentAccount:
    account = db.session.get(PaymentAccount, int(account_id)) if str(account_id).isdigit() else None
    if account is None:
        raise NotFound(say(NO_ACCOUNT, id=str(account_id)[:20]), field="account", code="account_not_found")
    return account


def accounts() -> list[PaymentAccount]:
    return db.session.execute(select(PaymentAccount).order_by(PaymentAccount.id)).scalars().all()


# --- the notification inbox -----------------------------------------------------------------------------------

def verify_wechatpay(account: PaymentAccount, headers, body: bytes, now: datetime | None = None) -> None:
    wechatpay.verify(headers, body, account.provider_public_key or "", account.platform_serial or "",
                     now or utc_now())


def verify_alipay(account: PaymentAccount, params: dict) -> None:
    alipay.verify(params, account.provider_public_key or "")
    if account.app_id and params.get("app_id") and params["app_id"] != account.app_id:
        raise PaymentMessageError("wrong_app", "the notify is for another Alipay application")


def receive_notice(account: PaymentAccount, body: bytes, content_type: str) -> int:
    """Store one verified notification raw (the same bytes twice are one row, counted twice); returns its id."""
    row = {"account_id": account.id, "provider": account.provider, "received_at": utc_now(),
           "content_hash": hashlib.sha256(body).hexdigest(), "content_type": (content_type or "")[:100],
           "body": body.decode("utf-8", errors="replace"), "times_received": 1, "status": "received", "attempts": 0}
    table = PaymentNotice.__table__
    insert_ = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert_(table).values([row]).on_conflict_do_update(
        index_elements=["account_id", "content_hash"], set_={"times_received": table.c.times_received + 1}
    ).returning(table.c.id)
    return db.session.execute(statement).scalar_one()


def kick() -> None:
    """After a notice is committed: make sure a drain job will apply it (one job for a burst)."""
    dispatch.send_once(DRAIN_JOB, key=DRAIN_KEY, queue="sync")


def claim_received(limit: int = BATCH) -> list[int]:
    waiting = select(PaymentNotice.id).where(PaymentNotice.status == "received").order_by(PaymentNotice.id) \
        .limit(limit)
    if db.engine.dialect.name == "postgresql":
        waiting = waiting.with_for_update(skip_locked=True)
    return inbox_states.claim(db.session.execute(waiting).scalars().all(), PaymentNotice)


def read_notice(notice: PaymentNotice) -> dict:
    """The payment in a stored notice (the signature was checked at receipt; WeChat Pay's resource decrypts here)."""
    if notice.provider == "wechatpay":
        return wechatpay.read_notification(notice.body, notice.account.api_v3_key or "")
    return alipay.read_notification(dict(parse_qsl(notice.body, keep_blank_values=True)))


def _order_for(channel_id: int, out_trade_no: str):
    """The order an out_trade_no names: the shop's own order id (channel order id) or our order number."""
    found = db.session.execute(select(Order).where(Order.channel_id == channel_id,
                                                   Order.channel_order_id == out_trade_no)).scalar_one_or_none()
    if found is None and len(out_trade_no) <= 20:
        found = db.session.execute(select(Order).where(Order.channel_id == channel_id,
                                                       Order.order_no == out_trade_no)).scalar_one_or_none()
    return found


def _settle(notice: PaymentNotice, status: str, outcome: str | None, code: str | None = None,
            message: str | None = None) -> str:
    notice.status, notice.outcome, notice.error_code = status, outcome, code
    notice.last_error = (message or "")[:1000] or None
    notice.processed_at = utc_now()
    return outcome or status


def is_refund_notice(notice: PaymentNotice) -> bool:
    if notice.provider == "wechatpay":
        return wechatpay.is_refund_notification(notice.body)
    return alipay.is_refund_notification(dict(parse_qsl(notice.body, keep_blank_values=True)))


def read_refund_notice(notice: PaymentNotice) -> dict:
    if notice.provider == "wechatpay":
        return wechatpay.read_refund_notification(notice.body, notice.account.api_v3_key or "")
    return alipay.read_refund_notification(dict(parse_qsl(notice.body, keep_blank_values=True)))


def _apply_refund_notice(notice: PaymentNotice, now: datetime) -> str:
    """A refund notification: applied by shared.services.refunds (once; an unknown order waits)."""
    from shared.services import refunds

    try:
        report = read_refund_notice(notice)
    except PaymentMessageError as error:
        return _settle(notice, "review", None, error.code, str(error))
    notice.out_trade_no, notice.transaction_id = report["out_trade_no"], report["refund_id"]
    order = _order_for(notice.account.channel_id, report["out_trade_no"])
    if order is None:
        return _settle(notice, "waiting", None, "order_not_found",
                       f"no order {report['out_trade_no']} yet: the refund is applied when it arrives")
    notice.order_id = order.id
    order = db.session.execute(select(Order).where(Order.id == order.id).with_for_update(of=Order)).scalar_one()
    outcome, amount = refunds.apply_provider_report(order, notice.account, report, notice.id)
    notice.amount = amount
    if outcome in ("amount_mismatch", "order_mismatch"):
        message = (f"{order.order_no}: {notice.provider} refund {report['out_refund_no']} of {amount} does not match "
                   f"the refund asked for here")
        return _settle(notice, "review", outcome, outcome, message)
    return _settle(notice, "done", outcome)


def _apply(notice: PaymentNotice, now: datetime) -> str:
    if is_refund_notice(notice):
        return _apply_refund_notice(notice, now)
    try:
        paid = read_notice(notice)
    except PaymentMessageError as error:
        return _settle(notice, "review", None, error.code, str(error))
    notice.out_trade_no, notice.transaction_id, notice.amount = (paid["out_trade_no"], paid["transaction_id"],
                                                                 paid["amount"])
    if paid["state"] not in ("SUCCESS", *alipay.PAID_STATES):
        return _settle(notice, "done", "not_paid")
    account = notice.account
    order = _order_for(account.channel_id, paid["out_trade_no"])
    if order is None:
        return _settle(notice, "waiting", None, "order_not_found",
                       f"no order {paid['out_trade_no']} yet: applied when it arrives")
    notice.order_id = order.id
    known = db.session.execute(select(Payment.order_id).where(Payment.provider == notice.provider,
                                                              Payment.transaction_id == paid["transaction_id"])
                               ).scalar_one_or_none()
    if known is not None:
        return _settle(notice, "done", "duplicate")
    if paid["amount"] != order.total or paid["currency"] != order.currency:
        message = (f"{order.order_no}: {notice.provider} paid {paid['currency']} {paid['amount']}, the order is "
                   f"{order.currency} {order.total}")
        raise_many([Problem("payment_amount_mismatch", f"payment_amount_mismatch:{notice.provider}:"
                            f"{paid['transaction_id']}"[:120], message[:300], now, order_id=order.id,
                            buyer_index=order.receiver_phone_index)], SYSTEM, now)
        return _settle(notice, "review", "amount_mismatch", "amount_mismatch", message)
    paid_at = paid["paid_at"] or now
    outcome = "already_paid" if order.payment_status == "paid" else "paid"
    try:
        with db.session.begin_nested():
            db.session.add(Payment(account_id=account.id, provider=notice.provider,
                                   transaction_id=paid["transaction_id"], out_trade_no=paid["out_trade_no"],
                                   order_id=order.id, amount=paid["amount"], paid_at=paid_at, notice_id=notice.id))
            db.session.flush()
            if outcome == "paid":
                order_service.record_payment(order, paid_at, SYSTEM)
    except IntegrityError:  # the same transaction applied by another worker meanwhile
        return _settle(notice, "done", "duplicate")
    except ServiceError as error:  # e.g. the order was cancelled meanwhile: a person decides (refund?)
        raise_many([Problem("callback_failed", f"callback_failed:payment_notice:{notice.id}",
                            f"{order.order_no}: payment {paid['transaction_id']} not applied: {error}"[:300], now,
                            order_id=order.id)], SYSTEM, now)
        return _settle(notice, "review", None, getattr(error, "code", None) or "not_applied", str(error))
    return _settle(notice, "done", outcome)


def process_notices(ids: list[int], now: datetime | None = None) -> dict:
    """Apply claimed notices, each in a savepoint of its own (one that fails goes to retry, the rest flow)."""
    now = now or utc_now()
    tally: dict[str, int] = defaultdict(int)
    notices = db.session.execute(select(PaymentNotice).where(PaymentNotice.id.in_(ids))
                                 .order_by(PaymentNotice.id)).scalars().all()
    for notice in notices:
        try:
            with db.session.begin_nested():
                tally[_apply(notice, now)] += 1
        except Exception as error:  # noqa: BLE001  (kept, retried with backoff, then dead)
            log.exception("payment notice failed id=%s", notice.id)
            notice.status, notice.last_error = "retry", str(error)[:1000]
            notice.next_attempt_at = now + inbox_states.backoff(notice.attempts)
            if notice.attempts >= inbox_states.MAX_ATTEMPTS:
                notice.status = "dead"
            tally["retry"] += 1
    db.session.flush()
    return dict(tally)


def wake_waiting() -> list[int]:
    """Waiting notices whose order has arrived since go back to `received` (one statement); returns their ids."""
    arrived = select(Order.id).join(PaymentAccount, PaymentAccount.channel_id == Order.channel_id).where(
        PaymentAccount.id == PaymentNotice.account_id,
        (Order.channel_order_id == PaymentNotice.out_trade_no) | (Order.order_no == PaymentNotice.out_trade_no))
    return db.session.execute(update(PaymentNotice).where(PaymentNotice.status == "waiting", arrived.exists())
                              .values(status="received", error_code=None, last_error=None)
                              .returning(PaymentNotice.id)).scalars().all()


def sweep(now: datetime | None = None) -> list[int]:
    """Notices due for retry, or stuck in processing, are received again."""
    return inbox_states.sweep(now, model=PaymentNotice)


def replay(notice_id, actor: Actor) -> PaymentNotice:
    """A person replays a notice in review (after fixing the order or the key): it is applied again."""
    notice = get_notice(notice_id)
    inbox_states.check_replayable(notice, "payment notice")
    inbox_states._reset(notice, actor, entity="payment_notice")
    return notice


def get_notice(notice_id) -> PaymentNotice:
    notice = db.session.get(PaymentNotice, int(notice_id)) if str(notice_id).isdigit() else None
    if notice is None:
        raise NotFound(say(NO_NOTICE, id=str(notice_id)[:20]), field="id", code="notice_not_found")
    return notice


def recent_notices(limit: int = 50) -> list[PaymentNotice]:
    return db.session.execute(select(PaymentNotice).order_by(PaymentNotice.id.desc()).limit(limit)).scalars().all()


# --- daily reconciliation -------------------------------------------------------------------------------------

def _chunks(values: list, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _one_of(column, values: list):
    """`column IN values`: on PostgreSQL one array parameter (= ANY), not thousands of bound values to convert."""
    if db.engine.dialect.name == "postgresql":
        return column == any_(bindparam(None, value=list(values), type_=ARRAY(String)))
    return column.in_(values)


def _one_of_ids(column, values: list):
    if db.engine.dialect.name == "postgresql":
        return column == any_(bindparam(None, value=list(values), type_=ARRAY(Integer)))
    return column.in_(values)


def _orders_named(channel_id: int, keys: list[str]) -> dict[str, tuple]:
    """out_trade_no → (order id, order no, total, payment status), by channel order id, then by order number."""
    found: dict[str, tuple] = {}
    columns = (Order.id, Order.order_no, Order.total, Order.payment_status)
    connection = db.session.connection()
    for chunk in _chunks(keys):
        for row in connection.execute(select(Order.channel_order_id, *columns).where(
                Order.channel_id == channel_id, _one_of(Order.channel_order_id, chunk))):
            found[row[0]] = tuple(row[1:])
    rest = [key for key in keys if key not in found and len(key) <= 20]
    for chunk in _chunks(rest):
        for row in connection.execute(select(Order.order_no, *columns).where(
                Order.channel_id == channel_id, _one_of(Order.order_no, chunk))):
            found[row[0]] = tuple(row[1:])
    return found


def day_bounds(bill_date: date) -> tuple[datetime, datetime]:
    """The provider's bill day is a Beijing day: its bounds in UTC."""
    from zoneinfo import ZoneInfo

    start = datetime.combine(bill_date, time(0), ZoneInfo(BEIJING))
    return start, start + timedelta(days=1)


def reconcile(account: PaymentAccount, bill_date: date, data: bytes | str, actor: Actor, source: str = "import",
              filename: str | None = None, now: datetime | None = None) -> PaymentReconciliation:
    """Match one day's bill against the orders, payments and refunds here; store and raise every difference."""
    if not can(actor.role, "invoices", "edit") and actor.role != SYSTEM.role:
        raise Forbidden(say(ROLE_MAY_NOT_RECONCILE, role=role_name(actor.role)), code="forbidden")
    now = now or utc_now()
    run = PaymentReconciliation(account_id=account.id, provider=account.provider, bill_date=bill_date, source=source,
                                filename=(filename or "")[:200] or None, started_at=now, status="running",
                                started_by=actor.label[:80], bill_rows=0, matched=0, paid_not_recorded=0,
                                recorded_not_paid=0, amount_mismatch=0, refund_mismatch=0, malformed=0)
    db.session.add(run)
    db.session.flush()
    try:
        bill = bills.read_bill(account.provider, data)
    except PaymentMessageError as error:
        run.status, run.error, run.finished_at = "failed", f"{error.code}: {error}"[:1000], utc_now()
        return run
    mismatches = _compare(account, bill, bill_date)
    run.bill_rows = len(bill.rows) + len(bill.problems)
    counts = defaultdict(int)
    for row in mismatches:
        counts[row["kind"]] += 1
    run.matched = sum(1 for row in bill.rows if row.kind == "payment") - counts["paid_not_recorded"] \
        - counts["amount_mismatch"]
    run.paid_not_recorded, run.recorded_not_paid = counts["paid_not_recorded"], counts["recorded_not_paid"]
    run.amount_mismatch, run.refund_mismatch = counts["amount_mismatch"], counts["refund_mismatch"]
    run.malformed = counts["malformed_row"]
    for chunk in _chunks(mismatches):
        db.session.execute(insert(PaymentMismatch), [{**row, "reconciliation_id": run.id} for row in chunk])
    raise_many([_problem(account, bill_date, row, now) for row in mismatches], SYSTEM, now)
    run.status, run.finished_at = "ok", utc_now()
    audit.record(actor, "payments.reconcile", "payment_reconciliation", str(run.id),
                 after={"provider": account.provider, "bill_date": bill_date.isoformat(), "rows": run.bill_rows,
                        **{kind: counts[kind] for kind in MISMATCH_KINDS}})
    return run


def _problem(account: PaymentAccount, bill_date: date, row: dict, now: datetime) -> Problem:
    kind = EXCEPTION_OF[row["kind"]]
    subject = row["transaction_id"] or row["out_trade_no"] or f"{bill_date.isoformat()}:{row['line_no']}"
    if row["kind"] == "malformed_row":
        subject = f"{account.id}:{bill_date.isoformat()}:{row['line_no']}"
    summary = {
        "paid_not_recorded": "{no}: paid {bill} at {provider}, not recorded here",
        "recorded_not_paid": "{no}: recorded paid {ours} here, not in the {provider} bill",
        "amount_mismatch": "{no}: {provider} bill {bill}, the order {ours}",
        "refund_mismatch": "{no}: refunded {bill} in the {provider} bill, {ours} here",
        "malformed_row": "{provider} bill {day} line {line}: {detail}",
    }[row["kind"]].format(no=row["order_no"] or row["out_trade_no"], bill=row["bill_amount"], ours=row["our_amount"],
                          provider=account.provider, day=bill_date.isoformat(), line=row["line_no"],
                          detail=row["detail"])
    return Problem(kind, f"{kind}:{account.provider}:{subject}"[:120], summary[:300], now, order_id=row["order_id"])


def _mismatch(kind: str, line_no=None, out_trade_no=None, transaction_id=None, bill_amount=None, our_amount=None,
              order=None, detail=None) -> dict:
    return {"kind": kind, "line_no": line_no, "out_trade_no": out_trade_no, "transaction_id": transaction_id,
            "bill_amount": bill_amount, "our_amount": our_amount, "order_id": order[0] if order else None,
            "order_no": order[1] if order else None, "detail": (detail or "")[:300] or None}


def _compare(account: PaymentAccount, bill: bills.Bill, bill_date: date) -> list[dict]:
    """The differences between a bill and what is recorded here, in a few set queries."""
    found = [_mismatch("malformed_row", line_no=line, detail=reason) for line, reason in bill.problems]
    keys = sorted({row.out_trade_no for row in bill.rows})
    orders = _orders_named(account.channel_id, keys)
    billed = set()
    for row in bill.rows:
        if row.kind != "payment":
            continue
        billed.add(row.transaction_id)
        order = orders.get(row.out_trade_no)
        if order is None:
            found.append(_mismatch("paid_not_recorded", row.line_no, row.out_trade_no, row.transaction_id,
                                   row.amount, detail="no such order here"))
        elif row.amount != order[2]:
            found.append(_mismatch("amount_mismatch", row.line_no, row.out_trade_no, row.transaction_id, row.amount,
                                   order[2], order))
        elif order[3] != "paid":
            found.append(_mismatch("paid_not_recorded", row.line_no, row.out_trade_no, row.transaction_id,
                                   row.amount, order[2], order, detail="the order is unpaid here"))
    start, end = day_bounds(bill_date)
    recorded = db.session.execute(
        select(Payment.transaction_id, Payment.out_trade_no, Payment.amount, Order.id, Order.order_no)
        .join(Order, Order.id == Payment.order_id)
        .where(Payment.account_id == account.id, Payment.paid_at >= start, Payment.paid_at < end)).all()
    for row in recorded:
        if row.transaction_id not in billed:
            found.append(_mismatch("recorded_not_paid", None, row.out_trade_no, row.transaction_id, None, row.amount,
                                   (row.id, row.order_no)))
    refunds_billed: dict[str, Decimal] = defaultdict(Decimal)
    refund_line: dict[str, int] = {}
    for row in bill.rows:
        if row.kind == "refund":
            refunds_billed[row.out_trade_no] += row.amount
            refund_line.setdefault(row.out_trade_no, row.line_no)
    refunded_orders = {key: orders[key] for key in refunds_billed if key in orders}
    here: dict[int, Decimal] = {}
    for chunk in _chunks([order[0] for order in refunded_orders.values()]):
        here.update(db.session.execute(select(PlatformRefund.order_id, func.sum(PlatformRefund.amount))
                                       .where(_one_of_ids(PlatformRefund.order_id, chunk))
                                       .group_by(PlatformRefund.order_id)).all())
    for key, amount in refunds_billed.items():
        order = refunded_orders.get(key)
        ours = here.get(order[0], Decimal(0)) if order else None
        if ours is None or ours != amount:
            found.append(_mismatch("refund_mismatch", refund_line[key], key, None, amount, ours, order,
                                   detail=None if order else "no such order here"))
    return found


# The providers' answers for a day whose bill is not made yet (today, a future day, before about 09:00 the next
# day): WeChat Pay 400 NO_STATEMENT_EXIST / STATEMENT_CREATING, Alipay 40004 isp.bill_not_exist.
NOT_BILLED = ("NO_STATEMENT_EXIST", "STATEMENT_CREATING", "BILL_NOT_EXIST", "isp.bill_not_exist")
BILL_NOT_READY = N_("The %(provider)s bill of %(day)s is not ready (%(code)s): %(reason)s")
BILL_REFUSED = N_("The %(provider)s bill download was refused (%(code)s): %(reason)s")
BILL_UNREACHABLE = N_("The %(provider)s API did not answer: %(reason)s")
NO_API_KEY = N_("The payment account has no merchant API key: bills cannot be downloaded through the provider's API.")


def can_download(account: PaymentAccount) -> bool:
    """Whether the account holds what the provider's signed bill API needs."""
    if not account.merchant_private_key or not account.provider_public_key:
        return False
    if account.provider == "wechatpay":
        return bool(account.merchant_id and account.merchant_serial and account.platform_serial)
    return bool(account.app_id)


def download_bill(account: PaymentAccount, bill_date: date, transport=None, now: datetime | None = None) -> bytes:
    """The day's bill through the provider's signed API: WeChat Pay GET /v3/bill/tradebill (answer verified with
    the platform key), then its download_url, checked by the SHA1 it gave; Alipay
    alipay.data.dataservice.bill.downloadurl.query (answer verified with Alipay's key), then the 业务明细 CSV out of
    the ZIP at bill_download_url. Refused in words: a day not billed yet, a bad signature, a tampered file."""
    import httpx

    if not can_download(account):
        raise ValidationFailed(say(NO_API_KEY), field="merchant_private_key", code="no_api_key")
    names = {"provider": account.provider, "day": bill_date.isoformat()}
    try:
        with httpx.Client(timeout=30, transport=transport) as client:
            if account.provider == "wechatpay":
                return _wechat_bill(client, account, bill_date, now or utc_now())
            return _alipay_bill(client, account, bill_date, now or utc_now())
    except PaymentMessageError as error:
        if error.code in NOT_BILLED:
            raise Conflict(say(BILL_NOT_READY, code=error.code, reason=str(error), **names), code="bill_not_ready")
        raise ServiceError(say(BILL_REFUSED, code=error.code, reason=str(error), **names),
                           code=f"bill_{error.code}"[:40])
    except httpx.HTTPError as error:
        raise ServiceError(say(BILL_UNREACHABLE, reason=str(error)[:200], **names), code="bill_download_failed")


def _wechat_get(client, account: PaymentAccount, url: str):
    authorization = wechatpay.authorization(account.merchant_id, account.merchant_serial,
                                            account.merchant_private_key, "GET", url)
    return client.get(url, headers={"Authorization": authorization, "Accept": "application/json",
                                    "User-Agent": "orderloom-payments"})


def _wechat_bill(client, account: PaymentAccount, bill_date: date, now: datetime) -> bytes:
    base = (account.api_url or wechatpay.API_BASE).rstrip("/")
    answer = _wechat_get(client, account, f"{base}/v3/bill/tradebill?bill_date={bill_date.isoformat()}&bill_type=ALL")
    wechatpay.verify_answer(answer.status_code, answer.headers, answer.content, account.provider_public_key,
                            account.platform_serial, now)
    if answer.status_code != 200:
        code, message = wechatpay.read_error(answer.content)
        raise PaymentMessageError(code or f"http_{answer.status_code}", message)
    bill = wechatpay.read_bill_answer(answer.content)
    file = _wechat_get(client, account, bill["download_url"])
    if file.status_code != 200:
        code, message = wechatpay.read_error(file.content)
        raise PaymentMessageError(code or f"http_{file.status_code}", message)
    wechatpay.check_bill_hash(file.content, bill["hash_type"], bill["hash_value"])  # the file itself is unsigned
    return file.content


def _alipay_bill(client, account: PaymentAccount, bill_date: date, now: datetime) -> bytes:
    params = alipay.signed_request(account.app_id, alipay.BILL_METHOD,
                                   {"bill_type": "trade", "bill_date": bill_date.isoformat()},
                                   account.merchant_private_key, now)
    answer = client.post(account.api_url or alipay.GATEWAY, data=params,
                         headers={"Accept": "application/json", "User-Agent": "orderloom-payments"})
    if answer.status_code != 200:
        raise PaymentMessageError(f"http_{answer.status_code}", answer.text[:200])
    node = alipay.read_response(answer.content, alipay.BILL_METHOD, account.provider_public_key)
    url = node.get("bill_download_url") or ""
    if not url.startswith(("https://", "http://")):
        raise PaymentMessageError("bad_answer", "the answer has no bill_download_url")
    archive = client.get(url)
    if archive.status_code != 200:
        raise PaymentMessageError(f"http_{archive.status_code}", archive.text[:200])
    _name, data = alipay.bill_from_zip(archive.content)
    return data


def reconciliations(limit: int = 50) -> list[PaymentReconciliation]:
    return db.session.execute(select(PaymentReconciliation).order_by(PaymentReconciliation.id.desc()).limit(limit)
                              ).scalars().all()


def get_reconciliation(run_id) -> PaymentReconciliation:
    run = db.session.get(PaymentReconciliation, int(run_id)) if str(run_id).isdigit() and int(run_id) < 2 ** 31 \
        else None
    if run is None:
        raise NotFound(say(NO_RECONCILIATION, id=str(run_id)[:20]), field="id", code="reconciliation_not_found")
    return run


def mismatches_of(run: PaymentReconciliation, limit: int | None = None) -> list[PaymentMismatch]:
    query = select(PaymentMismatch).where(PaymentMismatch.reconciliation_id == run.id).order_by(PaymentMismatch.id)
    return db.session.execute(query.limit(limit) if limit else query).scalars().all()


REPORT_COLUMNS = ("kind", "line_no", "out_trade_no", "transaction_id", "order_no", "bill_amount", "our_amount",
                  "detail")


def report_rows(run: PaymentReconciliation) -> list[list]:
    return [[getattr(row, column) if getattr(row, column) is not None else "" for column in REPORT_COLUMNS]
            for row in mismatches_of(run)]


def report_csv(run: PaymentReconciliation) -> bytes:
    """The run's differences as CSV (shared.exports: opens in Excel, formulas neutralised)."""
    from shared import exports

    return exports.csv_bytes(list(REPORT_COLUMNS), report_rows(run))


def report_xlsx(run: PaymentReconciliation) -> bytes:
    from shared import exports

    return exports.xlsx_bytes(list(REPORT_COLUMNS), report_rows(run), sheet_title="mismatches")
