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


# Channel sync, reconciliation and outbound webhooks.
# Orders store "partially_refunded" (shared/services/orders.py REFUND_STATUSES); the table above only knew "partial".
REFUND.setdefault("partially_refunded", _l("Partly refunded"))
INBOX_STATUS = {"received": _l("Not processed yet"), "processing": _l("Processing"), "done": _l("Done"),
                "review": _l("Needs review"), "retry": _l("Waiting to retry"), "dead": _l("Dead-lettered")}
INBOX_SOURCE = {"webhook": _l("Webhook"), "poll": _l("Poll"), "import": _l("Import"), "refetch": _l("Re-fetch")}
INBOX_OUTCOME = {"created": _l("Order created"), "updated": _l("Order updated"),
                 "stale": _l("Older than ours, skipped"), "unchanged": _l("No change"), "ping": _l("Test ping")}
SYNC_ALERT = {"not_syncing": _l("Not syncing"), "failure_rate": _l("Too many failures"),
              "dead_letter": _l("Dead-lettered payloads")}
WEBHOOK_REJECTION = {"unknown_channel": _l("Unknown channel"), "no_webhooks": _l("Channel takes no webhooks"),
                     "too_large": _l("Body too large"), "unsupported_media_type": _l("Not JSON"),
                     "not_configured": _l("No webhook secret set"), "missing_signature": _l("Signature missing"),
                     "bad_signature": _l("Wrong signature")}
RECONCILIATION_STATUS = {"running": _l("Running"), "ok": _l("Finished"), "failed": _l("Failed")}
RECONCILIATION_TRIGGER = {"schedule": _l("Scheduled"), "manual": _l("Started by hand")}
DIFFERENCE = {"missing_here": _l("Missing here"), "missing_there": _l("Missing on the platform"),
              "status_mismatch": _l("Status differs")}
DELIVERY_STATUS = {"pending": _l("Pending"), "delivered": _l("Sent"), "retry": _l("Waiting to retry"),
                   "dead": _l("Gave up")}
# Why an inbox row waits for a person (the English detail from the service follows the label).
INBOX_ERROR = {
    "unknown_status": _l("Platform status not in the mapping"), "unmapped_sku": _l("Channel SKU not mapped"),
    "amounts_do_not_add_up": _l("Amounts do not add up"), "invalid_amount": _l("Invalid amount"),
    "invalid_quantity": _l("Invalid quantity"), "naive_timestamp": _l("Time without a time zone"),
    "invalid_timestamp": _l("Unreadable time"), "invalid_json": _l("Not valid JSON"),
    "missing_field": _l("Required field missing"), "insufficient_stock": _l("Not enough stock"),
    "address_change_too_late": _l("Address changed after packing"), "processing_failed": _l("Processing failed"),
    "invalid_phone": _l("Invalid phone number"), "no_lines": _l("No order lines"),
    "unreadable_payload": _l("Payload in an unexpected shape"),
}
