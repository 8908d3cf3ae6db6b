"""Times the default pipeline three times in one process and writes JSON.

Usage: python benchmarks/pipeline_run.py  (or `make bench`); writes
benchmarks/results/pipeline_run.json. Runs: cold; second (data and training from cache, the
Evaluator re-runs because a baseline now exists); third (everything from cache). The cold run
is the in-run baseline for the ratios. Per-component times come from MLMD execution timestamps.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.component_times import component_seconds  # noqa: E402
from benchmarks.machine import result_header, write_result  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.local_runner import run_local  # noqa: E402
from pipeline.training_plan import run_plan  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "pipeline_run.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as output_dir:
        config = PipelineConfig.load(None, [f"data.path={REPO_ROOT / 'data' / 'reviews'}",
                                            f"output_dir={output_dir}"])
        run_seconds, outcomes = [], []
        for _ in range(3):
            started = time.monotonic()
            outcomes.append(run_local(config))
            run_seconds.append(time.monotonic() - started)
            if len(run_seconds) == 1:
                components = component_seconds(config)
    cold_seconds, second_seconds, cached_seconds = run_seconds
    result = {
        **result_header("default pipeline: cold run, second run (Evaluator vs. the new "
                        "baseline), third run with nothing changed; one process, so imports are "
                        "not counted"),
        "config": {"train_steps": run_plan(config).train_steps,
                   "batch_size": config.training.batch_size,
                   "max_seq_length": config.model.max_seq_length},
        "cold_run_seconds": round(cold_seconds, 1),
        "second_run_seconds": round(second_seconds, 1),
        "cached_run_seconds": round(cached_seconds, 1),
        "second_to_cold_ratio": round(second_seconds / cold_seconds, 3),
        "cached_to_cold_ratio": round(cached_seconds / cold_seconds, 3),
        "cold_component_seconds": components,
        "eval_accuracy": outcomes[0].accuracy,
        "blessed": outcomes[0].blessed,
        "same_version_after_reruns": len({outcome.pushed_model_dir for outcome in outcomes}) == 1,
    }
    write_result(result, RESULT_PATH)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
