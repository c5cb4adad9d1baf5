"""Queue names, most urgent first; a worker listens to them in this order."""
URGENT = "urgent"
DEFAULT = "default"
SYNC = "sync"
DOCUMENTS = "documents"
ALL = (URGENT, DEFAULT, SYNC, DOCUMENTS)
