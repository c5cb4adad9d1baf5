"""Payments for finance: the daily reconciliations of the providers' bills (import or download), their mismatches
with a CSV/XLSX report, and the latest payment notifications."""
from flask import Blueprint, Response, abort, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import PaymentBillForm
from portal.outcomes import flash_form_errors
from shared.extensions import db
from shared.security.permissions import can
from shared.services import payments
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("payments", __name__, url_prefix="/finance/payments")
MAX_BILL_BYTES = 64 * 1024 * 1024


def _form() -> PaymentBillForm:
    form = PaymentBillForm()
    form.account_id.choices = [(a.id, f"{a.channel.name} · {a.provider}") for a in payments.accounts()]
    return form


@bp.get("/")
@requires("invoices", "view")
def index():
    from portal.forms import ConfirmForm, PaymentAccountForm

    return render_template("portal/payments.html", runs=payments.reconciliations(), form=_form(),
                           notices=payments.recent_notices(20), editable=can(current_user.role, "invoices", "edit"),
                           confirm_form=ConfirmForm(), accounts=payments.accounts(),
                           account_form=PaymentAccountForm() if can(current_user.role, "channels", "edit") else None)


@bp.post("/reconcile")
@requires("invoices", "edit")
def reconcile():
    from flask import flash

    form = _form()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("payments.index"), 303)
    try:
        account = payments.get_account(form.account_id.data)
        upload = form.file.data
        if upload and getattr(upload, "filename", ""):
            data, source, name = upload.read(MAX_BILL_BYTES + 1), "import", upload.filename
            if len(data) > MAX_BILL_BYTES:
                raise ServiceError(_("The bill is over 64 MB."), code="too_large")
        else:
            data, source, name = payments.download_bill(account, form.bill_date.data), "download", None
        run = payments.reconcile(account, form.bill_date.data, data, staff_actor(current_user), source=source,
                                 filename=name)
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not saved: %(message)s") % {"message": refused.message}, "error")
        return redirect(url_for("payments.index"), 303)
    if run.status == "failed":
        flash(_("The bill could not be read: %(error)s", error=run.error), "error")
    else:
        flash(_("Reconciled %(rows)s bill lines: %(count)s differences.", rows=run.bill_rows,
                count=run.paid_not_recorded + run.recorded_not_paid + run.amount_mismatch + run.refund_mismatch
                + run.malformed), "success")
    return redirect(url_for("payments.show", run_id=run.id), 303)


@bp.get("/<int:run_id>")
@requires("invoices", "view")
def show(run_id: int):
    run = _run_or_404(run_id)
    kinds = {"paid_not_recorded": _("Paid, not recorded"), "recorded_not_paid": _("Recorded, not paid"),
             "amount_mismatch": _("Amount differs"), "refund_mismatch": _("Refund differs"),
             "malformed_row": _("Unreadable line")}
    return render_template("portal/payment_run.html", run=run, mismatches=payments.mismatches_of(run, limit=500),
                           kinds=kinds)


@bp.get("/<int:run_id>/report.<fmt>")
@requires("invoices", "view")
def report(run_id: int, fmt: str):
    run = _run_or_404(run_id)
    if fmt == "csv":
        body, mimetype = payments.report_csv(run), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body, mimetype = payments.report_xlsx(run), \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        abort(404)
    name = f"payment-reconciliation-{run.provider}-{run.bill_date.isoformat()}-{run.id}.{fmt}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _run_or_404(run_id: int):
    try:
        return payments.get_reconciliation(run_id)
    except ServiceError:
        abort(404)


@bp.post("/notices/<int:notice_id>/replay")
@requires("invoices", "edit")
def replay_notice(notice_id: int):
    """A notice in review or waiting is applied again (after the order or the account was put right), audited."""
    from portal.forms import ConfirmForm
    from portal.outcomes import commit_or_refuse

    form = ConfirmForm()
    if form.validate_on_submit():
        if commit_or_refuse(lambda: payments.replay(notice_id, staff_actor(current_user)),
                            _("Payment notification %(id)s is applied again.", id=notice_id)):
            payments.kick()
    else:
        flash_form_errors(form)
    return redirect(url_for("payments.index"), 303)


@bp.post("/accounts")
@requires("channels", "edit")
def save_account():
    """Set a direct channel's WeChat Pay or Alipay account (an empty API v3 key or merchant private key keeps the one
    stored)."""
    from portal.forms import PaymentAccountForm
    from portal.outcomes import commit_or_refuse
    from shared.services.orders import get_channel

    form = PaymentAccountForm()
    if form.validate_on_submit():
        commit_or_refuse(lambda: payments.configure_account(
            get_channel(form.channel_code.data.upper()), form.provider.data, staff_actor(current_user),
            merchant_id=form.merchant_id.data or None, app_id=form.app_id.data or None,
            api_v3_key=form.api_v3_key.data or None, provider_public_key=form.provider_public_key.data,
            platform_serial=form.platform_serial.data or None,
            merchant_private_key=form.merchant_private_key.data or None,
            merchant_serial=form.merchant_serial.data or None, api_url=form.api_url.data or None),
            _("Payment account of %(code)s saved.", code=form.channel_code.data.upper()))
    else:
        flash_form_errors(form)
    return redirect(url_for("payments.index"), 303)
