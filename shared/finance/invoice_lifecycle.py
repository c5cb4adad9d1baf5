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
