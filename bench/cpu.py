"""Where a run's CPU went: each component of the stack with everything it forked, PostgreSQL, the
sandbox, and the machine as a whole, between two snapshots.

A process tree's CPU is the sum, over the processes alive at the snapshot, of their own CPU time
and that of the children they have reaped (``/proc/<pid>/stat``'s cutime and cstime): a task
process that ended between the snapshots is counted in the executor worker that waited for it.
"""

from __future__ import annotations

from typing import Any

import psutil


def tree_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants, alive or reaped by one of them; 0 if it is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def postmaster() -> int | None:
    """The PostgreSQL server's first process on this machine (its backends are its children)."""
    for proc in psutil.process_iter(["name", "ppid"]):
        if proc.info["name"] == "postgres" and proc.info["ppid"] == 1:
            return proc.pid
    return None


def snapshot(roots: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process tree, and the machine's busy and total seconds."""
    found = {name: tree_seconds(pid) for name, pid in roots.items() if pid}
    machine = psutil.cpu_times()
    found["machine busy"] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
    found["machine busy"] += getattr(machine, "steal", 0.0)
    found["machine total"] = found["machine busy"] + machine.idle + getattr(machine, "iowait", 0.0)
    return found


def usage(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, Any]:
    """CPU seconds per tree between two snapshots, the machine's busy seconds that no tree accounts
    for, and how busy the machine was (busy ÷ total, all cores)."""
    spent = {name: round(after[name] - before[name], 2) for name in before if name in after}
    busy = spent.pop("machine busy")
    total = spent.pop("machine total")
    return {
        "wall_seconds": round(wall, 1),
        "machine_busy_seconds": round(busy, 1),
        "machine_busy_share": round(busy / total, 3) if total else None,
        "cores": psutil.cpu_count(),
        "seconds": dict(sorted(spent.items(), key=lambda kv: -kv[1])),
        "other_seconds": round(busy - sum(spent.values()), 1),
    }
