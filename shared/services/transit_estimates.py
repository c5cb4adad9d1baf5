"""Delivery estimates learned from the merchant's own parcels: for each carrier and route (the shipping warehouse's
province → the address's province), the median and 90th percentile of shipped → delivered times over the recent
window, and the same carrier-wide.

`refresh()` recomputes the whole small table in sets (one INSERT ... SELECT per grouping: percentile_cont on
PostgreSQL, a window-function path on SQLite that interpolates exactly as percentile_cont does) and is run by the
periodic job `jobs.transit_estimates.refresh_transit_estimates`; a page reads one row by primary key
(`estimate_for`), never the history. A route with fewer than MIN_DELIVERIES falls back to the carrier-wide figure,
and below that there is no estimate.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text

from shared.extensions import db
from shared.models import Order, Shipment, TransitEstimate, Warehouse
from shared.models.parcels import ANY
from shared.timekeeping import as_utc, utc_now

MIN_DELIVERIES = 20  # a route (or a carrier) with fewer deliveries gives no figure of its own
WINDOW = timedelta(days=90)  # deliveries of the last 90 days count

# The delivered parcels of the window, with their route and transit seconds. `:since` bounds delivered_at.
_POSTGRES_SECONDS = "EXTRACT(EPOCH FROM (s.delivered_at - s.shipped_at))"
_SQLITE_SECONDS = "(julianday(s.delivered_at) - julianday(s.shipped_at)) * 86400.0"
_DELIVERED = """
    SELECT s.carrier_code AS carrier_code, {origin} AS origin, {destination} AS destination, {seconds} AS seconds
    FROM shipments s JOIN warehouses w ON w.id = s.warehouse_id JOIN orders o ON o.id = s.order_id
    WHERE s.status = 'delivered' AND s.carrier_code IS NOT NULL AND s.shipped_at IS NOT NULL
      AND s.delivered_at IS NOT NULL AND s.delivered_at >= s.shipped_at AND s.delivered_at >= :since
"""
_POSTGRES = """
    INSERT INTO transit_estimates (carrier_code, origin_province, destination_province, deliveries, median_seconds,
                                   p90_seconds, computed_at)
    SELECT carrier_code, origin, destination, COUNT(*),
           ROUND(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)),
           ROUND(percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds)), :now
    FROM ({delivered}) AS d GROUP BY carrier_code, origin, destination
"""
# percentile_cont(p) over n sorted values is v[lo] + (h - lo) * (v[lo + 1] - v[lo]) with h = p * (n - 1) and
# lo = floor(h) (0-based): each group's two neighbours are picked by row number, then interpolated.
_SQLITE = """
    INSERT INTO transit_estimates (carrier_code, origin_province, destination_province, deliveries, median_seconds,
                                   p90_seconds, computed_at)
    SELECT carrier_code, origin, destination, n,
           CAST(ROUND(MAX(CASE WHEN rn = CAST(0.5 * (n - 1) AS INTEGER) THEN seconds END)
                + (0.5 * (n - 1) - CAST(0.5 * (n - 1) AS INTEGER))
                * (COALESCE(MAX(CASE WHEN rn = CAST(0.5 * (n - 1) AS INTEGER) + 1 THEN seconds END),
                            MAX(CASE WHEN rn = CAST(0.5 * (n - 1) AS INTEGER) THEN seconds END))
                   - MAX(CASE WHEN rn = CAST(0.5 * (n - 1) AS INTEGER) THEN seconds END))) AS INTEGER),
           CAST(ROUND(MAX(CASE WHEN rn = CAST(0.9 * (n - 1) AS INTEGER) THEN seconds END)
                + (0.9 * (n - 1) - CAST(0.9 * (n - 1) AS INTEGER))
                * (COALESCE(MAX(CASE WHEN rn = CAST(0.9 * (n - 1) AS INTEGER) + 1 THEN seconds END),
                            MAX(CASE WHEN rn = CAST(0.9 * (n - 1) AS INTEGER) THEN seconds END))
                   - MAX(CASE WHEN rn = CAST(0.9 * (n - 1) AS INTEGER) THEN seconds END))) AS INTEGER),
           :now
    FROM (SELECT carrier_code, origin, destination, seconds,
                 ROW_NUMBER() OVER (PARTITION BY carrier_code, origin, destination ORDER BY seconds) - 1 AS rn,
                 COUNT(*) OVER (PARTITION BY carrier_code, origin, destination) AS n
          FROM ({delivered}) AS d) AS ranked
    GROUP BY carrier_code, origin, destination, n
"""
GROUPINGS = (("w.province", "o.province"), (f"'{ANY}'", f"'{ANY}'"))  # per route, then carrier-wide


def route_ends():
    """A parcel's route as columns: the shipping warehouse's province → the order's (shipping address) province, the
    same ends _DELIVERED groups by; the carrier scores (shared.services.carrier_scores) group by these too."""
    return Warehouse.province, Order.province


def refresh(now: datetime | None = None, window: timedelta = WINDOW) -> int:
    """Recompute every estimate from the deliveries of the window, in sets; returns the number of rows written.
    The caller commits (the job), so a page reads the old table or the new one, never half of each."""
    now = now or utc_now()
    postgres = db.session.get_bind().dialect.name == "postgresql"
    db.session.execute(delete(TransitEstimate))
    for origin, destination in GROUPINGS:
        delivered = _DELIVERED.format(origin=origin, destination=destination,
                                      seconds=_POSTGRES_SECONDS if postgres else _SQLITE_SECONDS)
        statement = (_POSTGRES if postgres else _SQLITE).format(delivered=delivered)
        db.session.execute(text(statement), {"since": now - window, "now": now})
    db.session.flush()
    return db.session.execute(select(db.func.count()).select_from(TransitEstimate)).scalar()


@dataclass(frozen=True)
class Estimate:
    """When the parcel should arrive: between `earliest` (shipped + median) and `latest` (shipped + p90), learned
    from `deliveries` parcels of this carrier on this route (`scope` "route") or carrier-wide ("carrier")."""

    earliest: datetime
    latest: datetime
    deliveries: int
    scope: str
    late: bool  # now is past `latest`: later than 9 parcels in 10


def figures(carrier_code: str, origin: str, destination: str) -> tuple[TransitEstimate | None, str | None]:
    """The figure that applies: the route's with enough deliveries, else the carrier's, else none."""
    rows = {(row.origin_province, row.destination_province): row for row in db.session.execute(
        select(TransitEstimate).where(TransitEstimate.carrier_code == carrier_code,
                                      TransitEstimate.origin_province.in_((origin, ANY)),
                                      TransitEstimate.destination_province.in_((destination, ANY)))).scalars()}
    route, carrier = rows.get((origin, destination)), rows.get((ANY, ANY))
    if route is not None and route.deliveries >= MIN_DELIVERIES:
        return route, "route"
    if carrier is not None and carrier.deliveries >= MIN_DELIVERIES:
        return carrier, "carrier"
    return None, None


def estimate_for(shipment: Shipment, now: datetime | None = None) -> Estimate | None:
    """The estimate for a parcel on its way (shipped, not delivered), or None (no figure, or not on its way)."""
    shipped = as_utc(shipment.shipped_at)
    if shipped is None or shipment.delivered_at is not None or not shipment.carrier_code:
        return None
    row, scope = figures(shipment.carrier_code, shipment.warehouse.province, shipment.order.province)
    if row is None:
        return None
    earliest = shipped + timedelta(seconds=row.median_seconds)
    latest = shipped + timedelta(seconds=row.p90_seconds)
    return Estimate(earliest, latest, row.deliveries, scope, (now or utc_now()) > latest)
