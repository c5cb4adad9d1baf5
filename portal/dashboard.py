"""The dashboard: where orders stand now, as numbers and charts."""
from datetime import timedelta

from flask import Blueprint, g, render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from portal.access import requires
from shared.extensions import db
from shared.lifecycle import OPEN_STATUSES, OrderStatus
from shared.models import Channel, Order, Sku, StockLevel
from shared.services import kpis
from shared.services.errors import ValidationFailed
from shared.timekeeping import utc_now

bp = Blueprint("dashboard", __name__)


def bar_chart(rows: list[tuple[str, int]]) -> list[dict]:
    """Rows as bars whose width is relative to the largest (for the inline SVG charts)."""
    peak = max((count for _, count in rows), default=0) or 1
    return [{"label": label, "count": count, "width": round(100 * count / peak, 1)} for label, count in rows]


SERIES_NAMES = {"placed": _l("Orders placed"), "paid": _l("Orders paid"), "shipped": _l("Orders shipped")}


def trend_chart(points: list[tuple[str, int]], width: int = 560, height: int = 120) -> dict:
    """A day series as the bars of a small server-rendered SVG: x, y, height per day, and the peak."""
    peak = max((count for _day, count in points), default=0) or 1
    step = width / max(len(points), 1)
    bars = [{"day": day, "count": count, "x": round(i * step, 1), "w": round(max(step - 2, 1), 1),
             "h": round(height * count / peak, 1), "y": round(height - height * count / peak, 1)}
            for i, (day, count) in enumerate(points)]
    return {"bars": bars, "peak": peak, "width": width, "height": height, "total": sum(c for _d, c in points)}


@bp.get("/")
@requires("dashboard", "view")
def index():
    zone = g.get("timezone") or "Asia/Shanghai"
    error = None
    try:
        span = kpis.date_range(request.args.get("date_from"), request.args.get("date_to"), zone)
    except ValidationFailed as refused:
        error, span = refused, kpis.date_range(None, None, zone)
    by_status = dict(db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    by_channel = db.session.execute(
        select(Channel.name, func.count(Order.id)).join(Order, Order.channel_id == Channel.id)
        .where(Order.placed_at >= span.start, Order.placed_at < span.end).group_by(Channel.name)
        .order_by(func.count(Order.id).desc())
    ).all()
    trends = [(code, SERIES_NAMES[code], trend_chart(kpis.daily_trend(code, span, zone)))
              for code in kpis.TREND_SERIES]
    stuck_before = utc_now() - timedelta(hours=4)
    stuck = db.session.execute(
        select(func.count()).select_from(Order)
        .where(Order.status.in_([OrderStatus.CONFIRMED, OrderStatus.ALLOCATED, OrderStatus.PICKING]),
               Order.updated_at < stuck_before)
    ).scalar_one()
    totals = (select(StockLevel.sku_id, func.sum(StockLevel.available)
                     .label("available")).group_by(StockLevel.sku_id).subquery())
    low_stock = db.session.execute(
        select(Sku.code, Sku.name, totals.c.available, Sku.safety_stock).join(totals, totals.c.sku_id == Sku.id)
        .where(totals.c.available <= Sku.safety_stock).order_by(totals.c.available).limit(10)
    ).all()
    status_rows = [(s.value, by_status.get(s.value, 0)) for s in OrderStatus]
    return render_template("portal/dashboard.html", status_bars=bar_chart(status_rows),
                           channel_bars=bar_chart([(name, count) for name, count in by_channel]),
                           open_count=sum(by_status.get(s.value, 0) for s in OPEN_STATUSES),
                           stuck=stuck, low_stock=low_stock, span=span, trends=trends, range_error=error), \
        422 if error else 200
