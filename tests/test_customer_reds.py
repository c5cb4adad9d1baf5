"""Red invoices (红字) on the customer site and the provider's own red PDF: each issued blue invoice of the customer's
order shows its reds (number, date, amount, reason in zh and en, state); an issued red's PDF downloads owner-scoped
exactly like a blue one; the PDF served is the provider's when it sent one, else ours. Both backends."""
from decimal import Decimal as D

from sqlalchemy import select

from devtools.simulators.invoicing import RED_PDF
from shared.extensions import db
from shared.models import AccessLogEntry
from shared.models.invoices import RedLetter
from shared.services import red_letters
from shared.timekeeping import utc_now
from tests.factories import ADMIN
from tests.test_customer_site import (OTHER_PHONE, OWN_PHONE, account, client, other_account,  # noqa: F401
                                      sign_in)
from tests.test_customer_site import csrf_token as customer_csrf
from tests.test_invoice_queue import issue, requested
from tests.test_invoices import provider, sim, taxed  # noqa: F401  (fixtures)
from tests.test_red_letters import issued_request

OURS = b"%PDF-1.4 our red invoice"


def issued_red(request, amount, number, reason="return"):
    """A red opened through the service, then seeded issued with our PDF (the provider round trip is below)."""
    red = red_letters.open_red(request.parts[0].id, reason, amount, ADMIN)
    db.session.commit()
    red.status, red.number, red.issued_at, red.rendered_pdf = "issued", number, utc_now(), OURS
    db.session.commit()
    return red


def red_downloads(request_id) -> int:
    return len(db.session.scalars(select(AccessLogEntry).where(AccessLogEntry.entity_type == "invoice_request",
                                                               AccessLogEntry.entity_id == str(request_id))).all())


def test_the_order_page_shows_each_invoices_reds_and_an_issued_one_downloads(client, account,  # noqa: F811
                                                                            create_order):
    taxed()
    own = create_order(phone=OWN_PHONE, status="completed")
    mine = issue(requested(own))
    red = issued_red(mine, "10.00", "26332000000000000091")
    waiting = red_letters.open_red(mine.parts[0].id, "allowance", "5.00", ADMIN)
    db.session.commit()
    sign_in(client)
    page = client.get(f"/orders/{own.order_no}").text
    assert f'data-red="{red.id}" data-red-status="issued"' in page
    assert f'data-red="{waiting.id}" data-red-status="requested"' in page
    assert "26332000000000000091" in page and "-10.00" in page and "Sales return (销货退回)" in page
    assert "Sales allowance (销售折让)" in page and "Issued" in page and "Requested" in page
    link = f"/orders/{own.order_no}/invoices/{mine.id}/1/reds/{red.id}.pdf"
    assert page.count('data-testid="download-red"') == 1 and link in page  # only the issued red has a PDF
    before = red_downloads(mine.id)
    got = client.get(link)
    assert got.status_code == 200 and got.data == OURS
    assert got.headers["Content-Disposition"] == 'attachment; filename="invoice-26332000000000000091.pdf"'
    assert red_downloads(mine.id) == before + 1  # access-logged like a blue download
    # one not issued yet: back to the order page with the reason, no file
    early = client.get(f"/orders/{own.order_no}/invoices/{mine.id}/1/reds/{waiting.id}.pdf")
    assert early.status_code == 303 and "not issued yet" in client.get(early.headers["Location"]).text


def test_the_order_page_is_in_chinese_for_a_chinese_viewer(client, account, create_order):  # noqa: F811
    taxed()
    own = create_order(phone=OWN_PHONE, status="completed")
    issued_red(issue(requested(own)), "10.00", "26332000000000000092", reason="error")
    sign_in(client)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    page = client.get(f"/orders/{own.order_no}").text
    assert "开票有误" in page and "Invoicing error" not in page and "已开具" in page and "26332000000000000092" in page


def test_another_customers_red_by_url_is_404_and_a_guest_is_sent_to_sign_in(client, account,  # noqa: F811
                                                                             other_account, create_order):
    taxed()
    own = create_order(phone=OWN_PHONE, status="completed")
    foreign = create_order(phone=OTHER_PHONE, status="completed")
    mine = issue(requested(own))
    theirs = issue(requested(foreign), number="26332000000000000002")
    my_red = issued_red(mine, "10.00", "26332000000000000093")
    their_red = issued_red(theirs, "10.00", "26332000000000000094")
    sign_in(client)
    before = red_downloads(theirs.id)
    # the attack: the other customer's red through their order, through one's own, or under one's own invoice
    assert client.get(f"/orders/{foreign.order_no}/invoices/{theirs.id}/1/reds/{their_red.id}.pdf").status_code == 404
    assert client.get(f"/orders/{own.order_no}/invoices/{theirs.id}/1/reds/{their_red.id}.pdf").status_code == 404
    assert client.get(f"/orders/{own.order_no}/invoices/{mine.id}/1/reds/{their_red.id}.pdf").status_code == 404
    assert client.get(f"/orders/{own.order_no}/invoices/{mine.id}/2/reds/{my_red.id}.pdf").status_code == 404
    assert client.get(f"/orders/{own.order_no}/invoices/{mine.id}/1/reds/{2 ** 40}.pdf").status_code == 404
    assert red_downloads(theirs.id) == before
    assert "26332000000000000094" not in client.get(f"/orders/{own.order_no}").text
    # signed out (a guest): the same as a blue download, to the sign-in page
    client.post("/sign-out", data={"csrf_token": customer_csrf(client, "/orders/")})
    signed_out = client.get(f"/orders/{own.order_no}/invoices/{mine.id}/1/reds/{my_red.id}.pdf")
    assert signed_out.status_code == 302 and "/sign-in" in signed_out.headers["Location"]


def test_a_guest_lookup_shows_no_reds(customer_app, account, create_order):  # noqa: F811
    from tests.test_customer_site import look_up

    taxed()
    order = create_order(phone=OWN_PHONE, status="completed")
    issued_red(issue(requested(order)), "10.00", "26332000000000000095")
    guest = customer_app.test_client()
    guest.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    found = look_up(guest, order.order_no, OWN_PHONE[-4:])
    page = guest.get(found.headers["Location"]).text if found.status_code in (302, 303) else found.text
    assert order.order_no in page and "data-red=" not in page and "26332000000000000095" not in page


# --- the provider's own red PDF --------------------------------------------------------------------------------

def test_the_providers_red_pdf_is_kept_and_served_before_ours(create_order, provider, sim):  # noqa: F811
    order, request = issued_request(create_order, provider)
    red = red_letters.open_red(request.parts[0].id, "return", "20.00", ADMIN)
    db.session.commit()
    assert red_letters.advance(red, provider) == "issued"
    db.session.commit()
    db.session.expire_all()
    red = db.session.get(RedLetter, red.id)
    assert red.provider_pdf == RED_PDF and red.pdf_url.endswith(f"/fp/{sim.reds[red.serial]['uuid']}.pdf")
    assert red.provider_pdf != bytes(request.parts[0].provider_pdf or b"")  # the red's own, not the blue one's
    content, name = red_letters.red_pdf(red)  # served at once, before ours is rendered
    assert content == RED_PDF and name == f"invoice-{red.number}.pdf"
    red_letters.render_red_pdf(red.id)
    db.session.commit()
    assert red.rendered_pdf.startswith(b"%PDF") and red_letters.red_pdf(red)[0] == RED_PDF


def test_without_the_providers_pdf_ours_is_served(create_order, provider, sim):  # noqa: F811
    order, request = issued_request(create_order, provider)
    sim.send_pdf = False
    red = red_letters.open_red(request.parts[0].id, "return", None, ADMIN)
    db.session.commit()
    assert red_letters.advance(red, provider) == "issued"
    db.session.commit()
    assert red.provider_pdf is None and red.pdf_url  # a link, no content: nothing to keep
    red_letters.render_red_pdf(red.id)
    db.session.commit()
    content, _name = red_letters.red_pdf(red)
    assert content == bytes(red.rendered_pdf) and content != RED_PDF and content.startswith(b"%PDF")
    assert red.total_gross == D("-67.90")


def test_a_red_pdf_that_is_not_base64_is_left_out_and_the_red_still_issued(create_order, provider, sim,  # noqa: F811
                                                                           monkeypatch):
    order, request = issued_request(create_order, provider)
    red = red_letters.open_red(request.parts[0].id, "return", "1.00", ADMIN)
    db.session.commit()
    with monkeypatch.context() as patched:
        patched.setattr(type(sim), "_red_pdf", lambda self, held: {"pdfUrl": "http://x/fp/1.pdf",
                                                                   "pdfContent": "abcde"} if held["number"] else {})
        assert red_letters.advance(red, provider) == "issued"
    db.session.commit()
    assert red.provider_pdf is None and red.number and red.pdf_url == "http://x/fp/1.pdf"
