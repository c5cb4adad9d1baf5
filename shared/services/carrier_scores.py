"""Carrier credibility: a monthly score (0–100) per carrier and route, from the on-time rate, the stall rate,
signed-photo compliance where the carrier reports it, and how fast complaints about its parcels were settled; the
weights and limits are one row of data (`CarrierScoreRules`, edited by `set_rules`, audited).

- `compute_month(month)` rewrites that month's rows in sets: one grouped query per grouping (per route, then
  carrier-wide, the groupings and the route's ends shared with shared.services.transit_estimates), whatever the
  number of parcels; a month in which a carrier shipped nothing gives it no row (no score, not 0 or 100).
- `apply_standings(month)` de-weights every carrier whose carrier-wide score is under the line (85 by default) and
  restores one that is back over it, each change audited with its reason (`carrier.deweight`, `carrier.restore`).
- `ranking()` is what allocation and the waybill request ask: the warehouse's carriers reordered, de-weighted ones
  last, then higher scores first (a route with fewer than `min_route_parcels` parcels uses the carrier-wide score;
  a carrier without any score counts as standing exactly on the line); ties keep the warehouse's own order.
- `over_load(loads, rules)`: carriers whose load, as the carrier API reports it, is at or over the threshold; the
  pack scan skips them for the next carrier (shared.services.scans), logged and audited.
"""
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Interval, and_, case, delete, func, literal, or_, select

from shared.actors import Actor
from shared.extensions import db
from shared.models import (CarrierScore, CarrierScoreRules, CarrierStanding, ExceptionCase, FulfilmentAlarm, Order,
                           Shipment, Warehouse)
from shared.models.parcels import ANY
from shared.services import audit
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.carrier_scores")

# What a person reads when this module refuses: message codes, said in the reader's language (say).
WEIGHTS_NOT_ONE = N_("The four weights must add up to 1 (they add up to %(total)s)")
WEIGHT_RANGE = N_("%(field)s must be a number from 0 to 1")
WHOLE_RANGE = N_("%(field)s must be a whole number from %(low)s to %(high)s")
SCORE_RANGE = N_("%(field)s must be a number from 0 to 100")
DEWEIGHTED_BECAUSE = N_("Score %(score)s in %(month)s is under %(line)s")
RESTORED_BECAUSE = N_("Score %(score)s in %(month)s is back at or over %(line)s")

# The one on-time rule (the scorecard's 30-day view uses it too): delivered within 72 hours of shipping; a parcel is
# judged once it is delivered or its 72 hours are over.
ON_TIME_WITHIN = timedelta(hours=72)
# Exceptions that are complaints about a parcel's delivery (shared.services.exceptions.KINDS); the stall itself is
# the stall rate's.
COMPLAINT_KINDS = ("parcel_not_received", "parcel_returned")
WEIGHTS = ("on_time_weight", "stall_weight", "photo_weight", "response_weight")
DEFAULT_RULES = {"on_time_weight": Decimal("0.4"), "stall_weight": Decimal("0.3"), "photo_weight": Decimal("0.1"),
                 "response_weight": Decimal("0.2"), "min_route_parcels": 30, "deweight_below": Decimal("85"),
                 "load_threshold": Decimal("0.9"), "response_target_hours": 24}
RULE_FIELDS = tuple(DEFAULT_RULES)
HUNDREDTH = Decimal("0.01")


# ------------------------------------------------------------------------------------------------ the rules

def rules() -> CarrierScoreRules:
    """The scoring rules (the migration writes the row; a database without it gets the defaults, unsaved)."""
    row = db.session.get(CarrierScoreRules, 1)
    return row if row is not None else CarrierScoreRules(id=1, updated_by="default", **DEFAULT_RULES)


def _decimal(value, field: str, low: Decimal, high: Decimal, message: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite() or not low <= number <= high:
        raise ValidationFailed(say(message, field=field), field=field, code="invalid_rule")
    return number


def _whole(value, field: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise ValidationFailed(say(WHOLE_RANGE, field=field, low=low, high=high), field=field, code="invalid_rule")
    return number


def set_rules(values: dict, actor: Actor) -> CarrierScoreRules:
    """Change the scoring rules; every field is checked and the weights must add up to exactly 1, else nothing is
    saved (ValidationFailed, code `weights_not_one` for the sum)."""
    current = rules()
    given = {name: values.get(name, getattr(current, name)) for name in RULE_FIELDS}
    clean = {name: _decimal(given[name], name, Decimal(0), Decimal(1), WEIGHT_RANGE) for name in WEIGHTS}
    total = sum(clean.values())
    if total != 1:
        raise ValidationFailed(say(WEIGHTS_NOT_ONE, total=f"{total.normalize():f}"), field="weights",
                               code="weights_not_one")
    clean["min_route_parcels"] = _whole(given["min_route_parcels"], "min_route_parcels", 1, 100000)
    clean["response_target_hours"] = _whole(given["response_target_hours"], "response_target_hours", 1, 24 * 30)
    clean["deweight_below"] = _decimal(given["deweight_below"], "deweight_below", Decimal(0), Decimal(100),
                                       SCORE_RANGE)
    clean["load_threshold"] = _decimal(given["load_threshold"], "load_threshold", Decimal(0), Decimal(1),
                                       WEIGHT_RANGE)
    before = {name: plain(getattr(current, name)) for name in RULE_FIELDS}
    row = db.session.get(CarrierScoreRules, 1)
    if row is None:
        row = CarrierScoreRules(id=1, **clean, updated_by=actor.label)
        db.session.add(row)
    for name, value in clean.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.label, utc_now()
    db.session.flush()
    after = {name: plain(value) for name, value in clean.items()}
    audit.record(actor, "carrier.score_rules", "carrier_score_rules", 1, before=before, after=after)
    return row


def plain(value):
    """A rule's value as a form shows it (0.4, not 0.400)."""
    return f"{value.normalize():f}" if isinstance(value, Decimal) else value


# ------------------------------------------------------------------------------------------------ the month

def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def last_month(now: datetime | None = None) -> date:
    """The month before the current one in the merchant's zone (its first day)."""
    zone = ZoneInfo(current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai"))
    today = (now or utc_now()).astimezone(zone).date()
    return month_start(month_start(today) - timedelta(days=1))


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a month in the merchant's zone, as aware moments."""
    zone = ZoneInfo(current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai"))
    return (datetime.combine(month, time(0), zone), datetime.combine(next_month(month), time(0), zone))


def within(later, earlier, span: timedelta):
    """`later` at most `span` after `earlier`, in SQL (SQLite keeps timestamps as text, so it counts in days)."""
    if db.session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400 <= span.total_seconds()
    return later <= earlier + literal(span, Interval())


def parcel_measures(now):
    """The per-parcel conditions every count is a SUM over: (delivered, judged, on time, stalled). `now` is the
    moment (or bind parameter) a parcel's on-time limit is judged at."""
    delivered = Shipment.delivered_at.is_not(None)
    on_time = and_(delivered, within(Shipment.delivered_at, Shipment.shipped_at, ON_TIME_WITHIN))
    judged = or_(delivered, Shipment.shipped_at <= now - ON_TIME_WITHIN)
    # Stalled now, or stalled once and moving again (the alarm stays on record when stalled_at is cleared).
    stalled = or_(Shipment.stalled_at.is_not(None),
                  select(FulfilmentAlarm.id).where(FulfilmentAlarm.shipment_id == Shipment.id,
                                                   FulfilmentAlarm.kind == "parcel_stalled").exists())
    return delivered, judged, on_time, stalled


def _ones(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def compute_month(month: date, now: datetime | None = None) -> int:
    """Recompute one month's scores (parcels shipped in it, merchant time) in sets; returns the rows written. The
    caller commits (the job), so the scorecard reads the old month or the new one, never half of each."""
    from shared.services.transit_estimates import route_ends

    now, month = now or utc_now(), month_start(month)
    start, end = month_bounds(month)
    settings = rules()
    target = int(settings.response_target_hours) * 3600
    complaints = (select(ExceptionCase.shipment_id.label("shipment_id"), func.count().label("n"),
                         _ones(and_(ExceptionCase.resolve_seconds.is_not(None),
                                    ExceptionCase.resolve_seconds <= target)).label("answered"))
                  .where(ExceptionCase.kind.in_(COMPLAINT_KINDS), ExceptionCase.shipment_id.is_not(None))
                  .group_by(ExceptionCase.shipment_id).subquery())
    delivered, judged, on_time, stalled = parcel_measures(now)
    origin, destination = route_ends()
    db.session.execute(delete(CarrierScore).where(CarrierScore.month == month))
    written = 0
    # Per route, then carrier-wide (both ends ANY), as the transit estimates group.
    for ends, groups in (((origin, destination), (origin, destination)), ((literal(ANY), literal(ANY)), ())):
        grouped = (select(Shipment.carrier_code, ends[0].label("origin"), ends[1].label("destination"),
                          func.count(), _ones(judged), _ones(on_time), _ones(stalled),
                          _ones(and_(delivered, Shipment.sign_photo.is_not(None))),
                          _ones(and_(delivered, Shipment.sign_photo.is_(True))),
                          func.coalesce(func.sum(complaints.c.n), 0), func.coalesce(func.sum(complaints.c.answered), 0))
                   .select_from(Shipment).join(Warehouse, Warehouse.id == Shipment.warehouse_id)
                   .join(Order, Order.id == Shipment.order_id)
                   .outerjoin(complaints, complaints.c.shipment_id == Shipment.id)
                   .where(Shipment.carrier_code.is_not(None), Shipment.shipped_at >= start, Shipment.shipped_at < end)
                   .group_by(Shipment.carrier_code, *groups))
        rows = []
        for code, org, dest, parcels, n_judged, n_on_time, n_stalled, photo_n, photo_yes, n_complaints, n_answered \
                in db.session.execute(grouped):
            counts = {"parcels": int(parcels), "judged": int(n_judged), "on_time": int(n_on_time),
                      "stalled": int(n_stalled), "photo_reported": int(photo_n), "photo_signed": int(photo_yes),
                      "complaints": int(n_complaints), "complaints_answered": int(n_answered)}
            rows.append(CarrierScore(month=month, carrier_code=code, origin_province=org, destination_province=dest,
                                     score=score_of(counts, settings), computed_at=now, **counts))
        db.session.add_all(rows)
        written += len(rows)
    db.session.flush()
    log.info("carrier_scores=computed month=%s rows=%s", month.isoformat(), written)
    return written


def parts_of(counts: dict) -> dict[str, float | None]:
    """Each part of the score as a rate 0..1, or None where there is nothing to judge it by (no parcel judged yet, no
    photo reported, no complaint)."""
    def rate(numerator, denominator):
        return counts[numerator] / counts[denominator] if counts[denominator] else None

    stall = rate("stalled", "parcels")
    return {"on_time_weight": rate("on_time", "judged"), "stall_weight": None if stall is None else 1 - stall,
            "photo_weight": rate("photo_signed", "photo_reported"),
            "response_weight": rate("complaints_answered", "complaints")}


def score_of(counts: dict, settings) -> Decimal:
    """The weighted mean of the parts that apply, 0–100: a part with nothing to judge (e.g. a carrier that reports no
    photos) gives its weight to the others in proportion."""
    parts = parts_of(counts)
    weights = {name: Decimal(getattr(settings, name)) for name in WEIGHTS if parts[name] is not None}
    total = sum(weights.values())
    if not total:
        return Decimal("0.00")
    value = sum(Decimal(str(parts[name])) * weight for name, weight in weights.items()) / total * 100
    return value.quantize(HUNDREDTH, rounding=ROUND_HALF_UP)


# ------------------------------------------------------------------------------------------------ standings

def apply_standings(month: date, actor: Actor, now: datetime | None = None) -> dict[str, list[str]]:
    """De-weight carriers whose carrier-wide score of `month` is under the line, restore those back at or over it;
    each change audited with its reason. A carrier without a score that month keeps its standing."""
    now, month = now or utc_now(), month_start(month)
    line = Decimal(rules().deweight_below)
    scores = db.session.execute(select(CarrierScore.carrier_code, CarrierScore.score).where(
        CarrierScore.month == month, CarrierScore.origin_province == ANY,
        CarrierScore.destination_province == ANY)).all()
    standings = {row.carrier_code: row for row in db.session.execute(select(CarrierStanding)).scalars()}
    changed: dict[str, list[str]] = {"deweighted": [], "restored": []}
    for code, score in sorted(scores):
        standing = standings.get(code)
        under = Decimal(score) < line
        words = {"score": f"{Decimal(score):.2f}", "month": month.strftime("%Y-%m"), "line": f"{line:.2f}"}
        reason = (DEWEIGHTED_BECAUSE if under else RESTORED_BECAUSE) % words  # stored in English, shown translated
        if standing is None:
            standing = CarrierStanding(carrier_code=code, deweighted=False)
            db.session.add(standing)
        was = bool(standing.deweighted)
        standing.score, standing.month = Decimal(score), month
        if under == was:
            continue
        standing.deweighted, standing.reason, standing.changed_at = under, reason, now
        audit.record(actor, "carrier.deweight" if under else "carrier.restore", "carrier", code,
                     before={"deweighted": was}, after={"deweighted": under, "score": words["score"],
                                                        "month": words["month"], "line": words["line"]},
                     reason=reason)
        changed["deweighted" if under else "restored"].append(code)
        log.warning("carrier=%s standing=%s score=%s month=%s line=%s", code, "deweighted" if under else "restored",
                    words["score"], words["month"], words["line"])
    db.session.flush()
    return changed


def reason_words(standing: CarrierStanding) -> str:
    """A standing's reason in the reader's language (the row keeps the English text and its numbers)."""
    if standing.score is None or standing.month is None:
        return standing.reason or ""
    words = {"score": f"{Decimal(standing.score):.2f}", "month": standing.month.strftime("%Y-%m"),
             "line": f"{Decimal(rules().deweight_below):.2f}"}
    return say(DEWEIGHTED_BECAUSE if standing.deweighted else RESTORED_BECAUSE, **words)


def run_month(month: date, actor: Actor, now: datetime | None = None) -> dict:
    """The monthly job's work: the month's scores, then the standings they decide."""
    rows = compute_month(month, now)
    changed = apply_standings(month, actor, now)
    return {"month": month.isoformat(), "rows": rows, **changed}


# ------------------------------------------------------------------------------------------------ choosing

@dataclass(frozen=True)
class Ranking:
    """The scores of the latest scored month and the carriers' standings, read once, for many choices."""

    month: date | None
    scores: dict  # (carrier, origin, destination) → (parcels, score)
    deweighted: frozenset
    min_route_parcels: int
    line: Decimal

    def score(self, carrier: str, origin: str, destination: str) -> Decimal | None:
        """The route's score when it had enough parcels, else the carrier-wide score, else None."""
        route = self.scores.get((carrier, origin, destination))
        if route is not None and route[0] >= self.min_route_parcels:
            return route[1]
        wide = self.scores.get((carrier, ANY, ANY))
        return wide[1] if wide is not None else None

    def order(self, codes, origin: str, destination: str) -> tuple[str, ...]:
        """`codes` (the warehouse's carriers, its order) best first: not de-weighted, then higher score (None
        counts as the line), then the warehouse's order."""
        def key(indexed):
            index, code = indexed
            score = self.score(code, origin, destination)
            return (code in self.deweighted, -(score if score is not None else self.line), index)

        return tuple(code for _index, code in sorted(enumerate(codes), key=key))


def ranking() -> Ranking:
    settings = rules()
    month = db.session.execute(select(func.max(CarrierScore.month))).scalar()
    scores = {}
    if month is not None:
        scores = {(row.carrier_code, row.origin_province, row.destination_province): (row.parcels, Decimal(row.score))
                  for row in db.session.execute(select(CarrierScore).where(CarrierScore.month == month)).scalars()}
    deweighted = frozenset(db.session.execute(select(CarrierStanding.carrier_code).where(
        CarrierStanding.deweighted)).scalars())
    return Ranking(month, scores, deweighted, int(settings.min_route_parcels), Decimal(settings.deweight_below))


def warehouse_carriers(warehouse: Warehouse) -> tuple[str, ...]:
    """The warehouse's configured carriers, its own order (first choice, then backups)."""
    return tuple(c.strip() for c in (warehouse.carriers or "SF").split(",") if c.strip()) or ("SF",)


def carriers_for(warehouse: Warehouse, destination: str, standing: Ranking | None = None) -> tuple[str, ...]:
    """The warehouse's carriers for a parcel to `destination` (a province), best first."""
    return (standing or ranking()).order(warehouse_carriers(warehouse), warehouse.province, destination)


def over_load(loads: dict[str, float], threshold) -> set[str]:
    """The carriers whose reported load is at or over the threshold (0..1)."""
    line = float(threshold)
    return {code for code, load in loads.items() if load >= line}


def scorecard(month: date | None = None) -> tuple[date | None, list[dict]]:
    """A month's carrier-wide scores (default: the latest scored), each with its parts, route rows and standing."""
    if month is None:
        month = db.session.execute(select(func.max(CarrierScore.month))).scalar()
    if month is None:
        return None, []
    rows = db.session.execute(select(CarrierScore).where(CarrierScore.month == month)
                              .order_by(CarrierScore.carrier_code, CarrierScore.origin_province,
                                        CarrierScore.destination_province)).scalars().all()
    standings = {row.carrier_code: row for row in db.session.execute(select(CarrierStanding)).scalars()}
    settings = rules()
    table: dict[str, dict] = {}
    for row in rows:
        counts = {name: getattr(row, name) for name in ("parcels", "judged", "on_time", "stalled", "photo_reported",
                                                        "photo_signed", "complaints", "complaints_answered")}
        entry = {"route": (row.origin_province, row.destination_province), "score": Decimal(row.score),
                 "parts": parts_of(counts), "enough": row.parcels >= settings.min_route_parcels, **counts}
        if row.origin_province == ANY:
            standing = standings.get(row.carrier_code)
            table.setdefault(row.carrier_code, {"routes": []}).update(
                code=row.carrier_code, standing=standing, reason=reason_words(standing) if standing else "",
                deweighted=bool(standing and standing.deweighted), **entry)
        else:
            table.setdefault(row.carrier_code, {"routes": []})["routes"].append(entry)
    return month, [entry for entry in table.values() if "code" in entry]
