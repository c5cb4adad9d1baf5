"""The stock-take's bulk count sheet: one service call saves every figure or none (each wrong one named by its SKU),
and the page posts the whole sheet at once, keeps every typed figure after a refusal and shows the error beside its
line (issue 14 item 4)."""
import re

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AuditEvent, StockTake
from shared.services import stock_ops
from shared.services.errors import Conflict
from tests.factories import ADMIN
from tests.portal_client import csrf_token
from tests.test_portal_stock_ops import MILK_IN_HZ1, TEA_IN_HZ1, floor  # noqa: F401  (fixture)


def counts_of(take_id: int) -> dict:
    db.session.expire_all()
    return {line.sku.code: line.counted for line in db.session.get(StockTake, take_id).lines}


def test_record_counts_saves_every_figure_in_one_call(floor):
    take = stock_ops.start_stock_take("HZ1", ADMIN)
    db.session.commit()
    saved = stock_ops.record_counts(take.id, {"TEA": 480, "MILK": MILK_IN_HZ1}, ADMIN)
    db.session.commit()
    assert sorted(line.sku.code for line in saved) == ["MILK", "TEA"]
    assert counts_of(take.id) == {"TEA": 480, "MILK": MILK_IN_HZ1}
    lines = {line.sku.code: line for line in db.session.get(StockTake, take.id).lines}
    assert (lines["TEA"].expected, lines["TEA"].variance) == (TEA_IN_HZ1, 480 - TEA_IN_HZ1)
    assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "stock_take.count")).scalar_one() == 2  # each count audited, as record_count does


def test_one_wrong_figure_saves_nothing_and_each_is_named(floor):
    take = stock_ops.start_stock_take("HZ1", ADMIN)
    db.session.commit()
    with pytest.raises(stock_ops.CountsRefused) as refused:
        stock_ops.record_counts(take.id, {"TEA": 480, "MILK": -2, "NOPE": 1, "MILK2": "x"}, ADMIN)
    db.session.rollback()
    assert set(refused.value.errors) == {"MILK", "NOPE", "MILK2"}
    assert "must be a whole number, 0 or more" in refused.value.errors["MILK"]
    assert "Unknown SKU" in refused.value.errors["NOPE"]
    assert refused.value.status == 422 and refused.value.field == "counts"
    assert counts_of(take.id) == {"TEA": None, "MILK": None}


def test_a_submitted_sheet_takes_no_bulk_counts(floor):
    take = stock_ops.start_stock_take("HZ1", ADMIN)
    stock_ops.record_counts(take.id, {"TEA": 1, "MILK": 1}, ADMIN)
    stock_ops.submit(take.id, ADMIN)
    db.session.commit()
    with pytest.raises(Conflict):
        stock_ops.record_counts(take.id, {"TEA": 2}, ADMIN)


def _sheet(client):
    client.post("/stock-ops/takes", data={"warehouse": "HZ1", "csrf_token": csrf_token(client, "/stock-ops/")})
    take = db.session.execute(select(StockTake)).scalar_one()
    url = f"/stock-ops/takes/{take.id}"
    page = client.get(url).text
    boxes = dict((sku, name) for name, sku in re.findall(
        r'<input[^>]*name="(count-\d+)"[^>]*data-sku="(\w+)"', page))
    return take, url, page, boxes


def test_the_sheet_is_one_form_saved_in_one_request(client_for, floor):
    client = client_for("warehouse")
    take, url, page, boxes = _sheet(client)
    assert 'id="count-sheet-form"' in page and set(boxes) == {"TEA", "MILK"}
    assert 'data-testid="count-scan"' in page and 'data-testid="total-variance"' not in page  # the count stays blind
    assert "data-expected" not in page
    submit = re.search(r'<button[^>]*data-testid="submit-take"[^>]*>', page).group(0)
    assert " disabled" in submit and 'title="2 lines are not counted yet: save their counts first."' in submit
    saved = client.post(f"{url}/counts", data={"csrf_token": csrf_token(client, url), boxes["TEA"]: "480",
                                               boxes["MILK"]: str(MILK_IN_HZ1)}, follow_redirects=True)
    assert saved.status_code == 200 and "2 counts saved." in saved.text
    assert " disabled" not in re.search(r'<button[^>]*data-testid="submit-take"[^>]*>', saved.text).group(0)
    assert counts_of(take.id) == {"TEA": 480, "MILK": MILK_IN_HZ1}


def test_a_wrong_figure_is_shown_on_its_line_and_nothing_is_saved(client_for, floor):
    client = client_for("warehouse")
    take, url, _page, boxes = _sheet(client)
    refused = client.post(f"{url}/counts", data={"csrf_token": csrf_token(client, url), boxes["TEA"]: "480",
                                                 boxes["MILK"]: "-3"})
    assert refused.status_code == 422
    assert 'data-testid="count-error-MILK"' in refused.text and 'data-testid="count-error-TEA"' not in refused.text
    assert 'data-testid="take-refused"' in refused.text and "nothing was saved" in refused.text
    kept = {sku: re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', refused.text).group(1)
            for sku, name in boxes.items()}
    assert kept == {"TEA": "480", "MILK": "-3"}  # both figures as typed
    assert counts_of(take.id) == {"TEA": None, "MILK": None}
    nothing = client.post(f"{url}/counts", data={"csrf_token": csrf_token(client, url)}, follow_redirects=True)
    assert "Nothing to save: no figure was entered." in nothing.text


def test_an_approver_sees_the_variance_total_live(client_for, floor):
    take = stock_ops.start_stock_take("HZ1", ADMIN)
    db.session.commit()
    page = client_for("ops_manager").get(f"/stock-ops/takes/{take.id}").text
    assert 'data-testid="total-variance"' in page and f'data-expected="{TEA_IN_HZ1}"' in page
