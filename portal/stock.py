"""Stock: levels per SKU and warehouse, low-stock flags, adjustments and holds, the movement ledger."""
from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from portal.access import requires
from portal.forms import StockAdjustForm, StockHoldForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.models import Sku, StockLevel, StockMovement, Warehouse
from shared.services import stock
from shared.web import staff_actor

bp = Blueprint("stock", __name__, url_prefix="/stock")
PAGE = 100
SORTS = {"sku": Sku.code, "available": "available", "on_hand": "on_hand", "reserved": "reserved"}


def _warehouse_choices():
    return [(w.code, f"{w.code} {w.name}") for w in
            db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.code)).scalars()]


@bp.route("/", methods=["GET"])
@requires("stock", "view")
def index():
    q = (request.args.get("q") or "").strip()[:64]
    only_low = request.args.get("low") == "1"
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "sku"
    per_sku = (select(StockLevel.sku_id,
                      func.sum(StockLevel.on_hand).label("on_hand"), func.sum(StockLevel.reserved).label("reserved"),
                      func.sum(StockLevel.held).label("held"),
                      func.sum(StockLevel.available).label("available"))
               .group_by(StockLevel.sku_id).subquery())
    query = (select(Sku, per_sku.c.on_hand, per_sku.c.reserved, per_sku.c.held, per_sku.c.available)
             .outerjoin(per_sku, per_sku.c.sku_id == Sku.id))
    if q:
        query = query.where(or_(Sku.code.contains(q, autoescape=True), Sku.name.contains(q, autoescape=True)))
    if only_low:
        query = query.where(func.coalesce(per_sku.c.available, 0) <= Sku.safety_stock)
    order_column = Sku.code if sort == "sku" else getattr(per_sku.c, SORTS[sort])
    query = query.order_by(order_column if sort == "sku" else order_column.desc(), Sku.id).limit(PAGE)
    rows = db.session.execute(query).all()
    adjust_form, hold_form = StockAdjustForm(), StockHoldForm()
    adjust_form.warehouse.choices = hold_form.warehouse.choices = _warehouse_choices()
    return render_template("portal/stock/index.html", rows=rows, q=q, only_low=only_low, sort=sort,
                           adjust_form=adjust_form, hold_form=hold_form)


@bp.get("/<path:sku_code>")
@requires("stock", "view")
def sku_detail(sku_code: str):
    sku = stock.get_sku(sku_code)
    movements = db.session.execute(
        select(StockMovement).where(StockMovement.sku_id == sku.id).order_by(StockMovement.id.desc()).limit(200)
    ).scalars().all()
    return render_template("portal/stock/sku.html", sku=sku, summary=stock.stock_summary(sku), movements=movements)


def _submit(form, action):
    form.warehouse.choices = _warehouse_choices()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("stock.index"), 303)
    commit_or_refuse(lambda: action(form), _("Saved."))
    return redirect(request.referrer if request.referrer and request.referrer.startswith(request.host_url)
                    else url_for("stock.index"), 303)


@bp.post("/adjust")
@requires("stock", "edit")
def adjust():
    return _submit(StockAdjustForm(), lambda f: stock.adjust_stock(
        f.sku.data, f.warehouse.data, f.delta.data, f.reason.data, staff_actor(current_user)))


@bp.post("/hold")
@requires("stock", "approve")
def hold():
    return _submit(StockHoldForm(), lambda f: stock.set_held(
        f.sku.data, f.warehouse.data, f.held.data, f.reason.data, staff_actor(current_user)))
