"""Master data: SKUs and warehouses."""
from flask import Blueprint, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.access import requires
from portal.forms import SkuForm, WarehouseForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.models import Warehouse
from shared.services import catalog
from shared.web import staff_actor

bp = Blueprint("catalog", __name__, url_prefix="/catalog")


@bp.get("/")
@requires("catalog", "view")
def index():
    return render_template("portal/catalog.html", sku_form=SkuForm(), warehouse_form=WarehouseForm(),
                           warehouses=db.session.execute(select(Warehouse).order_by(Warehouse.code)).scalars().all())


def _save(form, action):
    if form.validate_on_submit():
        if commit_or_refuse(lambda: action(form), _("Saved.")):
            return redirect(url_for("catalog.index"), 303)
    else:
        flash_form_errors(form)
    return render_template("portal/catalog.html", sku_form=form if isinstance(form, SkuForm) else SkuForm(),
                           warehouse_form=form if isinstance(form, WarehouseForm) else WarehouseForm(),
                           warehouses=db.session.execute(select(Warehouse).order_by(Warehouse.code)).scalars().all()
                           ), 422


@bp.post("/skus")
@requires("catalog", "edit")
def create_sku():
    return _save(SkuForm(), lambda f: catalog.create_sku(
        {"sku": f.sku.data, "name": f.name.data, "safety_stock": f.safety_stock.data,
         "batch_tracked": bool(f.batch_tracked.data)}, staff_actor(current_user)))


@bp.post("/warehouses")
@requires("catalog", "edit")
def create_warehouse():
    return _save(WarehouseForm(), lambda f: catalog.create_warehouse(
        {"code": f.code.data, "name": f.name.data, "province": f.province.data, "city": f.city.data},
        staff_actor(current_user)))
