"""The stock-operations pages of the portal over HTTP: receipts into bins, transfers, returns after inspection, and
stock-takes (blind count sheet, submit, a manager's variance report and decision), by role and in both languages."""
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AuditEvent, Bin, Lot, StockLevel, StockMovement, StockTake, StockTakeLine
from shared.services import catalog, lots, orders, stock, stock_ops
from tests.factories import ADMIN, PASSWORD, order_payload
from tests.portal_client import csrf_token

TODAY = date.today()  # receive() judges expiry by the real date
TEA_IN_HZ1 = 487  # a figure that appears nowhere else on the pages, so its absence says something
MILK_IN_HZ1 = 26


@pytest.fixture
def floor(session):
    """Warehouses HZ1 and SZ1 with bins A-01 and B-02, tea and batch-tracked milk in HZ1, a direct channel."""
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    for code, name, province, city in (("HZ1", "杭州仓", "浙江省", "杭州市"), ("SZ1", "深圳仓", "广东省", "深圳市")):
        catalog.create_warehouse({"code": code, "name": name, "province": province, "city": city}, ADMIN)
        for walk, bin_code in enumerate(("A-01", "B-02"), start=1):
            db.session.add(Bin(warehouse_id=stock.get_warehouse(code).id, code=bin_code, walk_order=walk,
                               capacity=5000))
    catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
    catalog.create_sku({"sku": "MILK", "name": "鲜牛奶", "batch_tracked": True}, ADMIN)
    db.session.flush()
    lots.receive("TEA", "HZ1", "B-02", TEA_IN_HZ1, ADMIN)
    lots.receive("MILK", "HZ1", "A-01", MILK_IN_HZ1, ADMIN, lot_no="M-1", expires_on=TODAY + timedelta(days=30))
    db.session.commit()


def post(client, url: str, data: dict | None = None, page: str = "/stock-ops/", **kwargs):
    return client.post(url, data={"csrf_token": csrf_token(client, page), **(data or {})}, **kwargs)


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def on_hand(sku: str, warehouse: str) -> int:
    db.session.expire_all()  # the requests changed the rows in their own sessions
    return db.session.execute(select(StockLevel.on_hand).where(
        StockLevel.sku_id == stock.get_sku(sku).id,
        StockLevel.warehouse_id == stock.get_warehouse(warehouse).id)).scalar_one_or_none() or 0


def movements(kind: str | None = None) -> list[tuple]:
    query = select(StockMovement.kind, StockMovement.delta, StockMovement.warehouse_id).order_by(StockMovement.id)
    return db.session.execute(query.where(StockMovement.kind == kind) if kind else query).all()


def shipped_order(lines=None, status: str = "shipped") -> str:
    """An order of two teas taken through the lifecycle up to `status`."""
    order = orders.create_order(order_payload(lines=lines or [{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}]),
                                ADMIN)
    path = ["confirmed", "allocated", "picking", "packed", "shipped"]
    start = path.index(order.status) + 1 if order.status in path else 0
    for step in path[start:path.index(status) + 1]:
        orders.transition_order(order, step, ADMIN, reason="test")
    db.session.commit()
    return order.order_no


def counted_take(client) -> StockTake:
    """A stock-take of HZ1 started and counted through the pages: tea 480 (7 short), milk as expected."""
    started = post(client, "/stock-ops/takes", {"warehouse": "HZ1"})
    assert started.status_code == 303
    take = db.session.execute(select(StockTake)).scalar_one()
    assert started.headers["Location"].endswith(f"/stock-ops/takes/{take.id}")
    sheet = f"/stock-ops/takes/{take.id}"
    # One row saved with htmx (the row comes back), one with a plain form post (back to the sheet).
    row = post(client, f"{sheet}/count", {"sku": "TEA", "counted": "480"}, page=sheet, headers={"HX-Request": "true"})
    assert row.status_code == 200 and row.text.lstrip().startswith("<tr") and 'data-testid="line-TEA"' in row.text
    assert 'value="480"' in row.text and "saved" in row.text
    plain = post(client, f"{sheet}/count", {"sku": "MILK", "counted": str(MILK_IN_HZ1)}, page=sheet)
    assert plain.status_code == 303 and "#line-" in plain.headers["Location"]
    return take


# --- every page, both languages ------------------------------------------------------------------------------

def test_pages_render_for_warehouse_and_ops_in_english_and_chinese(client_for, floor):
    take = stock_ops.start_stock_take("HZ1", ADMIN)
    stock_ops.transfer("TEA", "HZ1", "SZ1", 5, "rebalance", ADMIN)
    db.session.commit()
    pages = ["/stock-ops/", "/stock-ops/?kind=receipt&warehouse=HZ1", "/stock-ops/?kind=nonsense&warehouse=<b>",
             "/stock-ops/receipts", "/stock-ops/transfers", "/stock-ops/returns", f"/stock-ops/takes/{take.id}",
             f"/stock-ops/takes/{take.id}/print"]
    for role in ("warehouse", "ops_manager"):
        english, chinese = client_for(role), client_for(role, "zh_CN")
        for url in pages:
            en, zh = english.get(url), chinese.get(url)
            assert en.status_code == 200 and zh.status_code == 200, (role, url, en.status_code, zh.status_code)
        overview = english.get("/stock-ops/").text
        assert "Stock operations" in overview and f'data-testid="take-{take.id}"' in overview
        assert 'data-kind="transfer_out"' in overview and 'data-kind="receipt"' in overview
        zh_overview = chinese.get("/stock-ops/").text
        assert "库存作业" in zh_overview and "Stock operations" not in zh_overview and "调拨出库" in zh_overview
        assert "收货入库" in chinese.get("/stock-ops/receipts").text
        assert "仓间调拨" in chinese.get("/stock-ops/transfers").text
        assert "退货质检" in chinese.get("/stock-ops/returns").text
        assert "盘点单" in chinese.get(f"/stock-ops/takes/{take.id}").text
        assert "盘点表" in chinese.get(f"/stock-ops/takes/{take.id}/print").text
        # Reached from the fulfilment pages and the stock list.
        for url in ("/fulfilment/", "/stock/"):
            assert 'data-testid="stock-ops-link"' in english.get(url).text
    assert english.get("/stock-ops/takes/99999").status_code == 404  # the last client: the ops manager


def test_the_ledger_filters_by_kind_and_warehouse_and_htmx_gets_the_table(client_for, floor):
    stock_ops.transfer("TEA", "HZ1", "SZ1", 5, "rebalance", ADMIN)
    stock.adjust_stock("TEA", "HZ1", -1, "broken", ADMIN)  # an adjustment is not a stock operation of these pages
    db.session.commit()
    client = client_for("warehouse")
    kinds = re.findall(r'data-kind="(\w+)"', client.get("/stock-ops/").text)
    assert sorted(kinds) == ["receipt", "receipt", "transfer_in", "transfer_out"]
    only_in = client.get("/stock-ops/?kind=transfer_in").text
    assert re.findall(r'data-kind="(\w+)"', only_in) == ["transfer_in"]
    szs = client.get("/stock-ops/?warehouse=SZ1").text
    assert re.findall(r'data-kind="(\w+)"', szs) == ["transfer_in"]
    table = client.get("/stock-ops/?kind=receipt", headers={"HX-Request": "true", "HX-Target": "movement-table"})
    assert table.text.lstrip().startswith('<table class="data sortable" data-testid="movements">')
    assert 'class="topbar"' not in table.text and len(re.findall(r'data-kind="receipt"', table.text)) == 2


def test_view_only_roles_see_no_forms_and_get_403_on_every_change(client_for, floor):
    take = stock_ops.start_stock_take("HZ1", ADMIN)
    db.session.commit()
    finance = client_for("finance")
    overview = finance.get("/stock-ops/").text
    assert 'data-testid="start-take"' not in overview and 'data-testid="nav-receipt"' not in overview
    assert finance.get(f"/stock-ops/takes/{take.id}").status_code == 200
    for url in ("/stock-ops/receipts", "/stock-ops/transfers", "/stock-ops/returns"):
        assert finance.get(url).status_code == 403
        assert post(finance, url, {"sku": "TEA", "warehouse": "HZ1", "quantity": "1"}).status_code == 403
    assert post(finance, "/stock-ops/takes", {"warehouse": "SZ1"}).status_code == 403
    assert post(finance, f"/stock-ops/takes/{take.id}/count", {"sku": "TEA", "counted": "1"}).status_code == 403
    assert count(StockTake) == 1 and count(StockTakeLine, StockTakeLine.counted.is_not(None)) == 0
    assert len(movements()) == 2


# --- receipts, transfers, returns ----------------------------------------------------------------------------

def test_a_receipt_through_the_form_makes_a_batch_and_a_receipt_movement(client_for, floor):
    client = client_for("warehouse")
    form = client.get("/stock-ops/receipts").text
    assert '<option value="B-02">' in form and '<option value="MILK">' in form  # typing suggestions
    response = post(client, "/stock-ops/receipts", {
        "sku": "MILK", "warehouse": "SZ1", "bin": "A-01", "quantity": "40", "lot_no": "M-2",
        "produced_on": (TODAY - timedelta(days=2)).isoformat(), "expires_on": (TODAY + timedelta(days=60)).isoformat()},
        page="/stock-ops/receipts")
    assert response.status_code == 303 and response.headers["Location"].endswith("/stock-ops/receipts")
    assert "Received 40 × MILK into SZ1, bin A-01." in client.get(response.headers["Location"]).text
    lot = db.session.execute(select(Lot).where(Lot.lot_no == "M-2")).scalar_one()
    assert (lot.quantity, lot.bin.code, lot.produced_on, lot.expires_on) == (
        40, "A-01", TODAY - timedelta(days=2), TODAY + timedelta(days=60))
    assert movements("receipt")[-1] == ("receipt", 40, stock.get_warehouse("SZ1").id)
    assert on_hand("MILK", "SZ1") == 40
    assert count(AuditEvent, AuditEvent.action == "stock.adjust", AuditEvent.entity_id == "MILK@SZ1") == 1


def test_a_transfer_through_the_form_writes_both_movements(client_for, floor):
    from shared.actors import Actor
    from shared.models import ApprovalRequest
    from shared.services import approvals, staff

    approvers = [staff.create_user(username, PASSWORD, role, ADMIN)
                 for username, role in (("wm1", "warehouse_manager"), ("cs1", "customer_service"))]
    db.session.commit()
    client = client_for("ops_manager")
    response = post(client, "/stock-ops/transfers", {"sku": "TEA", "from_warehouse": "HZ1", "to_warehouse": "SZ1",
                                                     "quantity": "87", "reason": "双十一备货"},
                    page="/stock-ops/transfers")
    assert response.status_code == 303
    # A cross-warehouse transfer needs the warehouse manager and customer service (seeded rule): nothing moves yet.
    assert "Sent for approval" in client.get(response.headers["Location"]).text
    assert movements("transfer_out") == []
    held = db.session.execute(select(ApprovalRequest)).scalar_one()
    for approver in approvers:
        approvals.decide(held, approver, "approve", None, Actor.for_staff(approver))
    db.session.commit()
    hz1, sz1 = stock.get_warehouse("HZ1").id, stock.get_warehouse("SZ1").id
    assert movements("transfer_out") == [("transfer_out", -87, hz1)]
    assert movements("transfer_in") == [("transfer_in", 87, sz1)]
    assert (on_hand("TEA", "HZ1"), on_hand("TEA", "SZ1")) == (TEA_IN_HZ1 - 87, 87)
    assert "双十一备货" in client.get("/stock-ops/?kind=transfer_in").text


def test_a_return_through_the_form_restocks_only_what_passed_inspection(client_for, floor):
    order_no = shipped_order()
    client = client_for("warehouse")
    before = on_hand("TEA", "HZ1")
    passed = post(client, "/stock-ops/returns", {"order_no": order_no.lower(), "sku": "TEA", "warehouse": "HZ1",
                                                 "quantity": "1", "passed_inspection": "yes"}, page="/stock-ops/returns")
    assert passed.status_code == 303
    assert f"Return of {order_no}: 1 × TEA back on the shelf in HZ1." in client.get(passed.headers["Location"]).text
    returned = db.session.execute(select(StockMovement).where(StockMovement.kind == "return")).scalar_one()
    assert (returned.delta, returned.order_id) == (1, orders.get_order(order_no).id)
    assert on_hand("TEA", "HZ1") == before + 1
    failed = post(client, "/stock-ops/returns", {"order_no": order_no, "sku": "TEA", "warehouse": "HZ1",
                                                 "quantity": "1", "passed_inspection": "no",
                                                 "note": "外包装破损，报废"}, page="/stock-ops/returns")
    assert failed.status_code == 303 and "written off" in client.get(failed.headers["Location"]).text
    assert len(movements("return")) == 1 and on_hand("TEA", "HZ1") == before + 1
    assert count(AuditEvent, AuditEvent.action == "stock.return_inspected") == 2
    assert order_no in client.get("/stock-ops/?kind=return").text  # the ledger links the order


BAD_INPUT = [
    ("/stock-ops/receipts", {"sku": "TEA", "warehouse": "HZ1", "bin": "A-01", "quantity": "-5"}, "quantity",
     "at least 1"),
    ("/stock-ops/receipts", {"sku": "NOPE", "warehouse": "HZ1", "bin": "A-01", "quantity": "5"}, "sku",
     "Unknown SKU"),
    ("/stock-ops/receipts", {"sku": "TEA", "warehouse": "HZ1", "bin": "Z-99", "quantity": "5"}, "bin", "No bin Z-99"),
    ("/stock-ops/receipts", {"sku": "MILK", "warehouse": "HZ1", "bin": "A-01", "quantity": "5", "lot_no": "OLD",
                             "expires_on": (TODAY - timedelta(days=1)).isoformat()}, "expires_on", "expired on"),
    ("/stock-ops/receipts", {"sku": "MILK", "warehouse": "HZ1", "bin": "A-01", "quantity": "5"}, "lot_no",
     "batch-tracked"),
    ("/stock-ops/transfers", {"sku": "TEA", "from_warehouse": "HZ1", "to_warehouse": "HZ1", "quantity": "5",
                              "reason": "x"}, "to_warehouse", "two different warehouses"),
    ("/stock-ops/transfers", {"sku": "NOPE", "from_warehouse": "HZ1", "to_warehouse": "SZ1", "quantity": "5",
                              "reason": "x"}, "sku", "Unknown SKU"),
    ("/stock-ops/transfers", {"sku": "TEA", "from_warehouse": "HZ1", "to_warehouse": "SZ1", "quantity": "-3",
                              "reason": "x"}, "quantity", "at least 1"),
    ("/stock-ops/transfers", {"sku": "TEA", "from_warehouse": "SZ1", "to_warehouse": "HZ1", "quantity": "5",
                              "reason": "x"}, "quantity", "cannot go below"),
    ("/stock-ops/returns", {"sku": "TEA", "warehouse": "HZ1", "quantity": "-1", "passed_inspection": "yes"},
     "quantity", "at least 1"),
    ("/stock-ops/returns", {"sku": "TEA", "warehouse": "HZ1", "quantity": "1", "passed_inspection": "no"}, "note",
     "note is required"),
]


@pytest.mark.parametrize("url, data, field, message", BAD_INPUT,
                         ids=[f"{case[0].rsplit('/', 1)[1]}-{case[2]}-{case[3]}" for case in BAD_INPUT])
def test_bad_input_re_renders_with_the_error_and_changes_nothing(client_for, floor, url, data, field, message):
    if url.endswith("/returns"):
        data = {"order_no": shipped_order(), **data}
    client = client_for("warehouse")
    ledger, lots, audited = movements(), count(Lot), count(AuditEvent)
    response = post(client, url, data, page=url)
    assert response.status_code == 422, response.text[:500]
    errors = re.findall(rf'<p class="error small" data-field="{field}">([^<]*)</p>', response.text)
    assert errors and message in errors[0], (field, errors, re.findall(r'class="error[^>]*>([^<]*)', response.text))
    assert "Nothing was saved." in response.text
    if data.get("sku") == "NOPE":
        assert 'value="NOPE"' in response.text  # what was typed stays in the form
    assert movements() == ledger and count(Lot) == lots and count(AuditEvent) == audited


def test_a_return_for_an_order_that_has_not_shipped_is_refused(client_for, floor):
    order_no = shipped_order(status="confirmed")
    client = client_for("warehouse")
    ledger = movements()
    response = post(client, "/stock-ops/returns", {"order_no": order_no, "sku": "TEA", "warehouse": "HZ1",
                                                   "quantity": "1", "passed_inspection": "yes"}, page="/stock-ops/returns")
    assert response.status_code == 422
    assert 'data-testid="return-errors"' in response.text and "only shipped orders come back" in response.text
    assert movements() == ledger and count(AuditEvent, AuditEvent.action == "stock.return_inspected") == 0
    mistyped = post(client, "/stock-ops/returns", {"order_no": order_no[:-1] + "?", "sku": "TEA", "warehouse": "HZ1",
                                                   "quantity": "1", "passed_inspection": "yes"}, page="/stock-ops/returns")
    assert mistyped.status_code == 422 and 'data-field="order_no"' in mistyped.text


def test_markup_typed_into_the_forms_is_shown_escaped(client_for, floor):
    from shared.services import approvals

    approvals.save_rule(ADMIN, approvals.rule_by_code("transfer"), active=False)  # the transfer moves at once: its reason shows
    db.session.commit()
    client = client_for("warehouse")
    markup = '<script>alert("x")</script>'
    post(client, "/stock-ops/transfers", {"sku": "TEA", "from_warehouse": "HZ1", "to_warehouse": "SZ1",
                                          "quantity": "1", "reason": markup}, page="/stock-ops/transfers")
    refused = post(client, "/stock-ops/receipts", {"sku": markup, "warehouse": "HZ1", "bin": "A-01", "quantity": "1"},
                   page="/stock-ops/receipts")
    for page in (client.get("/stock-ops/").text, refused.text):
        assert "<script>alert" not in page and "&lt;script&gt;" in page


# --- stock-takes ---------------------------------------------------------------------------------------------

def test_the_count_is_blind_on_the_sheet_and_on_the_printout(client_for, floor):
    client = client_for("warehouse")
    take = counted_take(client)
    sheet = client.get(f"/stock-ops/takes/{take.id}").text
    assert 'data-testid="variance-report"' not in sheet and "Expected" not in sheet
    rows = re.findall(r'data-testid="line-(\w+)"', sheet)
    assert rows == ["MILK", "TEA"]  # in walking order: milk lies in A-01, tea in B-02
    printable = client.get(f"/stock-ops/takes/{take.id}/print").text
    assert 'class="topbar"' not in printable and "Ctrl+P" in printable
    assert "<strong>A-01</strong>" in printable and "<strong>B-02</strong>" in printable
    for secret in (str(TEA_IN_HZ1), "Expected", "Variance"):
        assert secret not in printable, secret
    assert "480" not in printable  # nor what was counted: the sheet is for counting
    ops_print = client_for("ops_manager").get(f"/stock-ops/takes/{take.id}/print").text
    assert str(TEA_IN_HZ1) not in ops_print and "Expected" not in ops_print


def test_a_bad_count_is_refused_on_its_row(client_for, floor):
    client = client_for("warehouse")
    take = counted_take(client)
    sheet = f"/stock-ops/takes/{take.id}"
    negative = post(client, f"{sheet}/count", {"sku": "TEA", "counted": "-1"}, page=sheet,
                    headers={"HX-Request": "true"})
    assert negative.status_code == 200 and 'data-testid="count-error-TEA"' in negative.text
    plain = post(client, f"{sheet}/count", {"sku": "TEA", "counted": "-1"}, page=sheet)
    assert plain.status_code == 422 and 'data-testid="count-error-TEA"' in plain.text
    unknown = post(client, f"{sheet}/count", {"sku": "NOPE", "counted": "3"}, page=sheet)
    assert unknown.status_code == 422 and 'data-testid="found-errors"' in unknown.text  # beside the found-SKU form
    assert re.search(r'data-field="sku">Unknown SKU', unknown.text)
    db.session.expire_all()
    assert {line.sku.code: line.counted for line in take.lines} == {"TEA": 480, "MILK": MILK_IN_HZ1}


def test_warehouse_counts_and_submits_but_may_not_approve(client_for, floor):
    client = client_for("warehouse")
    take = counted_take(client)
    sheet = f"/stock-ops/takes/{take.id}"
    submitted = post(client, f"{sheet}/submit", page=sheet)
    assert submitted.status_code == 303
    page = client.get(sheet).text
    assert "submitted for a manager" in page and 'data-testid="waiting"' in page
    assert 'data-testid="approve"' not in page and 'data-testid="counted-TEA"' not in page  # no more counting
    for action in ("approve", "reject"):
        assert post(client, f"{sheet}/{action}", {"note": "looks fine"}, page=sheet).status_code == 403
    db.session.expire_all()
    assert take.status == "submitted" and take.decided_by is None
    assert movements("stocktake") == [] and on_hand("TEA", "HZ1") == TEA_IN_HZ1
    # Counting after submission is refused.
    late = post(client, f"{sheet}/count", {"sku": "TEA", "counted": "1"}, page=sheet)
    assert late.status_code == 422 and 'data-testid="count-error-TEA"' in late.text
    assert "is at Waiting for approval (this needs: Counting)" in late.text
    found = post(client, f"{sheet}/count", {"sku": "NEW", "counted": "1"}, page=sheet)
    assert found.status_code == 422 and 'data-testid="take-refused"' in found.text


def test_submitting_before_every_sku_is_counted_is_refused(client_for, floor):
    client = client_for("warehouse")
    post(client, "/stock-ops/takes", {"warehouse": "HZ1"})
    take = db.session.execute(select(StockTake)).scalar_one()
    sheet = f"/stock-ops/takes/{take.id}"
    post(client, f"{sheet}/count", {"sku": "TEA", "counted": "480"}, page=sheet)
    refused = post(client, f"{sheet}/submit", page=sheet, follow_redirects=True)
    assert "Not submitted: Not counted yet: MILK" in refused.text
    db.session.expire_all()
    assert take.status == "counting"
    again = post(client, "/stock-ops/takes", {"warehouse": "HZ1"}, follow_redirects=True)
    assert "already has a stock-take in progress" in again.text and count(StockTake) == 1


def test_the_manager_who_did_not_count_approves_and_the_ledger_shows_the_variances(client_for, floor):
    counter = client_for("warehouse")
    take = counted_take(counter)
    sheet = f"/stock-ops/takes/{take.id}"
    post(counter, f"{sheet}/count", {"sku": "MILK", "counted": str(MILK_IN_HZ1 + 4)}, page=sheet)  # a recount
    post(counter, f"{sheet}/submit", page=sheet)
    manager = client_for("ops_manager")
    report = manager.get(sheet).text
    assert 'data-testid="variance-report"' in report and 'data-testid="approve"' in report
    assert re.search(rf'data-testid="variance-TEA" class="low" data-variance="-7">.*?<td class="num">{TEA_IN_HZ1}</td>'
                     r'<td class="num">480</td>', report, re.S)
    assert 'data-testid="variance-MILK" class="low" data-variance="4"' in report
    assert "net change if approved: -3" in report
    approved = post(manager, f"{sheet}/approve", page=sheet)
    assert approved.status_code == 303
    assert "approved" in manager.get(approved.headers["Location"]).text
    db.session.expire_all()
    assert (take.status, take.decided_by) == ("approved", "ops_manager_en")
    hz1 = stock.get_warehouse("HZ1").id
    assert sorted(movements("stocktake")) == [("stocktake", -7, hz1), ("stocktake", 4, hz1)]
    assert (on_hand("TEA", "HZ1"), on_hand("MILK", "HZ1")) == (480, MILK_IN_HZ1 + 4)
    ledger = manager.get("/stock-ops/?kind=stocktake").text
    assert len(re.findall(r'data-kind="stocktake"', ledger)) == 2 and f"stock-take {take.id}: counted 480" in ledger
    assert count(AuditEvent, AuditEvent.action == "stock_take.approved") == 1
    # Decided once: a second approval changes nothing.
    again = post(manager, f"{sheet}/approve", page=sheet)
    assert again.status_code == 422 and "is at Approved (this needs: Waiting for approval)" in again.text
    assert len(movements("stocktake")) == 2


def test_the_manager_who_started_the_count_may_not_approve_it(client_for, floor):
    manager = client_for("ops_manager")
    take = counted_take(manager)
    sheet = f"/stock-ops/takes/{take.id}"
    post(manager, f"{sheet}/submit", page=sheet)
    page = manager.get(sheet).text
    assert 'data-testid="own-count"' in page and 'data-testid="approve"' not in page
    refused = post(manager, f"{sheet}/approve", page=sheet)
    assert refused.status_code == 422 and 'data-testid="take-refused"' in refused.text
    assert "The person who counted may not approve" in refused.text
    db.session.expire_all()
    assert take.status == "submitted" and movements("stocktake") == []


def test_a_rejection_needs_a_note_and_adjusts_nothing(client_for, floor):
    counter = client_for("warehouse")
    take = counted_take(counter)
    sheet = f"/stock-ops/takes/{take.id}"
    post(counter, f"{sheet}/submit", page=sheet)
    manager = client_for("ops_manager")
    refused = post(manager, f"{sheet}/reject", {"note": "   "}, page=sheet)
    assert refused.status_code == 422 and 'data-field="note">note is required' in refused.text
    db.session.expire_all()
    assert take.status == "submitted"
    rejected = post(manager, f"{sheet}/reject", {"note": "B 区漏点，请重新盘点"}, page=sheet)
    assert rejected.status_code == 303
    page = manager.get(sheet).text
    assert "rejected: nothing was adjusted" in page and "B 区漏点，请重新盘点" in page
    db.session.expire_all()
    assert (take.status, take.note) == ("rejected", "B 区漏点，请重新盘点")
    assert movements("stocktake") == [] and on_hand("TEA", "HZ1") == TEA_IN_HZ1
    # A rejected count is closed: a new stock-take may start.
    assert post(counter, "/stock-ops/takes", {"warehouse": "HZ1"}).status_code == 303 and count(StockTake) == 2
