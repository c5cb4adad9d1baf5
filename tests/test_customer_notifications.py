"""Customer notifications (issue 13 item 6): one outbox (`notify_customer`) of mails in the customer's language sent
through the real SMTP client to a test sink, retried when the relay is down and failed after five attempts, once
per event; tracking steps (shipped, out for delivery, delivered) and stalled parcels queue them; the portal lists the
outbox for those who may see customers; and a real RQ worker sends what is due."""
from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import select, update

from shared.extensions import db
from shared.models import Customer, CustomerNotification, Order, Shipment
from shared.services import customers, notifications, tracking
from shared.timekeeping import utc_now
from tests.factories import ADMIN, open_shop, order_payload
from tests.smtp_sink import SmtpSink
from tests.test_tracking_batches import journey

PHONE = "13900001111"
JOB = "jobs.notifications.send_due_notifications"


@pytest.fixture
def sink(monkeypatch):
    with SmtpSink() as server:
        monkeypatch.setitem(current_app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(current_app.config, "SMTP_PORT", server.port)
        monkeypatch.setitem(current_app.config, "CUSTOMER_SITE_URL", "https://shop.example.cn/")
        yield server


@pytest.fixture
def customer(session):
    made = customers.create_account("李雷", PHONE, "li.lei@example.com", "correct-horse-battery", ADMIN)
    db.session.commit()
    return made


def rows(order=None) -> list[CustomerNotification]:
    db.session.expire_all()
    query = select(CustomerNotification).order_by(CustomerNotification.id)
    if order is not None:
        query = query.where(CustomerNotification.order_id == order.id)
    return list(db.session.execute(query).scalars())


@pytest.mark.parametrize("locale, catalog", [("zh_CN", "zh_Hans_CN"), ("en", "en")])
def test_a_mail_is_sent_in_the_customers_language_through_smtp(customer, create_order, sink, locale, catalog):
    from flask_babel import force_locale, gettext

    customer.locale = locale
    db.session.commit()
    order = create_order(phone=PHONE)
    row_id = notifications.notify_customer(order, "refunded", amount="12.50", currency="CNY")
    db.session.commit()
    assert [r.status for r in rows(order)] == ["queued"]
    assert notifications.deliver(row_id) == "sent"
    db.session.commit()
    (sender, recipients, message), = sink.messages
    assert recipients == ["li.lei@example.com"]
    subject_id, body_id = notifications.MESSAGES["refunded"]
    with force_locale(catalog):  # the message codes in that language (zh from the catalog once it is filled)
        subject = gettext(subject_id, order_no=order.order_no)
        body = gettext(body_id, order_no=order.order_no, amount="12.50", currency="CNY")
    assert message["Subject"] == subject
    content = message.get_content()
    assert body in content and f"https://shop.example.cn/orders/{order.order_no}" in content
    if locale == "en":
        assert subject == f"Your refund for order {order.order_no}" and "We refunded 12.50 CNY" in content
    row, = rows(order)
    assert (row.status, row.attempts, row.sent_at is not None) == ("sent", 1, True)
    assert notifications.deliver(row_id) is None and len(sink.messages) == 1  # never twice


def test_an_event_is_notified_once_per_order_and_unknown_events_are_refused(customer, create_order):
    order = create_order(phone=PHONE)
    assert notifications.notify_customer(order, "delivered") is not None
    assert notifications.notify_customer(order, "delivered") is None
    assert notifications.notify_customer(order, "after_sales_approved", dedupe="as-1", reason="ok") is not None
    assert notifications.notify_customer(order, "after_sales_approved", dedupe="as-2", reason="ok") is not None
    assert len(rows(order)) == 3
    with pytest.raises(ValueError):
        notifications.notify_customer(order, "no_such_event")


def test_an_order_whose_customer_has_no_email_queues_nothing(create_order):
    order = create_order(phone="13655556666")
    assert order.customer.email is None
    assert notifications.notify_customer(order, "shipped") is None and rows(order) == []


def test_a_relay_that_is_down_is_retried_and_the_row_fails_after_five_attempts(customer, create_order, monkeypatch):
    closed = SmtpSink()  # bound, then closed: nothing listens on its port
    closed._server.close()
    monkeypatch.setitem(current_app.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(current_app.config, "SMTP_PORT", closed.port)
    order = create_order(phone=PHONE)
    row_id = notifications.notify_customer(order, "shipped", waybill_no="SF1")
    db.session.commit()
    now = utc_now()
    assert notifications.deliver(row_id, now) == "queued"
    db.session.commit()
    row, = rows(order)
    assert row.attempts == 1 and row.last_error and row.next_attempt_at > now
    assert row_id not in notifications.due_ids(now)  # waits for its next attempt
    moment = now
    for _ in range(4):
        moment += timedelta(hours=2)
        assert row_id in notifications.due_ids(moment)
        notifications.deliver(row_id, moment)
        db.session.commit()
    row, = rows(order)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 5, None)
    assert notifications.due_ids(moment + timedelta(days=1)) == []


def test_a_relay_that_comes_back_sends_on_the_next_sweep(customer, create_order, sink, monkeypatch):
    from jobs.notifications import send_due_notifications

    closed = SmtpSink()
    closed._server.close()
    monkeypatch.setitem(current_app.config, "SMTP_PORT", closed.port)
    order = create_order(phone=PHONE)
    notifications.notify_customer(order, "delivered")
    db.session.commit()
    assert send_due_notifications() == {"sent": 0, "retrying": 1, "failed": 0}
    monkeypatch.setitem(current_app.config, "SMTP_PORT", sink.port)
    later = (utc_now() + timedelta(minutes=2)).isoformat()
    assert send_due_notifications(later) == {"sent": 1, "retrying": 0, "failed": 0}
    assert len(sink.messages) == 1 and rows(order)[0].status == "sent"


def _shipped(order) -> Shipment:
    parcel = Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="shipped", priority=0,
                      carrier_code="SF", waybill_no=f"SF{order.id:08d}", shipped_at=utc_now() - timedelta(days=1))
    db.session.add(parcel)
    order.status = "shipped"  # set-up only: as if packed and loaded
    db.session.commit()
    return parcel


def test_tracking_steps_queue_shipped_out_for_delivery_and_delivered_once_each(customer, create_order):
    order = create_order(phone=PHONE)
    parcel = _shipped(order)
    events = journey(parcel.waybill_no)
    tracking.ingest(events[:2])  # picked up, in transit
    db.session.commit()
    assert [r.event for r in rows(order)] == ["shipped"]
    tracking.ingest(events[:3])  # out for delivery (the history repeated)
    tracking.ingest(events)  # delivered
    tracking.ingest(events)  # the same again: nothing new
    db.session.commit()
    assert [r.event for r in rows(order)] == ["shipped", "out_for_delivery", "delivered"]
    assert "SF" in rows(order)[0].params and rows(order)[0].recipient == "li.lei@example.com"
    assert db.session.get(Order, order.id).status == "completed"


def test_step_notifications_follow_the_parcels_move():
    assert tracking.step_notifications(None, "in_transit") == ["shipped"]
    assert tracking.step_notifications("awaiting_pickup", "out_for_delivery") == ["shipped", "out_for_delivery"]
    assert tracking.step_notifications("in_transit", "at_local_station") == []
    assert tracking.step_notifications("in_transit", "delivered") == ["delivered"]
    assert tracking.step_notifications("delivered", "delivered") == []
    assert tracking.step_notifications(None, "awaiting_pickup") == []


def test_a_stalled_parcel_is_notified_once(customer, create_order):
    order = create_order(phone=PHONE)
    _shipped(order)
    tracking.find_stalled(utc_now())
    tracking.find_stalled(utc_now() + timedelta(days=5))
    db.session.commit()
    assert [r.event for r in rows(order)] == ["stalled"]


def test_the_portal_lists_the_outbox_masked_for_those_who_may_see_customers(customer, create_order, client_for):
    order = create_order(phone=PHONE)
    notifications.notify_customer(order, "delivered")
    notifications.notify_address(order, "sms", PHONE, "guest_code", code="123456")
    db.session.commit()
    admin = client_for("admin")
    page = admin.get("/notifications")
    assert page.status_code == 200
    assert page.text.count('data-status="queued"') == 2 and order.order_no in page.text
    assert "li.lei@example.com" not in page.text and PHONE not in page.text and "123456" not in page.text
    assert admin.get("/notifications?status=sent").text.count("data-notification=") == 0
    assert client_for("warehouse").get("/notifications").status_code == 403


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql", "sqlite"], indirect=True)
def test_a_real_worker_sends_due_notifications_to_the_smtp_sink(live_apps):
    from rq import Queue
    from rq.job import Job

    import tests.test_worker as worker_tests
    from jobs import queues
    from tests.test_worker import _redis, _run_worker

    _redis().flushdb()  # only this test's Redis database (TEST_REDIS_URL), never FLUSHALL
    with live_apps.core.app_context():
        open_shop()
        customers.create_account("李雷", PHONE, "li.lei@example.com", "correct-horse-battery", ADMIN)
        db.session.commit()
        from shared.services import orders

        order = orders.create_order(order_payload(phone=PHONE), ADMIN)
        db.session.execute(update(Customer).values(locale="en"))
        notifications.notify_customer(order, "delivered")
        db.session.commit()
        order_no = order.order_no
    with SmtpSink() as server:
        original = worker_tests._worker_env
        worker_tests._worker_env = lambda url: {**original(url), "ORDERLOOM_SMTP_HOST": "127.0.0.1",
                                                "ORDERLOOM_SMTP_PORT": str(server.port)}
        try:
            job = Queue(queues.DEFAULT, connection=_redis()).enqueue(JOB)
            finished = _run_worker(live_apps.url, "--simple")
        finally:
            worker_tests._worker_env = original
        assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
        assert Job.fetch(job.id, connection=_redis()).return_value() == {"sent": 1, "retrying": 0, "failed": 0}
        (_sender, recipients, message), = server.messages
    assert recipients == ["li.lei@example.com"] and f"Your order {order_no} was delivered" == message["Subject"]
    with live_apps.core.app_context():
        row = db.session.execute(select(CustomerNotification)).scalar_one()
        assert (row.status, row.attempts) == ("sent", 1)


def test_the_demo_sink_receives_what_the_smtp_client_sends(customer, create_order, monkeypatch):
    from devtools.simulators.smtp_sink import SmtpSink as DemoSink

    sink = DemoSink("127.0.0.1", 0).start()
    try:
        monkeypatch.setitem(current_app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(current_app.config, "SMTP_PORT", sink.port)
        order = create_order(phone=PHONE)
        row_id = notifications.notify_customer(order, "out_for_delivery")
        db.session.commit()
        assert notifications.deliver(row_id) == "sent"
        (_sender, recipients, message), = list(sink.messages)
        assert recipients == ["li.lei@example.com"] and order.order_no in message["Subject"]
    finally:
        sink.stop()


def test_every_mail_event_has_a_name_staff_read_in_the_outbox():
    from shared.labels import NOTIFICATION_EVENT

    assert set(NOTIFICATION_EVENT) == set(notifications.MESSAGES)  # a new event needs its label in both languages
