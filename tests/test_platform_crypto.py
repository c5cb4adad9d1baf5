"""Platform-encrypted buyer data (issue 8): ciphertext orders flow as normal orders, show the platform's masks,
are matched by the platform's buyer key, and are decrypted only through the platform's own API (over real HTTP to
the channel simulator) when a person with full visibility reveals, or a non-platform waybill needs the receiver."""
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from shared.actors import Actor
from shared.carriers.waybills import WaybillRequest
from shared.extensions import db
from shared.models import AccessLogEntry, Customer, InboxItem, Order
from shared.services import platform_privacy, polling, scans
from devtools.simulators.channels import ChannelSimulator
from tests.factories import SYNC_SKUS
from tests.channel_payloads import beijing
from tests.portal_client import csrf_token, english_client, sign_in
from tests.test_api import ApiClient
from tests.test_channel_sync import ingest, order_of
from tests.test_polling import use_simulator
from shared.services import staff
from tests.factories import ADMIN

FIXTURES = Path(__file__).parent / "fixtures" / "channels"
ENCRYPTED = ("taobao", "jd", "pinduoduo", "douyin")
BUYER_KEY = {"taobao": ("oaid",), "jd": ("consigneeInfo", "desen_mobile"), "pinduoduo": ("open_address_id",),
             "douyin": ("open_address_id",)}
DECRYPT_API = {"taobao": "taobao.top.oaid.decrypt", "jd": "jingdong.jos.order.oaid.decrypt",
               "pinduoduo": "pdd.open.decrypt.batch", "douyin": "order.batchDecrypt"}


def fixture(platform: str) -> dict:
    """The published-shape fixture with its times moved to a few minutes ago (the inbox measures how long a
    payment took to become visible, and a 2025 time would not fit that figure)."""
    raw = json.loads((FIXTURES / platform / "encrypted_paid.json").read_text())
    recent = datetime.now(UTC) - timedelta(minutes=3)
    names = {"taobao": ("created", "pay_time", "modified"), "jd": ("orderStartTime", "paymentConfirmTime", "modified"),
             "pinduoduo": ("created_time", "pay_time", "updated_at"),
             "douyin": ("create_time", "pay_time", "update_time")}[platform]
    for name in names:
        raw[name] = int(recent.timestamp()) if platform == "douyin" else beijing(recent)
    return raw


def key_of(platform: str, raw: dict) -> str:
    value = raw
    for part in BUYER_KEY[platform]:
        value = value[part]
    return value


@pytest.mark.parametrize("platform", ENCRYPTED)
def test_each_platforms_encrypted_fixture_becomes_a_normal_order(sync_channels, platform):
    raw = fixture(platform)
    channel = sync_channels[platform]
    [item] = ingest(channel, raw)
    assert (item.status, item.last_error) == ("done", None)  # not "fullname is longer…", not "post_receiver missing"
    order = order_of(channel, channel.adapter.external_id(raw) if hasattr(channel, "adapter") else item.external_id)
    assert order.status == "confirmed" and order.payment_status == "paid" and order.platform_protected
    kept = json.loads(order.platform_ciphertext)
    assert order.platform_buyer_key == key_of(platform, raw)
    if platform == "douyin":
        assert kept["encrypt_post_receiver"] == raw["encrypt_post_receiver"]
        assert kept["encrypt_detail"] == raw["post_addr"]["encrypt_detail"]
        assert (order.receiver_name, order.receiver_phone) == (raw["mask_post_receiver"], raw["mask_post_tel"])
    if platform == "pinduoduo":
        assert kept["receiver_phone"] == raw["receiver_phone"]
        assert (order.receiver_name, order.receiver_phone) == (raw["receiver_name_mask"], raw["receiver_phone_mask"])
    if platform == "jd":
        assert kept["fullname"] == raw["consigneeInfo"]["fullname"] and order.receiver_phone == "136*******5"
    if platform == "taobao":
        assert kept["oaid"] == raw["oaid"] and order.receiver_name == raw["receiver_name"]
    # Encrypted at rest like all personal data: the stored column holds neither the ciphertext nor the buyer's mask.
    stored = db.session.execute(text("SELECT platform_ciphertext, receiver_name FROM orders WHERE id = :id"),
                                {"id": order.id}).one()
    assert next(iter(kept.values())) not in stored[0] and order.receiver_name not in stored[1]
    customer = db.session.get(Customer, order.customer_id)
    assert customer.platform_buyer_key == f"{platform}:{key_of(platform, raw)}"


def test_orders_of_one_buyer_share_one_customer_by_the_platform_key(sync_channels):
    first, second = fixture("douyin"), fixture("douyin")
    second["order_id"] = str(int(first["order_id"]) + 100)
    ingest(sync_channels["douyin"], first, second)
    orders = db.session.execute(select(Order).where(Order.channel_id == sync_channels["douyin"].id)).scalars().all()
    assert len(orders) == 2 and len({o.customer_id for o in orders}) == 1
    # Another buyer with the same masked phone is another customer: masks are never matched.
    third = fixture("douyin")
    third["order_id"] = str(int(first["order_id"]) + 200)
    third["open_address_id"] = "#another-buyer-address"
    ingest(sync_channels["douyin"], third)
    assert order_of(sync_channels["douyin"], third["order_id"]).customer_id != orders[0].customer_id


# ------------------------------------------------------------------------- live: decrypt over HTTP

@pytest.fixture
def simulator():
    sim = ChannelSimulator(seed=5, skus=list(SYNC_SKUS), start=datetime.now(UTC) - timedelta(hours=2))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def polled_order(sync_channels, simulator):
    """One paid order per platform, polled from the simulator's encrypted shapes: platform → (order, plain JSON)."""
    use_simulator(sync_channels, simulator)
    db.session.commit()

    def make(platform: str):
        added = simulator.add_order(platform, state="paid")
        run = polling.poll(sync_channels[platform].id, db.session.commit, sleep=lambda s: None,
                           now=datetime.now(UTC) + timedelta(seconds=5))
        assert run.status == "ok", run.error
        assert db.session.execute(select(InboxItem).where(InboxItem.status != "done")).first() is None
        order = order_of(sync_channels[platform], added.id)
        assert order is not None and order.platform_protected
        return order, simulator.plain_receiver(platform, added.id)
    return make


def plain_name(platform: str, plain: dict) -> str:
    return {"taobao": lambda: plain["receiver_name"], "jd": lambda: plain["consigneeInfo"]["fullname"],
            "pinduoduo": lambda: plain["receiver_name"], "douyin": lambda: plain["post_receiver"]}[platform]()


@pytest.fixture
def signed_in(portal, create_user):
    def make(role: str):
        user = create_user(f"pc_{role}", role)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        return client
    return make


@pytest.fixture
def api_as(portal, create_user):
    def make(role: str, language: str = "en") -> ApiClient:
        user = create_user(f"pc-api-{role}", role)
        token = staff.issue_token(user, ADMIN)
        db.session.commit()
        client = ApiClient(portal.test_client(), token)
        client.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        return client
    return make


def access_actions(order_no: str) -> list[str]:
    return db.session.execute(select(AccessLogEntry.action).where(AccessLogEntry.entity_id == order_no)
                              .order_by(AccessLogEntry.id)).scalars().all()


@pytest.mark.parametrize("platform", ENCRYPTED)
def test_masked_display_then_an_admin_reveal_decrypts_once_through_the_platform(polled_order, simulator, signed_in,
                                                                                 platform):
    order, plain = polled_order(platform)
    name = plain_name(platform, plain)
    client = signed_in("admin")
    page = client.get(f"/orders/{order.order_no}").text
    assert order.receiver_name in page and name not in page and 'data-testid="platform-masked"' in page
    assert simulator.privacy_call_count(platform) == 0  # viewing never decrypts
    revealed = client.post(f"/orders/{order.order_no}/reveal",
                           data={"csrf_token": csrf_token(client, f"/orders/{order.order_no}")})
    assert revealed.status_code == 200 and name in revealed.text
    assert simulator.privacy_call_count(platform, DECRYPT_API[platform]) == 1
    assert access_actions(order.order_no) == ["reveal:platform_decrypt"]
    db.session.refresh(order)
    assert name not in (order.receiver_name, order.street)  # the plain text was not stored


def test_api_reveal_returns_the_plain_receiver_and_logs_it(polled_order, simulator, api_as):
    order, plain = polled_order("pinduoduo")
    listed = api_as("admin").get(f"/orders/{order.order_no}").get_json()["shipping_address"]
    assert listed["receiver"] == order.receiver_name and listed["platform_encrypted"] is True
    assert listed["street"] is None and plain["receiver_name"] not in json.dumps(listed, ensure_ascii=False)
    assert simulator.privacy_call_count("pinduoduo") == 0
    logged = db.session.execute(select(AccessLogEntry.fields).where(AccessLogEntry.entity_id == order.order_no)
                                ).scalars().all()
    assert all("phone" not in fields for fields in logged)  # the masks were shown: nothing revealed, none logged
    answer = api_as("ops_manager").post(f"/orders/{order.order_no}/reveal")
    assert answer.status_code == 200, answer.text
    body = answer.get_json()
    assert body["decrypted_by_platform"] is True
    assert (body["shipping_address"]["receiver"], body["shipping_address"]["phone"],
            body["shipping_address"]["street"]) == (plain["receiver_name"], plain["receiver_phone"], plain["address"])
    assert simulator.privacy_call_count("pinduoduo", "pdd.open.decrypt.batch") == 1
    assert access_actions(order.order_no)[-1] == "reveal:platform_decrypt"


def test_customer_service_reveal_is_refused_and_nothing_is_called(polled_order, simulator, signed_in, api_as, portal):
    order, _plain = polled_order("douyin")
    client = signed_in("customer_service")
    form = csrf_token(client, f"/orders/{order.order_no}")
    assert client.post(f"/orders/{order.order_no}/reveal", data={"csrf_token": form}).status_code == 403
    answer = api_as("customer_service").post(f"/orders/{order.order_no}/reveal")
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden"
    # The service refuses on its own too (any caller: the label, a job), before the platform is called.
    cs = Actor(id=None, label="cs", role="customer_service", ip="127.0.0.1")
    with portal.test_request_context(), pytest.raises(platform_privacy.RevealNotAllowed):
        platform_privacy.reveal_contact(order, cs, "api")
    assert simulator.privacy_call_count("douyin") == 0
    assert access_actions(order.order_no) == []


@pytest.mark.parametrize("platform", ENCRYPTED)
def test_a_refused_decrypt_says_why_in_both_languages_and_changes_nothing(polled_order, simulator, api_as, platform):
    order, plain = polled_order(platform)
    before = (order.status, order.receiver_name, order.platform_ciphertext)
    simulator.refuse_decrypt(platform, 2, "quota used up")
    english = api_as("admin").post(f"/orders/{order.order_no}/reveal")
    assert english.status_code == 502
    error = english.get_json()["error"]
    assert error["code"] == "platform_decrypt_failed" and "refused to decrypt" in error["message"]
    assert "quota used up" in error["message"]
    chinese = api_as("ops_manager", "zh-CN").post(f"/orders/{order.order_no}/reveal")
    assert chinese.status_code == 502 and "平台拒绝解密" in chinese.get_json()["error"]["message"]
    db.session.refresh(order)
    assert (order.status, order.receiver_name, order.platform_ciphertext) == before
    assert plain_name(platform, plain) not in english.text + chinese.text
    assert access_actions(order.order_no) == ["reveal:decrypt_refused"] * 2


def test_a_decrypt_that_times_out_answers_clearly(polled_order, simulator, api_as, monkeypatch):
    order, _plain = polled_order("jd")
    monkeypatch.setattr(platform_privacy, "DECRYPT_TIMEOUT", 0.5)
    simulator.fail_next("jd", kind="timeout", delay=3)
    answer = api_as("admin").post(f"/orders/{order.order_no}/reveal")
    assert answer.status_code == 504 and answer.get_json()["error"]["code"] == "platform_decrypt_timeout"
    assert access_actions(order.order_no) == ["reveal:decrypt_timeout"]
    db.session.refresh(order)
    assert order.status == "confirmed"  # the order flows on


def _waybill_request(order) -> WaybillRequest:
    return WaybillRequest(order_code=order.order_no, carrier_code="ZTO",
                          sender={"Name": "杭州仓", "Mobile": "4000000000", "ProvinceName": "浙江省",
                                  "CityName": "杭州市", "ExpAreaName": "余杭区", "Address": "仓前街道"},
                          receiver={"Name": order.receiver_name, "Mobile": order.receiver_phone,
                                    "ProvinceName": order.province, "CityName": order.city,
                                    "ExpAreaName": order.district, "Address": order.street},
                          goods=[("T恤", 1)])


class NoCarrier:
    def request(self, _request):
        raise AssertionError("a platform e-waybill order must not go to the aggregator")


@pytest.mark.parametrize("platform,api", [("taobao", "cainiao.waybill.ii.get"), ("pinduoduo", "pdd.waybill.get"),
                                          ("douyin", "logistics.newCreateOrder")])
def test_platform_e_waybills_carry_the_ciphertext_and_never_decrypt(polled_order, simulator, platform, api):
    order, plain = polled_order(platform)
    request, client = scans._protected_request(order, _waybill_request(order), NoCarrier())
    waybill = client.request(request)
    assert waybill.waybill_no.startswith("ZTO")
    [(name, sent)] = [call for call in simulator.privacy_calls[platform] if call[0] == api]
    text_sent = json.dumps(sent, ensure_ascii=False)
    ciphertext = json.loads(order.platform_ciphertext)
    if platform == "taobao":
        assert sent["trade_order_info_dtos"][0]["recipient"]["oaid"] == ciphertext["oaid"]
    else:
        assert all(value in text_sent for key, value in ciphertext.items() if key != "receiver_address")
    assert plain_name(platform, plain) not in text_sent
    assert simulator.privacy_call_count(platform, DECRYPT_API[platform]) == 0
    assert access_actions(order.order_no) == []


def test_jd_waybill_through_the_aggregator_decrypts_once_and_logs_it(polled_order, simulator):
    order, plain = polled_order("jd")
    carriers = object()
    request, same = scans._protected_request(order, _waybill_request(order), carriers)
    assert same is carriers and request.receiver["Name"] == plain["consigneeInfo"]["fullname"]
    assert simulator.privacy_call_count("jd", DECRYPT_API["jd"]) == 1
    assert access_actions(order.order_no) == ["waybill:platform_decrypt"]


def test_plain_text_payloads_stay_supported(sync_channels):
    plain = ChannelSimulator(seed=9, skus=list(SYNC_SKUS), encrypted=False)
    added = plain.add_order("douyin", state="paid")
    raw = plain.order_json("douyin", added.id)
    assert "post_receiver" in raw and "encrypt_post_receiver" not in raw
    [item] = ingest(sync_channels["douyin"], raw)
    order = order_of(sync_channels["douyin"], added.id)
    assert item.status == "done" and not order.platform_protected and order.receiver_name == raw["post_receiver"]


# ------------------------------------------------------------------------- the floor: pack and label

def test_a_douyin_order_packs_with_a_ciphertext_e_waybill_and_its_label_decrypts_once(
        polled_order, simulator, portal, signed_in):
    from datetime import date

    from shared.models import Bin, Lot, Shipment
    from shared.services import allocation, lots, stock, waves

    order, plain = polled_order("douyin")
    warehouse = stock.get_warehouse("HZ1")
    db.session.add(Bin(warehouse_id=warehouse.id, code="A-01", walk_order=1, capacity=10_000))
    db.session.flush()
    for line in order.lines:
        lots.receive(line.sku.code, "HZ1", "A-01", line.quantity, ADMIN, lot_no=f"L-{line.sku.code}",
                     today=date.today())
    _device, token = scans.register_device("PDA-09", "HZ1", ADMIN)
    db.session.commit()
    allocation.allocate(order, ADMIN)
    [wave] = waves.plan_waves("HZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    waves.release_chunk(wave.id, date.today())
    db.session.commit()
    client, headers = portal.test_client(), {"Authorization": f"Bearer {token}"}
    for task in waves.pick_list(wave.id):
        lot = db.session.get(Lot, task.lot_id)
        picked = client.post("/scan/v1/pick", headers=headers, json={
            "operator": "王五", "station": "P-01", "task": task.id, "bin": "A-01", "sku": lot.sku.code,
            "lot": lot.lot_no, "quantity": task.quantity})
        assert picked.status_code == 200, picked.get_json()
    packed = client.post("/scan/v1/pack", headers=headers,
                         json={"operator": "王五", "station": "P-01", "order": order.order_no, "box": "BOX-S"})
    assert packed.status_code == 200, packed.get_json()
    [(_api, sent)] = [call for call in simulator.privacy_calls["douyin"] if call[0] == "logistics.newCreateOrder"]
    ciphertext = json.loads(order.platform_ciphertext)
    assert sent["receiver_info"]["contact"]["name"] == ciphertext["encrypt_post_receiver"]
    assert sent["receiver_info"]["address"]["detail_address"] == ciphertext["encrypt_detail"]
    assert plain["post_receiver"] not in json.dumps(sent, ensure_ascii=False)
    assert simulator.privacy_call_count("douyin", "order.batchDecrypt") == 0 and access_actions(order.order_no) == []
    shipment = db.session.execute(select(Shipment).where(Shipment.order_id == order.id)).scalar_one()
    assert shipment.waybill_no == packed.get_json()["waybill"]
    # Printing the label shows the receiver in full: the platform decrypts it once, and that is logged.
    label = signed_in("warehouse").get(f"/fulfilment/shipments/{shipment.id}/label")
    assert label.status_code == 200 and plain["post_receiver"] in label.text
    assert simulator.privacy_call_count("douyin", "order.batchDecrypt") == 1
    assert access_actions(order.order_no) == ["print_label:platform_decrypt"]


def test_guest_tracking_never_matches_digits_a_platform_mask_does_not_hold(sync_channels):
    from customer_site.access import guest_lookup

    jd, taobao = fixture("jd"), fixture("taobao")
    ingest(sync_channels["jd"], jd)
    ingest(sync_channels["taobao"], taobao)
    jd_order = order_of(sync_channels["jd"], jd["orderId"])
    taobao_order = order_of(sync_channels["taobao"], taobao["tid_str"])
    assert jd_order.receiver_phone == "136*******5"
    assert guest_lookup(jd_order.order_no, "1365") is None  # the mask's digits are not the phone's last four
    assert guest_lookup(taobao_order.order_no, "5432") == taobao_order.id  # "*******5432" keeps them
