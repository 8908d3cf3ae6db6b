"""Resident memory of a process and all its descendants over time, sampled from /proc.

Beam's multi-processing DirectRunner (and TFX's components in general) start worker processes,
so the memory a run costs is that of its whole process tree, not of the process one starts.
"""

from __future__ import annotations

import os
import threading
import time

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def tree_resident_bytes(root_pid: int) -> int:
    """Resident bytes of `root_pid` and every process descended from it, now (RSS summed; the
    read-only pages processes share, such as libraries, count once per process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                # The command name (field 2) may hold spaces and parentheses: split after it.
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while the listing was read
        children.setdefault(parent, []).append(int(entry))
    total, pending = 0, [root_pid]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
                total += int(statm.read().split()[1]) * _PAGE_BYTES
        except (OSError, IndexError, ValueError):
            continue
        pending += children.get(pid, [])
    return total


class TreeMemorySampler(threading.Thread):
    """Samples `tree_resident_bytes(pid)` every `interval` seconds until `stop()`; `samples`
    holds (unix time, bytes) pairs."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            self.samples.append((time.time(), tree_resident_bytes(self.pid)))
            self._stopped.wait(self.interval)

    def stop(self) -> list[tuple[float, int]]:
        self._stopped.set()
        self.join()
        return self.samples

    def peak_between(self, start: float, end: float) -> int:
        """The highest sample taken from `start` to `end` (unix seconds); 0 when none was."""
        return max((resident for moment, resident in self.samples if start <= moment <= end),
                   default=0)
