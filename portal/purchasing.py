"""Purchasing: the purchase suggestion report (each line with its assumptions), the suppliers and their SKUs, the
supplier's XLSX; computing the suggestions now and mailing them to the suppliers."""
from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import SupplierForm, SupplierSkuForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.services import purchasing
from shared.web import staff_actor

bp = Blueprint("purchasing", __name__, url_prefix="/purchasing")


@bp.get("/")
@requires("purchasing", "view")
def report():
    run_id = request.args.get("run", type=int)
    run = purchasing.get_run(run_id) if run_id else purchasing.latest_run()
    lines = purchasing.lines_of(run) if run is not None else []
    only = request.args.get("only")
    if only == "order":
        lines = [row for row in lines if row[0].suggested > 0]
    blocked = sorted({supplier.code for line, supplier, _sku, _warehouse in lines if line.problem})
    return render_template("portal/purchasing/report.html", run=run, lines=lines, only=only, blocked=blocked,
                           weights=purchasing.parse_weights(run.weights) if run is not None else [],
                           runs=purchasing.recent_runs(), problem_text=purchasing.problem_text)


@bp.post("/run")
@requires("purchasing", "edit")
def compute_now():
    made = {}

    def act():
        made["run"] = purchasing.compute(staff_actor(current_user))

    commit_or_refuse(act, _("Purchase suggestions computed."))
    return redirect(url_for("purchasing.report", run=made["run"].id) if "run" in made
                    else url_for("purchasing.report"), 303)


@bp.post("/runs/<int:run_id>/mail")
@requires("purchasing", "edit")
def mail_suppliers(run_id: int):
    run = purchasing.get_run(run_id)
    commit_or_refuse(lambda: purchasing.queue_supplier_mails(run, staff_actor(current_user)),
                     _("The suppliers' mails are queued in the outbox (once per run and supplier)."))
    return redirect(url_for("purchasing.report", run=run.id), 303)


@bp.get("/runs/<int:run_id>/suppliers/<int:supplier_id>.xlsx")
@requires("purchasing", "view")
def supplier_file(run_id: int, supplier_id: int):
    run, supplier = purchasing.get_run(run_id), purchasing.get_supplier(supplier_id)
    filename, content = purchasing.supplier_workbook(run, supplier)
    return Response(content, mimetype="/".join(purchasing.XLSX_TYPE),
                    headers={"Content-Disposition": f"attachment; filename={filename}"})


@bp.get("/suppliers")
@requires("purchasing", "view")
def suppliers():
    return render_template("portal/purchasing/suppliers.html", suppliers=purchasing.list_suppliers(),
                           form=SupplierForm())


def _supplier_data(form) -> dict:
    return {"code": form.code.data, "name": form.name.data, "email": form.email.data, "locale": form.locale.data,
            "lead_time_days": form.lead_time_days.data, "safety_days": form.safety_days.data,
            "active": form.active.data}


@bp.post("/suppliers")
@requires("purchasing", "edit")
def create_supplier():
    form = SupplierForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return render_template("portal/purchasing/suppliers.html", suppliers=purchasing.list_suppliers(),
                               form=form), 422
    made = {}

    def act():
        made["supplier"] = purchasing.create_supplier(_supplier_data(form), staff_actor(current_user))

    if not commit_or_refuse(act, _("Saved."), form=form):
        return render_template("portal/purchasing/suppliers.html", suppliers=purchasing.list_suppliers(),
                               form=form), 422
    return redirect(url_for("purchasing.supplier", supplier_id=made["supplier"].id), 303)


def _supplier_page(supplier, form=None, sku_form=None, status: int = 200):
    if form is None:
        form = SupplierForm(obj=supplier)
    return render_template("portal/purchasing/supplier.html", supplier=supplier, form=form,
                           sku_form=sku_form or SupplierSkuForm()), status


@bp.get("/suppliers/<int:supplier_id>")
@requires("purchasing", "view")
def supplier(supplier_id: int):
    return _supplier_page(purchasing.get_supplier(supplier_id))


@bp.post("/suppliers/<int:supplier_id>")
@requires("purchasing", "edit")
def update_supplier(supplier_id: int):
    found = purchasing.get_supplier(supplier_id)
    form = SupplierForm()
    form.code.data = found.code  # the code names the supplier: it is not changed here
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _supplier_page(found, form=form, status=422)
    if not commit_or_refuse(lambda: purchasing.update_supplier(found, _supplier_data(form),
                                                               staff_actor(current_user)), _("Saved."), form=form):
        return _supplier_page(db.session.get(type(found), supplier_id), form=form, status=422)
    return redirect(url_for("purchasing.supplier", supplier_id=supplier_id), 303)


@bp.post("/suppliers/<int:supplier_id>/skus")
@requires("purchasing", "edit")
def save_sku(supplier_id: int):
    found = purchasing.get_supplier(supplier_id)
    form = SupplierSkuForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _supplier_page(found, sku_form=form, status=422)
    data = {"sku": form.sku.data, "supplier_code": form.supplier_code.data,
            "lead_time_days": form.lead_time_days.data, "safety_units": form.safety_units.data,
            "moq": form.moq.data, "pack_size": form.pack_size.data}
    if not commit_or_refuse(lambda: purchasing.save_supplier_sku(found, data, staff_actor(current_user)),
                            _("Saved."), form=form):
        return _supplier_page(db.session.get(type(found), supplier_id), sku_form=form, status=422)
    return redirect(url_for("purchasing.supplier", supplier_id=supplier_id), 303)


@bp.post("/suppliers/<int:supplier_id>/skus/<path:sku>/remove")
@requires("purchasing", "edit")
def remove_sku(supplier_id: int, sku: str):
    found = purchasing.get_supplier(supplier_id)
    commit_or_refuse(lambda: purchasing.remove_supplier_sku(found, sku, staff_actor(current_user)), _("Removed."))
    return redirect(url_for("purchasing.supplier", supplier_id=supplier_id), 303)
