"""Finding orders: filters and keyset pagination that stay fast at millions of rows (no OFFSET, no COUNT).

Search by a personal value must not be an oracle (see docs/SECURITY.md, "Search and personal data"):

- a role that sees phones masked cannot search by a full phone (else it could try the 10,000 middle digits of
  a masked `173****5372` and read the answer); it searches by the masked form it already sees, or by the last
  four digits (exactly four: the mask shows them, a fifth would not be shown);
- the receiver's name is searched (exactly, through its blind index) only by a role that sees names in full: a
  masked role sees `张*` and could otherwise try the common given names and read the answer;
- every search by a personal value is written to the access log as its kind (never the value) with the number
  of orders found;
- personal-value searches are limited per user (PERSONAL_SEARCH_LIMIT in PERSONAL_SEARCH_WINDOW, counted in the
  access log, so the limit holds with Redis down and across processes); reaching it raises an alarm for the
  auditor and an audit event;
- personal values travel in request bodies: a query string that carries one is refused, and `redact()` takes
  phone-like digits out of server log lines.
"""
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import selectinload

from shared import order_numbers, paging
from shared.actors import Actor
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import (AccessLogEntry, Channel, ExceptionCase, FulfilmentAlarm, Order, OrderTag, Shipment, Team,
                           Warehouse)
from shared.security import crypto
from shared.security.permissions import Visibility, visibility
from shared.services import audit
from shared.services.customers import normalized_name
from shared.services.errors import ServiceError, ValidationFailed
from shared.services.order_notes import check_tag
from shared.services.validation import N_, say
from shared.timekeeping import parse_aware, utc_now

UNKNOWN_STATUS = N_("Unknown order status \"%(status)s\"")
UNKNOWN_SORT = N_("Unknown sort \"%(sort)s\"")
NOT_A_DATE = N_("%(field)s must be a date like 2026-11-21")
RANGE_BACKWARDS = N_("The end of the time range is before its start")
FILTER_TOO_LONG = N_("%(field)s is too long")
SEARCH_TOO_LONG = N_("The search text is too long (at most %(limit)s characters)")
BAD_LAST4 = N_("Give the last four digits of the phone")
PHONE_MASKED_FOR_ROLE = N_("Your role sees phone numbers masked: search by the masked form (e.g. 173****5372) or by "
                           "the last four digits with an order number")
TOO_MANY_SEARCHES = N_("Too many searches by personal values; wait %(minutes)s minutes")
SEARCH_NEEDS_USER = N_("A search by a personal value needs a signed-in user")
PHONE_HIDDEN_FOR_ROLE = N_("Your role does not see phone numbers and cannot search by them")
BAD_LIMIT = N_("limit must be between 1 and %(limit)s")
BAD_CAP = N_("The count cap must be at least 1")

SORTS = {
    "placed_desc": (Order.placed_at, True), "placed_asc": (Order.placed_at, False),
    "total_desc": (Order.total, True), "total_asc": (Order.total, False),
    "updated_desc": (Order.updated_at, True), "updated_asc": (Order.updated_at, False),
}
MAX_LIMIT = 200
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(9998, 12, 31)
# As a warehouse, carrier, team or exception category filter: the orders without one (the state cube's "none" cells).
NONE = "-"


@dataclass
class OrderFilters:
    statuses: list[str] = field(default_factory=list)
    channel: str | None = None
    warehouse: str | None = None
    date_from: date | None = None  # merchant-local calendar dates, inclusive
    date_to: date | None = None
    updated_since: datetime | None = None
    placed_from: datetime | None = None  # aware moments, [from, to): a state cube cell's time bucket
    placed_to: datetime | None = None
    city: str | None = None
    carrier: str | None = None  # of a shipment of the order (not cancelled)
    team: str | None = None  # owning an exception of the order
    exception_category: str | None = None  # of an exception of the order (with `team`: the same exception)
    q: str | None = None
    phone_last4: str | None = None  # the phone's last four digits (blind index receiver_last4_index)
    receiver: str | None = None  # the receiver's whole name (blind index receiver_name_index)
    tag: str | None = None  # an order tag (shared/services/order_notes.py TAGS)
    sort: str = "placed_desc"
    drill_down: bool = False  # read the state cube's filters (parse_filters)
    # Channel and warehouse codes looked up once per request (the page and its count both filter by them).
    resolved: dict = field(default_factory=dict, repr=False, compare=False)

    def personal_kind(self) -> str | None:
        """Which personal value this search uses ("phone", "phone_masked", "phone_last4", "receiver_name"), or
        None; with several, the one the rules weigh most (a full phone, then a name)."""
        kind = kind_of(self.q) if self.q else None
        if kind in ("phone", "phone_masked"):
            return kind
        if self.receiver:
            return "receiver_name"
        return "phone_last4" if self.phone_last4 else None


def parse_filters(args, zone: str, drill_down: bool = False) -> OrderFilters:
    """Read filters from query parameters; anything malformed is a clear error, not an empty page.

    `drill_down` (the portal's list) also reads the state cube's cell filters: placed_from/placed_to, city,
    carrier, team, exception_category, and NONE as a warehouse."""
    statuses = [s for s in args.getlist("status") if s] if hasattr(args, "getlist") else []
    for status in statuses:
        if status not in OrderStatus.__members__.values():
            raise ValidationFailed(say(UNKNOWN_STATUS, status=status[:40]), field="status", code="unknown_status")
    sort = args.get("sort") or "placed_desc"
    if sort not in SORTS:
        raise ValidationFailed(say(UNKNOWN_SORT, sort=sort[:40]), field="sort")
    filters = OrderFilters(statuses=statuses, channel=(args.get("channel") or "").strip().upper() or None,
                           warehouse=(args.get("warehouse") or "").strip() or None, q=(args.get("q") or "").strip()
                           or None, phone_last4=(args.get("phone_last4") or "").strip() or None, sort=sort,
                           receiver=(args.get("receiver") or "").strip() or None,
                           tag=(args.get("tag") or "").strip() or None)
    for name in ("date_from", "date_to"):
        raw = args.get(name)
        if raw:
            try:
                day = date.fromisoformat(raw)
                if not EARLIEST_DATE <= day <= LATEST_DATE:  # the next day and the zone shift must stay in range
                    raise ValueError
                setattr(filters, name, day)
            except (ValueError, TypeError):
                raise ValidationFailed(say(NOT_A_DATE, field=name), field=name, code="invalid_date")
    if args.get("updated_since"):
        filters.updated_since = parse_aware(args.get("updated_since"), "updated_since")
    if drill_down:
        filters.drill_down = True
        _drill_down_filters(args, filters)
    return _checked(filters)


def _drill_down_filters(args, filters: OrderFilters) -> None:
    for name in ("placed_from", "placed_to"):
        if args.get(name):
            setattr(filters, name, parse_aware(args.get(name), name))
    if filters.placed_from and filters.placed_to and filters.placed_to < filters.placed_from:
        raise ValidationFailed(say(RANGE_BACKWARDS), field="placed_to", code="range_end_before_start")
    for name in ("city", "carrier", "team", "exception_category"):
        value = (args.get(name) or "").strip()
        if len(value) > 40:
            raise ValidationFailed(say(FILTER_TOO_LONG, field=name), field=name)
        setattr(filters, name, value or None)


def _checked(filters: OrderFilters) -> OrderFilters:
    if filters.q and len(filters.q) > 64:
        raise ValidationFailed(say(SEARCH_TOO_LONG, limit=64), field="q")
    if filters.phone_last4 is not None:
        if not re.fullmatch(r"\d{4}", filters.phone_last4):
            raise ValidationFailed(say(BAD_LAST4), field="phone_last4",
                                   code="invalid_phone_last4")
    if filters.receiver is not None and len(filters.receiver) > 60:
        raise ValidationFailed(say(N_("the receiver name is too long")), field="receiver")
    if filters.tag is not None:
        check_tag(filters.tag, field="tag")
    return filters


MASKED_PHONE = re.compile(r"(\d{3})\*{4}(\d{4})")  # the masked form every role sees: 173****5372
MOBILE = re.compile(r"1[3-9]\d{9}")  # a mainland mobile number: never a channel order id
PERSONAL_SEARCH_LIMIT = 30
PERSONAL_SEARCH_WINDOW = timedelta(minutes=10)
SEARCH_ACTIONS = ("search", "search_refused")


class SearchRefused(ServiceError):
    """A search by a personal value this role or this moment does not allow; the refusal is access-logged."""

    status = 403
    code = "search_not_allowed"


class SearchRateLimited(SearchRefused):
    status = 429
    code = "search_rate_limited"


def _digits(q: str) -> str:
    return re.sub(r"[\s\-+()]", "", q)


def kind_of(q: str) -> str:
    """order_no, phone_masked, phone (a mobile number), digits (a channel order id, or a phone for roles that
    may see phones) or channel_order_id."""
    if order_numbers.PATTERN.match(q.upper()):
        return "order_no"
    compact = _digits(q)
    if MASKED_PHONE.fullmatch(compact):
        return "phone_masked"
    if compact.isdigit() and MOBILE.fullmatch(crypto.normalize_phone(compact)):
        return "phone"
    if compact.isdigit() and 7 <= len(compact) <= 20:
        return "digits"
    return "channel_order_id"


def masked_candidates(q: str) -> list[str]:
    """The blind indexes of every phone that shows as this masked form (10,000 for an 11-digit mobile):
    the server enumerates what the role may already see, so the answer tells it nothing new."""
    head, tail = MASKED_PHONE.fullmatch(_digits(q)).groups()
    return [crypto.blind_index("phone", f"{head}{middle:04d}{tail}") for middle in range(10_000)]


def _search_condition(q: str, role: str | None):
    """Order number, channel order id, or a phone (through its blind index) as the role may search it."""
    kind = kind_of(q)
    if kind == "order_no":
        return Order.order_no == order_numbers.validate(q.upper())
    if kind == "phone_masked":
        return Order.receiver_phone_index.in_(masked_candidates(q))
    phone_allowed = role is not None and visibility(role, "phone") is Visibility.FULL
    if kind == "phone":
        if not phone_allowed:
            raise SearchRefused(say(PHONE_MASKED_FOR_ROLE), field="q")
        return Order.receiver_phone_index == crypto.blind_index("phone", _digits(q))
    conditions = [Order.channel_order_id == q]
    if kind == "digits" and phone_allowed:
        conditions.append(Order.receiver_phone_index == crypto.blind_index("phone", _digits(q)))
    return or_(*conditions)


def personal_values_in_query(args) -> str | None:
    """The kind of personal value a query string carries (it would land in access logs), or None."""
    q = (args.get("q") or "").strip()
    if args.get("phone_last4"):
        return "phone_last4"
    if args.get("receiver"):
        return "receiver_name"
    kind = kind_of(q) if q else None
    return kind if kind in ("phone", "phone_masked") else None


REDACTED_DIGITS = re.compile(r"(?<![0-9])(?:\+?86)?1[3-9][0-9]{9}(?![0-9])|[0-9]{3}(?:\*|%2A){4}[0-9]{4}",
                             re.IGNORECASE)
REDACTED_PARAMS = re.compile(r"((?:^|[?&])(?:q|phone_last4|phone|receiver)=)[^&\s\"]*")


def redact(line: str) -> str:
    """A log line without phone numbers, masked phones or the values of the search parameters."""
    return REDACTED_DIGITS.sub("[phone]", REDACTED_PARAMS.sub(r"\1[redacted]", line))


def _recent_personal_searches(actor: Actor, now: datetime) -> int:
    who = AccessLogEntry.actor_id == actor.id if actor.id is not None else AccessLogEntry.actor_label == actor.label
    return db.session.execute(select(func.count(AccessLogEntry.id)).where(
        who, AccessLogEntry.action.in_(SEARCH_ACTIONS),
        AccessLogEntry.occurred_at >= now - PERSONAL_SEARCH_WINDOW)).scalar_one()


def _raise_rate_alarm(actor: Actor, count: int, now: datetime) -> None:
    """Once per user and hour: an alarm the auditor sees, and an audit event."""
    subject = f"search:{actor.label}:{now:%Y%m%d%H}"[:80]
    if db.session.execute(select(FulfilmentAlarm.id).where(FulfilmentAlarm.kind == "search_rate",
                                                           FulfilmentAlarm.subject == subject)).first():
        return
    message = (f"{actor.label} ({actor.role}, {actor.ip or 'no address'}) searched orders by personal values "
               f"{count} times in {int(PERSONAL_SEARCH_WINDOW.total_seconds() // 60)} minutes; further searches "
               f"are refused for now")
    db.session.add(FulfilmentAlarm(kind="search_rate", subject=subject, role="auditor", raised_at=now,
                                   message=message[:500]))
    audit.record(actor, "search.rate_exceeded", "staff_user", actor.label, after={"searches": count})


def check_search_rate(viewer: Actor, kind: str, door: str, entity: str = "orders", fields=("phone",)) -> None:
    """Refuse (429) a personal-value search past the viewer's limit: one limit over every kind of search (orders
    and customers), counted in the access log; reaching it raises the auditor's alarm."""
    now = utc_now()
    count = _recent_personal_searches(viewer, now)
    if count >= PERSONAL_SEARCH_LIMIT:
        audit.log_access(viewer, "search_refused", entity, f"by:{kind}", list(fields), channel=door)
        _raise_rate_alarm(viewer, count + 1, now)
        raise SearchRateLimited(say(TOO_MANY_SEARCHES, minutes=int(PERSONAL_SEARCH_WINDOW.total_seconds() // 60)),
                                field="q")


def check_personal_search(filters: OrderFilters, viewer: Actor | None, door: str) -> str | None:
    """Refuse a personal-value search the viewer may not make now; returns its kind (None: not personal)."""
    kind = filters.personal_kind()
    if kind is None:
        return None
    if viewer is None:
        raise SearchRefused(say(SEARCH_NEEDS_USER), field="q")
    check_search_rate(viewer, kind, door)
    uses_phone = kind in ("phone", "phone_masked") or bool(filters.phone_last4)
    if uses_phone and visibility(viewer.role, "phone") is Visibility.HIDDEN:
        # A role that sees no phone at all learns something from any phone search, even by the masked form.
        audit.log_access(viewer, "search_refused", "orders", f"by:{kind}", ["phone"], channel=door)
        raise SearchRefused(say(PHONE_HIDDEN_FOR_ROLE), field="q")
    if kind == "phone" and visibility(viewer.role, "phone") is not Visibility.FULL:
        audit.log_access(viewer, "search_refused", "orders", f"by:{kind}", ["phone"], channel=door)
        _search_condition(filters.q, viewer.role)  # raises the refusal with its explanation
    if filters.receiver and visibility(viewer.role, "name") is not Visibility.FULL:
        # A masked role sees 张*: an exact search by 张三, 张伟, ... would read the hidden characters back.
        audit.log_access(viewer, "search_refused", "orders", "by:receiver_name", ["name"], channel=door)
        raise SearchRefused(say(N_("your role sees receiver names masked and cannot search by them: search by "
                                   "the order number or the phone's last four digits")), field="receiver")
    return kind


def _logged_fields(filters: OrderFilters) -> list[str]:
    """The personal fields a search used, as the access log names them."""
    phone = filters.phone_last4 or (filters.q and kind_of(filters.q) in ("phone", "phone_masked"))
    return (["phone"] if phone else []) + (["name"] if filters.receiver else [])


def _resolved(filters: OrderFilters, model, code: str) -> int:
    """The id of a channel or warehouse code (-1, matching nothing, for an unknown one), looked up once."""
    key = (model.__tablename__, code)
    if key not in filters.resolved:
        found = db.session.execute(select(model.id).where(model.code == code)).scalar()
        filters.resolved[key] = found if found is not None else -1
    return filters.resolved[key]


def _carrier_condition(carrier: str):
    """Orders with a (not cancelled) shipment by this carrier; NONE: with such a shipment without one, or none."""
    live = [Shipment.order_id == Order.id, Shipment.status != "cancelled"]
    if carrier != NONE:
        return exists().where(*live, Shipment.carrier_code == carrier)
    return or_(exists().where(*live, Shipment.carrier_code.is_(None)), ~exists().where(*live))


def _exception_condition(filters: OrderFilters):
    """Orders with an exception of this category and/or owned by this team (one exception answering both);
    NONE as the team: an unrouted exception, or no exception at all; NONE as the category: no exception at all."""
    anything = exists().where(ExceptionCase.order_id == Order.id)
    category, team = filters.exception_category, filters.team
    if category == NONE:  # every exception has a category
        return ~anything if team in (None, NONE) else Order.id.is_(None)
    conditions = [ExceptionCase.order_id == Order.id]
    if category:
        conditions.append(ExceptionCase.category == category)
    if team == NONE:
        conditions.append(ExceptionCase.team_id.is_(None))
    elif team:
        conditions.append(ExceptionCase.team_id == _resolved(filters, Team, team))
    matching = exists().where(*conditions)
    return or_(matching, ~anything) if team == NONE and not category else matching


def _filtered(query, filters: OrderFilters, zone: str, viewer: Actor | None):
    """`query` narrowed by the filters: the one place the list's, the API's and the count's conditions are built."""
    if filters.statuses:
        query = query.where(Order.status.in_(filters.statuses))
    if filters.channel:
        query = query.where(Order.channel_id == _resolved(filters, Channel, filters.channel))
    if filters.warehouse == NONE and filters.drill_down:
        query = query.where(Order.warehouse_id.is_(None))
    elif filters.warehouse:
        query = query.where(Order.warehouse_id == _resolved(filters, Warehouse, filters.warehouse))
    if filters.placed_from:
        query = query.where(Order.placed_at >= filters.placed_from)
    if filters.placed_to:
        query = query.where(Order.placed_at < filters.placed_to)
    if filters.city:
        query = query.where(Order.city == filters.city)
    if filters.carrier:
        query = query.where(_carrier_condition(filters.carrier))
    if filters.team or filters.exception_category:
        query = query.where(_exception_condition(filters))
    local = ZoneInfo(zone)
    if filters.date_from:
        query = query.where(Order.placed_at >= datetime.combine(filters.date_from, time.min, local))
    if filters.date_to:
        query = query.where(Order.placed_at < datetime.combine(filters.date_to + timedelta(days=1), time.min, local))
    if filters.updated_since:
        query = query.where(Order.updated_at >= filters.updated_since)
    if filters.q:
        query = query.where(_search_condition(filters.q, viewer.role if viewer else None))
    if filters.phone_last4:
        query = query.where(Order.receiver_last4_index == crypto.blind_index("phone_last4", filters.phone_last4))
    if filters.receiver:
        query = query.where(Order.receiver_name_index
                            == crypto.blind_index("receiver_name", normalized_name(filters.receiver)))
    if filters.tag:
        query = query.where(exists().where(OrderTag.order_id == Order.id, OrderTag.tag == filters.tag))
    return query


def search_orders(filters: OrderFilters, zone: str, cursor: str | None = None, limit: int = 50,
                  viewer: Actor | None = None, door: str = "portal"):
    """One page of orders and the cursor of the next page (None on the last).

    `viewer` is who searches: it decides which personal values may be searched, and a search by one is
    access-logged (`door`: portal or api) and counted against the viewer's limit. The caller commits."""
    found = find_orders(filters, zone, cursor=cursor, limit=limit, viewer=viewer, door=door)
    return found.rows, found.next_cursor


# What the portal's order list shows, and nothing more: no street, no platform ciphertext is read or decrypted.
# Rows carry `platform_protected` as a database expression, so masking needs no decrypted ciphertext either.
LIST_COLUMNS = (Order.id, Order.order_no, Order.channel_id, Order.channel_order_id, Order.placed_at, Order.status,
                Order.payment_status, Order.receiver_name, Order.receiver_phone, Order.province, Order.city,
                Order.district, Order.warehouse_id, Order.currency, Order.total, Order.updated_at,
                Order.platform_ciphertext.is_not(None).label("platform_protected"))


def find_orders(filters: OrderFilters, zone: str, cursor: str | None = None, limit: int = 50,
                viewer: Actor | None = None, door: str = "portal", back: str | None = None,
                columns: tuple | None = None) -> paging.Window:
    """A page of orders (`Order` objects, or rows of `columns`), with the cursors of the next and previous pages.

    `back` reads the page before that cursor's row instead of the one after `cursor`. The caller commits."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(say(BAD_LIMIT, limit=MAX_LIMIT), field="limit")
    kind = check_personal_search(filters, viewer, door)
    column, descending = SORTS[filters.sort]
    query = select(*columns) if columns else select(Order).options(selectinload(Order.warehouse))
    query = _filtered(query, filters, zone, viewer)
    found = paging.window(db.session, query, column, Order.id, cursor, limit, descending, back=back,
                          scalars=not columns)
    if kind is not None:
        audit.log_access(viewer, "search", "orders", f"by:{kind}; found:{len(found.rows)}", _logged_fields(filters),
                         channel=door)
    return found


def count_orders(filters: OrderFilters, zone: str, cap: int, viewer: Actor | None = None) -> tuple[int, bool]:
    """How many orders match, counted exactly up to `cap`: (count, False), or (cap, True) when more match.

    The count stops at the cap (`LIMIT cap + 1` under the count), so it costs at most `cap` index entries however
    many orders there are. Call it after `find_orders`, which checks (and logs) a search by a personal value."""
    if cap < 1:
        raise ValidationFailed(say(BAD_CAP), field="cap")
    matching = _filtered(select(Order.id), filters, zone, viewer).limit(cap + 1).subquery()
    count = db.session.execute(select(func.count()).select_from(matching)).scalar_one()
    return (cap, True) if count > cap else (count, False)


def count_matching(found: paging.Window, filters: OrderFilters, zone: str, cap: int, first_page: bool,
                   viewer: Actor | None = None) -> tuple[int, bool]:
    """The list's count of matches for a page `find_orders` read: (count, capped) as `count_orders` says.

    A first page with no next page holds every match: then the page is the count and no query runs (a
    masked-phone search would otherwise send its 10,000 blind indexes a second time)."""
    if first_page and found.next_cursor is None:
        shown = len(found.rows)
        return (cap, True) if shown > cap else (shown, False)
    return count_orders(filters, zone, cap, viewer)


PERSONAL_IN_BULK = N_("act on all matching orders with filters only, not a search by phone: select the orders on "
                      "the page instead")


def matching_order_ids(filters: OrderFilters, zone: str, limit: int, viewer: Actor | None = None) -> list[int]:
    """The ids of the orders that match now, in the list's order, at most `limit` (a bulk action freezes its set
    with this: orders arriving later are not in it). A search by a personal value is refused here: such a search
    narrows a page, not a set to act on."""
    if filters.personal_kind() is not None:
        raise ValidationFailed(say(PERSONAL_IN_BULK), field="q", code="personal_value_in_bulk")
    column, descending = SORTS[filters.sort]
    query = _filtered(select(Order.id), filters, zone, viewer)
    query = query.order_by(column.desc() if descending else column, Order.id.desc() if descending else Order.id)
    return list(db.session.execute(query.limit(limit)).scalars())
