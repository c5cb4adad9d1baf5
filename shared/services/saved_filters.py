"""Saved filters of the order list: a user names the filters they use every day, applies and deletes them; each
is private to its owner (another's is not found). A saved filter never holds a personal value (a phone search)."""
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from shared.actors import Actor
from shared.extensions import db
from shared.models import SavedOrderFilter
from shared.order_search import parse_filters
from shared.services import audit
from shared.services.errors import NotFound, ValidationFailed
from shared.services.validation import N_, say, text

KEYS = ("status", "channel", "warehouse", "date_from", "date_to", "sort", "q", "placed_from", "placed_to", "city",
        "carrier", "team", "exception_category")
MAX_PER_USER = 50
NO_FILTERS = N_("choose at least one filter to save")
PERSONAL = N_("a saved filter cannot hold a search by phone")
NAME_TAKEN = N_("you already have a saved filter named %(name)s")
TOO_MANY = N_("you have %(limit)s saved filters: delete one first")
NOT_FOUND = N_("no such saved filter of yours")


def _query_of(values) -> dict[str, list[str]]:
    """The list's filter parameters only (no cursor, no token), empty values dropped."""
    query = {}
    for key in KEYS:
        kept = [str(v).strip()[:64] for v in (values.getlist(key) if hasattr(values, "getlist") else
                                              [values.get(key)]) if v and str(v).strip()]
        if kept:
            query[key] = kept
    return query


def save(owner: Actor, name, values, zone: str = "Asia/Shanghai") -> SavedOrderFilter:
    """Save the current filters under a name (audited). Refused: no name, no filter, filters the list refuses,
    a phone search, a name the owner already uses, more than MAX_PER_USER."""
    name = text(name, "name", 60)
    query = _query_of(values)
    if not query or set(query) == {"sort"}:
        raise ValidationFailed(say(NO_FILTERS), field="name", code="no_filters")
    filters = parse_filters(MultiDict([(k, v) for k, vs in query.items() for v in vs]), zone, drill_down=True)
    if filters.personal_kind() is not None:
        raise ValidationFailed(say(PERSONAL), field="q", code="personal_value_in_filter")
    owned = own(owner.id)
    if any(row.name == name for row in owned):
        raise ValidationFailed(say(NAME_TAKEN, name=name), field="name", code="name_taken")
    if len(owned) >= MAX_PER_USER:
        raise ValidationFailed(say(TOO_MANY, limit=MAX_PER_USER), field="name", code="too_many_filters")
    row = SavedOrderFilter(owner_id=owner.id, name=name, query=query)
    db.session.add(row)
    db.session.flush()
    audit.record(owner, "order_filter.save", "saved_filter", row.id, after={"name": name, "filters": query})
    return row


def own(owner_id: int) -> list[SavedOrderFilter]:
    return list(db.session.execute(select(SavedOrderFilter).where(SavedOrderFilter.owner_id == owner_id)
                                   .order_by(SavedOrderFilter.name)).scalars())


def for_owner_or_404(filter_id: int, owner_id: int) -> SavedOrderFilter:
    """One of the owner's saved filters; another user's is not found, by construction."""
    row = db.session.execute(select(SavedOrderFilter).where(SavedOrderFilter.id == filter_id,
                                                            SavedOrderFilter.owner_id == owner_id)).scalar()
    if row is None:
        raise NotFound(say(NOT_FOUND), code="not_found")
    return row


def delete(row: SavedOrderFilter, owner: Actor) -> None:
    audit.record(owner, "order_filter.delete", "saved_filter", row.id, before={"name": row.name, "filters": row.query})
    db.session.delete(row)
    db.session.flush()
