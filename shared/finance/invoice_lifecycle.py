"""The invoice request's lifecycle, declared as data like the order's and the exception's.

requested → submitted (the provider accepted our serial) → issuing (it is being issued) → issued | failed (with the
provider's reason; the profile may be edited and the request resubmitted: failed → requested) | cancelled (before it
was issued). A request held for the credit line (授信额度) stays requested with `held_reason` set.
"""
from shared.floor_lifecycle import Lifecycle

STATES = ("requested", "submitted", "issuing", "issued", "failed", "cancelled")

INVOICE_REQUEST = Lifecycle(
    "invoice_request",
    states=STATES,
    transitions=frozenset({
        ("requested", "submitted"), ("requested", "failed"), ("requested", "cancelled"),
        ("submitted", "issuing"), ("submitted", "issued"), ("submitted", "failed"),
        ("issuing", "issued"), ("issuing", "failed"),
        ("failed", "requested"), ("failed", "cancelled"),
    }),
    initial="requested",
)

# An invoice part (one provider invoice) moves the same way, without cancellation of its own.
PART_STATES = ("pending", "submitted", "issuing", "issued", "failed")

# A red-letter reversal (红字) of an issued blue part: requested (the 红字确认单 is ours) → submitted (the provider
# holds it) → confirmed (the provider confirmed it) → issued (the red invoice, its own number) | refused (with the
# provider's reason, at any step before issued; what it reserved of the blue invoice is free again).
RED_STATES = ("requested", "submitted", "confirmed", "issued", "refused")
RED_REASONS = ("return", "error", "stopped", "allowance")  # 销货退回, 开票有误, 服务中止, 销售折让
RED_REASON_CODES = {"return": "01", "error": "02", "stopped": "03", "allowance": "04"}  # the provider's codes

RED_LETTER = Lifecycle(
    "red_letter",
    states=RED_STATES,
    transitions=frozenset({
        ("requested", "submitted"), ("requested", "refused"),
        ("submitted", "confirmed"), ("submitted", "refused"),
        ("confirmed", "issued"), ("confirmed", "refused"),
    }),
    initial="requested",
)
