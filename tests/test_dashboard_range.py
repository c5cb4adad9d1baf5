"""The dashboard's date range (local dates in the viewer's zone) and its daily trends, one grouped query per series,
checked against known data on both databases (issue 14 item 5)."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from shared.extensions import db
from shared.models import Order
from shared.services import kpis
from shared.services.errors import ValidationFailed
from tests.factories import count_queries
from tests.portal_client import english_client, sign_in

ZONE = "Asia/Shanghai"


@pytest.fixture
def known_orders(create_order):
    """Placed at (UTC) → Shanghai day: 12-01 15:30 → 12-01 23:30; 12-01 16:30 → 12-02 00:30 (the zone's next day);
    12-02 02:00 → 12-02; 12-04 01:00 → 12-04; 11-20 → outside the range. Two of them shipped on 12-03."""
    moments = [datetime(2026, 12, 1, 15, 30), datetime(2026, 12, 1, 16, 30), datetime(2026, 12, 2, 2, 0),
               datetime(2026, 12, 4, 1, 0), datetime(2026, 11, 20, 1, 0)]
    made = [create_order(channel_order_id=f"K-{i}") for i in range(len(moments))]
    for order, moment in zip(made, moments):
        placed = moment.replace(tzinfo=UTC)
        shipped = datetime(2026, 12, 3, 3, 0, tzinfo=UTC) if order in made[:2] else None
        db.session.execute(update(Order).where(Order.id == order.id).values(placed_at=placed, paid_at=placed,
                                                                            shipped_at=shipped))
    db.session.commit()
    return made


def test_the_daily_trend_counts_each_local_day_of_the_range(known_orders):
    span = kpis.date_range("2026-12-01", "2026-12-05", ZONE)
    assert span.start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC) and span.end == datetime(2026, 12, 5, 16, 0,
                                                                                           tzinfo=UTC)
    assert kpis.daily_trend("placed", span, ZONE) == [("2026-12-01", 1), ("2026-12-02", 2), ("2026-12-03", 0),
                                                      ("2026-12-04", 1), ("2026-12-05", 0)]
    assert kpis.daily_trend("shipped", span, ZONE) == [("2026-12-01", 0), ("2026-12-02", 0), ("2026-12-03", 2),
                                                       ("2026-12-04", 0), ("2026-12-05", 0)]
    # In another zone the same orders fall on other days.
    utc_span = kpis.date_range("2026-12-01", "2026-12-02", "UTC")
    assert kpis.daily_trend("placed", utc_span, "UTC") == [("2026-12-01", 2), ("2026-12-02", 1)]


def test_a_bad_range_is_refused_clearly():
    for date_from, date_to in (("2026-12-05", "2026-12-01"), ("2026-01-01", "2026-12-31"), ("12/01/2026", "")):
        with pytest.raises(ValidationFailed):
            kpis.date_range(date_from, date_to, ZONE)
    default = kpis.date_range(None, None, ZONE, now=datetime(2026, 12, 4, 20, 0, tzinfo=UTC))  # 12-05 in Shanghai
    assert (default.first.isoformat(), default.last.isoformat()) == ("2026-11-29", "2026-12-05")


def test_the_dashboard_shows_the_range_and_the_trends(portal, create_user, known_orders):
    create_user("boss", "ops_manager")
    client = english_client(portal)
    assert sign_in(client, "boss").status_code == 302
    page = client.get("/?date_from=2026-12-01&date_to=2026-12-05")
    assert page.status_code == 200
    text = page.text
    assert 'name="date_from" value="2026-12-01"' in text and 'name="date_to" value="2026-12-05"' in text
    assert 'data-testid="trend-placed"' in text and "<title>2026-12-02: 2</title>" in text
    assert "<title>2026-12-03: 2</title>" in text  # shipped
    assert "Orders by channel, 2026-12-01 – 2026-12-05" in text
    refused = client.get("/?date_from=2026-12-05&date_to=2026-12-01")
    assert refused.status_code == 422 and 'data-testid="range-error"' in refused.text


def test_one_query_per_series(known_orders):
    span = kpis.date_range("2026-12-01", "2026-12-31", ZONE)
    with count_queries() as statements:
        kpis.daily_trend("paid", span, ZONE)
    assert [s for s in statements if s.lstrip().upper().startswith("SELECT")] == statements[-1:]
    assert len([s for s in statements if not s.startswith("SAVEPOINT")]) == 1
    assert len(kpis.daily_trend("paid", span, ZONE)) == 31 and timedelta(days=31) == span.end - span.start
