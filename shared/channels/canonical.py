"""The one canonical order every adapter reads a platform's order into, and the parsing helpers they share.

Adapters only translate: they never look at the database. A payload that cannot be read faithfully raises
`PayloadProblem` with a code and the platform field, and the order goes to review instead of being guessed.
"""
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from shared.money import CENT, parse_money
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
MUST_BE_LIST = N_("%(field)s must be a list")
MUST_BE_OBJECT = N_("%(field)s must be an object")
MISSING = N_("%(field)s is missing")
MUST_BE_TEXT = N_("%(field)s must be text")
TOO_LONG = N_("%(field)s is longer than %(limit)s characters")
NOT_POSITIVE_WHOLE = N_("%(field)s must be a positive whole number, got \"%(value)s\"")
NOT_WHOLE_FEN = N_("%(field)s must be a whole number of fen, got \"%(value)s\"")
MUST_BE_LOCAL_TIME = N_("%(field)s must be a yyyy-MM-dd HH:mm:ss time")
MUST_BE_ISO_TIME = N_("%(field)s must be an ISO 8601 time")
NO_OFFSET = N_("%(field)s has no time zone offset: \"%(value)s\"")
NOT_UNIX_SECONDS = N_("%(field)s must be unix seconds, got \"%(value)s\"")
NOT_LOCAL_TIME = N_("%(field)s is not a yyyy-MM-dd HH:mm:ss time: \"%(value)s\"")
NOT_ISO_TIME = N_("%(field)s is not an ISO 8601 time: \"%(value)s\"")


class PayloadProblem(ValidationFailed):
    """A platform payload that cannot be turned into an order as it stands; it goes to manual review."""

    code = "invalid_payload"


@dataclass(frozen=True)
class CanonicalLine:
    """One order line. `channel_sku` is the merchant's own code ("" when the platform line carries none); the
    platform's variant and product ids let such a line be mapped all the same (see `mapping_keys`)."""

    channel_sku: str
    quantity: int
    unit_price: Decimal
    title: str | None = None
    variant_id: str | None = None  # Shopify variant_id, WooCommerce variation_id, Taobao sku_id, JD skuId, ...
    product_id: str | None = None  # Shopify product_id, WooCommerce product_id, Taobao num_iid, JD wareId, ...
    discount: Decimal = Decimal("0.00")  # the platform's own allocation of discounts to this line
    paid: Decimal | None = None  # what the platform says this line costs after discounts (Taobao divide_order_fee)

    @property
    def goods(self) -> Decimal:
        return self.unit_price * self.quantity

    def mapping_keys(self) -> list[tuple[str, str]]:
        """(key kind, value) in the order a mapping is looked up: merchant code, then variant, then product."""
        keys = [("code", self.channel_sku)] if self.channel_sku else []
        keys += [(kind, value) for kind, value in (("variant", self.variant_id), ("product", self.product_id))
                 if value]
        return keys

    def describe(self) -> str:
        """How a person finds this line on the platform: its code, or its platform ids when it has none."""
        if self.channel_sku:
            return self.channel_sku
        ids = [f"{kind} {value}" for kind, value in (("variant", self.variant_id), ("product", self.product_id))
               if value]
        return f"({', '.join(ids) or 'no code, no platform id'}{', ' + self.title if self.title else ''})"


@dataclass(frozen=True)
class PlatformProtected:
    """Buyer fields the platform sent as its own ciphertext (淘宝 OAID, 京东 加密字段, 拼多多 密文, 抖店 encrypt_*).

    The order keeps them exactly as received (`ciphertext`, field name → value) and carries the platform's masked
    forms in its receiver fields; only the platform's decrypt API turns them into plain text. `buyer_key` is the
    platform's pseudonymous key of the buyer or address (OAID, JD `desen_mobile`, `open_address_id`): equal keys
    are the same buyer, so orders can be matched without plain text.
    """

    ciphertext: dict
    buyer_key: str | None = None


@dataclass
class CanonicalOrder:
    channel_order_id: str
    status_key: str
    modified_at: datetime
    placed_at: datetime
    paid_at: datetime | None
    currency: str
    customer_name: str
    customer_phone: str
    receiver: str
    receiver_phone: str
    province: str
    city: str
    district: str
    street: str
    lines: list[CanonicalLine]
    shipping_fee: Decimal
    discount: Decimal
    paid_amount: Decimal  # what the platform says the buyer pays: the sum must agree with it
    tax: Decimal = Decimal("0.00")  # tax charged on top of the prices (prices that include tax carry none here)
    fees: Decimal = Decimal("0.00")  # other charges the buyer pays: WooCommerce fee lines, Shopify tips, COD fees
    customer_email: str | None = None
    postal_code: str | None = None
    # True when the platform allocates its discounts to lines: the lines' discounts must then add up too.
    discounts_per_line: bool = False
    unallocated_discount: Decimal = Decimal("0.00")  # the part of `discount` no line carries (e.g. on shipping)
    # Cash on delivery: the platform's flag, and whether the platform or the carrier says the cash came in.
    # `shared.services.channel_orders.payment_of` is the one place that turns these into a payment status.
    cash_on_delivery: bool = False
    cash_collected: bool = False
    extra: dict = field(default_factory=dict)
    protected: PlatformProtected | None = None  # set when the buyer fields are platform ciphertext

    @property
    def goods_total(self) -> Decimal:
        return sum((line.goods for line in self.lines), Decimal("0.00"))

    def amount_gap(self) -> Decimal:
        """goods − discount + shipping + fees + tax − paid: zero when the platform's figures add up."""
        return self.goods_total - self.discount + self.shipping_fee + self.fees + self.tax - self.paid_amount

    def line_problems(self) -> list[str]:
        """Where the platform's per-line figures disagree with its order figures (empty when they agree)."""
        problems = []
        if self.discounts_per_line:
            allocated = sum((line.discount for line in self.lines), self.unallocated_discount)
            if allocated != self.discount:
                problems.append(f"line discounts {allocated:.2f} ≠ order discount {self.discount:.2f}")
        for line in self.lines:
            if line.paid is not None and line.goods - line.discount != line.paid:
                problems.append(f"line {line.describe()}: {line.goods:.2f} − discount {line.discount:.2f} ≠ "
                                f"paid {line.paid:.2f}")
        return problems


def entries(items: list, where: str):
    """(path, entry) for each entry of a platform list; an entry that is not an object is a payload problem."""
    for index, item in enumerate(items):
        path = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise PayloadProblem(say(MUST_BE_OBJECT, field=path), field=path, code="invalid_type")
        yield path, item


def signed_yuan(value, field_name: str) -> Decimal:
    """An amount that may be negative (a price adjustment, a negative fee), with at most two decimals."""
    try:
        return parse_money(value, field_name, allow_negative=True)
    except ValidationFailed as problem:
        raise PayloadProblem(problem.message, field=field_name, code="invalid_amount") from None


def float_yuan(value, field_name: str) -> Decimal:
    """Yuan as a JSON number (Pinduoduo): binary noise (59.699999999999996) is rounded half up to the cent, as
    the platform rounds; anything that is not a number is a problem."""
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        value = Decimal(repr(value)).quantize(CENT, ROUND_HALF_UP)
    return yuan(value, field_name)


def total_of(items, key: str, where: str, read=None) -> Decimal:
    """The sum of one amount over a platform list (fee lines, coupon lines, promotion details)."""
    read = read or yuan
    if items in (None, ""):
        return Decimal("0.00")
    if not isinstance(items, list):
        raise PayloadProblem(say(MUST_BE_LIST, field=where), field=where, code="invalid_type")
    return sum((read(need(item, key, f"{where}[{index}]"), f"{where}[{index}].{key}")
                for index, item in enumerate(items)), Decimal("0.00"))


def platform_id(value) -> str | None:
    """A platform's numeric or text id as text; 0, "" and None mean "none" (WooCommerce variation_id 0)."""
    if value is None or isinstance(value, bool) or value in (0, "0", ""):
        return None
    return str(value).strip() or None


def need(raw: dict, key: str, where: str = ""):
    """A field the order cannot do without; missing or empty is a payload problem naming the field."""
    if not isinstance(raw, dict):
        raise PayloadProblem(say(MUST_BE_OBJECT, field=where or 'payload'), field=where or "payload",
                             code="invalid_type")
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        name = f"{where}.{key}" if where else key
        raise PayloadProblem(say(MISSING, field=name), field=name, code="missing_field")
    return value


def text_of(value, field_name: str, max_length: int = 200) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PayloadProblem(say(MUST_BE_TEXT, field=field_name), field=field_name, code="invalid_type")
    text = str(value).strip()
    if len(text) > max_length:
        raise PayloadProblem(say(TOO_LONG, field=field_name, limit=max_length), field=field_name,
                             code="too_long")
    return text


def quantity_of(value, field_name: str) -> int:
    """Quantities are positive whole numbers; some platforms send them as strings ("2")."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PayloadProblem(say(NOT_POSITIVE_WHOLE, field=field_name, value=value), field=field_name,
                             code="invalid_quantity")
    return value


def yuan(value, field_name: str) -> Decimal:
    """An amount in yuan (string or number) with at most two decimals, not negative, fitting NUMERIC(12,2)."""
    try:
        return parse_money(value, field_name)
    except ValidationFailed as problem:
        raise PayloadProblem(problem.message, field=field_name, code="invalid_amount") from None


def fen(value, field_name: str) -> Decimal:
    """An amount in fen (integer hundredths), as Douyin sends money."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadProblem(say(NOT_WHOLE_FEN, field=field_name, value=value), field=field_name,
                             code="invalid_amount")
    return yuan(str((Decimal(value) / 100).quantize(CENT)), field_name)


def local_time(value, zone: str, field_name: str) -> datetime:
    """`yyyy-MM-dd HH:mm:ss` in the channel's declared zone (Taobao, JD, Pinduoduo send Beijing time)."""
    if not isinstance(value, str):
        raise PayloadProblem(say(MUST_BE_LOCAL_TIME, field=field_name), field=field_name,
                             code="invalid_timestamp")
    try:
        moment = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise PayloadProblem(say(NOT_LOCAL_TIME, field=field_name, value=value), field=field_name,
                             code="invalid_timestamp") from None
    return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _iso(value, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise PayloadProblem(say(MUST_BE_ISO_TIME, field=field_name), field=field_name, code="invalid_timestamp")
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PayloadProblem(say(NOT_ISO_TIME, field=field_name, value=value), field=field_name,
                             code="invalid_timestamp") from None


def offset_time(value, field_name: str) -> datetime:
    """ISO 8601 that must carry an offset (Shopify): a naive timestamp is not guessed."""
    moment = _iso(value, field_name)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PayloadProblem(say(NO_OFFSET, field=field_name, value=value), field=field_name,
                             code="naive_timestamp")
    return moment.astimezone(UTC)


def gmt_time(value, field_name: str) -> datetime:
    """WooCommerce `*_gmt` fields: ISO 8601 without an offset that is UTC by the field's definition."""
    moment = _iso(value, field_name)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def unix_time(value, field_name: str) -> datetime:
    """Unix seconds (Douyin); strings of digits are accepted, anything else is a problem."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PayloadProblem(say(NOT_UNIX_SECONDS, field=field_name, value=value), field=field_name,
                             code="invalid_timestamp")
    return datetime.fromtimestamp(value, UTC)
