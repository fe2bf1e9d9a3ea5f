"""Peak memory of a process tree, read from /proc while it runs.

``TreePeak(pid)`` polls, every ``interval`` seconds on a thread of its own, the process
``pid`` and all its descendants (a Celery worker's main process, its pool child, and any
process that child starts, such as the engine's target reader).  It keeps, per process, the
largest ``VmHWM`` (the kernel's own peak RSS of that process) it saw, and the largest total
``Pss`` of the tree at one poll.

* ``hwm_mb`` (reported as "peak RSS"): the largest sum, at one poll, of the own peaks of the
  processes alive at that poll (so a pool child that was replaced is not added to its
  successor).  An upper bound: the peaks may not coincide, and pages shared by a fork (the
  pool child's copy of the imported code) count once per process.
* ``pss_mb``: the tree's largest proportional set size at one poll: shared pages split
  between their sharers, so closer to what the tree really held, but sampled (a peak shorter
  than ``interval`` can be missed).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def _kb(value: str) -> int:
    return int(value.split()[0]) if value else 0


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may contain spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


ROLES = ("main", "child", "grandchild")


def descendants(pid: int) -> list[tuple[int, int]]:
    """``pid`` and every process below it, each with its depth (0 for ``pid``)."""
    children = _children()
    found, todo = [], [(pid, 0)]
    while todo:
        current, depth = todo.pop()
        found.append((current, depth))
        todo.extend((child, depth + 1) for child in children.get(current, []))
    return found


class TreePeak:
    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.hwm_kb: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self.pss_kb = 0
        self.tree_hwm_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"tree-peak-{pid}")

    def poll(self) -> None:
        pss = hwm = 0
        for pid, depth in descendants(self.pid):
            try:
                status = _status(pid)
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:  # it ended between the listing and the read
                continue
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), _kb(status.get("VmHWM", "")))
            hwm += self.hwm_kb[pid]
            self.roles.setdefault(pid, ROLES[min(depth, len(ROLES) - 1)])
            for line in rollup.splitlines():
                if line.startswith("Pss:"):
                    pss += _kb(line.split(":", 1)[1])
        self.pss_kb = max(self.pss_kb, pss)
        self.tree_hwm_kb = max(self.tree_hwm_kb, hwm)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def start(self) -> TreePeak:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (after one last poll, if the root still runs)."""
        self._stop.set()
        self._thread.join()
        if os.path.exists(f"/proc/{self.pid}"):
            self.poll()

    @property
    def hwm_mb(self) -> float:
        return self.tree_hwm_kb / 1024

    @property
    def pss_mb(self) -> float:
        return self.pss_kb / 1024

    def breakdown(self) -> str:
        """Each process's own peak by its place in the tree: ``main 110 + child 132 + ...``
        (a Celery worker's child is its pool process; a grandchild, what that one starts)."""
        parts = sorted(
            self.hwm_kb.items(), key=lambda item: (ROLES.index(self.roles[item[0]]), item[0])
        )
        return " + ".join(f"{self.roles[pid]} {kb / 1024:.0f}" for pid, kb in parts)
