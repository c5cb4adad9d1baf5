"""History people can read: one audit event as a sentence in the viewer's language, with each changed field's
before → after in words.

Every event name has one message code (SENTENCES) whose named parameters are the actor (`actor`), the entity's id
(`id`), its state before and after (`from`, `to`, in the entity's own state labels) and any key of the event's
after/before values, each in words; a name without its own code falls back to GENERIC. Values are read only as the
viewer's role may see them (`audit.visible_values`, the masking the audit viewer applies): a field hidden to the role
reads "hidden", and the audit trail itself never holds more than a masked form of personal data. Money is shown with
its currency, times in the merchant's zone with the zone named. tests/test_history.py fails on an event name used
in the code without a sentence here.
"""
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l

from shared import labels
from shared.services import audit
from shared.timekeeping import to_zone

_PARAM = re.compile(r"%\((\w+)\)s")
GENERIC = _l("%(actor)s: %(event)s")
WITH_REASON = _l("%(sentence)s, reason: %(reason)s")
CHANGE = _l("%(field)s: %(before)s → %(after)s")
DETAIL = _l("%(field)s: %(value)s")
LIST_SEPARATOR = _l(", ")
NOTHING = _l("(none)")
HIDDEN = _l("hidden")
YES, NO = _l("yes"), _l("no")
SYSTEM_ACTOR = _l("System")
TIME_IN_ZONE = _l("%(time)s (%(zone)s)")
LINE = _l("line %(id)s")

# One sentence per event name. `from`/`to` are the entity's state before and after; any other name is a key of the
# event's after (else before) values, in words.
SENTENCES = {
    # orders
    "order.create": _l("%(actor)s created order %(id)s (%(to)s)"),
    "order.transition": _l("%(actor)s moved order %(id)s from %(from)s to %(to)s"),
    "order.release_hold": _l("%(actor)s released the hold on order %(id)s: back to %(to)s"),
    "order.platform_state": _l("%(actor)s took over the platform's state of order %(id)s: %(from)s → %(to)s"),
    "order.platform_deleted": _l("%(actor)s recorded that order %(id)s was deleted on the platform (%(to)s)"),
    "order.payment": _l("%(actor)s recorded the payment of order %(id)s"),
    "order.refund_status": _l("%(actor)s changed the refund of order %(id)s"),
    "order.address_change": _l("%(actor)s changed the shipping address of order %(id)s"),
    "order.price_change": _l("%(actor)s changed the prices of order %(id)s"),
    "order.note_added": _l("%(actor)s added a note to order %(id)s"),
    "order.tag_added": _l("%(actor)s tagged order %(id)s: %(tag)s"),
    "order.tag_removed": _l("%(actor)s removed the tag %(tag)s from order %(id)s"),
    "customer.note_added": _l("%(actor)s added a note to customer %(id)s"),
    "alarm.acknowledged": _l("%(actor)s acknowledged alarm %(id)s"),
    "alarm.assigned": _l("%(actor)s assigned alarm %(id)s to %(assignee)s"),
    "alarm.muted": _l("%(actor)s muted alarms %(id)s until %(muted_until)s"),
    "order.guest_lookup_locked": _l("Guest look-ups of order %(id)s were locked until %(locked_until)s"),
    "shipment.allocate": _l("%(actor)s allocated order %(id)s to warehouse %(warehouse)s"),
    "shipment.allocate_split": _l("%(actor)s split order %(id)s into several parcels"),
    "shipment.backup_carrier": _l("%(actor)s gave order %(id)s to the backup carrier %(carrier)s"),
    "shipment.carrier_load_skip": _l("%(actor)s skipped carrier %(skipped)s for order %(id)s (the carrier reported "
                                     "%(load)s) and gave it to %(carrier)s"),
    "carrier.deweight": _l("%(actor)s de-weighted carrier %(id)s: score %(score)s in %(month)s, under %(line)s"),
    "carrier.restore": _l("%(actor)s restored carrier %(id)s: score %(score)s in %(month)s, at or over %(line)s"),
    "carrier.score_rules": _l("%(actor)s changed the carrier scoring rules"),
    "stock.return_inspected": _l("%(actor)s inspected a return of order %(id)s: %(quantity)s × %(sku)s"),
    "customer.create": _l("%(actor)s created customer %(id)s"),
    "customer.set_password": _l("%(actor)s set the password of customer %(id)s"),
    "customer.sign_in": _l("Customer %(id)s signed in"),
    "customer.sign_in_failed": _l("A sign-in as customer %(id)s failed"),
    "customer.sign_in_refused": _l("A sign-in as customer %(id)s was refused: the account is locked"),
    "customer.sign_out": _l("Customer %(id)s signed out"),
    # stock, catalog, warehouse floor
    "stock.adjust": _l("%(actor)s adjusted the stock of %(id)s"),
    "stock.hold": _l("%(actor)s changed the held stock of %(id)s"),
    "stock.shelve": _l("%(actor)s shelved %(units)s units in bin %(bin)s of warehouse %(id)s"),
    "stock_take.start": _l("%(actor)s started stock-take %(id)s in warehouse %(warehouse)s"),
    "stock_take.count": _l("%(actor)s counted %(counted)s of %(sku)s in stock-take %(id)s"),
    "stock_take.submit": _l("%(actor)s submitted stock-take %(id)s for approval"),
    "stock_take.approved": _l("%(actor)s approved stock-take %(id)s"),
    "stock_take.rejected": _l("%(actor)s rejected stock-take %(id)s"),
    "sku.create": _l("%(actor)s created SKU %(id)s"),
    # purchasing (shared/services/purchasing.py)
    "supplier.create": _l("%(actor)s created supplier %(id)s"),
    "supplier.update": _l("%(actor)s changed supplier %(id)s"),
    "supplier.sku_save": _l("%(actor)s set the terms of SKU %(sku)s bought from supplier %(id)s"),
    "supplier.sku_remove": _l("%(actor)s removed SKU %(sku)s from supplier %(id)s"),
    "purchasing.suggest": _l("%(actor)s computed purchase suggestions (run %(id)s): %(to_order)s lines to order"),
    "purchasing.mail": _l("%(actor)s queued the purchase suggestions of run %(run)s to supplier %(id)s"),
    "sku.update": _l("%(actor)s changed SKU %(id)s"),
    "sku.tax_data": _l("%(actor)s changed the tax data of SKU %(id)s"),
    "warehouse.create": _l("%(actor)s created warehouse %(id)s"),
    "warehouse.update": _l("%(actor)s changed warehouse %(id)s"),
    "bin.create": _l("%(actor)s created bin %(bin)s in warehouse %(id)s"),
    "bin.update": _l("%(actor)s changed bin %(bin)s of warehouse %(id)s"),
    "wave.plan": _l("%(actor)s planned wave %(id)s: %(orders)s orders from %(warehouse)s"),
    "wave.release": _l("%(actor)s released wave %(id)s (%(orders)s orders)"),
    "wave.resume_release": _l("%(actor)s resumed releasing wave %(id)s (%(orders)s orders)"),
    "device.register": _l("%(actor)s registered device %(name)s for warehouse %(warehouse)s"),
    "device.revoke": _l("%(actor)s revoked device %(name)s"),
    # channels, inbox, webhooks, payments
    "channel.create": _l("%(actor)s created channel %(id)s"),
    "channel.update": _l("%(actor)s changed channel %(id)s"),
    "channel.connect": _l("%(actor)s connected channel %(id)s"),
    "channel.connection_change": _l("%(actor)s changed the connection of channel %(id)s"),
    "channel.status_mapping": _l("%(actor)s mapped platform status %(platform_status)s of channel %(id)s"),
    "channel.sku_mapping": _l("%(actor)s mapped channel SKU %(channel_sku)s of %(id)s to %(sku)s"),
    "channel.sku_unmap": _l("%(actor)s removed the mapping of channel SKU %(channel_sku)s of %(id)s"),
    "channel.mapping_import": _l("%(actor)s imported %(rows)s mapping rows into channel %(id)s"),
    "channel.import": _l("%(actor)s imported %(orders)s orders into channel %(id)s"),
    "channel.reconcile": _l("%(actor)s reconciled channel %(id)s with the platform"),
    "inbox.replay": _l("%(actor)s sent inbox item %(id)s to be processed again"),
    "webhook.subscribe": _l("%(actor)s subscribed %(name)s to webhooks"),
    "webhook.activate": _l("%(actor)s switched webhook subscription %(id)s on"),
    "webhook.deactivate": _l("%(actor)s switched webhook subscription %(id)s off"),
    "webhook.redeliver": _l("%(actor)s sent webhook delivery %(id)s again"),
    "payment_account.configure": _l("%(actor)s set up the payment account of channel %(id)s"),
    "payments.reconcile": _l("%(actor)s reconciled the %(bill_date)s bill of %(provider)s"),
    # invoices
    "invoice.requested": _l("%(actor)s requested invoice %(serial)s"),
    "invoice.resubmitted": _l("%(actor)s resubmitted invoice request %(id)s"),
    "invoice.cancelled": _l("%(actor)s cancelled invoice request %(id)s"),
    "invoice.issued": _l("Invoice request %(id)s was issued: %(numbers)s"),
    "invoice.failed": _l("Invoice request %(id)s failed"),
    "invoice.mailed": _l("Invoice %(number)s was mailed"),
    "invoice.red_requested": _l("%(actor)s asked for a red-letter reversal of invoice %(original_number)s"),
    "invoice.red_submitted": _l("The red-letter reversal of invoice %(original_number)s was submitted"),
    "invoice.red_confirmed": _l("The red-letter reversal of invoice %(original_number)s was confirmed"),
    "invoice.red_issued": _l("The red-letter reversal of invoice %(original_number)s was issued"),
    "invoice.red_refused": _l("The red-letter reversal of invoice %(original_number)s was refused"),
    "invoice_profile.create": _l("%(actor)s added invoice profile %(id)s"),
    "invoice_profile.update": _l("%(actor)s changed invoice profile %(id)s"),
    "invoice_profile.delete": _l("%(actor)s deleted invoice profile %(id)s"),
    "invoice_profile.default": _l("%(actor)s made invoice profile %(id)s the default"),
    # approvals and exceptions
    "approval.request": _l("%(actor)s asked for approval %(id)s (%(entity)s)"),
    "approval.decide": _l("%(actor)s decided approval %(id)s: %(decision)s"),
    "approval.withdraw": _l("%(actor)s withdrew approval %(id)s"),
    "approval.escalate": _l("Approval %(id)s was escalated to level %(level)s"),
    "approval.refused": _l("%(actor)s was refused on approval %(id)s"),
    "approval.delegate": _l("%(actor)s let %(delegate)s approve for %(id)s from %(starts_on)s to %(ends_on)s"),
    "approval.delegation_revoked": _l("%(actor)s ended %(delegate)s's approving for %(id)s"),
    "approval_rule.create": _l("%(actor)s created approval rule %(id)s"),
    "approval_rule.update": _l("%(actor)s changed approval rule %(id)s"),
    "exception.raise": _l("%(actor)s raised exception %(id)s: %(kind)s"),
    "exception.transition": _l("%(actor)s moved exception %(id)s from %(from)s to %(to)s"),
    "exception.reopen": _l("%(actor)s reopened exception %(id)s"),
    "exception.assign": _l("%(actor)s assigned exception %(id)s to %(assignee)s"),
    "exception.warn": _l("Exception %(id)s is close to its deadline"),
    "exception.breach": _l("Exception %(id)s missed its deadline"),
    "exception.escalate": _l("Exception %(id)s was escalated"),
    "exception.close": _l("Exception %(id)s was closed"),
    "exception.route": _l("%(actor)s routed exceptions %(id)s to team %(team)s"),
    "exception.route_removed": _l("%(actor)s removed the routing of exceptions %(id)s"),
    "exception.sla_target": _l("%(actor)s changed the deadlines of %(id)s exceptions"),
    "exception.canned_reply": _l("%(actor)s changed the canned reply %(id)s"),
    # people, roles, security
    "user.create": _l("%(actor)s created user %(id)s as %(role)s"),
    "user.update": _l("%(actor)s changed user %(id)s"),
    "user.unlock": _l("%(actor)s unlocked user %(id)s"),
    "user.set_password": _l("%(actor)s set a new password for user %(id)s"),
    "user.password_reset": _l("%(actor)s reset the password of user %(id)s: a change is due at their next sign-in"),
    "user.password_changed": _l("User %(id)s changed their password"),
    "user.token_revoked": _l("%(actor)s revoked the API token %(token_prefix)s of user %(id)s"),
    # after-sales (shared/services/after_sales.py)
    "after_sale.requested": _l("%(actor)s opened after-sales request %(id)s for order %(order_no)s"),
    "after_sale.approved": _l("%(actor)s approved after-sales request %(id)s"),
    "after_sale.declined": _l("%(actor)s declined after-sales request %(id)s"),
    "after_sale.awaiting_return": _l("%(actor)s set after-sales request %(id)s to wait for the goods to come back"),
    "after_sale.received": _l("%(actor)s received the goods of after-sales request %(id)s"),
    "after_sale.inspected": _l("%(actor)s inspected the goods of after-sales request %(id)s"),
    "after_sale.refunded": _l("%(actor)s refunded after-sales request %(id)s"),
    "after_sale.replaced": _l("%(actor)s sent the replacement for after-sales request %(id)s"),
    "after_sale.resent": _l("%(actor)s re-sent the missing items of after-sales request %(id)s"),
    "after_sale.closed": _l("%(actor)s closed after-sales request %(id)s"),
    "after_sale.cancelled": _l("%(actor)s cancelled after-sales request %(id)s"),
    "after_sale.replacement": _l("%(actor)s sent the goods of after-sales request %(id)s out again as replacement order "
                                 "%(replacement_order_no)s"),
    "order.replacement": _l("%(actor)s made order %(id)s the replacement for after-sales request %(after_sale_id)s of "
                            "order %(original_order_no)s"),
    "after_sale.refund": _l("%(actor)s asked for the refund of after-sales request %(id)s: %(amount)s"),
    "after_sale.reason": _l("%(actor)s edited the after-sales reason %(id)s"),
    "after_sale.policy": _l("%(actor)s edited return policy %(id)s"),
    # refunds (shared/services/refunds.py) and return pickups (shared/services/return_pickups.py)
    "refund.requested": _l("%(actor)s asked for a refund of %(amount)s on order %(id)s"),
    "refund.succeeded": _l("The refund of %(amount)s on order %(id)s was made"),
    "refund.failed": _l("The payment provider refused the refund %(out_refund_no)s of order %(id)s"),
    "refund.invoices_reversed": _l("%(actor)s opened red-letter reversals of %(amount)s for the refund of order %(id)s"),
    "return_pickup.book": _l("%(actor)s booked the return pickup %(id)s of order %(order_no)s (waybill %(waybill_no)s)"),
    "return_pickup.cancel": _l("%(actor)s cancelled the return pickup %(id)s"),
    "return_pickup.callback": _l("The carrier updated the return pickup %(id)s"),
    "return_pickup.tracking": _l("The return parcel of pickup %(id)s moved on"),
    "warehouse.return_address": _l("%(actor)s changed the return address of warehouse %(id)s"),
    # the customer's own account and requests (customer_site: account, self-service, guest codes)
    "customer.tier": _l("%(actor)s moved customer %(id)s to tier %(tier)s"),
    "stock_offer.made": _l("Order %(id)s was out of stock: it waits with offers in exception %(exception)s"),
    "stock_offer.accept": _l("%(actor)s accepted for order %(id)s: %(offer_text)s"),
    "stock_offer.stale": _l("The stock of order %(id)s arrived anyway: reserved as ordered, the offers are stale"),
    "stock_offer.settings": _l("%(actor)s changed how out-of-stock offers are computed"),
    "stock_offer.tier": _l("%(actor)s changed the out-of-stock offers of tier %(id)s"),
    "stock_offer.substitute": _l("%(actor)s marked %(substitute)s as a substitute for %(id)s"),
    "stock_offer.receipt": _l("%(actor)s recorded an expected receipt of %(quantity)s × %(sku)s on %(expected_on)s"),
    "customer.profile": _l("%(actor)s changed the profile of customer %(id)s"),
    "customer.password_refused": _l("A password change of customer %(id)s was refused: the current password was wrong"),
    "customer.address_create": _l("%(actor)s added address %(id)s to the address book"),
    "customer.address_update": _l("%(actor)s changed address %(id)s in the address book"),
    "customer.address_delete": _l("%(actor)s removed address %(id)s from the address book"),
    "customer.address_default": _l("%(actor)s made address %(id)s the default"),
    "order.cancel_requested": _l("%(actor)s asked to cancel order %(id)s"),
    "order.cancel_request_decided": _l("%(actor)s answered the request to cancel order %(id)s: %(decision)s"),
    "order.message": _l("%(actor)s wrote in the message thread of order %(id)s"),
    "order.reroute": _l("%(actor)s moved order %(id)s to warehouse %(warehouse)s after its address changed"),
    "guest.code_sent": _l("A one-time code for order %(id)s was sent by %(channel)s"),
    "guest.code_wrong": _l("A wrong one-time code was entered for order %(id)s"),
    "guest.code_verified": _l("A guest confirmed a one-time code for order %(id)s"),
    "exception.note": _l("%(actor)s added a note to exception %(id)s"),
    "user.team": _l("%(actor)s moved user %(id)s to team %(team)s"),
    "user.token_issued": _l("%(actor)s issued an API token for user %(id)s"),
    "user.tokens_revoked": _l("%(actor)s revoked %(revoked)s API tokens of user %(id)s"),
    "user.sign_in": _l("User %(id)s signed in"),
    "user.sign_in_failed": _l("A sign-in as user %(id)s failed"),
    "user.sign_in_refused": _l("A sign-in as user %(id)s was refused: the account is locked"),
    "user.sign_out": _l("User %(id)s signed out"),
    "user.sign_out_everywhere": _l("%(actor)s ended every session of user %(id)s"),
    "role.create": _l("%(actor)s created role %(id)s"),
    "role.update": _l("%(actor)s changed role %(id)s"),
    "role.permissions": _l("%(actor)s changed the permissions of role %(id)s"),
    "role.delete": _l("%(actor)s deleted role %(id)s"),
    "team.create": _l("%(actor)s created team %(id)s"),
    "team.update": _l("%(actor)s changed team %(id)s"),
    "second_factor.enrolment_started": _l("%(actor)s started setting up a second factor for %(id)s"),
    "second_factor.enrolled": _l("%(actor)s set up a second factor for %(id)s"),
    "second_factor.verified": _l("%(actor)s confirmed a second-factor code for %(id)s"),
    "second_factor.refused": _l("A second-factor code for %(id)s was refused"),
    "second_factor.locked": _l("The second factor of %(id)s was locked until %(locked_until)s"),
    "second_factor.recovery_code_used": _l("%(actor)s used a recovery code for %(id)s"),
    "second_factor.recovery_codes_regenerated": _l("%(actor)s made new recovery codes for %(id)s"),
    "second_factor.reset": _l("%(actor)s reset the second factor of %(id)s"),
    "second_factor.reset_refused": _l("%(actor)s was refused resetting the second factor of %(id)s"),
    "step_up.granted": _l("%(actor)s confirmed it is them for sensitive operations until %(expires_at)s"),
    "step_up.refused": _l("%(actor)s was asked to confirm it is them on %(path)s"),
    "access.forbidden": _l("%(actor)s was refused %(path)s: no permission %(id)s"),
    "search.rate_exceeded": _l("%(actor)s searched for personal data too often"),
    "keys.rotate": _l("%(actor)s rotated the data keys (%(values)s values re-encrypted)"),
    "keys.rotate_refused": _l("%(actor)s was refused rotating the data keys"),
    "kpi.target": _l("%(actor)s set the target of %(id)s to %(target)s"),
    # exports and retention
    "export.request": _l("%(actor)s asked for export %(id)s"),
    "export.clear": _l("%(actor)s cleared export %(id)s"),
    "export.made": _l("Export %(id)s was made: %(rows)s rows"),
    "export.failed": _l("Export %(id)s failed"),
    "export.expire": _l("The link of export %(id)s expired"),
    "export.clearance_lapsed": _l("Export %(id)s expired without clearance"),
    "export.stalled": _l("Export %(id)s stopped before it finished"),
    "export.purge": _l("The file of export %(id)s was purged"),
    "access_report.monthly": _l("The monthly access report %(id)s was made for %(for)s"),
    "retention.period_changed": _l("%(actor)s changed the retention period of %(id)s"),
    "retention.hold_placed": _l("%(actor)s placed a legal hold on %(id)s"),
    "retention.hold_released": _l("%(actor)s released the legal hold on %(id)s"),
    "retention.run": _l("The retention run of %(id)s finished"),
    # bulk work on the order list (shared/services/bulk_actions.py, order_assignment.py, saved_filters.py)
    "order.assign": _l("%(actor)s assigned order %(id)s to %(assignee)s, team %(team)s"),
    "bulk.start": _l("%(actor)s asked for bulk action %(id)s (%(bulk_action)s) on %(orders)s orders"),
    "bulk.confirm": _l("%(actor)s confirmed bulk action %(id)s"),
    "bulk.discard": _l("%(actor)s did not confirm bulk action %(id)s: nothing was done"),
    "bulk.finish": _l("Bulk action %(id)s finished: %(done)s done, %(refused)s refused"),
    "bulk.failed": _l("Bulk action %(id)s stopped: %(error)s"),
    "order_filter.save": _l("%(actor)s saved the order filter %(name)s"),
    "order_filter.delete": _l("%(actor)s deleted the order filter %(name)s"),
}

# Which label table names a "status" value, by the entity the event is about.
STATE_TABLES = {
    "order": labels.STATUS, "export": labels.EXPORT_STATUS, "exception": labels.EXCEPTION_STATE,
    "invoice_request": labels.INVOICE_STATUS, "red_letter": labels.RED_STATUS, "stock_take": labels.STOCK_TAKE_STATUS,
    "wave": labels.WAVE_STATUS, "webhook_delivery": labels.DELIVERY_STATUS, "inbox_item": labels.INBOX_STATUS,
    "tracking_push": labels.INBOX_STATUS, "shipment": labels.SHIPMENT_STATUS, "after_sale": labels.AFTER_SALE_STATE,
    "bulk_job": labels.BULK_STATUS,
}
# Keys whose values are codes of a label table, whatever the entity.
VALUE_TABLES = {
    "payment_status": labels.PAYMENT, "refund_status": labels.REFUND, "lifecycle": labels.STATUS,
    "carrier": labels.CARRIER, "resource": labels.RESOURCE, "action": labels.ACTION,
    "error_code": labels.INBOX_ERROR, "bulk_action": labels.BULK_ACTION, "tag": labels.ORDER_TAG,
}
DECISION = {"approve": _l("approved"), "approved": _l("approved"), "reject": _l("rejected"),
            "rejected": _l("rejected"), "declined": _l("declined")}
MONEY_KEYS = frozenset({"total", "goods_total", "shipping_fee", "discount", "gross", "total_gross", "unit_price",
                        "amount"})
TIME_KEYS = frozenset({"at", "locked_until", "muted_until", "confirmed_at", "expires_at", "placed_at", "paid_at"})

# What a key of before/after is called.
FIELDS = {
    "status": _l("Status"), "payment_status": _l("Payment"), "refund_status": _l("Refund"), "total": _l("Total"),
    "goods_total": _l("Goods total"), "shipping_fee": _l("Shipping fee"), "discount": _l("Discount"),
    "currency": _l("Currency"), "warehouse_id": _l("Warehouse"), "warehouse": _l("Warehouse"),
    "lines": _l("Line prices"), "receiver": _l("Receiver"), "phone": _l("Phone"), "address": _l("Address"),
    "street": _l("Street"), "receiver_name": _l("Receiver"), "receiver_phone": _l("Receiver phone"),
    "province": _l("Province"), "city": _l("City"), "district": _l("District"), "postal_code": _l("Postal code"),
    "email": _l("Email"), "name": _l("Name"), "fields": _l("Fields changed"),
    "topic": _l("Topic"), "sku": _l("SKU"), "quantity": _l("Quantity"), "restocked": _l("Back in stock"),
    "on_hand": _l("On hand"), "held": _l("Held back"), "bin": _l("Bin"), "units": _l("Units"),
    "counted": _l("Counted"),
    "expected": _l("Expected"), "expected_at_start": _l("Expected at the start"), "variances": _l("Variances"),
    "safety_stock": _l("Safety stock"), "batch_tracked": _l("Batch tracked"), "walk_order": _l("Walk order"),
    "capacity": _l("Capacity"), "orders": _l("Orders"), "carrier": _l("Carrier"), "distance_km": _l("Distance (km)"),
    "priority": _l("Priority"), "parcels": _l("Parcels"), "refused": _l("Refused"), "kind": _l("Kind"),
    "timezone": _l("Time zone"), "role": _l("Role"), "active": _l("Active"), "team": _l("Team"),
    "days": _l("Days"), "hold": _l("Legal hold"), "locked_until": _l("Locked until"), "expires_at": _l("Expires"),
    "failures": _l("Failures"), "reason": _l("Reason"), "path": _l("Page"), "method": _l("Method"),
    "resource": _l("Resource"), "action": _l("Action"), "rows": _l("Rows"), "file": _l("File"),
    "error": _l("Error message"), "error_code": _l("Error code"), "attempts": _l("Attempts"),
    "decision": _l("Decision"),
    "state": _l("State"), "stage": _l("Stage"), "round": _l("Round"), "entity": _l("About"), "rule": _l("Rule"),
    "delegate": _l("Delegate"), "assignee": _l("Assignee"), "comment": _l("Comment"), "target": _l("Target"),
    "numbers": _l("Invoice numbers"), "number": _l("Invoice number"), "serial": _l("Serial"),
    "at": _l("At"), "purpose": _l("Purpose"), "method_used": _l("Method"), "platform_status": _l("Platform status"),
    "lifecycle": _l("Order state"), "channel_sku": _l("Channel SKU"), "key_kind": _l("Key kind"),
    "url": _l("Address (URL)"), "events": _l("Events"), "provider": _l("Payment provider"),
    "bill_date": _l("Bill date"),
    "grants": _l("Permissions"), "added": _l("Added"), "removed": _l("Removed"), "name_zh": _l("Name (Chinese)"),
    "name_en": _l("Name (English)"), "lead": _l("Lead"), "parent_id": _l("Parent team (id)"),
    "sessions_ended": _l("Sessions ended"), "enrolled": _l("Second factor set up"), "confirmed": _l("Confirmed"),
    "recovery_codes": _l("Recovery codes"), "remaining": _l("Remaining"), "revoked": _l("Revoked"),
    "created": _l("Created"), "first_response_minutes": _l("First response (minutes)"),
    "resolve_minutes": _l("Resolve (minutes)"), "clock": _l("Clock"), "is_default": _l("Default"),
    "breached": _l("Deadline missed"), "assignee_id": _l("Assignee (id)"), "team_id": _l("Team (id)"),
    "searches": _l("Searches"), "values": _l("Values"), "original_number": _l("Original invoice"),
    "full": _l("Full reversal"), "poll_minutes": _l("Poll every (minutes)"), "polling_enabled": _l("Polling"),
    "base_url": _l("Platform address"), "app_key": _l("App key"), "confirmation_no": _l("Confirmation number"),
    "merchant_id": _l("Merchant id"), "app_id": _l("App id"), "missing_here": _l("Missing here"),
    "missing_there": _l("Missing on the platform"), "mismatched": _l("Status differs"), "report": _l("Report"),
    "stored": _l("Stored"), "format": _l("Format"), "filters": _l("Filters"), "personal": _l("Personal data"),
    "by": _l("Cleared by"), "ref": _l("Reference"), "sha256": _l("SHA-256"), "revealed": _l("Revealed fields"),
    "order_no": _l("Order"), "out_refund_no": _l("Refund number"), "waybill_no": _l("Waybill"),
    "slot": _l("Pickup slot"), "courier": _l("Courier"), "goods_returned": _l("Goods returned"),
    "must_change_password": _l("Must change the password"), "tokens_revoked": _l("API tokens revoked"),
    "after_reset": _l("After a reset"), "red_letters": _l("Red-letter reversals"),
    "scope": _l("Selection"), "done": _l("Done"), "bulk_action": _l("Bulk action"),
    "lead_time_days": _l("Lead time (days)"), "safety_days": _l("Safety stock (days)"),
    "safety_units": _l("Safety stock (units)"), "moq": _l("MOQ"), "pack_size": _l("Pack size"),
    "supplier_code": _l("Supplier's article"), "locale": _l("Language"), "week": _l("Week"),
    "to_order": _l("Lines to order"), "cannot_suggest": _l("Lines that cannot be suggested"), "run": _l("Run"),
    "to_domain": _l("Mail domain"),
}


# Reasons the system writes itself (shared/services/orders.py, channel_orders.py, bulk_orders.py, approvals.py,
# sign_in.py) are English text in the event: read in the viewer's language here. A reason a person typed is shown as
# typed.
SYSTEM_REASONS = (
    (re.compile(r"paid order passed auto-review"), _l("paid order passed auto-review")),
    (re.compile(r"paid on the platform"), _l("paid on the platform")),
    (re.compile(r"completed on the platform"), _l("completed on the platform")),
    (re.compile(r"approval #(?P<id>\d+) approved"), _l("approval #%(id)s approved")),
    (re.compile(r"first seen (?P<state>\w+) on the platform"), _l("first seen %(state)s on the platform")),
    (re.compile(r"changed on the platform: (?P<fields>[\w, ]+)"), _l("changed on the platform: %(fields)s")),
    (re.compile(r"platform: (?P<channel>.+) status (?P<status>.+)"),
     _l("held by %(channel)s: platform status %(status)s")),
    (re.compile(r"account locked"), _l("account locked")),
)


def reason_words(reason: str) -> str:
    """A reason in the viewer's language when the system wrote it, else as typed."""
    for pattern, message in SYSTEM_REASONS:
        found = pattern.fullmatch(reason)
        if found:
            words = found.groupdict()
            if "state" in words:
                words["state"] = labels.label(labels.STATUS, words["state"])
            if "fields" in words:
                names = [name.strip() for name in words["fields"].split(",")]
                if not all(name in FIELDS for name in names):
                    continue  # words a person typed, not the column names the system lists
                words["fields"] = str(LIST_SEPARATOR).join(field_name(name) for name in names)
            return str(message) % words if words else str(message)
    return reason


class _Words(dict):
    """Sentence parameters: a name the event does not carry reads as "(none)" instead of failing the page."""

    def __missing__(self, key):
        return str(NOTHING)


@dataclass
class Change:
    """One field of an event in words: `before` is None for a value that was only set (or only removed); `text` is
    the line the viewer reads, made in their language when the event is described."""

    field: str
    before: str | None
    after: str | None
    text: str = ""

    def __post_init__(self):
        if not self.text:
            self.text = (str(DETAIL) % {"field": self.field, "value": self.after} if self.before is None
                         else str(CHANGE) % {"field": self.field, "before": self.before, "after": self.after})

    def __str__(self) -> str:
        return self.text


@dataclass
class Told:
    """An event as the viewer reads it: the sentence, each changed field in words, and the raw event (as the
    viewer's role may see it) for the one click away."""

    sentence: str
    changes: list[Change] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


def has_sentence(action: str) -> bool:
    return action in SENTENCES


def merchant_zone() -> str:
    return current_app.config["MERCHANT_TIMEZONE"] if has_app_context() else "Asia/Shanghai"


def time_words(moment: datetime | str | None) -> str:
    """A moment in the merchant's zone, the zone named: "2026-12-04 18:30 (Asia/Shanghai)"."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
    if moment is None:
        return str(NOTHING)
    zone = merchant_zone()
    return str(TIME_IN_ZONE) % {"time": to_zone(moment, zone).strftime("%Y-%m-%d %H:%M"), "zone": zone}


def money_words(amount, currency: str | None) -> str:
    try:
        text = str(Decimal(str(amount)).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError):
        return str(amount)
    return f"{currency} {text}" if currency else text


def value_words(key: str, value, entity_type: str, currency: str | None = None) -> str:
    """One stored value in words: labels for codes, money with its currency, times in the merchant's zone."""
    if value is None or value == "":
        return str(NOTHING)
    if value == audit.HIDDEN:
        return str(HIDDEN)
    if isinstance(value, bool):
        return str(YES if value else NO)
    if isinstance(value, dict):
        if key == "lines":  # a price change: {line id: unit price}
            return "; ".join(str(DETAIL) % {"field": str(LINE) % {"id": k}, "value": money_words(v, currency)}
                             for k, v in value.items())
        return "; ".join(str(DETAIL) % {"field": field_name(k), "value": value_words(k, v, entity_type, currency)}
                         for k, v in value.items())
    if isinstance(value, list):
        return str(LIST_SEPARATOR).join(value_words(key, v, entity_type, currency) for v in value)
    if key in MONEY_KEYS:
        return money_words(value, currency)
    if key in TIME_KEYS or key.endswith("_at"):
        return time_words(value)
    if key == "status":
        return labels.label(STATE_TABLES.get(entity_type, {}), str(value))
    if key in VALUE_TABLES:
        return labels.label(VALUE_TABLES[key], str(value))
    if key == "role":
        return labels.role_name(str(value))
    if key == "decision":
        return labels.label(DECISION, str(value))
    if key == "kind" and entity_type in ("alarm", "alarm_mute", "sync_alert"):
        return labels.label({**labels.FULFILMENT_ALARM, **labels.SYNC_ALERT}, str(value))
    if key == "kind" and entity_type == "channel":
        return labels.label(labels.CHANNEL_KIND, str(value))
    if key == "kind" and entity_type == "exception":
        return labels.label(labels.EXCEPTION_KIND, str(value))
    if key == "fields":
        return field_name(str(value))
    if key == "warehouse_id":
        return warehouse_code(value)
    return str(value)


def warehouse_code(warehouse_id) -> str:
    """A warehouse by its code, as staff name it (the session's identity map keeps each one looked up once)."""
    from shared.extensions import db
    from shared.models import Warehouse

    try:
        warehouse = db.session.get(Warehouse, int(warehouse_id))
    except (TypeError, ValueError):
        warehouse = None
    return warehouse.code if warehouse is not None else str(warehouse_id)


def field_name(key: str) -> str:
    return str(FIELDS[key]) if key in FIELDS else key.replace("_", " ")


def _named(message) -> set[str]:
    """The parameter names a message code uses (read from its msgid, the same in every language)."""
    return set(_PARAM.findall(msgid(message)))


def msgid(message) -> str:
    """The English text a lazy message code was declared with."""
    args = getattr(message, "_args", None)
    return args[0] if args else str(message)


def actor_words(label: str | None) -> str:
    return str(SYSTEM_ACTOR) if label in (None, "", "system") else label


def describe(event, role: str) -> Told:
    """`event` (an AuditEvent, or anything with its attributes) as a reader of `role` reads it."""
    entity_type = event.entity_type
    before = audit.visible_values(event.before, entity_type, role)
    after = audit.visible_values(event.after, entity_type, role)
    before_d = before if isinstance(before, dict) else {}
    after_d = after if isinstance(after, dict) else {}
    currency = after_d.get("currency") or before_d.get("currency")
    message = SENTENCES.get(event.action, GENERIC)
    named = _named(message)
    params = _Words(actor=actor_words(event.actor_label), id=str(event.entity_id or ""), event=event.action)
    if "status" in before_d:
        params["from"] = value_words("status", before_d["status"], entity_type)
    if "status" in after_d:
        params["to"] = value_words("status", after_d["status"], entity_type)
    for source in (before_d, after_d):  # after wins
        for key, value in source.items():
            if key in named and key not in ("actor", "id", "from", "to", "event"):
                params[key] = value_words(key, value, entity_type, currency)
    sentence = str(message) % params
    if event.reason:
        sentence = str(WITH_REASON) % {"sentence": sentence, "reason": reason_words(event.reason)}
    shown = named | ({"status"} if named & {"from", "to"} else set())
    stored = tuple(side if isinstance(side, dict) else {} for side in (event.before, event.after))
    return Told(sentence=sentence, changes=_changes(before_d, after_d, stored, shown, entity_type, currency),
                raw=raw_event(event, before, after))


def _changes(before: dict, after: dict, stored: tuple[dict, dict], shown: set[str], entity_type: str,
             currency) -> list[Change]:
    """Each field the sentence does not already say: before → after where both sides have it and it changed (as
    stored: a change of a field hidden to the viewer reads "hidden → hidden"), the value alone where only one side
    has it."""
    changes = []
    for key in list(before) + [k for k in after if k not in before]:
        if key in shown or (key == "currency" and not (key in before and key in after)):  # money names it
            continue
        words = lambda side: value_words(key, side[key], entity_type, currency)  # noqa: E731
        if key in before and key in after:
            if stored[0].get(key) != stored[1].get(key):
                changes.append(Change(field_name(key), words(before), words(after)))
        elif key in after:
            changes.append(Change(field_name(key), None, words(after)))
        elif not after:
            changes.append(Change(field_name(key), None, words(before)))
        else:
            changes.append(Change(field_name(key), words(before), str(NOTHING)))
    return changes


def raw_event(event, before, after) -> dict:
    """The event as stored, with before/after as the viewer's role may see them."""
    occurred = getattr(event, "occurred_at", None)
    return {"seq": getattr(event, "seq", None), "occurred_at": occurred.isoformat() if occurred else None,
            "actor": event.actor_label, "ip": getattr(event, "ip", None), "action": event.action,
            "entity_type": event.entity_type, "entity_id": event.entity_id, "before": before, "after": after,
            "reason": event.reason}


# --- the scan log: what a handheld scanned and what it was answered, in words -------------------------------------

SCANNED = {"task": _l("pick task %(value)s"), "bin": _l("bin %(value)s"), "sku": _l("SKU %(value)s"),
           "lot": _l("batch %(value)s"), "quantity": _l("quantity %(value)s"), "order": _l("order %(value)s"),
           "box": _l("box %(value)s"), "parcel": _l("parcel %(value)s"), "truck": _l("truck %(value)s")}
# The lot stock is shelved into before it has a batch number (shared.services.lots.shelve_unplaced).
LOT_WORDS = {"UNPLACED": _l("not shelved")}
ACCEPTED = _l("Accepted")
REFUSED = _l("Refused: %(reason)s")


def scanned_words(payload) -> str:
    """What a scan named, in words: "pick task 255 · bin A-01 · batch not shelved"."""
    if not isinstance(payload, dict):
        return ""
    parts = []
    for key, words in SCANNED.items():
        value = payload.get(key)
        if value is None or value == "":
            continue
        if key == "lot":
            value = labels.label(LOT_WORDS, str(value))
        parts.append(str(words) % {"value": value})
    return " · ".join(parts)


def refusal_words(refusal: str | None, params: dict | None, message: str) -> str:
    """Why a scan was refused, in the reader's language: from its code (shared.services.scans.REFUSALS) when the
    scan kept one, else the text the handheld was answered with."""
    from flask_babel import gettext

    from shared.services.scans import REFUSALS

    if refusal not in REFUSALS:
        return message
    words = {name: str(value) for name, value in (params or {}).items()}
    if "status" in words:
        words["status"] = labels.label(labels.SHIPMENT_STATUS, words["status"])
    return gettext(REFUSALS[refusal], **words)


def scan_result_words(scan) -> str:
    if scan.accepted:
        return str(ACCEPTED)
    return str(REFUSED) % {"reason": refusal_words(scan.refusal, scan.refusal_params, scan.message)}


# --- The access log in words -------------------------------------------------------------------------------------

SEARCH_DETAIL = _l("by %(kind)s")
SEARCH_FOUND = _l("by %(kind)s, %(count)s found")
EXPORT_OF = _l("%(entity)s: %(kind)s")
ACTION_OUTCOME = _l("%(action)s (%(outcome)s)")


@dataclass(frozen=True)
class AccessWords:
    action: str
    entity: str
    fields: str
    door: str


def _search_detail(entity_id: str) -> str | None:
    """`by:<kind>; found:<n>` (how shared.order_search and shared.customer_search log a search) in words."""
    parts = dict(part.strip().split(":", 1) for part in entity_id.split(";") if ":" in part)
    if "by" not in parts:
        return None
    kind = labels.label(labels.SEARCH_KIND, parts["by"])
    if parts.get("found", "").isdigit():
        return str(SEARCH_FOUND) % {"kind": kind, "count": parts["found"]}
    return str(SEARCH_DETAIL) % {"kind": kind}


def access_words(entry) -> AccessWords:
    """One access-log entry (shared.models.AccessLogEntry) as the auditor reads it: the action, what it was done to,
    the personal fields it showed and the door it came through, each in the viewer's language (codes not in the
    vocabulary are shown as stored, never dropped)."""
    action, _sep, outcome = (entry.action or "").partition(":")
    said = labels.label(labels.ACCESS_ACTION, action)
    if outcome:
        said = str(ACTION_OUTCOME) % {"action": said, "outcome": labels.label(labels.ACCESS_OUTCOME, outcome)}
    entity_type = entry.entity_type or ""
    if entity_type.startswith("export:"):
        from shared.services.export_kinds import KINDS

        kind = entity_type.split(":", 1)[1]
        known = KINDS.get(kind)
        entity = str(EXPORT_OF) % {"entity": labels.label(labels.ACCESS_ENTITY, "export"),
                                   "kind": str(known.label) if known else kind}
        entity = f"{entity} {entry.entity_id}"
    else:
        detail = _search_detail(entry.entity_id or "") if action.startswith("search") else None
        entity = f"{labels.label(labels.ACCESS_ENTITY, entity_type)} {detail or entry.entity_id or ''}".strip()
    fields = str(LIST_SEPARATOR).join(labels.label(labels.PERSONAL_FIELD, code)
                                      for code in (entry.fields or "").split(",") if code)
    return AccessWords(action=said, entity=entity, fields=fields, door=labels.label(labels.ACCESS_DOOR, entry.channel))
