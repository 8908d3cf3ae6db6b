"""Fine-tunes all-MiniLM-L6-v2 on SST-2 through the whole pipeline and writes JSON.

Usage:
  python benchmarks/sst2_finetune.py                         # the defaults: 3 epochs at 5e-5
  python benchmarks/sst2_finetune.py --train-rows 32000 --epochs 1   # subset: under 30 min
  python benchmarks/sst2_finetune.py --epochs 2 --learning-rate 1e-4

Trains on train.tsv, evaluates on dev.tsv (the Evaluator's accuracy is the dev accuracy) and
reads from MLMD: the Trainer's fit time and throughput, its plan (the values and the rule behind
each: what is not given here is the pipeline's fine-tuning default), the TokenizerParity figure
on dev, and per-component times. The offline checkpoint comes from `make pretrained`; a subset is a seeded
sample of train.tsv written under the output folder (the shared data is never copied into git).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import time
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.component_times import component_seconds  # noqa: E402
from benchmarks.machine import result_header, write_result  # noqa: E402
from benchmarks.sst2_data import SST2_DIR, sst2_settings, sst2_training_data  # noqa: E402
from components.tokenizer_parity import REPORT_FILE, TokenizerParityReport  # noqa: E402
from modules.training import TRAINING_STATS_FILE  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.local_runner import RunOutcome, newest_artifact, run_local  # noqa: E402
from pipeline.offline_checkpoint import install_offline_checkpoint  # noqa: E402


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The options of a fine-tuning run on SST-2 (this benchmark's and the TFLite one's)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default=str(SST2_DIR), help="folder with train.tsv, dev.tsv")
    parser.add_argument("--train-rows", type=int, default=0,
                        help="seeded sample of the training rows; 0 uses all of them")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training rows; default: the pipeline's (3)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: the pipeline's fine-tuning default (5e-5)")
    parser.add_argument("--precision", default=None,
                        help="training.precision (fp32, mixed_bfloat16, mixed_float16); "
                             "default: the pipeline's (fp32)")
    parser.add_argument("--pretrained", default=None,
                        help="checkpoint folder or cached hub id; default: the offline "
                             "all-MiniLM-L6-v2 that `make pretrained` installs")
    parser.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "bench_sst2"))
    parser.add_argument("--result", default=None,
                        help="JSON path; default benchmarks/results/sst2_finetune[_subset].json")
    return parser


def run_sst2(args: argparse.Namespace, overrides: tuple[str, ...] = ()
             ) -> tuple[PipelineConfig, RunOutcome, dict[str, Any]]:
    """Runs the whole pipeline on SST-2 as `args` say (plus config `overrides`): the config, the
    outcome, and the fine-tuning figures every SST-2 result records."""
    output_dir = pathlib.Path(args.output_dir).resolve()
    shutil.rmtree(output_dir, ignore_errors=True)
    data_dir, train_rows = sst2_training_data(pathlib.Path(args.data_dir), args.train_rows,
                                              output_dir)
    checkpoint = args.pretrained or install_offline_checkpoint()
    given = [f"training.epochs={args.epochs}"] if args.epochs else []
    given += [f"training.learning_rate={args.learning_rate}"] if args.learning_rate else []
    given += [f"training.precision={args.precision}"] if args.precision else []
    config = PipelineConfig.load(None, [
        *sst2_settings(data_dir, checkpoint), *given, f"training.batch_size={args.batch_size}",
        f"output_dir={output_dir / 'run'}", *overrides])

    started = time.monotonic()
    outcome = run_local(config)
    wall_seconds = time.monotonic() - started
    model_run = newest_artifact(config, "ModelRun")
    training_stats = json.loads(pathlib.Path(model_run.uri, TRAINING_STATS_FILE).read_text())
    parity = json.loads(pathlib.Path(newest_artifact(config, TokenizerParityReport.TYPE_NAME).uri,
                                     REPORT_FILE).read_text())
    figures = {
        "config": {"train_rows": train_rows, "epochs": config.training.epochs,
                   "options_given": given, "plan": training_stats["plan"],
                   "batch_size": args.batch_size,
                   "warmup_ratio": config.training.warmup_ratio,
                   "max_seq_length": config.model.max_seq_length,
                   "pooling": config.model.pooling},
        "dev_accuracy": outcome.accuracy,
        # Keras' validation pass after each epoch reads the same dev.tsv as the Evaluator.
        "dev_accuracy_by_epoch": training_stats["by_epoch"].get("val_accuracy"),
        "blessed": outcome.blessed,
        "train_fit_seconds": training_stats["fit_seconds"],
        "train_examples_per_second": training_stats["examples_per_second"],
        "tokenizer_parity_dev": parity["parity"],
        "tokenizer_parity_examples": parity["examples"],
        "pipeline_wall_seconds": round(wall_seconds, 1),
        "component_seconds": component_seconds(config),
    }
    return config, outcome, figures


def main() -> None:
    args = argument_parser(__doc__.split("\n", 1)[0]).parse_args()
    _, _, figures = run_sst2(args)
    result = {
        **result_header(f"fine-tune {args.pretrained or 'all-MiniLM-L6-v2'} on SST-2 through the "
                        "full pipeline (train on train.tsv, Evaluator on dev.tsv)"),
        **figures}
    default_name = "sst2_finetune_subset.json" if args.train_rows else "sst2_finetune.json"
    write_result(result, args.result or REPO_ROOT / "benchmarks" / "results" / default_name)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
