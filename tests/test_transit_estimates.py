"""Delivery estimates learned from the merchant's own deliveries: median and 90th percentile per carrier and route,
computed in SQL in sets on both backends (exact on a known set, percentile_cont's interpolation), the carrier-wide
fallback below 20 deliveries on a route, no estimate below that, and the window."""
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import func, select

from jobs.schedule import SCHEDULE, TIMEOUTS
from shared.extensions import db
from shared.models import Shipment, TransitEstimate
from shared.services import catalog, orders, stock, transit_estimates
from tests.factories import ADMIN, count_queries, order_payload

NOW = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
WAYBILLS = count(1)
HOUR = 3600


@pytest.fixture
def shop(session):
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    warehouse = catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"},
                                         ADMIN)
    catalog.create_sku({"sku": "SKU-1", "name": "龙井茶 250g"}, ADMIN)
    stock.adjust_stock("SKU-1", "HZ1", 500, "opening stock", ADMIN, kind="receipt")
    db.session.flush()
    return warehouse


def address(province: str, city: str) -> dict:
    return {"receiver": "张伟", "phone": "13812345678", "province": province, "city": city, "district": "某区",
            "street": "某路 1 号", "postal_code": None}


def delivered(warehouse, province: str, city: str, hours: float, carrier: str = "YTO",
              delivered_days_ago: float = 5, status: str = "delivered") -> Shipment:
    """A parcel of `carrier` from the warehouse to `province`, delivered `hours` after it was shipped."""
    order = orders.create_order(order_payload(channel_order_id=f"E{next(WAYBILLS)}",
                                              shipping_address=address(province, city)), ADMIN)
    db.session.flush()
    delivered_at = NOW - timedelta(days=delivered_days_ago)
    shipment = Shipment(order_id=order.id, warehouse_id=warehouse.id, status=status, priority=0, carrier_code=carrier,
                        waybill_no=f"YT{next(WAYBILLS):013d}", shipped_at=delivered_at - timedelta(hours=hours),
                        delivered_at=delivered_at if status == "delivered" else None)
    db.session.add(shipment)
    db.session.flush()
    return shipment


def row(carrier: str, origin: str, destination: str) -> TransitEstimate:
    return db.session.get(TransitEstimate, (carrier, origin, destination))


@pytest.fixture
def history(shop):
    """YTO 浙江→北京: 21 deliveries of 1..21 h; 浙江→上海: 4 of 30, 40, 50, 60 h; SF: 5 deliveries only; one YTO
    delivery outside the window and one parcel still on its way (neither counts)."""
    for hours in range(1, 22):
        delivered(shop, "北京市", "北京市", hours)
    for hours in (30, 40, 50, 60):
        delivered(shop, "上海市", "上海市", hours)
    for hours in (10, 20, 30, 40, 50):
        delivered(shop, "北京市", "北京市", hours, carrier="SF")
    delivered(shop, "北京市", "北京市", 500, delivered_days_ago=120)
    delivered(shop, "北京市", "北京市", 900, status="shipped")
    return shop


def test_median_and_p90_are_exact_per_route_and_carrier_wide(history):
    written = transit_estimates.refresh(NOW)
    assert written == 5  # YTO: two routes + carrier-wide; SF: one route + carrier-wide
    route = row("YTO", "浙江省", "北京市")
    # 1..21 h: median the 11th value; p90 at position 0.9 × 20 = 18 (0-based) → 19 h, exactly.
    assert (route.deliveries, route.median_seconds, route.p90_seconds) == (21, 11 * HOUR, 19 * HOUR)
    shanghai = row("YTO", "浙江省", "上海市")
    # 30, 40, 50, 60: median between 40 and 50 → 45; p90 at 2.7 → 50 + 0.7 × 10 = 57 h (percentile_cont).
    assert (shanghai.deliveries, shanghai.median_seconds, shanghai.p90_seconds) == (4, 45 * HOUR, 57 * HOUR)
    carrier = row("YTO", "*", "*")
    # 25 values 1..21, 30, 40, 50, 60: median the 13th → 13 h; p90 at 21.6 → 30 + 0.6 × 10 = 36 h.
    assert (carrier.deliveries, carrier.median_seconds, carrier.p90_seconds) == (25, 13 * HOUR, 36 * HOUR)
    assert row("SF", "*", "*").deliveries == 5


def test_refresh_replaces_the_table_and_is_a_fixed_number_of_statements(history):
    transit_estimates.refresh(NOW)
    with count_queries() as queries:
        transit_estimates.refresh(NOW)
    assert len(queries) <= 5  # delete, one insert per grouping, the count
    assert db.session.execute(select(func.count()).select_from(TransitEstimate)).scalar() == 5


def parcel_on_its_way(warehouse, province: str, city: str, carrier: str = "YTO", shipped: datetime = NOW):
    shipment = delivered(warehouse, province, city, 0, carrier=carrier, status="shipped")
    shipment.shipped_at = shipped
    db.session.flush()
    return shipment


def test_a_route_with_enough_deliveries_uses_its_own_figures(history):
    transit_estimates.refresh(NOW)
    shipment = parcel_on_its_way(history, "北京市", "北京市")
    estimate = transit_estimates.estimate_for(shipment, NOW)
    assert estimate.scope == "route" and estimate.deliveries == 21
    assert (estimate.earliest, estimate.latest) == (NOW + timedelta(hours=11), NOW + timedelta(hours=19))
    assert estimate.late is False
    assert transit_estimates.estimate_for(shipment, NOW + timedelta(hours=20)).late is True


def test_a_thin_route_falls_back_to_the_carrier_and_a_thin_carrier_gives_no_estimate(history):
    transit_estimates.refresh(NOW)
    shanghai = parcel_on_its_way(history, "上海市", "上海市")
    estimate = transit_estimates.estimate_for(shanghai, NOW)
    assert (estimate.scope, estimate.deliveries) == ("carrier", 25)
    assert estimate.latest == NOW + timedelta(hours=36)
    guangdong = parcel_on_its_way(history, "广东省", "广州市")  # no history at all on this route: carrier-wide
    assert transit_estimates.estimate_for(guangdong, NOW).scope == "carrier"
    sf = parcel_on_its_way(history, "北京市", "北京市", carrier="SF")
    assert transit_estimates.estimate_for(sf, NOW) is None  # 5 SF deliveries: below 20, no estimate


def test_no_figures_before_the_first_refresh_and_none_for_a_delivered_parcel(history):
    shipment = parcel_on_its_way(history, "北京市", "北京市")
    assert transit_estimates.estimate_for(shipment, NOW) is None
    transit_estimates.refresh(NOW)
    done = db.session.execute(select(Shipment).where(Shipment.status == "delivered")).scalars().first()
    assert transit_estimates.estimate_for(done, NOW) is None


def test_the_refresh_is_scheduled_hourly_with_a_timeout():
    assert ("refresh_transit_estimates", "jobs.transit_estimates.refresh_transit_estimates", 3600) in {
        (name, dotted, interval) for name, dotted, interval, _queue in SCHEDULE}
    assert TIMEOUTS["refresh_transit_estimates"] == 300
