"""What every benchmark result records: the machine, the command and the time; and how it is written."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import sys
import time


def machine_description() -> dict:
    """CPU model, cores, memory and Python, read from /proc on Linux."""
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    meminfo = pathlib.Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                      if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    return {"cpu": cpu_model, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1),
            "gpu": "none", "python": platform.python_version(), "platform": platform.platform()}


def result_header(benchmark: str) -> dict:
    """The fields every result starts with: what was measured, the exact command, when, where."""
    return {"benchmark": benchmark, "command": "python " + " ".join(sys.argv),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_description()}


def write_result(result: dict, path: str | pathlib.Path) -> None:
    """Writes `result` as indented JSON (benchmarks/results/ is the committed record)."""
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
