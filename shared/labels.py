"""Words shown to people for codes stored in the database, in the viewer's language."""
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext

STATUS = {
    "pending_review": _l("Pending review"), "confirmed": _l("Confirmed"), "allocated": _l("Allocated"),
    "picking": _l("Picking"), "packed": _l("Packed"), "shipped": _l("Shipped"), "completed": _l("Completed"),
    "on_hold": _l("On hold"), "cancelled": _l("Cancelled"), "closed": _l("Closed"),
}
PAYMENT = {"unpaid": _l("Unpaid"), "paid": _l("Paid"), "refunded": _l("Refunded"),
           "partially_refunded": _l("Partially refunded")}
REFUND = {"none": _l("No refund"), "requested": _l("Refund requested"), "partial": _l("Partly refunded"),
          "refunded": _l("Refunded")}
# A channel's platform, as a merchant names it (stored as shared/models/channel.py CHANNEL_KINDS).
CHANNEL_KIND = {"taobao": _l("Taobao / Tmall"), "jd": _l("JD.com"), "pinduoduo": _l("Pinduoduo"),
                "douyin": _l("Douyin shop"), "wechat": _l("WeChat mini program"), "own_shop": _l("Own web shop"),
                "shopify": _l("Shopify"), "woocommerce": _l("WooCommerce"), "offline": _l("Offline store")}
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


def role_name(code: str | None) -> str:
    """A role's name in the viewer's language, from the role's row (roles are data: shared.models.StaffRole)."""
    from flask_babel import get_locale

    from shared.security import role_table

    info = role_table.current().roles.get(code or "")
    if info is None:
        return code or ""
    locale = get_locale()
    return info.name_zh if locale is not None and locale.language == "zh" else info.name_en


# What a resource and an action of the permission table are called (shared.security.permissions).
RESOURCE = {
    "dashboard": _l("Dashboard"), "orders": _l("Orders"), "order_review": _l("Order review"), "stock": _l("Stock"),
    "catalog": _l("Catalog"), "customers": _l("Customers"), "users": _l("Users"), "audit": _l("Audit trail"),
    "access_log": _l("Access log"), "channels": _l("Channels"), "webhooks": _l("Webhooks"),
    "fulfilment": _l("Fulfilment"), "payments": _l("Payments"), "holds": _l("Holds"), "roles": _l("Roles and teams"),
    "approvals": _l("Approvals"), "exceptions": _l("Exceptions"), "exports": _l("Exports"),
    "retention": _l("Retention"), "kpi": _l("Manager dashboards"),
    "invoices": _l("Invoices"), "after_sales": _l("After-sales"), "purchasing": _l("Purchasing"),
}
ACTION = {"view": _l("view"), "edit": _l("edit"), "approve": _l("approve"), "delete": _l("delete")}
VISIBILITY = {"full": _l("full"), "masked": _l("masked"), "hidden": _l("hidden")}
PERSONAL_FIELD = {"name": _l("Name"), "phone": _l("Phone"), "address": _l("Address"), "email": _l("Email"),
                  "id_number": _l("ID number")}


def label(table: dict, code: str | None) -> str:
    return str(table.get(code, code or ""))


def translated(table: dict) -> dict[str, str]:
    """Every label of a table in the viewer's language, looked up once: for a page that shows one per row."""
    return {code: str(text) for code, text in table.items()}


# Channel sync, reconciliation and outbound webhooks.
# Orders store "partially_refunded" (shared/services/orders.py REFUND_STATUSES); the table above only knew "partial".
REFUND.setdefault("partially_refunded", _l("Partly refunded"))
INBOX_STATUS = {"received": _l("Not processed yet"), "processing": _l("Processing"), "done": _l("Done"),
                "review": _l("Needs review"), "retry": _l("Waiting to retry"), "dead": _l("Dead-lettered"),
                "waiting": _l("Waiting for its order")}
INBOX_SOURCE = {"webhook": _l("Webhook"), "poll": _l("Poll"), "import": _l("Import"), "refetch": _l("Re-fetch")}
INBOX_OUTCOME = {"created": _l("Order created"), "updated": _l("Order updated"),
                 "stale": _l("Older than ours, skipped"), "unchanged": _l("No change"), "ping": _l("Test ping"),
                 "ignored": _l("Topic changes no order, recorded"), "unknown_topic": _l("Unknown topic, recorded"),
                 "cancelled": _l("Order cancelled (deleted on the platform)"),
                 "recorded": _l("Deletion recorded (already shipped)"), "not_here": _l("Not an order of ours"),
                 "refunded": _l("Refund applied"),
                 "stored": _l("Tracking events stored"), "nothing_new": _l("No new tracking events"),
                 "no_events": _l("Push without events")}
TRACKING_SOURCE = {"kuaidi100": _l("Kuaidi100"), "17track": _l("17TRACK")}
SYNC_ALERT = {"not_syncing": _l("Not syncing"), "failure_rate": _l("Too many failures"),
              "dead_letter": _l("Dead-lettered payloads")}
WEBHOOK_REJECTION = {"unknown_channel": _l("Unknown channel"), "no_webhooks": _l("Channel takes no webhooks"),
                     "too_large": _l("Body too large"), "unsupported_media_type": _l("Not JSON"),
                     "not_configured": _l("No webhook secret set"), "missing_signature": _l("Signature missing"),
                     "bad_signature": _l("Wrong signature"),
                     "rate_limited_address": _l("Too many refusals from this address"),
                     "rate_limited_global": _l("Too many refusals overall")}
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
    "order_not_here": _l("Its order has not arrived yet"),
    "restored_after_cancel": _l("Restored on the platform after we cancelled it"),
    "currency_mismatch": _l("Currency differs from the order"),
    "unknown_tracking_number": _l("No parcel with this tracking number"),
    "invalid_field": _l("Field in an unexpected shape"),
}

# Fulfilment: shipments on the floor, waves, scans, carriers, tracking and alarms.
SHIPMENT_STATUS = {"allocated": _l("Allocated"), "waved": _l("In a wave"), "picking": _l("Picking"),
                   "picked": _l("Picked"), "packed": _l("Packed"), "shipped": _l("Shipped"),
                   "delivered": _l("Delivered"), "cancelled": _l("Cancelled")}
WAVE_STATUS = {"planned": _l("Planned"), "releasing": _l("Releasing"), "released": _l("Released"),
               "done": _l("Finished")}
PICK_TASK_STATUS = {"open": _l("Open"), "picking": _l("Picking"), "done": _l("Picked")}
SCAN_KIND = {"pick": _l("Pick"), "pack": _l("Pack"), "load": _l("Load")}
CARRIER = {"SF": _l("SF Express"), "YTO": _l("YTO Express"), "ZTO": _l("ZTO Express"), "STO": _l("STO Express"),
           "YD": _l("Yunda Express"), "JD": _l("JD Logistics"), "EMS": _l("EMS")}
CARRIER_OUTCOME = {"issued": _l("Waybill issued"), "refused": _l("Refused"), "unavailable": _l("Not reachable"),
                   "skipped": _l("Skipped: carrier at capacity")}
FULFILMENT_ALARM = {"not_packed_in_time": _l("Not packed within 4 hours"),
                    "pick_not_packed": _l("Picked but not packed"), "parcel_stalled": _l("Parcel stalled"),
                    "low_stock": _l("Below safety stock")}
# The carrier's five steps, in order, as staff read them ...
TRACKING_STEP = {"awaiting_pickup": _l("Awaiting pickup"), "in_transit": _l("In transit"),
                 "at_local_station": _l("At the local station"), "out_for_delivery": _l("Out for delivery"),
                 "delivered": _l("Delivered")}
# ... and as the customer reads them.
CUSTOMER_TRACKING_STEP = {"awaiting_pickup": _l("Waiting for the courier"), "in_transit": _l("On its way"),
                          "at_local_station": _l("Arrived in your city"),
                          "out_for_delivery": _l("Out for delivery"), "delivered": _l("Delivered")}
TRACKING_FLAG = {"problem": _l("Problem parcel"), "returning": _l("Being returned"),
                 "returned": _l("Returned to sender"), "refused": _l("Refused by the receiver"),
                 "delivery_failed": _l("Delivery failed"), "expired": _l("Tracking expired")}
CUSTOMER_TRACKING_FLAG = {
    "problem": _l("The carrier reports a problem with your parcel. We are looking into it."),
    "returning": _l("Your parcel is on its way back to us."),
    "returned": _l("Your parcel has come back to us."),
    "refused": _l("The parcel was refused at delivery."),
    "delivery_failed": _l("The courier could not deliver your parcel and will try again."),
    "expired": _l("The carrier no longer reports on this parcel. We are checking with them."),
}

# Stock operations: stock-takes, counted, submitted, then approved or rejected by a manager.
STOCK_TAKE_STATUS = {"counting": _l("Counting"), "submitted": _l("Waiting for approval"), "approved": _l("Approved"),
                     "rejected": _l("Rejected")}

# Governed exports (shared/export_lifecycle.py).
EXPORT_STATUS = {"awaiting_clearance": _l("Waiting for clearance"), "queued": _l("Queued"), "running": _l("Running"),
                 "done": _l("Ready"), "failed": _l("Failed"), "expired": _l("Link expired"),
                 "purged": _l("File purged")}
# Bulk actions on the order list (shared/services/bulk_actions.py).
BULK_ACTION = {"hold": _l("Put on hold"), "release": _l("Release from hold"), "cancel": _l("Cancel"),
               "assign": _l("Assign"), "print": _l("Print pick lists"), "export": _l("Export")}
BULK_STATUS = {"awaiting_confirmation": _l("Waiting for your confirmation"), "queued": _l("Queued"),
               "running": _l("Running"), "done": _l("Finished"), "failed": _l("Failed"),
               "discarded": _l("Not started (not confirmed)")}
BULK_OUTCOME = {"pending": _l("Waiting"), "done": _l("Done"), "held": _l("Sent for approval"),
                "refused": _l("Refused")}
# Out-of-stock choices (shared/services/stock_offers.py).
STOCK_OFFER_KIND = {"transfer": _l("Transfer from another warehouse"), "pre_order": _l("Pre-order with a coupon"),
                    "substitute": _l("Substitute")}
STOCK_OFFER_STATUS = {"open": _l("Open"), "accepted": _l("Accepted"), "stale": _l("No longer needed"),
                      "withdrawn": _l("Withdrawn")}
# The exception center (shared/services/exceptions.py, shared/exception_lifecycle.py).
EXCEPTION_CATEGORY = {"payment": _l("Payment"), "logistics": _l("Logistics"), "product_stock": _l("Product and stock"),
                      "account_risk": _l("Account and risk"), "after_sales": _l("After-sales"),
                      "customer_service": _l("Customer service")}
EXCEPTION_KIND = {
    "payment_not_received": _l("Paid on the platform, unpaid here"), "callback_failed": _l("Callback failed"),
    "payment_amount_mismatch": _l("Payment amount differs from the order"),
    "paid_not_recorded": _l("Paid at the provider, not recorded here"),
    "recorded_not_paid": _l("Recorded here, not in the provider's bill"),
    "refund_mismatch": _l("Refund differs between the bill and here"),
    "bill_row_unreadable": _l("Bill line unreadable"),
    "parcel_stalled": _l("Parcel stalled"), "parcel_returned": _l("Parcel returned"),
    "carrier_refused": _l("Carrier refused"), "late_packing": _l("Late packing"), "out_of_stock": _l("Out of stock"),
    "parcel_not_received": _l("Customer has not received the parcel"),
    "unmapped_sku": _l("Unmapped SKU"), "near_expiry": _l("Near expiry"),
    "stocktake_variance": _l("Stock-take variance"),
    "address_changed_after_packing": _l("Address changed after packing"),
    "duplicate_buyer_orders": _l("Suspected duplicate orders of one buyer"),
    "over_limit_purchase": _l("Over-limit purchase"),
    "after_sales_overdue": _l("After-sales request overdue"),
    "cancel_request": _l("Customer asks to cancel"), "customer_message": _l("Customer message"),
}
EXCEPTION_STATE = {
    "open": lazy_pgettext("exception state", "Open"), "assigned": lazy_pgettext("exception state", "Assigned"),
    "in_progress": lazy_pgettext("exception state", "In progress"),
    "reopened": lazy_pgettext("exception state", "Reopened"),
    "waiting_customer": lazy_pgettext("exception state", "Waiting on customer"),
    "waiting_platform": lazy_pgettext("exception state", "Waiting on platform"),
    "resolved": lazy_pgettext("exception state", "Resolved"), "closed": lazy_pgettext("exception state", "Closed")}
EXCEPTION_MOVE = {"assigned": _l("Assign"), "in_progress": _l("Start work"), "waiting_customer": _l("Wait on customer"),
                  "waiting_platform": _l("Wait on platform"), "resolved": _l("Resolve"), "closed": _l("Close"),
                  "reopened": _l("Reopen")}
SLA_CLOCK = {"business": _l("Business hours"), "calendar": _l("Calendar time")}
EXCEPTION_EVENT = {"raised": _l("Raised"), "assigned": _l("Assigned to"), "transition": _l("Moved"),
                   "reopened": _l("Reopened"), "warned": _l("SLA warning"), "escalated": _l("Escalated"),
                   "customer_message": _l("Customer wrote"), "staff_reply": _l("Answered the customer"),
                   "decision": _l("Decided")}
# Customer requests on an order (shared/services/customer_requests.py) and the notification outbox.
CUSTOMER_REQUEST_STATUS = {"pending": _l("Waiting for the warehouse"), "approved": _l("Approved"),
                           "declined": _l("Declined")}
NOTIFICATION_STATUS = {"queued": _l("Queued"), "sent": _l("Sent"), "failed": _l("Failed")}
# What a customer mail is about (shared/services/notifications.py MESSAGES), as staff read it in the outbox.
NOTIFICATION_EVENT = {
    "shipped": _l("Shipped"), "out_for_delivery": _l("Out for delivery"), "delivered": _l("Delivered"),
    "stalled": _l("Parcel stalled"), "after_sales_approved": _l("After-sales approved"),
    "after_sales_declined": _l("After-sales declined"), "pickup_booked": _l("Pickup booked"),
    "return_received": _l("Return received"), "refunded": _l("Refunded"), "cancel_approved": _l("Cancel approved"),
    "cancelled_by_shop": _l("Cancelled by the shop"), "cancel_declined": _l("Cancel declined"),
    "message_answered": _l("Message answered"), "guest_code": _l("One-time code"),
    "purchase_suggestions": _l("Purchase suggestions to a supplier"),
    "stock_offers": _l("Out of stock: choose an offer"), "stock_arrived": _l("Out-of-stock item arrived"),
    "stock_offer_accepted": _l("Out-of-stock offer accepted"),
}
NOTIFICATION_CHANNEL = {"email": _l("Email"), "sms": _l("Text message (SMS)")}
# Invoice profiles (发票抬头): the kinds of buyer, and SKU tax-free flags (issue 12)
INVOICE_PROFILE_KIND = {"enterprise": _l("Enterprise"), "institution": _l("Government body or public institution"),
                        "individual": _l("Individual"), "other": _l("Other organisation")}
TAX_FREE = {"exempt": _l("Tax exempt (免税)"), "untaxed": _l("Not taxable (不征税)")}
# Invoice requests and their invoices (issue 12): the states finance and the customer read
INVOICE_STATUS = {"requested": _l("Requested"), "submitted": _l("Submitted to the provider"),
                  "issuing": _l("Being issued"), "issued": _l("Issued"), "failed": _l("Failed"),
                  "cancelled": _l("Cancelled"), "held": _l("Held for the credit line"), "pending": _l("Waiting"),
                  "red": _l("With a red-letter reversal (红字)")}
RED_STATUS = {"requested": _l("Requested"), "submitted": _l("Awaiting confirmation (确认单 submitted)"),
              "confirmed": _l("Confirmed"), "issued": _l("Issued"), "refused": _l("Refused")}
RED_REASON = {"return": _l("Sales return (销货退回)"), "error": _l("Invoicing error (开票有误)"),
              "stopped": _l("Service stopped (服务中止)"), "allowance": _l("Sales allowance (销售折让)")}
INVOICE_KIND = {"normal": _l("Normal VAT invoice (普票)"), "special": _l("Special VAT invoice (专票)")}

# After-sales requests (shared/after_sales_lifecycle.py).
AFTER_SALE_TYPE = {"refund_only": _l("Refund only"), "return_refund": _l("Return and refund"),
                   "exchange": _l("Exchange"), "resend": _l("Re-send missing items")}
AFTER_SALE_STATE = {
    "requested": lazy_pgettext("after-sales state", "Requested"), "approved": lazy_pgettext("after-sales state",
                                                                                           "Approved"),
    "declined": lazy_pgettext("after-sales state", "Declined"),
    "awaiting_return": lazy_pgettext("after-sales state", "Awaiting return"),
    "received": lazy_pgettext("after-sales state", "Received"),
    "inspected": lazy_pgettext("after-sales state", "Inspected"),
    "refunded": lazy_pgettext("after-sales state", "Refunded"),
    "replaced": lazy_pgettext("after-sales state", "Replacement sent"),
    "resent": lazy_pgettext("after-sales state", "Missing items sent"),
    "closed": lazy_pgettext("after-sales state", "Closed"),
    "cancelled": lazy_pgettext("after-sales state", "Cancelled"),
}
# A return pickup's state as the customer reads it (shared/services/return_pickups.py statuses).
RETURN_PICKUP_STATUS = {"booked": _l("Courier booked"), "collected": _l("Collected by the courier"),
                        "in_transit": _l("On its way to our warehouse"),
                        "received": _l("Delivered to our warehouse"), "cancelled": _l("Pickup cancelled")}
# The refund of an after-sales request as the customer reads it (shared/services/refunds.py statuses).
RETURN_REFUND_STATE = {"pending_approval": _l("Refund being approved"), "processing": _l("Refund on its way"),
                       "awaiting_platform": _l("Refund on its way through the platform"),
                       "succeeded": _l("Refund paid"), "failed": _l("Refund failed: customer service follows up"),
                       "rejected": _l("Refund failed: customer service follows up")}
RETURN_METHOD = {"pickup": _l("Courier pickup (上门取件)"), "drop_off": _l("Drop-off / send it yourself"),
                 "none": _l("No return shipment")}


# A time zone as people name it: "北京时间" in Chinese; other zones by their IANA name.
ZONE_NAMES = {"Asia/Shanghai": _l("Asia/Shanghai")}
TIME_IN_ZONE = _l("%(time)s (%(zone)s)")
# Order tags (shared/services/order_notes.py TAGS), in the viewer's language.
ORDER_TAG = {"vip": _l("VIP"), "urgent": _l("Urgent"), "complaint": _l("Complaint"), "fragile": _l("Fragile"),
             "gift": _l("Gift"), "callback": _l("Call back"), "address_check": _l("Check the address")}
# What a date input expects, in the viewer's language (the input itself carries the page's `lang`).
DATE_FORMAT_HINT = _l("Format: YYYY-MM-DD")


def zone_name(zone: str) -> str:
    return str(ZONE_NAMES[zone]) if zone in ZONE_NAMES else zone

# The access log (shared.services.audit.log_access): what was done, to what, through which door, in words.
ACCESS_ACTION = {"view": _l("Viewed in full"), "download": _l("Downloaded"),
                 "search": _l("Searched by a personal value"),
                 "search_refused": _l("Search by a personal value refused"), "reveal": _l("Revealed in full"),
                 "print_label": _l("Printed on a shipping label"), "waybill": _l("Sent to a waybill service"),
                 "trace": _l("Traced a leaked file"), "export": _l("Exported to a file")}
# A platform-decrypted reveal is logged as "<action>:<outcome>".
ACCESS_OUTCOME = {"platform_decrypt": _l("decrypted by the platform"),
                  "decrypt_refused": _l("the platform refused to decrypt"),
                  "decrypt_timeout": _l("the platform did not answer"), "decrypt_failed": _l("decrypting failed")}
ACCESS_ENTITY = {"order": _l("Order"), "orders": _l("Orders"), "customers": _l("Customers"),
                 "invoice_request": _l("Invoice"), "invoice_profile": _l("Invoice profile"),
                 "inbox_item": _l("Channel inbox item"), "after_sale_photo": _l("After-sales photo"),
                 "export": _l("Export")}
ACCESS_DOOR = {"portal": _l("Portal"), "api": _l("API"), "customer": _l("Customer site"), "export": _l("Export file"),
               "waybill": _l("Waybill service")}
SEARCH_KIND = {"phone": _l("full phone number"), "phone_masked": _l("masked phone number"),
               "phone_last4": _l("last four digits of the phone"), "receiver_name": _l("receiver's name"),
               "name": _l("name"), "email": _l("email address")}
PERSONAL_FIELD.update({"receiver": _l("Receiver"), "raw_payload": _l("Raw platform payload"),
                       "invoice_pdf": _l("Invoice PDF"),
                       "photo": _l("Photo"), "tax_number": _l("Tax number"), "bank_account": _l("Bank account")})
APPROVAL_STATE = {"pending": _l("Waiting for approval"), "approved": _l("Approved"), "rejected": _l("Rejected"),
                  "withdrawn": _l("Withdrawn")}
