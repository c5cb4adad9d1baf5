"""Stock operations: receipts into bins, transfers between warehouses, returns after inspection, and stock-takes
(a blind count sheet, then a manager's variance report and decision before anything is adjusted). Every change
goes through one service call; the views only read."""
from collections import defaultdict

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from portal.access import requires
from portal.forms import (
    ConfirmForm,
    CountForm,
    ReceiptForm,
    ReturnForm,
    StartStockTakeForm,
    StockTakeDecisionForm,
    TransferForm,
)
from portal.outcomes import commit_or_refuse, flash_form_errors, flash_held, held_for_approval
from shared import labels
from shared.extensions import db
from shared.models import Bin, Lot, Order, Sku, StaffUser, StockMovement, StockTake, StockTakeLine, Warehouse
from shared.services import lots, stock_ops
from shared.services.errors import ServiceError
from shared.timekeeping import utc_now
from shared.web import staff_actor

bp = Blueprint("stock_ops", __name__, url_prefix="/stock-ops")

LEDGER_KINDS = ("receipt", "transfer_out", "transfer_in", "return", "stocktake")  # what these pages change
LEDGER_PAGE = 100
OPEN_TAKE = ("counting", "submitted")
DECIDED_SHOWN = 10
SKU_HINTS = 2000  # codes offered as typing suggestions; any code may be typed
BIN_HINTS = 500

bp.add_app_template_filter(lambda code: labels.label(labels.STOCK_TAKE_STATUS, code), "stock_take_status_label")


def _warehouses() -> list[Warehouse]:
    return db.session.execute(select(Warehouse).order_by(Warehouse.code)).scalars().all()


def _warehouse_choices() -> list[tuple[str, str]]:
    return [(w.code, f"{w.code} · {w.name}") for w in
            db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.code)).scalars()]


def _chosen(warehouses: list[Warehouse], code: str | None) -> Warehouse | None:
    """The warehouse named in the query string, if it is one of ours (anything else means all)."""
    code = (code or "").strip()
    return next((w for w in warehouses if w.code == code), None)


def _saved(form, action, fields: dict[str, str] | None = None) -> bool:
    """Validate the form, make the one service call, commit. False: nothing changed and the reason is on the form,
    beside the field the service named (`fields` translates the service's names to the form's)."""
    if not form.validate_on_submit():
        return False
    try:
        g.approval_held = held_for_approval(action())
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        name = (fields or {}).get(refused.field, refused.field)
        errors = form[name].errors if name and name in form else form.form_errors
        errors.append(refused.message)
        return False
    return True


def _text(value: str | None) -> str:
    return (value or "").strip()


# --- overview: open stock-takes and the ledger of these operations -------------------------------------------

def _ledger(kind: str, warehouse: Warehouse | None, before: int | None) -> list:
    """Receipts, transfers, returns and stock-take adjustments, newest first (a page plus one row), with the
    SKU, warehouse, who did it and the order of a return in the same query."""
    query = (select(StockMovement, StaffUser.username, Order.order_no)
             .options(joinedload(StockMovement.sku), joinedload(StockMovement.warehouse))
             .outerjoin(StaffUser, StaffUser.id == StockMovement.actor_id)
             .outerjoin(Order, Order.id == StockMovement.order_id)
             .where(StockMovement.kind.in_((kind,) if kind else LEDGER_KINDS)))
    if warehouse is not None:
        query = query.where(StockMovement.warehouse_id == warehouse.id)
    if before is not None:
        query = query.where(StockMovement.id < before)
    return db.session.execute(query.order_by(StockMovement.id.desc()).limit(LEDGER_PAGE + 1)).all()


def _progress(take_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Lines and counted lines per stock-take, in one grouped query."""
    if not take_ids:
        return {}
    return {take_id: (lines, counted) for take_id, lines, counted in db.session.execute(
        select(StockTakeLine.stock_take_id, func.count(), func.count(StockTakeLine.counted))
        .where(StockTakeLine.stock_take_id.in_(take_ids)).group_by(StockTakeLine.stock_take_id)).all()}


@bp.get("/")
@requires("stock", "view")
def index():
    warehouses = _warehouses()
    warehouse = _chosen(warehouses, request.args.get("warehouse"))
    kind = request.args.get("kind") if request.args.get("kind") in LEDGER_KINDS else ""
    found = _ledger(kind, warehouse, request.args.get("before", type=int))
    page = found[:LEDGER_PAGE]
    context = {"rows": page, "next_before": page[-1][0].id if len(found) > LEDGER_PAGE else None,
               "warehouses": warehouses, "warehouse": warehouse, "kind": kind, "kinds": LEDGER_KINDS,
               "args": request.args}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "movement-table":
        return render_template("portal/stock_ops/_movements.html", **context)
    open_takes = db.session.execute(select(StockTake).where(StockTake.status.in_(OPEN_TAKE))
                                    .order_by(StockTake.id)).scalars().all()
    decided = db.session.execute(select(StockTake).where(StockTake.status.not_in(OPEN_TAKE))
                                 .order_by(StockTake.id.desc()).limit(DECIDED_SHOWN)).scalars().all()
    start_form = StartStockTakeForm(formdata=None)
    start_form.warehouse.choices = _warehouse_choices()
    return render_template("portal/stock_ops/index.html", open_takes=open_takes, decided=decided,
                           progress=_progress([t.id for t in open_takes]), start_form=start_form, **context)


# --- receipts, transfers, returns ----------------------------------------------------------------------------

def _form_page(template: str, form, status: int = 200):
    """A form page; the SKU (and bin) codes are offered as suggestions while typing."""
    sku_codes = db.session.execute(select(Sku.code).where(Sku.active).order_by(Sku.code).limit(SKU_HINTS)
                                   ).scalars().all()
    bin_codes = db.session.execute(select(Bin.code).distinct().order_by(Bin.code).limit(BIN_HINTS)).scalars().all() \
        if template == "receipt.html" else []
    return render_template(f"portal/stock_ops/{template}", form=form, sku_codes=sku_codes, bin_codes=bin_codes), status


def _with_warehouses(form, *fields):
    choices = _warehouse_choices()
    for name in fields or ("warehouse",):
        form[name].choices = choices
    return form


@bp.get("/receipts")
@requires("stock", "edit")
def receipt_form():
    return _form_page("receipt.html", _with_warehouses(ReceiptForm(formdata=None)))


@bp.post("/receipts")
@requires("stock", "edit")
def receive():
    form = _with_warehouses(ReceiptForm())
    if _saved(form, lambda: lots.receive(
            _text(form.sku.data), form.warehouse.data, _text(form.bin.data), form.quantity.data,
            staff_actor(current_user), lot_no=_text(form.lot_no.data) or None, produced_on=form.produced_on.data,
            expires_on=form.expires_on.data)):
        flash(_("Received %(quantity)s × %(sku)s into %(warehouse)s, bin %(bin)s.", quantity=form.quantity.data,
                sku=_text(form.sku.data), warehouse=form.warehouse.data, bin=_text(form.bin.data)), "success")
        return redirect(url_for("stock_ops.receipt_form"), 303)
    return _form_page("receipt.html", form, 422)


@bp.get("/transfers")
@requires("stock", "edit")
def transfer_form():
    return _form_page("transfer.html", _with_warehouses(TransferForm(formdata=None), "from_warehouse", "to_warehouse"))


@bp.post("/transfers")
@requires("stock", "edit")
def transfer():
    form = _with_warehouses(TransferForm(), "from_warehouse", "to_warehouse")
    if _saved(form, lambda: stock_ops.transfer(_text(form.sku.data), form.from_warehouse.data, form.to_warehouse.data,
                                               form.quantity.data, form.reason.data, staff_actor(current_user)),
              fields={"to": "to_warehouse", "delta": "quantity"}):
        if g.approval_held is not None:
            flash_held(g.approval_held)
            return redirect(url_for("stock_ops.transfer_form"), 303)
        flash(_("Moved %(quantity)s × %(sku)s from %(source)s to %(target)s.", quantity=form.quantity.data,
                sku=_text(form.sku.data), source=form.from_warehouse.data, target=form.to_warehouse.data), "success")
        return redirect(url_for("stock_ops.transfer_form"), 303)
    return _form_page("transfer.html", form, 422)


@bp.get("/returns")
@requires("stock", "edit")
def return_form():
    return _form_page("return.html", _with_warehouses(ReturnForm(formdata=None)))


@bp.post("/returns")
@requires("stock", "edit")
def restock_return():
    form = _with_warehouses(ReturnForm())
    passed = form.passed_inspection.data == "yes"
    if _saved(form, lambda: stock_ops.restock_return(
            _text(form.order_no.data), _text(form.sku.data), form.warehouse.data, form.quantity.data, passed,
            staff_actor(current_user), note=_text(form.note.data) or None), fields={"delta": "quantity"}):
        if passed:
            flash(_("Return of %(order_no)s: %(quantity)s × %(sku)s back on the shelf in %(warehouse)s.",
                    order_no=_text(form.order_no.data).upper(), quantity=form.quantity.data,
                    sku=_text(form.sku.data), warehouse=form.warehouse.data), "success")
        else:
            flash(_("Return of %(order_no)s: %(quantity)s × %(sku)s failed inspection and was written off.",
                    order_no=_text(form.order_no.data).upper(), quantity=form.quantity.data,
                    sku=_text(form.sku.data)), "success")
        return redirect(url_for("stock_ops.return_form"), 303)
    return _form_page("return.html", form, 422)


# --- stock-takes ---------------------------------------------------------------------------------------------

@bp.post("/takes")
@requires("stock", "edit")
def start_take():
    form = _with_warehouses(StartStockTakeForm())
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("stock_ops.index"), 303)
    try:
        take = stock_ops.start_stock_take(form.warehouse.data, staff_actor(current_user))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("No stock-take started: %(message)s", message=refused.message), "error")
        return redirect(url_for("stock_ops.index"), 303)
    flash(_("Stock-take %(id)s started for %(warehouse)s. Print the count sheet, count, and enter the figures.",
            id=take.id, warehouse=form.warehouse.data), "success")
    return redirect(url_for("stock_ops.stock_take", take_id=take.id), 303)


def _sheet(take: StockTake) -> list[dict]:
    """The take's lines in walking order through the bins where each SKU lies now (SKUs in no bin last).

    Bins come from the lots of the warehouse, in one query for the whole sheet."""
    bins: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for sku_id, walk_order, code in db.session.execute(
            select(Lot.sku_id, Bin.walk_order, Bin.code).join(Bin, Bin.id == Lot.bin_id)
            .where(Lot.warehouse_id == take.warehouse_id, Lot.quantity > 0,
                   Lot.sku_id.in_(select(StockTakeLine.sku_id).where(StockTakeLine.stock_take_id == take.id)))
            .distinct().order_by(Bin.walk_order, Bin.code)).all():
        if (walk_order, code) not in bins[sku_id]:
            bins[sku_id].append((walk_order, code))
    rows = [{"line": line, "bins": [code for _walk, code in bins.get(line.sku_id, [])],
             "walk": bins[line.sku_id][0] if bins.get(line.sku_id) else None} for line in take.lines]
    rows.sort(key=lambda row: (row["walk"] is None, row["walk"] or (0, ""), row["line"].sku.code))
    return rows


def _take_page(take: StockTake, count_form=None, decision_form=None, row_errors: dict | None = None,
               refused: list[str] | None = None, status: int = 200, entered: dict | None = None):
    """The stock-take: the count sheet, and for approvers the variance report. `refused` says at the top why a post
    changed nothing when no field of a form on the page can carry the reason."""
    rows = _sheet(take)
    variances = [row for row in rows if row["line"].variance]
    return render_template(
        "portal/stock_ops/take.html", take=take, rows=rows, counted=sum(r["line"].counted is not None for r in rows),
        variances=len(variances), net=sum(row["line"].variance for row in variances),
        count_form=count_form or CountForm(formdata=None), row_errors=row_errors or {},
        decision_form=decision_form or StockTakeDecisionForm(formdata=None), confirm_form=ConfirmForm(),
        refused=refused or [], entered=entered or {},
        started_by_me=take.started_by == current_user.username), status


@bp.get("/takes/<int:take_id>")
@requires("stock", "view")
def stock_take(take_id: int):
    return _take_page(db.get_or_404(StockTake, take_id))


@bp.get("/takes/<int:take_id>/print")
@requires("stock", "view")
def take_print(take_id: int):
    """The count sheet for the printer: SKUs in walking order with their bins and an empty box for the figure.
    The expected figures are never printed, so the count is blind."""
    take = db.get_or_404(StockTake, take_id)
    return render_template("portal/stock_ops/take_print.html", take=take, rows=_sheet(take), printed_at=utc_now())


@bp.post("/takes/<int:take_id>/count")
@requires("stock", "edit")
def count(take_id: int):
    """One counted figure. From htmx the row comes back (with its error, if any); otherwise the sheet."""
    take = db.get_or_404(StockTake, take_id)
    form = CountForm()
    code = _text(form.sku.data)
    saved = _saved(form, lambda: stock_ops.record_count(take.id, code, form.counted.data, staff_actor(current_user)))
    row = next((r for r in _sheet(take) if r["line"].sku.code == code), None)
    error = None if saved else "; ".join(message for messages in form.errors.values() for message in messages)
    if request.headers.get("HX-Request") and row is not None:
        # 200 even when refused: htmx swaps only successful answers, and the row carries the error.
        return render_template("portal/stock_ops/_count_row.html", take=take, row=row, error=error,
                               count_form=CountForm(formdata=None))
    if saved:
        flash(_("%(sku)s: %(counted)s counted.", counted=form.counted.data, sku=code), "success")
        return redirect(url_for("stock_ops.stock_take", take_id=take.id,
                                _anchor=f"line-{row['line'].id}" if row else None), 303)
    if row is not None:
        return _take_page(take, row_errors={row["line"].id: error}, status=422)
    if take.status == "counting":
        return _take_page(take, count_form=form, status=422)  # a SKU found that was not on the sheet
    return _take_page(take, refused=[error], status=422)  # the sheet takes no more counts: no form to show it on


def entered_counts(take: StockTake, form) -> dict[int, str]:
    """The figures typed on the bulk count sheet (`count-<line id>`), by line; a blank box is not counted yet."""
    return {line.id: value for line in take.lines if (value := _text(form.get(f"count-{line.id}")))}


def _as_count(value: str):
    """A typed figure as a number when it is one; anything else goes to the service as typed, which refuses it by
    record_count's rule (one place for what a count may be)."""
    return int(value) if value.lstrip("-").isdigit() else value


@bp.post("/takes/<int:take_id>/counts")
@requires("stock", "edit")
def save_counts(take_id: int):
    """The whole count sheet in one request: every figure saved, or none (each wrong one shown beside its line and
    every typed figure kept in its box)."""
    take = db.get_or_404(StockTake, take_id)
    if not ConfirmForm().validate_on_submit():
        return _take_page(take, refused=[_("The form expired: reload the sheet and enter the figures again.")],
                          status=400)
    entered = entered_counts(take, request.form)
    if not entered:
        flash(_("Nothing to save: no figure was entered."), "info")
        return redirect(url_for("stock_ops.stock_take", take_id=take.id), 303)
    codes = {line.id: line.sku.code for line in take.lines}
    try:
        saved = stock_ops.record_counts(take.id, {codes[line_id]: _as_count(value)
                                                  for line_id, value in entered.items()},
                                        staff_actor(current_user))
        db.session.commit()
    except stock_ops.CountsRefused as refused:
        db.session.rollback()
        take = db.session.get(StockTake, take_id)
        by_code = {code: line_id for line_id, code in codes.items()}
        return _take_page(take, row_errors={by_code[code]: message for code, message in refused.errors.items()},
                          refused=[refused.message], entered=entered, status=422)
    except ServiceError as refused:
        db.session.rollback()
        return _take_page(db.session.get(StockTake, take_id), refused=[refused.message], entered=entered,
                          status=refused.status)
    flash(ngettext("%(num)s count saved.", "%(num)s counts saved.", len(saved)), "success")
    return redirect(url_for("stock_ops.stock_take", take_id=take.id), 303)


@bp.post("/takes/<int:take_id>/submit")
@requires("stock", "edit")
def submit(take_id: int):
    take = db.get_or_404(StockTake, take_id)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: stock_ops.submit(take.id, staff_actor(current_user)),
                         _("Stock-take %(id)s was submitted for a manager's approval.", id=take.id),
                         failure=_("Not submitted: %(message)s"))
    return redirect(url_for("stock_ops.stock_take", take_id=take.id), 303)


def _decide(take_id: int, approve: bool):
    take = db.get_or_404(StockTake, take_id)
    form = StockTakeDecisionForm()
    if _saved(form, lambda: stock_ops.decide(take.id, approve, staff_actor(current_user),
                                             note=_text(form.note.data) or None)):
        if g.approval_held is not None:
            flash_held(g.approval_held)
            return redirect(url_for("stock_ops.stock_take", take_id=take.id), 303)
        flash(_("Stock-take %(id)s approved: the variances are now stock-take movements in the ledger.", id=take.id)
              if approve else _("Stock-take %(id)s rejected: nothing was adjusted.", id=take.id), "success")
        return redirect(url_for("stock_ops.stock_take", take_id=take.id), 303)
    return _take_page(take, decision_form=form, refused=form.form_errors, status=422)


@bp.post("/takes/<int:take_id>/approve")
@requires("stock", "approve")
def approve(take_id: int):
    return _decide(take_id, True)


@bp.post("/takes/<int:take_id>/reject")
@requires("stock", "approve")
def reject(take_id: int):
    return _decide(take_id, False)
