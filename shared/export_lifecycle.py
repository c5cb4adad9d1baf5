"""The lifecycle of a governed export, declared as data like the floor's (shared/floor_lifecycle.py).

A personal export waits for clearance (a fresh step-up or an approval) before it is queued; the job claims it
(queued -> running) and ends it done or failed; a done export's link expires (24 h, or its last allowed download)
and its file is purged after 7 days. An export never cleared within 24 h expires unmade."""
from shared.floor_lifecycle import Lifecycle



def _chains(*chains: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    return frozenset((a, b) for chain in chains for a, b in zip(chain, chain[1:]))


DOWNLOADABLE = "done"
EXPORT = Lifecycle(
    "export",
    states=("awaiting_clearance", "queued", "running", "done", "failed", "expired", "purged"),
    transitions=_chains(("awaiting_clearance", "queued", "running", "done", "expired", "purged"),
                       ("awaiting_clearance", "expired"), ("queued", "failed"), ("running", "failed", "purged"),
                       ("done", "purged")),
    initial="queued",
)
# Shown with a progress bar that refreshes itself.
IN_PROGRESS = ("queued", "running")
