"""The demo: seeding through the services gives consistent data once, and the CLI prints every sign-in."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shared.appcore import create_core_app
from shared.database import upgrade
from devtools.demo.seed import B2B_ORDERS, B2B_PROFILE, CUSTOMER_ACCOUNTS, STAFF, seed_demo_data
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models.channel import DIRECT_KINDS
from shared.models import (AuditEvent, Channel, Customer, Order, OrderLine, Reservation, Shipment, Sku, StaffUser,
                           StockLevel, StockMovement, Warehouse)
from shared.services.audit import verify_chain
from shared.services.stock import ledger_on_hand
from shared.timekeeping import utc_now
from tests.conftest import app_config

SEEDED_ORDERS = 120
COUNTED = (AuditEvent, Channel, Customer, Order, OrderLine, Reservation, Sku, StaffUser, StockLevel, StockMovement,
           Warehouse)


@pytest.fixture
def demo_app(tmp_path):
    """A core app on a freshly migrated SQLite file whose commits are real (no rolled-back transaction)."""
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    upgrade(url)
    app = create_core_app("demo-test", app_config(url))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def assert_invoices_issued(said: list[str]) -> None:
    """Every SKU can be invoiced; the B2B buyer's profile (kept by staff) got an issued 专票 and a split 普票."""
    from shared.models import InvoiceProfile
    from shared.models.invoices import InvoiceRequest
    from shared.services import sku_tax

    skus = db.session.execute(select(Sku)).scalars().all()
    assert [sku.code for sku in skus if sku_tax.missing_for(sku)] == []
    assert all(len(sku.tax_code) == 19 and sku.tax_code.isdigit() and sku.tax_short_name and sku.tax_unit
               and sku.tax_rate in (13, 9) for sku in skus)
    (profile,) = db.session.execute(select(InvoiceProfile)).scalars()
    assert (profile.kind, profile.name, profile.tax_id, profile.created_by) == (
        "enterprise", B2B_PROFILE["name"], B2B_PROFILE["tax_id"], "staff")
    requests = db.session.execute(select(InvoiceRequest).order_by(InvoiceRequest.id)).scalars().all()
    assert [(r.kind, r.status, len(r.parts)) for r in requests] == [("special", "issued", 1), ("normal", "issued", 2)]
    numbers = [part.number for r in requests for part in r.parts]
    assert len(set(numbers)) == 3 and all(len(n) == 20 and n.isdigit() for n in numbers)
    split = requests[1]
    order = split.orders[0].order
    assert order.channel_order_id == B2B_ORDERS[1][0]
    assert sum(part.total_gross for part in split.parts) == order.total > 10_000
    assert all(part.total_gross <= 10_000 and part.provider_pdf for part in split.parts)
    assert any("3 invoices issued through the invoicing simulator" in line for line in said)
    from shared.models.invoices import RedLetter

    (red,) = db.session.execute(select(RedLetter)).scalars()
    assert (red.status, red.reason, red.total_gross, red.original_number) == (
        "issued", "allowance", -100, requests[0].parts[0].number)
    assert len(red.number) == 20 and red.number not in numbers


def row_counts() -> dict[str, int]:
    return {model.__name__: db.session.execute(select(func.count()).select_from(model)).scalar_one()
            for model in COUNTED}


def test_demo_seed_is_complete_consistent_and_only_once(demo_app):
    said = []
    outcome = seed_demo_data(SEEDED_ORDERS, report=said.append)
    assert outcome.seeded and any("Seeded in" in line for line in said)

    counts = row_counts()
    assert counts["Channel"] >= 5
    assert counts["Warehouse"] == 3
    assert counts["Sku"] == 50 + 2  # and the limited tea and its substitute (devtools/demo/offers.py)
    # and the customer-service order stuck in approval, and the B2B buyer's two invoiced orders
    # and the first regular customer's orders with a return at each stage (devtools/demo/returns.py)
    from devtools.demo.returns import STAGES

    # the replacement order of the exchange among them, and the VIP's two out-of-stock orders (devtools/demo/offers.py)
    assert counts["Order"] == SEEDED_ORDERS + 1 + len(B2B_ORDERS) + len(STAGES) + 1 + 2
    statuses = dict(db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    # Picking and packed orders come from the floor crew (devtools/demo/floor.py) working the allocated ones.
    assert {status.value for status in OrderStatus} - {"picking", "packed"} <= set(statuses), statuses
    assert statuses.get("allocated", 0) >= 3
    assert not {"picking", "packed"} & set(statuses), "no order on the floor without a parcel behind it"
    parcelless = db.session.execute(select(func.count()).select_from(Order).where(
        Order.status == "allocated", ~select(Shipment.id).where(Shipment.order_id == Order.id).exists())).scalar()
    assert parcelless == 0
    roles = db.session.execute(select(StaffUser.role)).scalars().all()
    assert sorted(roles) == sorted(role for role, *_rest in STAFF)

    for level in db.session.execute(select(StockLevel)).scalars():
        assert min(level.on_hand, level.reserved, level.held, level.available) >= 0, level.id
        assert level.on_hand == ledger_on_hand(level.sku_id, level.warehouse_id)
        active = db.session.execute(
            select(func.coalesce(func.sum(Reservation.quantity), 0))
            .where(Reservation.sku_id == level.sku_id, Reservation.warehouse_id == level.warehouse_id,
                   Reservation.status == "active")
        ).scalar_one()
        assert level.reserved == active

    intact, checked, problem = verify_chain()
    assert intact, problem
    assert checked == counts["AuditEvent"]

    now = utc_now()
    oldest = db.session.execute(select(func.min(Order.placed_at))).scalar_one()
    assert oldest > now - timedelta(days=15)
    unpaid = db.session.execute(
        select(Reservation.expires_at, Channel.kind).join(Order, Order.id == Reservation.order_id)
        .join(Channel, Channel.id == Order.channel_id)
        .where(Order.payment_status == "unpaid", Reservation.status == "active")
    ).all()
    expiring = [moment for moment, kind in unpaid if kind in DIRECT_KINDS]
    assert expiring, "some unpaid orders should wait for the reservation-expiry job"
    assert all(now < moment < now + timedelta(minutes=31) for moment in expiring)
    # A platform closes its own unpaid orders and tells us; only direct channels expire here.
    assert all(moment is None for moment, kind in unpaid if kind not in DIRECT_KINDS)

    short = [sku for sku in db.session.execute(select(Sku)).scalars()
             if sum(level.available for level in db.session.execute(
                 select(StockLevel).where(StockLevel.sku_id == sku.id)).scalars()) <= sku.safety_stock]
    assert 0 < len(short) < 50, "some SKUs, not all, should be short of their safety stock"

    for _name, email, _password in CUSTOMER_ACCOUNTS:
        customer = next(c for c in db.session.execute(select(Customer)).scalars() if c.email == email)
        assert customer.password_hash
        assert db.session.execute(select(func.count(Order.id)).where(Order.customer_id == customer.id)).scalar_one()

    assert_invoices_issued(said)

    again = seed_demo_data(SEEDED_ORDERS, report=said.append)
    assert not again.seeded
    assert row_counts() == counts
    assert "reusing it" in said[-1]


def test_the_floor_takes_the_seeded_allocated_orders_through_waves_to_picking(demo_app):
    from devtools.demo import floor
    from devtools.demo.seed import SEED_ACTOR
    from shared.services import waves
    from shared.services.lots import merchant_today

    seed_demo_data(SEEDED_ORDERS, report=lambda _line: None)
    floor.prepare(SEED_ACTOR)
    db.session.commit()
    allocated = db.session.execute(select(func.count()).select_from(Order).where(Order.status == "allocated")).scalar()
    released = 0
    for warehouse in db.session.execute(select(Warehouse)).scalars().all():
        for wave in waves.plan_waves(warehouse.code, SEED_ACTOR):
            waves.start_release(wave.id, SEED_ACTOR)
            waves.release_chunk(wave.id, merchant_today())
            released += len(waves.pick_list(wave.id))
    db.session.commit()
    picking = db.session.execute(select(func.count()).select_from(Order).where(Order.status == "picking")).scalar()
    assert allocated and released and picking == allocated  # every seeded floor order got pick tasks


def test_demo_command_seeds_and_prints_every_sign_in(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli-demo.sqlite3'}"
    command = [str(Path(sys.executable).parent / "orderloom"), "demo", "--no-serve", "--orders", "60"]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    for role, username, password, _display in STAFF:
        row = next((line for line in first.stdout.splitlines() if line.split()[:1] == [role]), None)
        assert row is not None and username in row and password in row, first.stdout
        assert "not in this database" not in row
    for _name, email, password in CUSTOMER_ACCOUNTS:
        assert email in first.stdout and password in first.stdout
    assert "guest lookup: order" in first.stdout

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "reusing it" in second.stdout and "Seeding" not in second.stdout
    assert all(username in second.stdout for _role, username, *_rest in STAFF)


def test_demo_seed_has_teams_approvers_with_totp_a_stuck_approval_and_open_exceptions(demo_app):
    import pyotp

    from devtools.demo.seed import TEAMS, sign_in_sheet
    from shared import business_hours
    from shared.exception_lifecycle import WORKING
    from shared.models import (ApprovalRequest, ApprovalRule, ApprovalStep, ExceptionCase, ExceptionRoute,
                               SecondFactor, Team)
    from shared.services import second_factor
    from shared.services.roles import superior_of

    seed_demo_data(SEEDED_ORDERS, report=lambda _line: None)
    users = {u.username: u for u in db.session.execute(select(StaffUser)).scalars()}

    # Teams: customer_service, warehouse and finance under operations, each with its approver lead and members;
    # the exception routes of migration 0009_exceptions point to them.
    teams = {t.code: t for t in db.session.execute(select(Team)).scalars()}
    assert set(teams) == {code for code, *_rest in TEAMS}
    parent = teams["operations"]
    assert parent.parent_id is None and parent.lead.username == "ops"
    for code, lead_role, member in (("customer_service", "cs_lead", "cs"), ("warehouse", "warehouse_manager",
                                                                           "warehouse"),
                                    ("finance", "finance_director", "finance")):
        team = teams[code]
        assert team.parent_id == parent.id and team.lead.role == lead_role, code
        assert users[member].team_id == team.id and team.lead.team_id == team.id, code
        assert superior_of(team.lead).username == "ops"
    routed = set(db.session.execute(select(ExceptionRoute.team_code)).scalars())
    assert routed <= set(teams)

    # The seeded approval rules are active.
    rules = set(db.session.execute(select(ApprovalRule.code).where(ApprovalRule.active.is_(True))).scalars())
    assert {"order_5k", "order_50k", "transfer"} <= rules

    # Whoever must use TOTP at sign-in has it enrolled, and the sign-in sheet prints a secret that yields codes.
    factors = {u.username: f for u, f in db.session.execute(
        select(StaffUser, SecondFactor).join(SecondFactor, SecondFactor.user_id == StaffUser.id)).all()}
    needing = {name for name, user in users.items() if second_factor.second_factor_required(user)}
    assert {"admin", "auditor", "finance", "cslead", "whmanager", "fd", "ops", "cs"} <= needing
    assert set(factors) == needing and all(f.confirmed for f in factors.values())
    sheet = sign_in_sheet("http://127.0.0.1:5000", "http://127.0.0.1:5001")
    for name in needing:
        row = next(line for line in sheet if line.split()[1:2] == [name])
        secret = row.split()[3]
        assert secret == factors[name].secret and len(pyotp.TOTP(secret).now()) == 6
    assert next(line for line in sheet if line.split()[1:2] == ["warehouse"]).split()[3] == "-"

    # One stuck approval: a pending order of at least 5,000.00 CNY whose step's 2 business hours are over,
    # marked stalled (审批滞留) and escalated to the cs lead's superior.
    now = utc_now()
    [stuck] = db.session.execute(select(ApprovalRequest).where(ApprovalRequest.state == "pending")).scalars().all()
    order = db.session.execute(select(Order).where(Order.order_no == stuck.entity_id)).scalar_one()
    assert (stuck.operation, order.status, order.currency) == ("order.create", "pending_review", "CNY")
    assert order.total >= 5000 and stuck.requester.username == "cs" and stuck.rule.code == "order_5k"
    [step] = db.session.execute(select(ApprovalStep).where(ApprovalStep.request_id == stuck.id)).scalars().all()
    assert step.state == "pending" and step.stalled and step.escalation_level == 1
    assert business_hours.load("default").add(step.activated_at, timedelta(minutes=120)) <= now
    assert [users_by_id.username for users_by_id in (db.session.get(StaffUser, c) for c in step.candidates)] == \
        ["cslead", "ops"]
    escalated = db.session.execute(select(AuditEvent).where(AuditEvent.action == "approval.escalate")).scalar_one()
    assert escalated.after["added"] == [users["ops"].id]

    # Open exceptions with running SLA clocks, routed to their teams: one breached, one near its 80% warning.
    open_ones = db.session.execute(select(ExceptionCase).where(ExceptionCase.status.in_(WORKING))).scalars().all()
    assert len(open_ones) >= 3 and all(row.team_id is not None for row in open_ones)
    breached = [row for row in open_ones if row.breached]
    assert len(breached) == 1 and breached[0].escalated_to_id == users["fd"].id
    near = [row for row in open_ones if not row.breached and row.warned_at is None
            and now < row.warn_at <= now + timedelta(minutes=15)]
    assert len(near) == 1 and near[0].team_id == teams["finance"].id and near[0].status == "in_progress"
    intact, _checked, problem = verify_chain()
    assert intact, problem


def test_demo_seed_has_a_customer_with_returns_at_every_stage_and_their_mail(demo_app):
    from shared.models import AfterSale, CustomerNotification, ReturnPickup
    from shared.services import after_sales

    seed_demo_data(SEEDED_ORDERS, report=lambda _line: None)
    email = CUSTOMER_ACCOUNTS[0][1]
    cases = db.session.execute(select(AfterSale).order_by(AfterSale.id)).scalars().all()
    assert [c.status for c in cases] == ["awaiting_return", "awaiting_return", "inspected", "refunded", "replaced"]
    assert {c.order.customer.email for c in cases} == {email}
    pickups = [after_sales.pickup_of(c) for c in cases]
    assert [p.status for p in pickups] == ["booked", "in_transit", "received", "received", "received"]
    assert all(p.waybill_no and p.courier_name for p in pickups)  # the carrier's callback named the courier
    assert pickups[0].slot_end > utc_now()  # the booked pickup is still to come
    countdown = after_sales.refund_countdown(cases[2])
    assert countdown is not None and not countdown.overdue and 41 <= countdown.hours <= 42
    assert cases[3].refund_amount is not None and after_sales.refund_countdown(cases[3]) is None
    assert db.session.execute(select(func.count()).select_from(ReturnPickup)).scalar() == 5
    # The exchange: its replacement (zero price, channel AS) went out with a waybill from the carrier simulator.
    exchange = cases[4]
    assert exchange.type == "exchange" and exchange.replacement.channel.code == "AS"
    assert (exchange.replacement.status, str(exchange.replacement.total)) == ("shipped", "0.00")
    [parcel] = after_sales.replacement_of(exchange).parcels
    assert parcel.status == "shipped" and parcel.waybill_no
    events = db.session.execute(select(CustomerNotification.event, func.count()).group_by(
        CustomerNotification.event)).all()
    assert {"after_sales_approved": 5, "pickup_booked": 5, "return_received": 3, "refunded": 1}.items() <= dict(
        events).items()


def test_demo_seed_has_suppliers_and_a_purchase_report_with_suggestions_and_a_supplier_without_lead_time(demo_app):
    from shared.models import CustomerNotification, PurchaseRun, PurchaseSuggestion, Supplier
    from shared.services import purchasing

    said = []
    seed_demo_data(SEEDED_ORDERS, report=said.append)
    (run,) = db.session.execute(select(PurchaseRun)).scalars()
    assert run.week == purchasing.iso_week(utc_now())  # the weekly job finds this week's run done
    lines = db.session.execute(select(PurchaseSuggestion)).scalars().all()
    assert sum(1 for line in lines if line.suggested > 0) >= 5
    blocked = db.session.execute(select(Supplier).where(Supplier.lead_time_days.is_(None))).scalar_one()
    assert {line.problem for line in lines if line.supplier_id == blocked.id} == {"no_lead_time"}
    mailed = db.session.execute(select(CustomerNotification).where(
        CustomerNotification.event == "purchase_suggestions")).scalars().all()
    assert len(mailed) >= 2 and blocked.email not in {row.recipient for row in mailed}
    assert any("purchase suggestions" in line for line in said)
    _name, (_type, _sub), content = purchasing.mail_attachment(mailed[0].dedupe_key.split(":", 1)[1])
    assert content.startswith(b"PK")  # an XLSX (a ZIP) made again for the mail


def test_demo_seed_de_weights_a_carrier_on_its_scorecard(demo_app):
    """devtools/demo/carriers.py: the completed orders' parcels are scored by month; SF (late, stalling) ends under
    85, de-weighted with its reason and audited as the system, and allocation then chooses YTO first."""
    from shared.models import AuditEvent, CarrierScore, CarrierStanding, Warehouse
    from shared.models.parcels import ANY
    from shared.services import carrier_scores

    said = []
    seed_demo_data(SEEDED_ORDERS, report=said.append)
    assert any("de-weighted: SF" in line for line in said), said
    standing = db.session.get(CarrierStanding, "SF")
    assert standing.deweighted and standing.reason.startswith("Score ") and "is under 85.00" in standing.reason
    wide = {row.carrier_code: row.score for row in db.session.execute(select(CarrierScore).where(
        CarrierScore.month == standing.month, CarrierScore.origin_province == ANY)).scalars()}
    assert wide["SF"] < 85 <= wide["YTO"], wide
    assert db.session.execute(select(AuditEvent.actor_label).where(
        AuditEvent.action == "carrier.deweight", AuditEvent.entity_id == "SF")).scalars().all() == ["system"]
    hangzhou = db.session.execute(select(Warehouse).where(Warehouse.code == "HZ1")).scalar_one()
    assert hangzhou.carriers == "SF,YTO" and carrier_scores.carriers_for(hangzhou, "北京市") == ("YTO", "SF")


def test_demo_seed_has_an_out_of_stock_offer_accepted_and_one_waiting(demo_app):
    from shared.models import Order, StockOffer
    from shared.services import stock_offers

    seed_demo_data(SEEDED_ORDERS, report=lambda _line: None)
    demo = db.session.execute(select(Order).where(Order.channel_order_id.like("OOS-DEMO-%"))
                              .order_by(Order.channel_order_id)).scalars().all()
    assert [o.status for o in demo] == ["confirmed", "on_hold"]
    assert [line.sku.code for line in demo[0].lines] == ["TEA-102"]  # the substitute the customer took
    assert {o.kind: o.status for o in stock_offers.offers_of(demo[0].id)}["substitute"] == "accepted"
    waiting = stock_offers.offers_of(demo[1].id, open_only=True)
    assert {o.kind for o in waiting} == {"transfer", "pre_order", "substitute"}
    assert stock_offers.shown_to_customer(demo[1])  # the VIP sees them on the customer site
    assert db.session.execute(select(func.count()).select_from(StockOffer)).scalar() == 6
