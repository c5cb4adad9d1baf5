"""The cron schedule: periodic jobs with stable names so that a restart does not duplicate them."""
from jobs import queues

# (name, dotted path, interval in seconds, queue)
SCHEDULE = (
    # The audit chains: unsealed rows are chained every second (the window a verify reports), checkpointed daily.
    ("seal_audit_logs", "jobs.audit.seal_audit_logs", 1, queues.URGENT),
    ("write_audit_checkpoint", "jobs.audit.write_audit_checkpoint", 86400, queues.DEFAULT),
    ("release_expired_reservations", "jobs.reservations.release_expired_reservations", 60, queues.URGENT),
    # Each channel keeps its own polling period (default 5 minutes); this asks every minute who is due.
    ("poll_due_channels", "jobs.sync.poll_due_channels", 60, queues.SYNC),
    ("sweep_inbox", "jobs.sync.sweep_inbox", 30, queues.SYNC),
    ("check_sync_health", "jobs.sync.check_sync_health", 60, queues.DEFAULT),
    # Reconciliation runs at 02:00 merchant time: checked every 10 minutes, in the merchant's zone.
    ("reconcile_due_channels", "jobs.sync.reconcile_due_channels", 600, queues.SYNC),
    ("deliver_outbox", "jobs.webhooks.deliver_outbox", 10, queues.DEFAULT),
    ("allocate_confirmed", "jobs.fulfilment.allocate_confirmed", 60, queues.DEFAULT),
    ("check_fulfilment", "jobs.fulfilment.check_fulfilment", 60, queues.DEFAULT),
    ("poll_tracking", "jobs.fulfilment.poll_tracking", 600, queues.SYNC),
    # The exception center: detectors' findings raised as exceptions, then the SLA clock (warn, escalate, close).
    ("feed_exceptions", "jobs.exceptions.feed_exceptions", 60, queues.DEFAULT),
    ("check_exception_slas", "jobs.exceptions.check_exception_slas", 60, queues.URGENT),
    # Refused webhook/tracking requests: counted per hour as they come, detail rows pruned hourly.
    ("prune_refused_requests", "jobs.knocking.prune_refused_requests", 3600, queues.DEFAULT),
    # Governed exports: queued ones nothing claimed are sent again (links expiring and files going: retention).
    ("start_queued_exports", "jobs.exports.start_queued_exports", 60, queues.DOCUMENTS),
    # Retention, nightly: anonymise finished orders and customers, empty old payloads, archive old audit and access
    # rows, expire export links and drop export files, each by its period; counts into the audit chain.
    ("apply_retention", "jobs.retention.apply_retention", 86400, queues.DEFAULT),
    # The access report: last month's, asked for once per auditor (checked hourly; a repeat asks for nothing).
    ("request_monthly_access_reports", "jobs.access_report.request_monthly_access_reports", 3600, queues.DEFAULT),
    # Approval steps idle past their due time (2 business hours by default, per rule): 审批滞留, escalated.
    ("escalate_stalled_approvals", "jobs.approvals.escalate_stalled_approvals", 60, queues.DEFAULT),
    # Payment notifications: waiting ones whose order arrived, and retries; the providers' bills once a day.
    ("sweep_payment_notices", "jobs.payments.sweep_payment_notices", 60, queues.SYNC),
    ("reconcile_payments", "jobs.payments.reconcile_yesterday", 86400, queues.SYNC),
    # Refunds a provider left unanswered (a timeout): asked about by their out_refund_no.
    ("resolve_processing_refunds", "jobs.refunds.resolve_processing_refunds", 300, queues.SYNC),
    # Invoices: parts left pending (a provider timeout, a hold for the credit line) submitted, the rest polled.
    ("sweep_invoice_requests", "jobs.invoices.sweep_invoice_requests", 60, queues.DEFAULT),
    # Delivery estimates (median and 90th percentile per carrier and route) recomputed from recent deliveries.
    ("refresh_transit_estimates", "jobs.transit_estimates.refresh_transit_estimates", 3600, queues.DEFAULT),
    # Carrier credibility: checked daily, last month scored once (per carrier and route) and carriers under the line
    # de-weighted, audited.
    ("score_carriers", "jobs.carrier_scores.score_carriers", 86400, queues.DEFAULT),
    # After-sales requests past their merchant-side due time raised as exceptions (category after_sales).
    ("check_after_sales_slas", "jobs.after_sales.check_after_sales_slas", 60, queues.DEFAULT),
    # Customer notifications (mail, simulated SMS): what a job did not send, and retries of a relay that was down.
    ("send_due_notifications", "jobs.notifications.send_due_notifications", 30, queues.DEFAULT),
    # Purchase suggestions, weekly: checked hourly, computed and mailed to the suppliers once per ISO week.
    ("suggest_purchases", "jobs.purchasing.suggest_purchases", 3600, queues.DEFAULT),
    # Out-of-stock orders waiting with offers, reserved as ordered once their stock arrived (stock_offers).
    ("reserve_arrived_stock", "jobs.stock_offers.reserve_arrived_stock", 300, queues.DEFAULT),
)

# Jobs that need a timeout other than RQ's default (180 s): a sealer that hangs must not hold its log for long,
# and the next one (a second later) finds the log free again.
TIMEOUTS = {"seal_audit_logs": 30, "write_audit_checkpoint": 300, "feed_exceptions": 120,
            "check_exception_slas": 60, "escalate_stalled_approvals": 120, "apply_retention": 1800,
            "reconcile_payments": 900, "sweep_invoice_requests": 300, "resolve_processing_refunds": 300,
            "refresh_transit_estimates": 300, "suggest_purchases": 600, "score_carriers": 600,
            "reserve_arrived_stock": 300}
