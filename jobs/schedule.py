"""The cron schedule: periodic jobs with stable names so that a restart does not duplicate them."""
from jobs import queues

# (name, dotted path, interval in seconds, queue)
SCHEDULE = (
    ("release_expired_reservations", "jobs.reservations.release_expired_reservations", 60, queues.URGENT),
)
