"""The figures of an invoice, computed from an order: pure functions, no database (issue 12, item 3).

Prices are tax-inclusive. Every invoice line is split on its own: amount = round-half-up(gross / (1 + r), 2) and
tax = gross − amount (113.00 at 13% → 100.00 + 13.00; 122.00 → 107.96 + 14.04).

The rules this module keeps, in the merchant's words:

- Goods lines come from the order's lines, named `*类别简称*商品名`; a line with a gross of 0.00 (a free gift) is
  left off, since a 数电票 line needs an amount.
- The order's discount (an order-level figure) is allocated across the goods lines in proportion to their gross,
  in whole cents, by the largest-remainder rule: every line gets floor(discount × gross / goods) cents, and the
  cents left over go one each to the lines with the largest remainders (ties: the earlier line). The shares sum
  exactly to the discount and no share exceeds its line. Each share is a discount line (折扣行, negative) directly
  after its line, with the same name, code and rate.
- Shipping is its own line with its own code and rate (config INVOICE_SHIPPING_TAX_*), never discounted.
- The invoiced gross is goods − discount + shipping. A line and its discount line are never separated.
- Splitting: by rate first when the provider wants one rate per invoice (INVOICE_SPLIT_BY_RATE), then lines are
  filled into invoices in order (a new invoice starts when the next line would pass INVOICE_MAX_LINES lines or
  the per-invoice limit INVOICE_AMOUNT_LIMIT on 价税合计). A line whose net gross alone passes the limit is first
  split by quantity (as many units per piece as fit under the limit; its discount allocated over the pieces by
  the same largest-remainder rule); where one unit alone passes the limit it is split by amount (pieces of at most
  the limit, no quantity or unit price printed). Every split allocates whole cents, so the parts' 价税合计 always
  sum exactly to the order's invoiced gross.
"""
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
TAX_FREE_LABELS = {"exempt": "免税", "untaxed": "不征税"}
RATES = (13, 9, 6, 3, 1, 0)


class InvoiceMathError(ValueError):
    """The order cannot be invoiced as given (a discount over the goods, a limit too small for a line)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TaxData:
    """A SKU's tax data: the 19-digit 税收分类编码, the short category name, the rate or a tax-free flag, the unit."""
    code: str
    short_name: str
    rate: int  # percent; 0 when tax_free
    tax_free: str | None = None  # "exempt" 免税 | "untaxed" 不征税
    unit: str = ""

    @property
    def label(self) -> str:
        """The rate as printed: "13%", "0%", "免税", "不征税"."""
        return TAX_FREE_LABELS[self.tax_free] if self.tax_free else f"{self.rate}%"

    @property
    def fraction(self) -> Decimal:
        return ZERO if self.tax_free else Decimal(self.rate) / 100


@dataclass(frozen=True)
class SourceLine:
    """One order line as the invoice sees it: what, how many, the tax-inclusive line total."""
    name: str
    quantity: int
    gross: Decimal
    tax: TaxData
    spec: str = ""
    ref: str = ""  # the SKU code (and order no.), to trace a line back


@dataclass(frozen=True)
class InvoiceLine:
    kind: str  # goods | discount | shipping
    name: str  # *类别简称*商品名
    tax_code: str
    rate: int
    tax_free: str | None
    spec: str
    unit: str
    quantity: Decimal | None
    unit_price: Decimal | None  # tax-exclusive
    gross: Decimal
    amount: Decimal  # tax-exclusive
    tax: Decimal
    ref: str = ""

    @property
    def rate_label(self) -> str:
        return TAX_FREE_LABELS[self.tax_free] if self.tax_free else f"{self.rate}%"


@dataclass
class InvoicePart:
    """One invoice of a request, as the provider will issue it."""
    lines: list[InvoiceLine] = field(default_factory=list)

    @property
    def total_gross(self) -> Decimal:
        return sum((line.gross for line in self.lines), ZERO)

    @property
    def total_amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def total_tax(self) -> Decimal:
        return sum((line.tax for line in self.lines), ZERO)

    @property
    def total_in_words(self) -> str:
        return capitals(self.total_gross)


@dataclass(frozen=True)
class SplitRules:
    amount_limit: Decimal = Decimal("10000.00")
    max_lines: int = 100
    split_by_rate: bool = False

    @classmethod
    def from_config(cls, config) -> "SplitRules":
        return cls(amount_limit=Decimal(str(config.get("INVOICE_AMOUNT_LIMIT", "10000.00"))).quantize(CENT),
                   max_lines=int(config.get("INVOICE_MAX_LINES", 100)),
                   split_by_rate=bool(config.get("INVOICE_SPLIT_BY_RATE", False)))


def shipping_tax(config) -> TaxData:
    """The tax data of the shipping line, from the configuration."""
    return TaxData(code=config.get("INVOICE_SHIPPING_TAX_CODE", "3010102020100000000"),
                   short_name=config.get("INVOICE_SHIPPING_TAX_NAME", "运输服务"),
                   rate=int(config.get("INVOICE_SHIPPING_TAX_RATE", 9)), unit="")


def split_tax(gross: Decimal, tax: TaxData) -> tuple[Decimal, Decimal]:
    """(amount, tax) of a tax-inclusive gross; round half up, symmetric for a negative (discount) gross."""
    gross = Decimal(gross).quantize(CENT)
    amount = (gross / (1 + tax.fraction)).quantize(CENT, rounding=ROUND_HALF_UP)
    return amount, gross - amount


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `total` over `weights` in whole cents by the largest-remainder rule (ties: the earlier weight)."""
    total_cents = int((Decimal(total) / CENT).to_integral_value())
    weight_cents = [int((Decimal(w) / CENT).to_integral_value()) for w in weights]
    whole = sum(weight_cents)
    if total_cents == 0 or not weights:
        return [ZERO for _ in weights]
    if whole <= 0:
        raise InvoiceMathError("nothing to allocate over", code="nothing_to_allocate")
    shares, remainders = [], []
    for index, weight in enumerate(weight_cents):
        share, remainder = divmod(total_cents * weight, whole)
        shares.append(share)
        remainders.append((-remainder, index))
    for _, index in sorted(remainders)[:total_cents - sum(shares)]:
        shares[index] += 1
    return [Decimal(share) * CENT for share in shares]


def _unit_price(amount: Decimal, quantity: Decimal | None) -> Decimal | None:
    """The tax-exclusive unit price, to at most 8 decimals (as 数电票 print it), at least 2."""
    if not quantity:
        return None
    price = (amount / quantity).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP).normalize()
    return price if price.as_tuple().exponent <= -2 else price.quantize(CENT)


def _line(kind: str, tax: TaxData, name: str, gross: Decimal, quantity=None, spec="", ref="") -> InvoiceLine:
    amount, tax_amount = split_tax(gross, tax)
    quantity = None if quantity is None else Decimal(quantity)
    return InvoiceLine(kind=kind, name=f"*{tax.short_name}*{name}", tax_code=tax.code, rate=tax.rate,
                       tax_free=tax.tax_free, spec=spec, unit=tax.unit if quantity is not None else "",
                       quantity=quantity, unit_price=_unit_price(amount, quantity) if kind != "discount" else None,
                       gross=gross, amount=amount, tax=tax_amount, ref=ref)


@dataclass
class _Group:
    """A goods line and its discount, which stay together on one invoice."""
    source: SourceLine
    gross: Decimal
    discount: Decimal
    quantity: int | None  # None: split by amount, no quantity printed
    kind: str = "goods"

    @property
    def net(self) -> Decimal:
        return self.gross - self.discount

    def lines(self) -> list[InvoiceLine]:
        src = self.source
        out = [_line(self.kind, src.tax, src.name, self.gross, self.quantity, src.spec, src.ref)]
        if self.discount:
            out.append(_line("discount", src.tax, src.name, -self.discount, None, src.spec, src.ref))
        return out


def _pieces(group: _Group, limit: Decimal) -> list[_Group]:
    """Split one group whose net passes the limit: by quantity where one unit fits, else by amount."""
    if group.net <= limit:
        return [group]
    quantity = group.quantity or 0
    if quantity > 1:
        unit_gross = (group.gross / quantity).quantize(CENT, rounding=ROUND_HALF_UP)
        per_piece = int((limit / max(unit_gross, CENT)).to_integral_value(rounding=ROUND_FLOOR))
        while per_piece >= 1:
            counts = [per_piece] * (quantity // per_piece) + ([quantity % per_piece] if quantity % per_piece else [])
            grosses = allocate(group.gross, [Decimal(c) for c in counts])
            discounts = allocate(group.discount, grosses) if group.discount else [ZERO] * len(counts)
            pieces = [_Group(group.source, g, d, c, group.kind) for c, g, d in zip(counts, grosses, discounts)]
            if all(piece.net <= limit for piece in pieces):
                return pieces
            per_piece -= 1  # a cent of rounding took a piece over: one unit fewer per piece
    # By amount: pieces of the net, each at most the limit, the discount spread in proportion.
    count = int((group.net / limit).to_integral_value(rounding=ROUND_CEILING))
    while True:
        grosses = allocate(group.gross, [Decimal(1)] * count)
        discounts = allocate(group.discount, grosses) if group.discount else [ZERO] * count
        pieces = [_Group(group.source, g, d, None, group.kind) for g, d in zip(grosses, discounts)]
        if all(piece.net <= limit for piece in pieces):
            return pieces
        count += 1


def invoice_parts(lines: list[SourceLine], discount: Decimal, shipping: Decimal, shipping_tax_data: TaxData,
                  rules: SplitRules = SplitRules(), shipping_name: str = "运费",
                  shares: list[Decimal] | None = None) -> list[InvoicePart]:
    """The invoices for an order (or several orders of one buyer, their lines together): see the module's rules.
    `shares`: each line's part of the discount, given (several orders, each allocating its own discount over its own
    lines); they must sum to `discount`. Without them the discount is allocated over all lines."""
    discount, shipping = Decimal(discount).quantize(CENT), Decimal(shipping).quantize(CENT)
    if rules.max_lines < 2:
        raise InvoiceMathError("an invoice must allow at least two lines (a line and its discount)",
                               code="invalid_max_lines")
    if rules.amount_limit < CENT:
        raise InvoiceMathError("the per-invoice limit must be positive", code="invalid_amount_limit")
    if discount < 0 or shipping < 0:
        raise InvoiceMathError("discount and shipping must not be negative", code="invalid_amount")
    if shares is not None:
        if len(shares) != len(lines) or sum(shares, ZERO) != discount \
                or any(share < 0 or share > Decimal(line.gross) for share, line in zip(shares, lines)):
            raise InvoiceMathError("the discount shares do not fit the lines", code="invalid_discount_shares")
        given = [share for share, line in zip(shares, lines) if Decimal(line.gross) != 0]
    goods = [line for line in lines if Decimal(line.gross) != 0]
    if any(Decimal(line.gross) < 0 or line.quantity <= 0 for line in goods):
        raise InvoiceMathError("a line has a negative total or no quantity", code="invalid_amount")
    goods_total = sum((Decimal(line.gross).quantize(CENT) for line in goods), ZERO)
    if discount > goods_total:
        raise InvoiceMathError(f"the discount {discount} is more than the goods {goods_total}",
                               code="discount_over_goods")
    shares = given if shares is not None else (allocate(discount, [Decimal(line.gross) for line in goods])
                                                if goods else [])
    groups = [_Group(line, Decimal(line.gross).quantize(CENT), share, line.quantity)
              for line, share in zip(goods, shares)]
    if shipping:
        source = SourceLine(name=shipping_name, quantity=1, gross=shipping, tax=shipping_tax_data)
        groups.append(_Group(source, shipping, ZERO, None, kind="shipping"))
    if not groups:
        raise InvoiceMathError("nothing to invoice: the order's total is zero", code="nothing_to_invoice")

    buckets: list[list[_Group]] = []
    if rules.split_by_rate:
        by_rate: dict[tuple, list[_Group]] = {}
        for group in groups:
            by_rate.setdefault((group.source.tax.rate, group.source.tax.tax_free), []).append(group)
        buckets = list(by_rate.values())
    else:
        buckets = [groups]

    parts: list[InvoicePart] = []
    for bucket in buckets:
        current, current_net = InvoicePart(), ZERO
        for group in bucket:
            for piece in _pieces(group, rules.amount_limit):
                piece_lines = piece.lines()
                if current.lines and (current_net + piece.net > rules.amount_limit
                                      or len(current.lines) + len(piece_lines) > rules.max_lines):
                    parts.append(current)
                    current, current_net = InvoicePart(), ZERO
                current.lines.extend(piece_lines)
                current_net += piece.net
        if current.lines:
            parts.append(current)
    return parts


def invoiced_gross(lines: list[SourceLine], discount: Decimal, shipping: Decimal) -> Decimal:
    """What the invoices of these lines add up to: goods − discount + shipping."""
    return sum((Decimal(line.gross) for line in lines), ZERO) - Decimal(discount) + Decimal(shipping)


DIGITS = "零壹贰叁肆伍陆柒捌玖"
SMALL_UNITS = ("", "拾", "佰", "仟")
SECTION_UNITS = ("", "万", "亿", "万亿")


def capitals(amount: Decimal) -> str:
    """价税合计 in Chinese capitals (大写): 5002.00 → 伍仟零贰圆整, 0.05 → 伍分, 1000001.01 → 壹佰万零壹圆零壹分.
    A negative amount (a red invoice) is prefixed 负."""
    amount = Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
    if amount < 0:
        return "负" + capitals(-amount)
    cents = int(amount * 100)
    yuan, jiao, fen = cents // 100, cents // 10 % 10, cents % 10
    if yuan >= 10 ** 16:
        raise InvoiceMathError("amount too large to write in capitals", code="invalid_amount")
    words = _integer_capitals(yuan)
    if yuan:
        words += "圆"
    if not jiao and not fen:
        return (words or "零圆") + "整"
    if jiao:
        words += DIGITS[jiao] + "角"
    if fen:
        if yuan and not jiao:
            words += "零"
        words += DIGITS[fen] + "分"
    return words


def _integer_capitals(number: int) -> str:
    if number == 0:
        return ""
    digits = str(number)
    length, words, zero_pending = len(digits), [], False
    section_has_digit = False
    for index, char in enumerate(digits):
        position = length - 1 - index  # power of ten
        small, section = position % 4, position // 4
        digit = int(char)
        if digit == 0:
            zero_pending = bool(words)
        else:
            if zero_pending:
                words.append("零")
                zero_pending = False
            words.append(DIGITS[digit] + SMALL_UNITS[small])
            section_has_digit = True
        if small == 0:
            if section_has_digit:
                words.append(SECTION_UNITS[section])
            section_has_digit = False
    return "".join(words)



@dataclass(frozen=True)
class Remaining:
    """What is left un-reversed of one blue line (a discount line folded into the line it discounts)."""
    position: int
    name: str
    tax: TaxData
    spec: str
    gross: Decimal
    tax_amount: Decimal


def red_lines(remaining: list[Remaining], gross: Decimal) -> list[dict]:
    """The lines of a red invoice reversing `gross` (positive, tax-inclusive) of what remains: each line its
    proportional share in whole cents (largest remainder, `allocate`), its tax by the same round-half-up split as a
    blue line (`split_tax`) at its own rate; a line reversed to its end takes exactly its remaining tax, so a blue
    invoice reversed in full nets to zero. Negative figures, as a red invoice prints them."""
    gross = Decimal(gross).quantize(CENT)
    left = sum((line.gross for line in remaining), ZERO)
    if gross <= ZERO or gross > left:
        raise InvoiceMathError(f"a red invoice reverses between 0.01 and {left}", code="over_remaining")
    shares = allocate(gross, [line.gross for line in remaining])
    out = []
    for line, share in zip(remaining, shares):
        if not share:
            continue
        if share == line.gross:
            tax = line.tax_amount
            amount = share - tax
        else:
            amount, tax = split_tax(share, line.tax)
        out.append({"position": line.position, "name": line.name, "tax_code": line.tax.code, "rate": line.tax.rate,
                    "tax_free": line.tax.tax_free, "spec": line.spec, "unit": "", "gross": str(-share),
                    "amount": str(-amount), "tax": str(-tax)})
    return out
