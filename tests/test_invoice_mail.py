"""The customer's invoice by email link (issue 12 item 7): one mail per issued invoice, in the customer's language,
with the customer-site download link (the customer signs in; not a bearer link); sent through smtplib to a test SMTP
server on loopback; the sweeper sends what a job did not and never twice."""
import pytest
from flask import current_app

from jobs.invoices import sweep_invoice_requests
from shared.extensions import db
from shared.services import invoice_mail, invoices
from tests.smtp_sink import SmtpSink
from tests.test_invoice_queue import requested
from tests.test_invoices import profile_for, provider, sim, taxed  # noqa: F401  (fixtures)


@pytest.fixture
def sink(monkeypatch):
    with SmtpSink() as server:
        monkeypatch.setitem(current_app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(current_app.config, "SMTP_PORT", server.port)
        monkeypatch.setitem(current_app.config, "CUSTOMER_SITE_URL", "https://shop.example.cn/")
        yield server


def issued_through_the_simulator(order, provider, email="buyer@example.cn"):
    profile = profile_for(order)
    profile.email = email
    db.session.commit()
    request = requested(order, profile=profile)
    invoices.submit(request, provider)
    db.session.commit()
    invoices.poll(request, provider)
    db.session.commit()
    assert request.status == "issued"
    return request


@pytest.mark.parametrize("locale, subject, words", [
    ("zh_CN", "您的发票", "请先登录您的账户"), ("en", "Your invoice", "sign in with your account first")])
def test_one_mail_per_issued_invoice_in_the_customers_language_with_the_link(create_order, provider, sink, locale,
                                                                             subject, words):
    taxed()
    order = create_order(status="completed")
    order.customer.locale = locale
    request = issued_through_the_simulator(order, provider)
    (part,) = request.parts

    assert invoice_mail.mail_part(part.id) is True
    db.session.commit()
    assert invoice_mail.mail_part(part.id) is False  # once only
    db.session.commit()
    sweep_invoice_requests()  # the sweeper does not send it again either
    assert len(sink.messages) == 1
    sender, recipients, message = sink.messages[0]
    assert recipients == ["buyer@example.cn"] and sender == current_app.config["MAIL_FROM"]
    assert subject in message["Subject"] and part.number in message["Subject"]
    body = message.get_body().get_content()
    link = f"https://shop.example.cn/orders/{order.order_no}/invoices/{request.id}/1.pdf"
    assert link in body and words in body and order.order_no in body
    assert invoice_mail.link(request, part) == link


def test_the_sweeper_mails_what_no_job_sent_and_a_buyer_without_email_gets_none(create_order, provider, sink):
    taxed()
    mailed = issued_through_the_simulator(create_order(status="completed"), provider)
    silent_order = create_order(status="completed")
    silent_order.customer.email = None
    silent = issued_through_the_simulator(silent_order, provider, email=None)
    assert sweep_invoice_requests()["mails"] == 1
    assert [m[1] for m in sink.messages] == [["buyer@example.cn"]]
    assert mailed.parts[0].number in sink.messages[0][2]["Subject"]
    assert invoice_mail.mail_part(silent.parts[0].id) is False
    assert sweep_invoice_requests()["mails"] == 0 and len(sink.messages) == 1


def test_the_customers_own_email_is_used_when_the_profile_has_none(create_order, provider, sink):
    taxed()
    order = create_order(status="completed")
    order.customer.email = "own@example.cn"
    request = issued_through_the_simulator(order, provider, email=None)
    assert invoice_mail.mail_part(request.parts[0].id) is True
    assert sink.messages[0][1] == ["own@example.cn"]


def test_a_relay_that_is_down_sends_nothing_records_nothing_and_the_next_sweep_sends(create_order, provider, sink,
                                                                                     monkeypatch):
    taxed()
    request = issued_through_the_simulator(create_order(status="completed"), provider)
    closed = SmtpSink()  # bound, then closed: nothing listens on its port
    port = closed.port
    closed._server.close()
    monkeypatch.setitem(current_app.config, "SMTP_PORT", port)
    assert sweep_invoice_requests()["mails"] == 0 and sink.messages == []
    monkeypatch.setitem(current_app.config, "SMTP_PORT", sink.port)
    assert sweep_invoice_requests()["mails"] == 1
    assert invoice_mail.mail_part(request.parts[0].id) is False and len(sink.messages) == 1
