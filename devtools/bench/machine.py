"""CPU seconds of this machine's processes, from Linux /proc: for benchmarks that say where the time of a run went
(the bench client, the app's server processes, PostgreSQL), all on the same machine."""
import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int, reaped_children: bool = False) -> float | None:
    """User + system CPU seconds of one process (with `reaped_children`, also of the children it waited for);
    None when the process is not on this machine (or gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(value) for value in fields[11:15 if reaped_children else 13]) / _TICK


def descendants(pid: int) -> list[int]:
    """The process and every process below it (gunicorn's workers, a forking worker's work horses)."""
    found, level = [pid], [pid]
    while level:
        children = []
        for parent in level:
            try:
                for task in os.listdir(f"/proc/{parent}/task"):
                    children += [int(child) for child in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
            except OSError:
                continue
        found += children
        level = children
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its living descendants."""
    return sum(process_cpu(child) or 0.0 for child in descendants(pid))


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (backends, WAL writer, checkpointer...)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() in ("postgres", "postmaster"):
                    total += process_cpu(int(entry)) or 0.0
            except OSError:
                continue
    return total
