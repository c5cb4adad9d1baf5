"""Invoice figures (shared/finance/invoice_math.py): tax split per line, discount and shipping lines, splits that
always sum to the order, 价税合计 in capitals."""
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.finance.invoice_math import (
    InvoiceMathError, SourceLine, SplitRules, TaxData, allocate, capitals, invoice_parts, invoiced_gross, split_tax)

GOODS13 = TaxData(code="1090511020000000000", short_name="日用杂品", rate=13, unit="件")
FOOD9 = TaxData(code="1030107020000000000", short_name="谷物", rate=9, unit="袋")
EXEMPT = TaxData(code="1010101020000000000", short_name="蔬菜", rate=0, tax_free="exempt", unit="千克")
UNTAXED = TaxData(code="6000000000000000000", short_name="预付卡销售", rate=0, tax_free="untaxed", unit="张")
SHIP = TaxData(code="3010102020100000000", short_name="运输服务", rate=9)


def line(gross, quantity=1, tax=GOODS13, name="水杯"):
    return SourceLine(name=name, quantity=quantity, gross=D(gross), tax=tax, ref=name)


@pytest.mark.parametrize("amount, words", [
    ("5002.00", "伍仟零贰圆整"), ("6007.14", "陆仟零柒圆壹角肆分"), ("1409.50", "壹仟肆佰零玖圆伍角"),
    ("0.05", "伍分"), ("1000001.01", "壹佰万零壹圆零壹分"), ("10.00", "壹拾圆整"), ("100000.00", "壹拾万圆整"),
    ("0.10", "壹角"), ("101.01", "壹佰零壹圆零壹分"), ("0.00", "零圆整"), ("1.00", "壹圆整"),
    ("100000001.00", "壹亿零壹圆整"), ("100010000.00", "壹亿零壹万圆整"), ("10010.00", "壹万零壹拾圆整"),
    ("200100.00", "贰拾万零壹佰圆整"), ("11.11", "壹拾壹圆壹角壹分"), ("1000000000.00", "壹拾亿圆整"),
    ("-113.00", "负壹佰壹拾叁圆整"), ("9999.99", "玖仟玖佰玖拾玖圆玖角玖分"),
])
def test_capitals(amount, words):
    assert capitals(D(amount)) == words


@pytest.mark.parametrize("gross, rate, amount, tax", [
    ("113.00", 13, "100.00", "13.00"), ("122.00", 13, "107.96", "14.04"), ("109.00", 9, "100.00", "9.00"),
    ("0.01", 13, "0.01", "0.00"), ("-122.00", 13, "-107.96", "-14.04"), ("100.00", 0, "100.00", "0.00"),
])
def test_tax_split_per_line(gross, rate, amount, tax):
    assert split_tax(D(gross), TaxData("1", "x", rate)) == (D(amount).quantize(D("0.01")), D(tax))


def test_rounding_is_to_the_nearest_cent():
    # 0.01 at 9%: 0.00917.. → 0.01 and no tax; 2.26 at 13%: 2.0000.. → 2.00 + 0.26
    assert split_tax(D("0.01"), TaxData("1", "x", 9)) == (D("0.01"), D("0.00"))
    assert split_tax(D("2.26"), TaxData("1", "x", 13)) == (D("2.00"), D("0.26"))
    assert split_tax(D("10.00"), TaxData("1", "x", 6)) == (D("9.43"), D("0.57"))  # 9.4339..


def test_tax_free_lines_print_their_label_and_no_tax():
    parts = invoice_parts([line("50.00", tax=EXEMPT), line("20.00", tax=UNTAXED)], D("0"), D("0"), SHIP)
    (part,) = parts
    assert [ln.rate_label for ln in part.lines] == ["免税", "不征税"]
    assert part.total_tax == D("0.00") and part.total_amount == D("70.00")


def test_names_units_and_unit_prices():
    (part,) = invoice_parts([line("339.00", quantity=3)], D("0"), D("0"), SHIP)
    (goods,) = part.lines
    assert goods.name == "*日用杂品*水杯" and goods.unit == "件" and goods.quantity == 3
    assert goods.amount == D("300.00") and goods.unit_price == D("100.00") and goods.tax == D("39.00")
    (part,) = invoice_parts([line("100.00", quantity=7)], D("0"), D("0"), SHIP)
    assert part.lines[0].unit_price == D("12.64285714")  # 88.50 / 7 to at most 8 decimals


def test_discount_lines_follow_their_line_with_same_name_and_rate():
    (part,) = invoice_parts([line("113.00", name="水杯"), line("109.00", tax=FOOD9, name="大米")], D("22.20"),
                            D("0"), SHIP)
    kinds = [(ln.kind, ln.name, ln.rate) for ln in part.lines]
    assert kinds == [("goods", "*日用杂品*水杯", 13), ("discount", "*日用杂品*水杯", 13),
                     ("goods", "*谷物*大米", 9), ("discount", "*谷物*大米", 9)]
    assert part.lines[1].gross == D("-11.30") and part.lines[3].gross == D("-10.90")
    assert part.lines[1].quantity is None and part.lines[1].unit_price is None
    assert part.lines[1].amount == D("-10.00") and part.lines[1].tax == D("-1.30")
    assert part.total_gross == D("199.80")


def test_discount_allocation_largest_remainder_cents_exact():
    assert allocate(D("0.10"), [D("1.00")] * 3) == [D("0.04"), D("0.03"), D("0.03")]
    assert allocate(D("1.00"), [D("3.00"), D("0.00"), D("1.00")]) == [D("0.75"), D("0.00"), D("0.25")]
    assert sum(allocate(D("33.33"), [D("10.01"), D("20.02"), D("0.03")])) == D("33.33")


def test_shipping_is_its_own_line_with_its_own_code():
    (part,) = invoice_parts([line("113.00")], D("0"), D("10.90"), SHIP)
    shipping = part.lines[-1]
    assert shipping.kind == "shipping" and shipping.name == "*运输服务*运费"
    assert shipping.tax_code == SHIP.code and shipping.rate == 9 and shipping.amount == D("10.00")
    assert part.total_gross == D("123.90")


def test_gift_lines_at_zero_are_left_off():
    (part,) = invoice_parts([line("113.00"), line("0.00", name="赠品")], D("0"), D("0"), SHIP)
    assert [ln.name for ln in part.lines] == ["*日用杂品*水杯"]


def test_over_the_limit_splits_by_quantity():
    parts = invoice_parts([line("25000.00", quantity=5)], D("0"), D("0"), SHIP)
    assert [p.total_gross for p in parts] == [D("10000.00"), D("10000.00"), D("5000.00")]
    assert [p.lines[0].quantity for p in parts] == [2, 2, 1]


def test_one_unit_over_the_limit_splits_by_amount():
    parts = invoice_parts([line("25000.01", quantity=1)], D("0"), D("0"), SHIP)
    assert [p.total_gross for p in parts] == [D("8333.34"), D("8333.34"), D("8333.33")]
    assert all(p.lines[0].quantity is None and p.lines[0].unit_price is None for p in parts)
    assert sum(p.total_gross for p in parts) == D("25000.01")


def test_line_and_discount_never_separated_and_limit_held():
    lines = [line("6000.00", name=f"商品{i}") for i in range(4)]
    parts = invoice_parts(lines, D("400.00"), D("0"), SHIP)
    for part in parts:
        assert part.total_gross <= D("10000.00")
        for index, ln in enumerate(part.lines):
            if ln.kind == "discount":
                assert part.lines[index - 1].kind == "goods" and part.lines[index - 1].name == ln.name
    assert sum(p.total_gross for p in parts) == D("23600.00")


def test_split_by_rate_and_max_lines():
    lines = [line("113.00"), line("109.00", tax=FOOD9), line("226.00")]
    parts = invoice_parts(lines, D("0"), D("10.90"), SHIP, SplitRules(split_by_rate=True))
    assert [{ln.rate for ln in p.lines} for p in parts] == [{13}, {9}]
    parts = invoice_parts([line("1.00", name=str(i)) for i in range(5)], D("0"), D("0"), SHIP,
                          SplitRules(max_lines=2))
    assert [len(p.lines) for p in parts] == [2, 2, 1]


def test_a_tiny_limit_still_sums_exactly():
    parts = invoice_parts([line("1.00", quantity=3), line("0.50", tax=FOOD9)], D("0.13"), D("0.20"), SHIP,
                          SplitRules(amount_limit=D("0.07")))
    assert sum(p.total_gross for p in parts) == D("1.57")
    assert all(p.total_gross <= D("0.07") for p in parts)


def test_bad_input_is_refused():
    with pytest.raises(InvoiceMathError) as error:
        invoice_parts([line("10.00")], D("10.01"), D("0"), SHIP)
    assert error.value.code == "discount_over_goods"
    with pytest.raises(InvoiceMathError):
        invoice_parts([line("10.00")], D("0"), D("0"), SHIP, SplitRules(max_lines=1))
    with pytest.raises(InvoiceMathError) as error:
        invoice_parts([], D("0"), D("0"), SHIP)
    assert error.value.code == "nothing_to_invoice"


money = st.integers(min_value=0, max_value=2_000_000).map(lambda c: D(c) / 100)
taxes = st.sampled_from([GOODS13, FOOD9, EXEMPT, UNTAXED, TaxData("1", "软件", 6, unit="套")])
source = st.builds(lambda g, q, t, i: SourceLine(name=f"商品{i}", quantity=q, gross=g, tax=t),
                   money, st.integers(1, 40), taxes, st.integers(0, 9))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(source, min_size=1, max_size=12), discount_share=st.floats(0, 1),
       shipping=st.integers(0, 500_000).map(lambda c: D(c) / 100),
       limit=st.sampled_from([D("10000.00"), D("999.99"), D("150.00")]),
       max_lines=st.integers(2, 8), by_rate=st.booleans())
def test_parts_always_sum_to_the_order(lines, discount_share, shipping, limit, max_lines, by_rate):
    goods = sum((ln.gross for ln in lines), D("0"))
    discount = (goods * D(str(discount_share))).quantize(D("0.01"), rounding="ROUND_FLOOR")
    if goods - discount + shipping == 0:
        return
    parts = invoice_parts(lines, discount, shipping, SHIP, SplitRules(limit, max_lines, by_rate))
    assert sum(p.total_gross for p in parts) == invoiced_gross(lines, discount, shipping)
    for part in parts:
        assert part.lines and len(part.lines) <= max_lines
        assert part.total_gross <= limit
        assert part.total_amount + part.total_tax == part.total_gross
        if by_rate:
            assert len({(ln.rate, ln.tax_free) for ln in part.lines}) == 1
        for index, ln in enumerate(part.lines):
            assert ln.amount + ln.tax == ln.gross
            if ln.kind == "discount":
                previous = part.lines[index - 1]
                assert previous.kind == "goods" and (previous.name, previous.rate) == (ln.name, ln.rate)
                assert -ln.gross <= previous.gross
    # every discount cent is on an invoice
    assert -sum(ln.gross for p in parts for ln in p.lines if ln.kind == "discount") == discount


@settings(max_examples=300, deadline=None)
@given(total=st.integers(0, 10**9).map(lambda c: D(c) / 100),
       weights=st.lists(st.integers(0, 10**7).map(lambda c: D(c) / 100), min_size=1, max_size=20))
def test_allocation_sums_exactly_and_never_over_a_weight(total, weights):
    whole = sum(weights)
    if whole == 0:
        return
    total = min(total, whole)
    shares = allocate(total, weights)
    assert sum(shares) == total
    assert all(D("0") <= share <= weight for share, weight in zip(shares, weights))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12))
def test_capitals_well_formed(cents):
    words = capitals(D(cents) / 100)
    assert "零零" not in words and not words.startswith("零") or words == "零圆整"
    assert words.endswith(("整", "角", "分"))
