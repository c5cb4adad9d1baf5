"""The invoicing provider's push, POST /hooks/invoicing/<provider> (issue 12, item 4): a signed push issues the part,
a forged one is refused, counted and changes nothing, a replay changes nothing; the simulator pushes over HTTP."""
import json
import time

import pytest
from sqlalchemy import func, select

from devtools.simulators.invoicing import InvoicingSimulator
from shared.extensions import db
from shared.finance.providers.nuonuo import NuonuoProvider, sign
from shared.models import AuditEvent, WebhookRejection, WebhookRejectionRollup
from shared.models.invoices import InvoicePart
from shared.services import invoices
from tests.factories import ADMIN
from tests.live_servers import portal_server  # noqa: F401  (fixture)
from tests.test_invoices import VALID_USCC, profile_for, taxed

URL = "/hooks/invoicing/nuonuo"


@pytest.fixture
def sim():
    with InvoicingSimulator(issue_after_polls=1) as simulator:
        yield simulator


@pytest.fixture
def submitted(create_order, sim):
    """A request whose one part the simulator accepted (not yet issued); and the simulator's issued row for it."""
    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    invoices.submit(request, NuonuoProvider(sim.base_url, sim.app_key, sim.app_secret, VALID_USCC, timeout=2))
    db.session.commit()
    part = request.parts[0]
    assert part.status == "submitted"
    with sim._lock:
        sim._issue(part.serial)
        row = sim._push_row(part.serial)
    return request, part, row


def post(client, body: bytes, signature: str | None, content_type="application/json"):
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Nuonuo-Sign"] = signature
    return client.post(URL, data=body, headers=headers)


def issued_events(request) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "invoice.issued", AuditEvent.entity_id == str(request.id)))


def test_a_signed_push_issues_the_part_and_is_answered_e0000(submitted, portal):
    request, part, row = submitted
    body = json.dumps(row, ensure_ascii=False).encode()
    answer = post(portal.test_client(), body, sign(portal.config["INVOICE_PROVIDER_APP_SECRET"], body))
    assert answer.status_code == 200 and answer.get_json() == {"code": "E0000", "describe": "成功", "applied": True}
    db.session.expire_all()
    part = db.session.get(InvoicePart, part.id)
    assert part.status == "issued" and part.number == row["allElectronicInvoiceNumber"] and len(part.number) == 20
    assert part.request.status == "issued" and part.provider_pdf and part.pdf_url == row["pdfUrl"]
    kept = part.provider_answers[-1]
    assert kept["via"] == "callback" and kept["applied"] is True and kept["raw"]["orderNo"] == part.serial
    assert "pdfContent" not in kept["raw"]
    assert issued_events(part.request) == 1


def test_a_forged_push_is_refused_counted_and_changes_nothing(submitted, portal):
    request, part, row = submitted
    client = portal.test_client()
    body = json.dumps(row).encode()
    forged = json.dumps({**row, "allElectronicInvoiceNumber": "26312000000000066666"}).encode()
    assert post(client, forged, sign(portal.config["INVOICE_PROVIDER_APP_SECRET"], body)).status_code == 401
    assert post(client, body, sign("not-our-secret", body)).status_code == 401
    refused = post(client, body, None)
    assert refused.status_code == 401 and refused.get_json()["code"] != "E0000"
    assert refused.get_json()["error"]["code"] == "missing_signature"
    assert post(client, body, sign(portal.config["INVOICE_PROVIDER_APP_SECRET"], body),
                content_type="text/plain").status_code == 415
    assert client.post("/hooks/invoicing/baiwang", data=body, headers={"Content-Type": "application/json"}
                       ).status_code == 404
    db.session.expire_all()
    part = db.session.get(InvoicePart, part.id)
    assert part.status == "submitted" and part.number is None and part.request.status == "submitted"
    assert not any(answer.get("via") == "callback" for answer in part.provider_answers or [])
    reasons = sorted(db.session.scalars(select(WebhookRejection.reason)))
    assert reasons == ["bad_signature", "bad_signature", "missing_signature", "unknown_provider",
                       "unsupported_media_type"]
    counted = db.session.scalar(select(func.sum(WebhookRejectionRollup.count)).where(
        WebhookRejectionRollup.channel_code.like("invoicing-%")))
    assert counted == 5


def test_a_replayed_or_late_push_changes_nothing(submitted, portal):
    request, part, row = submitted
    client = portal.test_client()
    secret = portal.config["INVOICE_PROVIDER_APP_SECRET"]
    body = json.dumps(row).encode()
    assert post(client, body, sign(secret, body)).get_json()["applied"] is True
    db.session.expire_all()
    issued_at = db.session.get(InvoicePart, part.id).issued_at
    replay = post(client, body, sign(secret, body))  # the very same push again: acknowledged, so the provider stops
    assert replay.status_code == 200 and replay.get_json() == {"code": "E0000", "describe": "成功", "applied": False}
    other = json.dumps({**row, "allElectronicInvoiceNumber": "26312000000000011111"}).encode()
    assert post(client, other, sign(secret, other)).get_json()["applied"] is False
    failed = json.dumps({**row, "status": "22", "failCause": "签章失败"}).encode()  # a late failure after issuing
    assert post(client, failed, sign(secret, failed)).get_json()["applied"] is False
    db.session.expire_all()
    part = db.session.get(InvoicePart, part.id)
    assert part.status == "issued" and part.number == row["allElectronicInvoiceNumber"]
    assert part.issued_at == issued_at and part.request.status == "issued"
    assert [a["applied"] for a in part.provider_answers if a.get("via") == "callback"] == [True, False, False, False]
    assert issued_events(part.request) == 1


def test_a_signed_push_for_an_unknown_serial_or_unreadable_is_refused_and_counted(submitted, portal):
    request, part, row = submitted
    client = portal.test_client()
    secret = portal.config["INVOICE_PROVIDER_APP_SECRET"]
    for body, status, code in ((json.dumps({**row, "orderNo": "INV-NOT-OURS-1"}).encode(), 404, "unknown_invoice"),
                               (b'{"orderNo": ', 422, "invalid_json"),
                               (json.dumps({"status": "2"}).encode(), 422, "invalid_push")):
        answer = post(client, body, sign(secret, body))
        assert answer.status_code == status and answer.get_json()["error"]["code"] == code
    db.session.expire_all()
    assert db.session.get(InvoicePart, part.id).status == "submitted"
    assert sorted(db.session.scalars(select(WebhookRejection.reason))) == ["invalid_json", "invalid_push",
                                                                          "unknown_invoice"]


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["sqlite"], indirect=True)
def test_the_simulator_pushes_what_it_issues_to_the_portal_over_http(live_apps, portal_server):  # noqa: F811
    from shared.models import Sku
    from shared.services import orders
    from tests.factories import open_shop, order_payload

    with InvoicingSimulator(issue_after_seconds=0.2, callback_url=f"{portal_server}{URL}") as sim:
        with live_apps.core.app_context():
            open_shop(units=10)
            sku = db.session.scalars(select(Sku).where(Sku.code == "SKU-1")).one()
            sku.tax_code, sku.tax_short_name, sku.tax_rate, sku.tax_unit = "1010115010100000000", "茶叶", 13, "袋"
            order = orders.create_order(order_payload(), ADMIN)
            db.session.commit()
            request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
            db.session.commit()
            live_apps.core.config["INVOICE_PROVIDER_URL"] = sim.base_url
            invoices.submit(request, NuonuoProvider(sim.base_url, sim.app_key, sim.app_secret, VALID_USCC, 2))
            db.session.commit()
            request_id, serial = request.id, request.parts[0].serial
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(p["status"] == 200 for p in sim.pushes):
            time.sleep(0.05)
        assert [p["serial"] for p in sim.pushes] == [serial] and sim.pushes[0]["status"] == 200, sim.pushes
    with live_apps.core.app_context():
        request = invoices.get_request(request_id)
        assert request.status == "issued"  # never polled: the push issued it
        assert request.parts[0].number == sim.invoices[serial]["number"]
        assert sim.invoices[serial]["polls"] == 0


def test_the_simulator_sends_a_push_again_until_it_is_answered_e0000():
    """A receiver that is down or answers 500 first (the demo's portal starts after its seeding): pushed again."""
    from werkzeug.wrappers import Request, Response

    from devtools.simulators.loopback import LoopbackServing

    class Receiver(LoopbackServing):
        def __init__(self):
            self._init_serving()
            self.bodies = []

        def wsgi_app(self, environ, start_response):
            request = Request(environ)
            self.bodies.append((request.get_data(), request.headers.get("X-Nuonuo-Sign")))
            if len(self.bodies) == 1:
                return Response("busy", status=500)(environ, start_response)
            return Response('{"code": "E0000"}', content_type="application/json")(environ, start_response)

    with Receiver() as receiver, InvoicingSimulator(issue_after_polls=0,
                                                    callback_url=f"{receiver.base_url}/hook") as sim:
        provider = NuonuoProvider(sim.base_url, sim.app_key, sim.app_secret, VALID_USCC, timeout=2)
        order = {"orderNo": "INV-PUSH-1", "buyerTaxNum": VALID_USCC, "invoiceLine": "pc",
                 "invoiceDetail": [{"taxExcludedAmount": "100.00"}]}
        assert provider.submit("INV-PUSH-1", order).status == "accepted"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(sim.pushes) < 2:
            time.sleep(0.05)
        assert [p["status"] for p in sim.pushes] == [500, 200]
    (first, first_sign), (second, second_sign) = receiver.bodies
    assert first == second and first_sign == second_sign == sign(sim.app_secret, first)
    row = json.loads(first)
    assert row["orderNo"] == "INV-PUSH-1" and row["status"] == "2" and len(row["allElectronicInvoiceNumber"]) == 20
    assert sim.invoices["INV-PUSH-1"]["polls"] == 0  # a push is not a query
