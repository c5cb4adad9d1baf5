"""Times in the portal are shown in the viewer's zone (the merchant's by default) with the zone named, alarm texts
too; date inputs follow the UI language, not the browser's (issue 14 item 5)."""
from datetime import UTC, datetime

from sqlalchemy import select

from shared.extensions import db
from shared.models import FulfilmentAlarm
from shared.services import alarms
from shared.timekeeping import merchant_time_text
from tests.portal_client import english_client, sign_in

RAISED = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)  # 18:30 in Shanghai, 11:30 in Berlin


def board_for(portal, create_user, username: str, zone: str | None = None, locale: str = "en"):
    user = create_user(username, "warehouse", locale=locale)
    if zone:
        user.timezone = zone
        db.session.commit()
    client = english_client(portal) if locale == "en" else portal.test_client()
    assert sign_in(client, username).status_code == 302
    return client.get("/fulfilment/").text


def test_the_board_names_the_zone_of_every_time(portal, create_user, session):
    db.session.add(FulfilmentAlarm(kind="low_stock", subject="sku:TEA", role="ops_manager", raised_at=RAISED,
                                   message="TEA: 1 free"))
    db.session.commit()
    shanghai = board_for(portal, create_user, "sh")
    assert "2026-12-04 18:30 (Asia/Shanghai)" in shanghai and "10:30" not in shanghai
    berlin = board_for(portal, create_user, "be", zone="Europe/Berlin")
    assert "2026-12-04 11:30 (Europe/Berlin)" in berlin


def test_alarm_texts_say_merchant_time_not_utc(portal, create_order):
    with portal.app_context():
        order = create_order(status="confirmed")
        [alarm] = alarms.check(now=datetime.now(UTC).replace(year=2027))
        placed = order.paid_at or order.placed_at
        assert merchant_time_text(placed) in alarm.message and "(Asia/Shanghai)" in alarm.message
        assert "UTC" not in alarm.message
    assert merchant_time_text(RAISED) == "2026-12-04 18:30 (Asia/Shanghai)"
    assert merchant_time_text(RAISED, zone="America/New_York") == "2026-12-04 05:30 (America/New_York)"


def test_date_inputs_follow_the_ui_language(portal, create_user, session):
    create_user("zh_user", "admin", locale="zh_CN")
    create_user("en_user", "admin", locale="en")
    chinese, english = portal.test_client(), english_client(portal)
    assert sign_in(chinese, "zh_user").status_code == 302 and sign_in(english, "en_user").status_code == 302
    zh_page, en_page = chinese.get("/orders/").text, english.get("/orders/").text
    assert '<html lang="zh-CN">' in zh_page and '<input type="date" lang="zh-CN"' in zh_page
    assert '<html lang="en">' in en_page and '<input type="date" lang="en"' in en_page
    assert 'class="muted date-hint">Format: YYYY-MM-DD</small>' in en_page
    assert en_page.count('<input type="date" lang="en" title="Format: YYYY-MM-DD"') == 2
    assert db.session.scalars(select(FulfilmentAlarm)).all() == []
