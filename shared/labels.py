"""Words shown to people for codes stored in the database, in the viewer's language."""
from flask_babel import lazy_gettext as _l

STATUS = {
    "pending_review": _l("Pending review"), "confirmed": _l("Confirmed"), "allocated": _l("Allocated"),
    "picking": _l("Picking"), "packed": _l("Packed"), "shipped": _l("Shipped"), "completed": _l("Completed"),
    "on_hold": _l("On hold"), "cancelled": _l("Cancelled"), "closed": _l("Closed"),
}
PAYMENT = {"unpaid": _l("Unpaid"), "paid": _l("Paid"), "refunded": _l("Refunded"),
           "partially_refunded": _l("Partially refunded")}
REFUND = {"none": _l("No refund"), "requested": _l("Refund requested"), "partial": _l("Partly refunded"),
          "refunded": _l("Refunded")}
ROLE = {"admin": _l("Administrator"), "ops_manager": _l("Operations manager"),
        "customer_service": _l("Customer service"), "warehouse": _l("Warehouse staff"), "finance": _l("Finance"),
        "auditor": _l("Auditor")}
MOVEMENT = {"receipt": _l("Receipt"), "adjustment": _l("Adjustment"), "shipment": _l("Shipment"),
            "return": _l("Return"), "transfer_in": _l("Transfer in"), "transfer_out": _l("Transfer out"),
            "stocktake": _l("Stock-take")}
RESERVATION = {"active": _l("reserved"), "released": _l("released"), "consumed": _l("shipped from stock")}
# What a customer reads on the status timeline, in their words rather than the warehouse's.
CUSTOMER_STATUS = {
    "pending_review": _l("Order received"), "confirmed": _l("Order confirmed"), "allocated": _l("Being prepared"),
    "picking": _l("Being prepared"), "packed": _l("Packed, waiting for the carrier"), "shipped": _l("On its way"),
    "completed": _l("Delivered"), "on_hold": _l("Paused: we will contact you"), "cancelled": _l("Cancelled"),
    "closed": _l("Closed"),
}


def label(table: dict, code: str | None) -> str:
    return str(table.get(code, code or ""))
