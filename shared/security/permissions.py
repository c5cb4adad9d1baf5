"""The one permission table: role x resource x action, plus what each role sees of personal data.

Roles are data (shared.models.staff.StaffRole, its grants and field visibility; the six built-in roles seeded by
migration 0009, edited by admins through shared.services.roles). `can` and `visibility` answer from the database's
table as of this request (shared.security.role_table), so a role an admin makes or changes at run time takes effect
on the next request in every process. This module names what the table is made of: resources, actions, fields.
"""
from enum import StrEnum


class Role(StrEnum):
    """The built-in roles (seeded; their codes are referred to by the demo, the CLI and the defaults)."""

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


# `order_review`: confirm an order or cancel it before picking (customer service's side of the lifecycle).
# `payments`: record a payment by hand (e.g. a bank transfer); `holds`: release an order on hold back to where it
# was. `stock` approve covers stock-takes: turning a count into an adjustment.
# Governance: `roles` the role matrix and teams (edit: change them); `approvals` the inbox (view), deciding a step one
# is named on (approve), the approval rules (edit); `exceptions` the exception center (view, edit: work one), its
# routing, SLA targets and canned replies (approve); `exports` one's own exports (view), starting one (edit);
# `retention` periods and legal holds (view, edit). Access reports are `access_log` view.
# `kpi`: the managers' dashboards, the KPI board and the state cube (view), the KPI targets (edit).
# `invoices`: finance's invoice queue, invoices and buyers' invoice profiles (view), requesting, resubmitting,
# cancelling and red-letter reversal, keeping B2B profiles and tax data (edit); payment reconciliation (view/edit).
# `after_sales`: the after-sales queue (view), opening a request for a customer and the paperwork of one (edit),
# deciding and refunding one and the reasons and return windows (approve); receiving and inspecting returned goods
# is the floor's `fulfilment` edit (shared/after_sales_lifecycle.py); `fulfilment` approve edits the carrier scoring
# rules (shared/services/carrier_scores.py).
# `purchasing`: the purchase suggestion report and the suppliers (view); keeping suppliers and their SKUs, computing
# the suggestions and mailing them to the suppliers (edit).
RESOURCES = ("dashboard", "orders", "order_review", "stock", "catalog", "customers", "users", "audit", "access_log",
             "channels", "webhooks", "fulfilment", "payments", "holds", "roles", "approvals", "exceptions", "exports",
             "retention", "kpi", "invoices", "after_sales", "purchasing")

PERSONAL_FIELDS = ("name", "phone", "address", "email", "id_number")

E, A = Action.EDIT, Action.APPROVE
F, M, H = Visibility.FULL, Visibility.MASKED, Visibility.HIDDEN


# Jobs and channel sync act as `system` (never a staff role: no user can be given it). The system may also fire
# every lifecycle transition (shared.lifecycle.may_fire: a platform cancelled, the carrier delivered).
SYSTEM_ROLE = "system"
SYSTEM_PERMISSIONS: dict[str, frozenset[Action]] = {
    "payments": frozenset({E}),  # a platform or the carrier says the order is paid
    "holds": frozenset({A}),  # a platform's refund request resolved: the hold it caused is lifted
}

# Whoever holds these may change roles and users: a change that leaves no active user with both is refused.
ADMIN_POWERS = (("roles", Action.EDIT), ("users", Action.EDIT))


def can(role: str, resource: str, action: str) -> bool:
    """Whether a role may take an action on a resource; unknown roles may do nothing."""
    if role == SYSTEM_ROLE:
        return action in SYSTEM_PERMISSIONS.get(resource, ())
    from shared.security import role_table

    return action in role_table.current().grants.get(role, {}).get(resource, ())


# Readers who are not staff, in the same table: outbound webhook subscribers get what they need to act; a signed-in
# customer sees their own name and address in full (never the whole phone); a guest look-up sees everything masked.
AUDIENCE_VISIBILITY: dict[str, dict[str, Visibility]] = {
    "subscriber": {"name": M, "phone": M, "address": M, "email": M, "id_number": H},
    "customer": {"name": F, "phone": M, "address": F, "email": M, "id_number": H},
    "guest": {"name": M, "phone": M, "address": M, "email": M, "id_number": H},
}


def visibility(role: str, field: str) -> Visibility:
    """What a staff role or another audience (AUDIENCE_VISIBILITY) sees of a personal field; unknown: hidden."""
    audience = AUDIENCE_VISIBILITY.get(role)
    if audience is not None:
        return audience.get(field, Visibility.HIDDEN)
    if role == SYSTEM_ROLE:
        return Visibility.HIDDEN
    from shared.security import role_table

    return role_table.current().fields.get(role, {}).get(field, Visibility.HIDDEN)
