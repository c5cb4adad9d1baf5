"""Fulfilment: the board of open shipments, waves (plan, release with progress, pick lists), the scan log, the
carrier scorecard, near-expiry lots and printable parcel labels. Every change goes through one service call;
the views only read."""
import functools
import logging
from datetime import date, datetime, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import and_, bindparam, case, func, or_, select, union_all
from sqlalchemy.orm import joinedload, load_only

from portal.access import requires
from portal.dashboard import bar_chart as chart_bars
from portal.forms import AlarmAssignForm, AlarmMuteForm, CarrierScoreRulesForm, ConfirmForm, PlanWavesForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared import dispatch, history, labels, paging, snapshots
from shared.extensions import db
from shared.models import CarrierAttempt, Device, FulfilmentAlarm, Order, PickTask, ScanEvent, Shipment, Warehouse, Wave
from shared.security.masking import may_reveal, order_contact
from shared.security.permissions import can
from shared.services import platform_privacy
from shared.services import alarms
from shared.services import carrier_scores
from shared.services import lots as lot_service
from shared.services import waves as wave_service
from shared.services.errors import ServiceError
from shared.timekeeping import as_utc, utc_now
from shared.web import staff_actor

bp = Blueprint("fulfilment", __name__, url_prefix="/fulfilment")
log = logging.getLogger("orderloom.portal.fulfilment")

STEPS = ("allocated", "waved", "picking", "picked", "packed", "shipped")  # open shipments, in order
IN_WAREHOUSE = STEPS[:-1]  # what the board lists unless asked otherwise: shipped parcels wait on the carrier
NOT_PACKED = STEPS[:4]
NOT_PACKED_WITHIN = timedelta(hours=4)  # counted from allocation
BOARD_PAGE = 50
WAVES_PAGE = 50
SCANS_PAGE = 100
ALARMS_SHOWN = 20
SCORECARD_DAYS = 30
EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 730

for _name, _table in (("shipment_status_label", labels.SHIPMENT_STATUS), ("wave_status_label", labels.WAVE_STATUS),
                      ("pick_task_label", labels.PICK_TASK_STATUS), ("scan_kind_label", labels.SCAN_KIND),
                      ("carrier_label", labels.CARRIER), ("carrier_outcome_label", labels.CARRIER_OUTCOME),
                      ("fulfilment_alarm_label", labels.FULFILMENT_ALARM),
                      ("tracking_step_label", labels.TRACKING_STEP), ("tracking_flag_label", labels.TRACKING_FLAG)):
    bp.add_app_template_filter(lambda code, table=_table: labels.label(table, code), _name)


@bp.app_template_filter("tracking_flags")
def _tracking_flags(value: str | None) -> list[str]:
    """A shipment's comma-separated exception flags as a list."""
    return [flag.strip() for flag in (value or "").split(",") if flag.strip()]


def _warehouses() -> list[Warehouse]:
    return db.session.execute(select(Warehouse).order_by(Warehouse.code)).scalars().all()


def _chosen(warehouses: list[Warehouse], code: str | None) -> Warehouse | None:
    """The warehouse named in the query string, if it is one of ours (anything else means all)."""
    code = (code or "").strip()
    return next((w for w in warehouses if w.code == code), None)


def _overdue(now, unpacked_before=None):
    """Past its ship-by time while still in the warehouse, or not packed 4 hours after allocation.

    `now` is a moment or a bind parameter; with a bind parameter, `unpacked_before` is one too (now - 4 hours)."""
    if unpacked_before is None:
        unpacked_before = now - NOT_PACKED_WITHIN
    return or_(and_(Shipment.status.in_(IN_WAREHOUSE), Shipment.ship_by < now),
               and_(Shipment.status.in_(NOT_PACKED), Shipment.allocated_at < unpacked_before))


def _is_overdue(shipment: Shipment, now: datetime) -> bool:
    ship_by = as_utc(shipment.ship_by)
    return (shipment.status in IN_WAREHOUSE and ship_by is not None and ship_by < now) or (
        shipment.status in NOT_PACKED and as_utc(shipment.allocated_at) < now - NOT_PACKED_WITHIN)


# --- the board ---------------------------------------------------------------------------------------------

def _matrix(warehouses: list[Warehouse], now: datetime) -> dict:
    """Open shipments per warehouse and step, and how many of them are overdue: one grouped query, one pass.

    It reads only the partial index of open shipments (status, warehouse_id, allocated_at, id, ship_by included;
    migration 0007), never the table; the overdue count is a FILTER of the same scan (two queries scanned the
    index twice: 48 ms at 1,000,000 orders). Plain data only: the board serves it from a snapshot
    (`_board_counts`)."""
    counts, late = {}, {}
    for status, warehouse_id, count, overdue in db.session.execute(
            select(Shipment.status, Shipment.warehouse_id, func.count(),
                   func.count().filter(and_(Shipment.status.in_(IN_WAREHOUSE), _overdue(now))))
            .where(Shipment.status.in_(STEPS)).group_by(Shipment.status, Shipment.warehouse_id)).all():
        counts[(status, warehouse_id)] = count
        if overdue:
            late[(status, warehouse_id)] = overdue
    table = []
    for warehouse in warehouses:
        row = [{"step": step, "count": counts.get((step, warehouse.id), 0),
                "overdue": late.get((step, warehouse.id), 0)} for step in STEPS]
        if any(cell["count"] for cell in row):
            table.append({"warehouse": {"code": warehouse.code, "name": warehouse.name}, "cells": row,
                          "total": sum(cell["count"] for cell in row)})
    totals = {step: sum(count for (status, _wid), count in counts.items() if status == step) for step in STEPS}
    return {"rows": table, "totals": totals, "overdue": sum(late.values()),
            "in_warehouse": sum(totals[step] for step in IN_WAREHOUSE)}


def _board_counts(warehouses: list[Warehouse], now: datetime):
    """The board's counts from a snapshot at most BOARD_COUNTS_MAX_AGE seconds old (shared.snapshots)."""
    return snapshots.fresh("fulfilment_board_matrix", current_app.config["BOARD_COUNTS_MAX_AGE"],
                           lambda: _matrix(warehouses, now))


# What a board row shows; the rest of a shipment (its label HTML, line ids, tracking) is not read.
BOARD_COLUMNS = (Shipment.id, Shipment.order_id, Shipment.warehouse_id, Shipment.status, Shipment.priority,
                 Shipment.ship_by, Shipment.carrier_code, Shipment.waybill_no, Shipment.wave_id,
                 Shipment.allocated_at, Shipment.stalled_at, Shipment.tracking_flags)


@functools.lru_cache(maxsize=128)
def _oldest_first_ids(steps: tuple, warehouse_ids: tuple, overdue_only: bool, with_cursor: bool):
    """The statement of a page of open shipment ids, oldest allocation first, built once per shape of request and
    run with bind parameters (`now`, `unpacked_before`, the cursor's): building its pieces cost more Python than
    the database spends running it.

    Each (step, warehouse) pair is read in order from the partial index of open shipments, at most a page from
    each, and the pieces merged: the cost follows the page size, not the number of open shipments (100,000 open:
    under 1 ms against about 50 ms for sorting them all)."""
    after = paging.after_bound(Shipment.allocated_at, Shipment.id, bound_column=True) if with_cursor else None
    overdue = _overdue(bindparam("now", type_=Shipment.ship_by.type),
                       bindparam("unpacked_before", type_=Shipment.allocated_at.type)) if overdue_only else None
    pieces = []
    for step in steps:
        for warehouse_id in warehouse_ids:
            piece = select(Shipment.id, Shipment.allocated_at).where(Shipment.status == step,
                                                                     Shipment.warehouse_id == warehouse_id)
            if overdue is not None:
                piece = piece.where(overdue)
            if after is not None:
                piece = piece.where(after)
            piece = piece.order_by(Shipment.allocated_at, Shipment.id).limit(BOARD_PAGE + 1).subquery()
            pieces.append(select(piece.c.id, piece.c.allocated_at))
    merged = union_all(*pieces).subquery()
    return select(merged.c.id).order_by(merged.c.allocated_at, merged.c.id).limit(BOARD_PAGE + 1)


def _oldest_first(steps: tuple, warehouses: list[Warehouse], cursor: str | None, now: datetime,
                  overdue_only: bool) -> list[Shipment]:
    """One page (plus one row, to tell whether there is a next) of open shipments, oldest allocation first.

    The ids come from `_oldest_first_ids`; the rows then come in one query with their order, channel and
    warehouse (joined loads): no query per row."""
    params = paging.cursor_params(cursor, Shipment.allocated_at) if cursor else {}
    if not steps or not warehouses:
        return []
    if overdue_only:
        params.update(now=now, unpacked_before=now - NOT_PACKED_WITHIN)
    statement = _oldest_first_ids(tuple(steps), tuple(w.id for w in warehouses), overdue_only, bool(cursor))
    ids = db.session.execute(statement, params).scalars().all()
    if not ids:
        return []
    # Only the order's number and channel: the board never shows (nor decrypts) the receiver's personal data.
    return db.session.execute(select(Shipment).options(load_only(*BOARD_COLUMNS),
                                                       joinedload(Shipment.order).load_only(Order.order_no,
                                                                                            Order.channel_id))
                              .where(Shipment.id.in_(ids))
                              .order_by(Shipment.allocated_at, Shipment.id)).unique().scalars().all()


@bp.get("/")
@requires("fulfilment", "view")
def board():
    now = utc_now()
    warehouses = _warehouses()
    warehouse = _chosen(warehouses, request.args.get("warehouse"))
    step = request.args.get("step") or ""
    step = step if step in STEPS or step == "all" else ""
    overdue_only = request.args.get("overdue") == "1"
    steps = (step,) if step in STEPS else STEPS if step == "all" else IN_WAREHOUSE
    found = _oldest_first(steps, [warehouse] if warehouse is not None else warehouses, request.args.get("cursor"),
                          now, overdue_only)
    page, next_cursor = paging.next_cursor(found, BOARD_PAGE, lambda s: (s.allocated_at, s.id))
    rows = [{"shipment": s, "overdue": _is_overdue(s, now),
             "waited_hours": int((now - as_utc(s.allocated_at)).total_seconds() // 3600)} for s in page]
    context = {"rows": rows, "next_cursor": next_cursor, "warehouses": warehouses, "warehouse": warehouse,
               "step": step, "overdue_only": overdue_only, "steps": STEPS, "args": request.args,
               # Once per page rather than per row (a gettext or a URL build costs ~10 µs; 50 rows).
               "step_names": labels.translated(labels.SHIPMENT_STATUS),
               "carrier_names": labels.translated(labels.CARRIER),
               "order_prefix": url_for("orders.index"), "wave_prefix": url_for("fulfilment.waves") + "/"}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "shipment-table":
        return render_template("portal/fulfilment/_board_table.html", **context)
    counts = _board_counts(warehouses, now)
    matrix = counts.value
    open_alarms = alarms.open_alarms(ALARMS_SHOWN)
    order_ids = {a.order_id for a in open_alarms if a.order_id}
    order_nos = dict(db.session.execute(select(Order.id, Order.order_no).where(Order.id.in_(order_ids))).all()) \
        if order_ids else {}
    bars = chart_bars([(labels.label(labels.SHIPMENT_STATUS, s), matrix["totals"][s]) for s in STEPS])
    return render_template("portal/fulfilment/board.html", matrix=matrix, alarms=open_alarms, order_nos=order_nos,
                           **_alarm_forms(), bars=bars, counts_age=int(counts.age()), counts_taken_at=counts.taken_at,
                           counts_max_age=current_app.config["BOARD_COUNTS_MAX_AGE"], **context)


def mute_form(kinds: tuple, names: dict) -> AlarmMuteForm:
    form = AlarmMuteForm()
    form.kind.choices = [(kind, labels.label(names, kind)) for kind in kinds]
    return form


def alarm_context(resource: str, kinds: tuple, names: dict) -> dict:
    """What a page needs to show alarms' handling, with the forms for roles that may handle them (`resource`:
    edit): the fulfilment board (fulfilment alarms) and the channels page (sync alerts)."""
    forms = None
    if can(current_user.role, resource, "edit"):
        forms = {"confirm": ConfirmForm(), "assign": AlarmAssignForm(), "mute": mute_form(kinds, names)}
    return {"alarm_forms": forms, "mutes": [m for m in alarms.active_mutes() if m.kind in kinds],
            "kind_names": labels.translated(names)}


def _alarm_forms() -> dict:
    return alarm_context("fulfilment", alarms.MUTABLE_KINDS, labels.FULFILMENT_ALARM)


@bp.post("/alarms/<int:alarm_id>/acknowledge")
@requires("fulfilment", "edit")
def acknowledge_alarm(alarm_id: int):
    """Seen and being handled: who and when, shown on the board (audited)."""
    alarm = _alarm_or_404(alarm_id)
    commit_or_refuse(lambda: alarms.acknowledge(alarm, staff_actor(current_user)), _("The alarm was acknowledged."))
    return redirect(url_for("fulfilment.board") + "#alarms", 303)


@bp.post("/alarms/<int:alarm_id>/assign")
@requires("fulfilment", "edit")
def assign_alarm(alarm_id: int):
    alarm = _alarm_or_404(alarm_id)
    form = AlarmAssignForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: alarms.assign(alarm, form.assignee.data, staff_actor(current_user)),
                         _("The alarm was assigned."))
    return redirect(url_for("fulfilment.board") + "#alarms", 303)


@bp.post("/alarms/mutes")
@requires("fulfilment", "edit")
def mute_alarms():
    """No new alarm of a kind (for one subject, when given) for some hours; audited with the reason."""
    form = mute_form(alarms.MUTABLE_KINDS, labels.FULFILMENT_ALARM)
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: alarms.mute(form.kind.data, form.subject.data, form.hours.data, form.reason.data,
                                             staff_actor(current_user)), _("The alarms were muted."))
    return redirect(url_for("fulfilment.board") + "#alarms", 303)


def _alarm_or_404(alarm_id: int) -> FulfilmentAlarm:
    try:
        return alarms.get_alarm(alarm_id)
    except ServiceError:
        abort(404)


# --- waves -------------------------------------------------------------------------------------------------

@bp.get("/waves")
@requires("fulfilment", "view")
def waves():
    warehouses = _warehouses()
    warehouse = _chosen(warehouses, request.args.get("warehouse"))
    waiting = dict(db.session.execute(select(Shipment.warehouse_id, func.count()).where(Shipment.status == "allocated")
                                      .group_by(Shipment.warehouse_id)).all())
    query = select(Wave).order_by(Wave.id.desc())
    if warehouse is not None:
        query = query.where(Wave.warehouse_id == warehouse.id)
    before = request.args.get("before") or ""
    if before.isdigit():
        query = query.where(Wave.id < int(before))
    rows = db.session.execute(query.limit(WAVES_PAGE)).scalars().all()
    return render_template("portal/fulfilment/waves.html", waves=rows, warehouses=warehouses, warehouse=warehouse,
                           waiting=waiting, plan_form=PlanWavesForm(formdata=None), confirm_form=ConfirmForm(),
                           next_before=rows[-1].id if len(rows) == WAVES_PAGE else None)


@bp.post("/waves/plan")
@requires("fulfilment", "edit")
def plan():
    form = PlanWavesForm()
    code = (form.warehouse.data or "").strip()
    target = url_for("fulfilment.waves", warehouse=code or None)
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(target, 303)
    try:
        planned = wave_service.plan_waves(code, staff_actor(current_user))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("No waves planned: %(message)s", message=refused.message), "error")
        return redirect(target, 303)
    if planned:
        flash(_("Waves planned for %(warehouse)s: %(waves)s, with %(orders)s orders.", warehouse=code,
                waves=len(planned), orders=sum(w.order_count for w in planned)), "success")
    else:
        flash(_("Nothing to plan: no allocated orders are waiting in %(warehouse)s.", warehouse=code), "info")
    return redirect(target, 303)


@bp.post("/waves/<int:wave_id>/release")
@requires("fulfilment", "edit")
def release(wave_id: int):
    """Mark the wave releasing (audited), commit, then start the job that builds its pick tasks in chunks."""
    # Only the warehouse code is read here: the service locks and checks the wave row itself.
    code = db.session.execute(select(Warehouse.code).join(Wave, Wave.warehouse_id == Warehouse.id)
                              .where(Wave.id == wave_id)).scalar_one_or_none()
    if code is None:
        abort(404)
    target = url_for("fulfilment.waves", warehouse=code)
    if ConfirmForm().validate_on_submit() and commit_or_refuse(
            lambda: wave_service.start_release(wave_id, staff_actor(current_user)),
            _("Wave %(id)s is being released to the floor.", id=wave_id), failure=_("Not released: %(message)s")):
        try:
            dispatch.send("jobs.fulfilment.release_wave", wave_id, queue="default")
        except Exception as error:  # inline (no Redis) the job runs here; its failure is shown, not a 500
            db.session.rollback()
            log.warning("job=release_wave wave=%s failed inline: %s", wave_id, error)
            flash(_("The release job failed: %(message)s", message=str(error)[:300]), "error")
    return redirect(target, 303)


@bp.get("/waves/<int:wave_id>/progress")
@requires("fulfilment", "view")
def wave_progress(wave_id: int):
    """How far the wave's release has got; htmx asks again every 2 s while it is releasing."""
    return render_template("portal/fulfilment/_wave_progress.html", wave=db.get_or_404(Wave, wave_id))


def _pick_list(wave_id: int) -> tuple[Wave, list[PickTask], dict[int, str]]:
    wave = db.get_or_404(Wave, wave_id)
    tasks = wave_service.pick_list(wave.id)
    order_nos = dict(db.session.execute(
        select(Shipment.id, Order.order_no).join(Order, Order.id == Shipment.order_id)
        .where(Shipment.id.in_(select(PickTask.shipment_id).where(PickTask.wave_id == wave.id)))).all())
    return wave, tasks, order_nos


@bp.get("/waves/<int:wave_id>")
@requires("fulfilment", "view")
def wave(wave_id: int):
    wave, tasks, order_nos = _pick_list(wave_id)
    return render_template("portal/fulfilment/wave.html", wave=wave, tasks=tasks, order_nos=order_nos,
                           confirm_form=ConfirmForm())


@bp.get("/waves/<int:wave_id>/print")
@requires("fulfilment", "view")
def wave_print(wave_id: int):
    """The pick list as a plain page for the printer: no navigation, one row per task in walking order."""
    wave, tasks, order_nos = _pick_list(wave_id)
    return render_template("portal/fulfilment/wave_print.html", wave=wave, tasks=tasks, order_nos=order_nos,
                           printed_at=utc_now())


# --- scans -------------------------------------------------------------------------------------------------

@bp.get("/scans")
@requires("fulfilment", "view")
def scans():
    devices = db.session.execute(select(Device).order_by(Device.name)).scalars().all()
    filters = {"result": request.args.get("result") if request.args.get("result") in ("accepted", "refused") else "",
               "kind": request.args.get("kind") if request.args.get("kind") in labels.SCAN_KIND else "",
               "device": next((d.id for d in devices if str(d.id) == request.args.get("device")), None)}
    query = (select(ScanEvent, Order.order_no)
             .outerjoin(Shipment, Shipment.id == ScanEvent.shipment_id)
             .outerjoin(Order, Order.id == Shipment.order_id))
    if filters["result"]:
        query = query.where(ScanEvent.accepted.is_(filters["result"] == "accepted"))
    if filters["kind"]:
        query = query.where(ScanEvent.kind == filters["kind"])
    if filters["device"] is not None:
        query = query.where(ScanEvent.device_id == filters["device"])
    before = paging.after(request.args.get("cursor"), ScanEvent.occurred_at, ScanEvent.id, descending=True,
                          bound_column=True)
    if before is not None:
        query = query.where(before)
    found = db.session.execute(paging.ordered(query, ScanEvent.occurred_at, ScanEvent.id, descending=True)
                               .limit(SCANS_PAGE + 1)).all()
    page, next_cursor = paging.next_cursor(found, SCANS_PAGE, lambda row: (row[0].occurred_at, row[0].id))
    # What was scanned and what the handheld was answered, in the reader's words (shared.history).
    rows = [(scan, order_no, history.scanned_words(scan.payload), history.scan_result_words(scan))
            for scan, order_no in page]
    return render_template("portal/fulfilment/scans.html", rows=rows, devices=devices, filters=filters,
                           next_cursor=next_cursor, args=request.args)


# --- carriers ----------------------------------------------------------------------------------------------

@bp.get("/carriers")
@requires("fulfilment", "view")
def carriers():
    now = utc_now()
    since = now - timedelta(days=SCORECARD_DAYS)
    # The one on-time and stall rule, shared with the monthly scores (shared.services.carrier_scores).
    delivered, judged, on_time, stalled = carrier_scores.parcel_measures(now)
    shipped = db.session.execute(
        select(Shipment.carrier_code, func.count(), func.sum(case((delivered, 1), else_=0)),
               func.sum(case((on_time, 1), else_=0)), func.sum(case((judged, 1), else_=0)),
               func.sum(case((stalled, 1), else_=0)))
        .where(Shipment.shipped_at >= since, Shipment.carrier_code.is_not(None))
        .group_by(Shipment.carrier_code)).all()
    attempts: dict[tuple[str, str], int] = {
        (code, outcome): count for code, outcome, count in db.session.execute(
            select(CarrierAttempt.carrier_code, CarrierAttempt.outcome, func.count())
            .where(CarrierAttempt.occurred_at >= since, CarrierAttempt.outcome.in_(("refused", "unavailable")))
            .group_by(CarrierAttempt.carrier_code, CarrierAttempt.outcome)).all()}
    rows = {}
    for code, count, delivered_count, on_time_count, judged_count, stalled_count in shipped:
        rows[code] = {"code": code, "shipped": count, "delivered": int(delivered_count or 0),
                      "on_time": int(on_time_count or 0), "judged": int(judged_count or 0),
                      "stalled": int(stalled_count or 0)}
    for code, _outcome in attempts:
        rows.setdefault(code, {"code": code, "shipped": 0, "delivered": 0, "on_time": 0, "judged": 0, "stalled": 0})
    for row in rows.values():
        row["refused"] = attempts.get((row["code"], "refused"), 0)
        row["unavailable"] = attempts.get((row["code"], "unavailable"), 0)
        row["on_time_rate"] = row["on_time"] / row["judged"] if row["judged"] else None
        row["stall_rate"] = row["stalled"] / row["shipped"] if row["shipped"] else None
    table = sorted(rows.values(), key=lambda r: (-r["shipped"], r["code"]))
    names = {row["code"]: labels.label(labels.CARRIER, row["code"]) for row in table}
    on_time_bars = [{"label": names[r["code"]], "count": f"{r['on_time_rate'] * 100:.1f} %",
                     "width": round(100 * r["on_time_rate"], 1)} for r in table if r["on_time_rate"] is not None]
    month, scores = carrier_scores.scorecard(_month_asked())
    order = request.args.get("sort", "score")
    scores.sort(key=SCORE_SORTS.get(order, SCORE_SORTS["score"]))
    rules = carrier_scores.rules()
    form = CarrierScoreRulesForm(formdata=None, data={name: carrier_scores.plain(getattr(rules, name))
                                                      for name in carrier_scores.RULE_FIELDS})
    return render_template("portal/fulfilment/carriers.html", rows=table, days=SCORECARD_DAYS,
                           shipped_bars=chart_bars([(names[r["code"]], r["shipped"]) for r in table]),
                           on_time_bars=on_time_bars, month=month, scores=scores, sort=order, rules=rules,
                           rules_form=form, may_edit_rules=can(current_user.role, "fulfilment", "approve"))


# Sorts of the monthly scores: lowest score first by default (the carriers to look at), de-weighted first, by code.
SCORE_SORTS = {"score": lambda row: (row["score"], row["code"]), "-score": lambda row: (-row["score"], row["code"]),
               "parcels": lambda row: (-row["parcels"], row["code"]), "code": lambda row: row["code"],
               "deweighted": lambda row: (not row["deweighted"], row["score"], row["code"])}


def _month_asked() -> date | None:
    """The month named in the query string (YYYY-MM), or None for the latest scored month."""
    try:
        return datetime.strptime(request.args.get("month", ""), "%Y-%m").date()
    except ValueError:
        return None


@bp.post("/carriers/rules")
@requires("fulfilment", "approve")
def carrier_rules():
    form = CarrierScoreRulesForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        values = {name: getattr(form, name).data for name in carrier_scores.RULE_FIELDS}
        commit_or_refuse(lambda: carrier_scores.set_rules(values, staff_actor(current_user)), _("Scoring rules saved"),
                         form=form)
    return redirect(url_for("fulfilment.carriers"))


# --- near expiry -------------------------------------------------------------------------------------------

@bp.get("/expiry")
@requires("fulfilment", "view")
def expiry():
    warehouses = _warehouses()
    warehouse = _chosen(warehouses, request.args.get("warehouse"))
    days = request.args.get("days", type=int)
    days = EXPIRY_DAYS if days is None or not 1 <= days <= MAX_EXPIRY_DAYS else days
    lots = lot_service.near_expiry(warehouse.code if warehouse else None, within_days=days)
    return render_template("portal/fulfilment/expiry.html", lots=lots, warehouses=warehouses, warehouse=warehouse,
                           by_id={w.id: w for w in warehouses}, days=days, max_days=MAX_EXPIRY_DAYS,
                           today=date.today())


# --- labels ------------------------------------------------------------------------------------------------

@bp.get("/shipments/<int:shipment_id>/label")
@requires("fulfilment", "edit", also=may_reveal)
def label(shipment_id: int):
    """A printable parcel label. It shows the receiver in full, so every view goes to the access log; the
    carrier's own label HTML is shown only inside a sandboxed frame, never as part of this page."""
    shipment = db.get_or_404(Shipment, shipment_id)
    order = shipment.order
    contact = None
    if shipment.waybill_no:
        try:
            contact = platform_privacy.reveal_contact(order, staff_actor(current_user), "portal", "print_label")
        except platform_privacy.DecryptFailed as failed:
            contact = dict(order_contact(order, current_user.role), error=failed.message)
        db.session.commit()
    return render_template("portal/fulfilment/label.html", shipment=shipment, order=order, contact=contact)
