"""The one permission table: role x resource x action, plus what each role sees of personal data."""
import functools
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPS_MANAGER = "ops_manager"
    CUSTOMER_SERVICE = "customer_service"
    WAREHOUSE = "warehouse"
    FINANCE = "finance"
    AUDITOR = "auditor"


class Action(StrEnum):
    VIEW = "view"
    EDIT = "edit"
    APPROVE = "approve"
    DELETE = "delete"


class Visibility(StrEnum):
    FULL = "full"  # may reveal the whole value (each reveal is written to the access log)
    MASKED = "masked"  # sees e.g. 138****5678, or the address to district level
    HIDDEN = "hidden"  # sees nothing


# `payments`: record a payment by hand (e.g. a bank transfer); `holds`: release an order on hold back to where it
# was. `stock` approve covers stock-takes: turning a count into an adjustment.
# Governance: `roles` the role matrix and teams (edit: change them); `approvals` the inbox (view), deciding a step one
# is named on (approve), the approval rules (edit); `exceptions` the exception center (view, edit: work one), its
# routing, SLA targets and canned replies (approve); `exports` one's own exports (view), starting one (edit);
# `retention` periods and legal holds (view, edit). Access reports are `access_log` view.
RESOURCES = ("dashboard", "orders", "stock", "catalog", "customers", "users", "audit", "access_log", "channels",
             "webhooks", "fulfilment", "payments", "holds", "roles", "approvals", "exceptions", "exports",
             "retention")

V, E, A, D = Action.VIEW, Action.EDIT, Action.APPROVE, Action.DELETE
ALL = frozenset(Action)

PERMISSIONS: dict[Role, dict[str, frozenset[Action]]] = {
    Role.ADMIN: {r: ALL for r in RESOURCES},
    Role.OPS_MANAGER: {
        "dashboard": frozenset({V}),
        "orders": frozenset({V, E, A}),
        "stock": frozenset({V, E, A}),
        "catalog": frozenset({V, E}),
        "customers": frozenset({V}),
        "audit": frozenset({V}),
        # Sync health, the inbox (replay), status and SKU mappings, reconciliation, outbound webhooks.
        "channels": frozenset({V, E}),
        "webhooks": frozenset({V, E}),
        # Fulfilment board, waves (plan and release: edit), scan log, carrier scorecard, alarms, near expiry.
        "fulfilment": frozenset({V, E}),
        "payments": frozenset({E}),
        "holds": frozenset({A}),
        "roles": frozenset({V}),
        "approvals": frozenset({V, E, A}),
        "exceptions": frozenset({V, E, A}),
        "exports": frozenset({V, E}),
    },
    Role.CUSTOMER_SERVICE: {
        "dashboard": frozenset({V}),
        "orders": frozenset({V, E}),
        "stock": frozenset({V}),
        "customers": frozenset({V}),
        "channels": frozenset({V}),
        "fulfilment": frozenset({V}),  # where a parcel is, for the customer on the phone
        "holds": frozenset({A}),  # the customer called back: the order goes on
        "approvals": frozenset({V, A}),
        "exceptions": frozenset({V, E}),
    },
    Role.WAREHOUSE: {
        "dashboard": frozenset({V}),
        "orders": frozenset({V, E}),
        "stock": frozenset({V, E}),
        "catalog": frozenset({V}),
        "fulfilment": frozenset({V, E}),
        "approvals": frozenset({V, A}),
        "exceptions": frozenset({V, E}),
    },
    Role.FINANCE: {
        "dashboard": frozenset({V}),
        "orders": frozenset({V}),
        "stock": frozenset({V}),
        "channels": frozenset({V}),  # reconciliation reports
        "payments": frozenset({E}),
        "approvals": frozenset({V, A}),
        "exceptions": frozenset({V, E}),
        "exports": frozenset({V, E}),
    },
    Role.AUDITOR: {
        "dashboard": frozenset({V}),
        "orders": frozenset({V}),
        "stock": frozenset({V}),
        "audit": frozenset({V}),
        "access_log": frozenset({V}),
        "channels": frozenset({V}),
        "webhooks": frozenset({V}),
        "fulfilment": frozenset({V}),
        "roles": frozenset({V}),
        "approvals": frozenset({V}),
        "exceptions": frozenset({V}),
        "exports": frozenset({V, E}),  # the access log and audit trail, as files
        "retention": frozenset({V}),
    },
}

PERSONAL_FIELDS = ("name", "phone", "address", "email", "id_number")

F, M, H = Visibility.FULL, Visibility.MASKED, Visibility.HIDDEN
FIELD_VISIBILITY: dict[Role, dict[str, Visibility]] = {
    Role.ADMIN: {"name": F, "phone": F, "address": F, "email": F, "id_number": F},
    Role.OPS_MANAGER: {"name": F, "phone": F, "address": F, "email": F, "id_number": M},
    Role.CUSTOMER_SERVICE: {"name": M, "phone": M, "address": M, "email": M, "id_number": H},
    # The warehouse ships the parcel: it needs the receiver and the whole address, not the id number.
    Role.WAREHOUSE: {"name": F, "phone": F, "address": F, "email": H, "id_number": H},
    Role.FINANCE: {"name": M, "phone": M, "address": M, "email": M, "id_number": M},
    Role.AUDITOR: {"name": H, "phone": H, "address": H, "email": H, "id_number": H},
}


# Jobs and channel sync act as `system` (never a staff role: no user can be given it).
SYSTEM_ROLE = "system"
SYSTEM_PERMISSIONS: dict[str, frozenset[Action]] = {
    "payments": frozenset({E}),  # a platform or the carrier says the order is paid
    "holds": frozenset({A}),  # a platform's refund request resolved: the hold it caused is lifted
}


@functools.lru_cache(maxsize=4096)  # the table is fixed at import: a (role, resource, action) is looked up once
def can(role: str, resource: str, action: str) -> bool:
    """Whether a role may take an action on a resource; unknown roles may do nothing."""
    try:
        if role == SYSTEM_ROLE:
            return Action(action) in SYSTEM_PERMISSIONS.get(resource, frozenset())
        return Action(action) in PERMISSIONS[Role(role)].get(resource, frozenset())
    except ValueError:
        return False


# Readers who are not staff, in the same table: outbound webhook subscribers get what they need to act; a signed-in
# customer sees their own name and address in full (never the whole phone); a guest look-up sees everything masked.
AUDIENCE_VISIBILITY: dict[str, dict[str, Visibility]] = {
    "subscriber": {"name": M, "phone": M, "address": M, "email": M, "id_number": H},
    "customer": {"name": F, "phone": M, "address": F, "email": M, "id_number": H},
    "guest": {"name": M, "phone": M, "address": M, "email": M, "id_number": H},
}


# The tables are fixed at import, as for `can`; an order snapshot asks about six times (through an exception for the
# non-staff audiences), so each (role, field) is answered once per process.
@functools.lru_cache(maxsize=4096)
def visibility(role: str, field: str) -> Visibility:
    """What a staff role or another audience (AUDIENCE_VISIBILITY) sees of a personal field; unknown: hidden."""
    try:
        return FIELD_VISIBILITY[Role(role)][field]
    except ValueError:
        return AUDIENCE_VISIBILITY.get(role, {}).get(field, Visibility.HIDDEN)
    except KeyError:
        return Visibility.HIDDEN
