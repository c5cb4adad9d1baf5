"""Master data: SKUs and warehouses."""
from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import or_, select

from portal.access import requires
from portal.forms import SkuForm, SkuTaxForm, SkuTaxImportForm, WarehouseForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.models import Sku, Warehouse
from shared.services import catalog, sku_tax
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("catalog", __name__, url_prefix="/catalog")
MISSING_SHOWN = 100  # SKUs without tax data listed on the tax page


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


def _tax_page(tax_form=None, import_form=None, report=None, status: int = 200):
    missing = db.session.execute(select(Sku.code).where(Sku.active.is_(True), or_(
        Sku.tax_code.is_(None), Sku.tax_short_name.is_(None), Sku.tax_rate.is_(None), Sku.tax_unit.is_(None)))
        .order_by(Sku.code).limit(MISSING_SHOWN)).scalars().all()
    return render_template("portal/catalog_tax.html", tax_form=tax_form or SkuTaxForm(),
                           import_form=import_form or SkuTaxImportForm(), report=report, missing=missing,
                           shown=MISSING_SHOWN), status


@bp.get("/tax")
@requires("catalog", "view")
def tax():
    """SKU tax data for invoices: one SKU by hand, many by a CSV/XLSX import; the SKUs still lacking it."""
    return _tax_page()


@bp.post("/tax")
@requires("catalog", "edit")
def set_tax():
    form = SkuTaxForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _tax_page(tax_form=form, status=422)
    actor = staff_actor(current_user)
    if commit_or_refuse(lambda: sku_tax.set_tax_data(sku_tax.sku_by_code(form.sku.data), form.values(), actor),
                        _("Saved."), form=_TaxFieldsOf(form)):
        return redirect(url_for("catalog.tax"), 303)
    return _tax_page(tax_form=form, status=422)


class _TaxFieldsOf:
    """The service names tax_rate and tax_free; the form has one `rate` select for both."""

    def __init__(self, form):
        self.form = form

    def __contains__(self, name):
        return name in ("tax_rate", "tax_free") or name in self.form

    def __getitem__(self, name):
        return self.form["rate"] if name in ("tax_rate", "tax_free") else self.form[name]


@bp.post("/tax/import")
@requires("catalog", "edit")
def import_tax():
    """All or nothing: a file with a bad row changes nothing and lists every bad row (sku_tax.import_tax_data)."""
    form = SkuTaxImportForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _tax_page(import_form=form, status=422)
    upload = form.file.data
    try:
        report = sku_tax.import_tax_data(upload.filename, upload.read(), staff_actor(current_user))
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not imported: %(message)s") % {"message": refused.message}, "error")
        return _tax_page(import_form=form, status=422)
    if not report.applied:
        db.session.rollback()
        return _tax_page(import_form=form, report=report, status=422)
    db.session.commit()
    flash(_("Imported: %(changed)s SKUs changed, %(unchanged)s already so.")
          % {"changed": report.changed, "unchanged": report.unchanged}, "success")
    return _tax_page(report=report)
