"""The managers' dashboards: the KPI board with its targets, and the state cube of orders with drill-down."""
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.access import requires
from portal.forms import KpiTargetForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.labels import CARRIER, EXCEPTION_CATEGORY, STATUS, label
from shared.order_search import NONE
from shared.security.permissions import can
from shared.services import kpis, state_cube
from shared.services.errors import ServiceError
from shared.timekeeping import local_date, utc_now
from shared.web import staff_actor

bp = Blueprint("dashboards", __name__, url_prefix="/dashboards")
KPI_TEXT = {
    "sync_success": (_l("Sync success"), _l("Channel payloads finished without needing review or dead-lettering, "
                                            "of those finished")),
    "confirm_to_ship": (_l("Confirm to shipped"), _l("Mean hours from an order's confirmation to its shipping, "
                                                     "for the orders shipped")),
    "stock_accuracy": (_l("Stock accuracy"), _l("Stock-take lines counted without variance, of the lines counted "
                                                "(submitted or approved counts)")),
    "tracking_coverage": (_l("Tracking coverage"), _l("Shipped orders whose parcel has tracking events, of the "
                                                      "orders shipped")),
}


def figure(kpi, value) -> str:
    """A KPI value as it reads: 99.12% or 3.50 h; no data as a dash with words."""
    if value is None:
        return _("no data")
    return _("%(value)s h", value=value) if kpi.unit == "hours" else _("%(value)s%%", value=value)


def target_text(kpi, target) -> str:
    shown = figure(kpi, target)
    return _("at least %(target)s", target=shown) if kpi.better == "at_least" else _("at most %(target)s",
                                                                                      target=shown)


def _merchant_zone() -> str:
    return current_app.config["MERCHANT_TIMEZONE"]


def trend_bars(row: dict) -> dict:
    """A KPI's buckets as bars of an inline SVG chart on a fixed scale (0-100 for a percentage; hours up to the
    larger of the peak and the target), with the target as a line; a bucket without data is a stub."""
    values = [float(point["value"]) for point in row["trend"] if point["value"] is not None]
    target = float(row["target"]) if row["target"] is not None else None
    scale = 100.0 if row["kpi"].unit == "percent" else (max(values + [target or 0]) * 1.1 or 1.0)
    bars = [{**point, "height": 2 if point["value"] is None else round(max(2.0, 60 * float(point["value"]) / scale), 1)}
            for point in row["trend"]]
    return {"bars": bars, "target_y": None if target is None else round(62 - 60 * target / scale, 1)}


@bp.get("/kpis")
@requires("kpi", "view")
def kpi_board():
    grain = request.args.get("grain", "week")
    error, board = None, None
    try:
        board = kpis.board(grain, request.args.get("periods"), now=utc_now(), zone=_merchant_zone())
    except ServiceError as refused:
        error = refused
    forms = {code: KpiTargetForm(prefix=code, formdata=None) for code in kpis.KPIS}
    return render_template("portal/dashboards/kpis.html", board=board, error=error, grain=grain,
                           periods=request.args.get("periods", ""), forms=forms, trend_bars=trend_bars,
                           kpi_text=KPI_TEXT, figure=figure, target_text=target_text,
                           may_edit=can(current_user.role, "kpi", "edit")), 422 if error else 200


@bp.post("/kpis/targets/<code>")
@requires("kpi", "edit")
def save_target(code):
    kpis.get_target(code)  # unknown KPI: 404
    form = KpiTargetForm(prefix=code)
    if form.validate_on_submit():
        commit_or_refuse(lambda: kpis.set_target(code, form.target.data, staff_actor(current_user)),
                         _("KPI target saved."))
    else:
        flash_form_errors(form)
    return redirect(url_for("dashboards.kpi_board"), 303)


def value_label(dimension: str, value) -> str:
    """How a cube value reads: a status, category or carrier by its name; the missing value as 'none'."""
    if value is None or value == NONE:
        return _("none")
    table = {"status": STATUS, "exception_category": EXCEPTION_CATEGORY, "carrier": CARRIER}.get(dimension)
    return label(table, value) if table else str(value)


def dimension_label(name: str) -> str:
    return {"hour": _("Hour"), "day": _("Day"), "week": _("Week (from Monday)"), "warehouse": _("Warehouse"),
            "city": _("City"), "carrier": _("Carrier"), "team": _("Team"), "status": _("Status"),
            "exception_category": _("Exception category")}[name]


@bp.get("/cube")
@requires("kpi", "view")
def cube():
    zone = _merchant_zone()
    error, result = None, None
    try:
        cube_request = state_cube.parse_request(request.args, zone, local_date(utc_now(), zone))
        result = state_cube.compute(cube_request)
    except ServiceError as refused:
        error, cube_request = refused, None

    def cell_link(row, column):
        values = {cube_request.rows: row, cube_request.columns: column}
        if cube_request.facet_value is not None:
            values[cube_request.facet] = None if cube_request.facet_value == NONE else cube_request.facet_value
        return url_for("orders.index", **state_cube.drill_down(cube_request, values))

    def facet_link(value=None, every=False):
        args = request.args.to_dict()
        args.pop("facet_value", None)
        if not every:
            args["facet_value"] = NONE if value is None else value
        return url_for("dashboards.cube", **args)

    context = {"cube": result, "error": error, "form": request.args, "dimensions": list(state_cube.DIMENSIONS),
               "dimension_label": dimension_label, "value_label": value_label, "cell_link": cell_link,
               "facet_link": facet_link, "zone": zone,
               "chosen": {key: request.args.get(key) or default
                          for key, default in zip(("rows", "columns", "facet"), state_cube.DEFAULT)}}
    if request.headers.get("HX-Request"):
        # htmx 2 swaps no 4xx answer: the refusal goes into the page's cube area with a 200 (the page itself: 422).
        return render_template("portal/dashboards/_cube.html", **context)
    return render_template("portal/dashboards/cube.html", **context), 422 if error else 200
