"""`textclf`: the project's command line. `textclf run` runs the pipeline locally."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import time
from typing import Optional, Sequence

from pipeline.config import ConfigError, PipelineConfig
from pipeline.preflight import PREFLIGHT_ERRORS, preflight

# Exit codes besides 0 (pushed) and 1 (the run failed; traceback in the log).
EXIT_BAD_INPUT = 2  # bad configuration or input data: nothing ran
EXIT_NOT_BLESSED = 3  # the run worked but the Evaluator refused the model: CI jobs should notice

# Named flags for the options people change most; `--set section.key=value` reaches every other.
_FLAG_TO_KEY = {
    "data_path": "data.path",
    "delimiter": "data.delimiter",
    "text_column": "data.text_column",
    "text_pair_column": "data.text_pair_column",
    "label_column": "data.label_column",
    "slice_columns": "data.slice_columns",
    "label_values": "data.label_values",
    "train_pattern": "data.train_pattern",
    "eval_pattern": "data.eval_pattern",
    "train_steps": "training.train_steps",
    "pretrained": "model.pretrained",
    "output_dir": "output_dir",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textclf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
    run.add_argument("--config", help="YAML file with any of the PipelineConfig sections")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="SECTION.KEY=VALUE", help="override one option (repeatable)")
    run.add_argument("--data-path", help="CSV/TSV file or folder of them (data.path)")
    run.add_argument("--delimiter", help="column delimiter; 'tab' or '\\t' for TSV")
    run.add_argument("--text-column")
    run.add_argument("--text-pair-column", help="second text column of sentence-pair tasks")
    run.add_argument("--label-column")
    run.add_argument("--slice-columns", help="comma-separated metadata columns to slice by")
    run.add_argument("--label-values", help="comma-separated allowed labels, in id order")
    run.add_argument("--train-pattern", help="train file pattern inside --data-path, e.g. train.tsv")
    run.add_argument("--eval-pattern", help="eval file pattern inside --data-path, e.g. dev.tsv")
    run.add_argument("--train-steps", help="total optimiser steps")
    run.add_argument("--pretrained", help="checkpoint folder or hub id to fine-tune "
                     "(model.pretrained); `make pretrained` prints an offline one")
    run.add_argument("--output-dir", help="folder for the pipeline root, MLMD and serving store")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")
    return parser


def load_config(args: argparse.Namespace) -> PipelineConfig:
    """The configuration file, then `--set` overrides, then the named flags."""
    overrides = list(args.overrides)
    overrides += [f"{key}={getattr(args, flag)}" for flag, key in _FLAG_TO_KEY.items()
                  if getattr(args, flag) is not None]
    if args.no_cache:
        overrides.append("enable_cache=false")
    return PipelineConfig.load(args.config, overrides)


def _log_to_file(log_dir: str) -> pathlib.Path:
    """Sends INFO logs (TFX, Beam, Keras) to stderr and to a per-run file."""
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel

    absl_logging.set_verbosity(absl_logging.INFO)
    log_path = pathlib.Path(log_dir, time.strftime("run-%Y%m%d-%H%M%S.log"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    return log_path


def _run(config: PipelineConfig) -> int:
    started = time.monotonic()
    try:
        inputs = preflight(config)
    except PREFLIGHT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    log_path = _log_to_file(config.log_dir)
    try:
        from pipeline.local_runner import run_local  # pylint: disable=import-outside-toplevel

        outcome = run_local(config, inputs)
    except Exception as error:  # pylint: disable=broad-except
        logging.exception("run failed")
        print(f"error: the run failed: {error}\n(full traceback in {log_path})", file=sys.stderr)
        return 1
    minutes = (time.monotonic() - started) / 60
    accuracy = "n/a" if outcome.accuracy is None else f"{outcome.accuracy:.4f}"
    print(f"run finished in {minutes:.1f} min; eval accuracy {accuracy}; "
          f"{'blessed' if outcome.blessed else 'NOT blessed'}")
    if outcome.pushed_model_dir:
        print(f"pushed model: {outcome.pushed_model_dir}")
        return 0
    print("nothing pushed: the model did not pass the Evaluator's thresholds "
          f"(see the log {log_path})")
    return EXIT_NOT_BLESSED


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _run(config)


def console_main() -> None:
    """Entry point of the `textclf` script.

    Exits without interpreter teardown once output is flushed: TensorFlow's function objects
    otherwise print spurious "Exception ignored in AtomicFunction.__del__" tracebacks at exit.
    """
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(exit_code)  # pylint: disable=protected-access


if __name__ == "__main__":
    console_main()
