"""Runs `textclf` in a fresh interpreter and reports which heavy libraries it imported, for the
commands that promise to start fast (they must import none of them)."""

from __future__ import annotations

import subprocess
import sys
from typing import Sequence

from tests.conftest import REPO_ROOT

HEAVY_LIBRARIES = ("tensorflow", "tfx", "tensorflow_data_validation",
                   "tensorflow_model_analysis", "apache_beam", "kfp")
_SCRIPT = """
import sys
from pipeline import cli
code = cli.main(sys.argv[2:])
sys.stdout.flush()
imported = sorted({name.split('.')[0] for name in sys.modules} & set(sys.argv[1].split(',')))
print('IMPORTED', ','.join(imported), file=sys.stderr)
sys.exit(code)
"""


def run_cli(arguments: Sequence[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    """(the finished process, the heavy libraries it imported)."""
    result = subprocess.run([sys.executable, "-c", _SCRIPT, ",".join(HEAVY_LIBRARIES),
                             *arguments], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    marker = [line for line in result.stderr.splitlines() if line.startswith("IMPORTED ")]
    assert marker, f"the command died before it finished: {result.stderr[-2000:]}"
    return result, [name for name in marker[-1].split(" ", 1)[1].split(",") if name]
