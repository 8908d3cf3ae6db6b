"""Describes the machine a benchmark ran on, for its JSON result."""

import os
import pathlib
import platform


def machine_description() -> dict:
    """CPU model, cores, memory and Python, read from /proc on Linux."""
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    meminfo = pathlib.Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                      if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    return {"cpu": cpu_model, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1),
            "gpu": "none", "python": platform.python_version(), "platform": platform.platform()}
