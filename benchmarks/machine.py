"""What every benchmark result records: the machine, the command and the time; and how it is written."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import sys
import time


# CPU features that change TensorFlow's speed (oneDNN's AVX-512 and bf16 kernels): machines that
# all call themselves "AMD EPYC" trained MiniLM at 40 or 80 examples/s by these.
_SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def machine_description() -> dict:
    """CPU model (family, model and speed-relevant flags), cores, memory and Python, from /proc."""
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    meminfo = pathlib.Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()

    def field(name: str, default: str = "") -> str:
        return next((line.split(":", 1)[1].strip() for line in cpuinfo
                     if line.split(":", 1)[0].strip() == name), default)

    flags = set(field("flags").split())
    memory_kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    return {"cpu": field("model name", platform.processor()),
            "cpu_family_model": f"{field('cpu family')}/{field('model')}",
            "cpu_flags": [flag for flag in _SPEED_FLAGS if flag in flags],
            "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1),
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
