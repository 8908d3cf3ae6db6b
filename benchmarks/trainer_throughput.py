"""Training throughput of the pipeline's Trainer against three baselines, in one run.

Usage: python benchmarks/trainer_throughput.py [--steps 300]   (or `make bench`)
Writes benchmarks/results/trainer_throughput.json. Every arm fine-tunes all-MiniLM-L6-v2 (the
offline checkpoint) for the same steps of batch 32 on the same seeded SST-2 rows:

  pipeline          the whole DAG; the Trainer's own fit time (training_stats.json), with its
                    TensorBoard, progress and crash-safe backup callbacks
  pipeline_bf16     the same with training.precision=mixed_bfloat16 (its export computes in
                    float32); after the fp32 run, so only the Trainer onwards runs again
  keras_fit         a bare Keras `fit` of the same model on the same transformed examples and
                    batches (modules.datasets), no callbacks: the pipeline's overhead baseline
  keras_fit_bf16    the same under the mixed_bfloat16 policy: fp32 vs mixed precision on this CPU
  hf_torch_*        the Hugging Face PyTorch `Trainer` (separate Python 3.11 venv, see
                    benchmarks/torch_trainer.py), padded to max_length as run_glue.py does by
                    default, and with dynamic padding plus length grouping

Throughput counts the steps after the first 50 in every arm: those carry the TF arms' graph
tracing (tens of seconds, once per run), which a run of thousands of steps does not notice. The
figures with tracing are kept beside them. Ratios are computed within the run, since these
machines are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from benchmarks.machine import result_header, write_result  # noqa: E402
from benchmarks.sst2_data import SST2_DIR, sst2_settings, sst2_training_data  # noqa: E402
from modules.bert_classifier import (build_classifier, compile_classifier,  # noqa: E402
                                     resolve_pooling)
from modules.callbacks import SteadyThroughput  # noqa: E402
from modules.datasets import input_dataset  # noqa: E402
from modules.strategy import precision_policy  # noqa: E402
from modules.training import THROUGHPUT_SKIP_STEPS, TRAINING_STATS_FILE  # noqa: E402
from pipeline.checkpoint import resolve_checkpoint  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.local_runner import newest_artifact, run_local  # noqa: E402
from pipeline.offline_checkpoint import install_offline_checkpoint  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "trainer_throughput.json"
TORCH_PYTHON = REPO_ROOT / ".venv-torch" / "bin" / "python"
BATCH_SIZE = 32


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data-dir", default=str(SST2_DIR))
    parser.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "bench_throughput"))
    parser.add_argument("--result", default=str(RESULT_PATH), help="where the JSON goes")
    return parser.parse_args()


def _pipeline_arm(config: PipelineConfig) -> dict:
    outcome = run_local(config)
    stats = json.loads(pathlib.Path(newest_artifact(config, "ModelRun").uri,
                                    TRAINING_STATS_FILE).read_text())
    return {"examples_per_second": stats["steady_examples_per_second"],
            "examples_per_second_with_tracing": stats["examples_per_second"],
            "train_seconds": stats["fit_seconds"], "blessed": outcome.blessed}


def _keras_arm(config: PipelineConfig, checkpoint: pathlib.Path, precision: str) -> dict:
    """A bare `fit` on the pipeline's own transformed examples, read the way the Trainer reads."""
    transform_output = tft.TFTransformOutput(newest_artifact(config, "TransformGraph").uri)
    examples = pathlib.Path(newest_artifact(config, "Examples").uri)  # Transform's output
    dataset = input_dataset([str(examples / "Split-train" / "*")],
                            transform_output.transformed_metadata.schema, BATCH_SIZE,
                            training=True, seed=config.training.seed,
                            max_seq_length=config.model.max_seq_length)
    tf.keras.utils.set_random_seed(config.training.seed)
    with precision_policy(precision):
        # The same head as the pipeline's Trainer builds for this checkpoint.
        pooling = resolve_pooling(config.model, resolve_checkpoint(
            str(checkpoint), config.model.max_seq_length).to_dict())
        model = build_classifier(config.model, vocab_size=0, num_labels=2,
                                 checkpoint_path=str(checkpoint), pooling=pooling)
        compile_classifier(model, config.training, total_steps=config.training.train_steps)
    steady = SteadyThroughput(THROUGHPUT_SKIP_STEPS)
    started = time.monotonic()
    model.fit(dataset, steps_per_epoch=config.training.train_steps, epochs=1, verbose=0,
              callbacks=[steady])
    seconds = time.monotonic() - started
    return {"examples_per_second": round(steady.steps_per_second() * BATCH_SIZE, 2),
            "examples_per_second_with_tracing": round(
                config.training.train_steps * BATCH_SIZE / seconds, 2),
            "train_seconds": round(seconds, 1)}


def _torch_arm(checkpoint: pathlib.Path, train_tsv: pathlib.Path, steps: int,
               padding: str) -> dict:
    if not TORCH_PYTHON.exists():
        return {"skipped": f"{TORCH_PYTHON} missing: run `make bench-torch-venv`"}
    result = subprocess.run(
        [str(TORCH_PYTHON), str(REPO_ROOT / "benchmarks" / "torch_trainer.py"),
         "--checkpoint", str(checkpoint), "--train-tsv", str(train_tsv), "--steps", str(steps),
         "--batch-size", str(BATCH_SIZE), "--padding", padding,
         "--skip-steps", str(THROUGHPUT_SKIP_STEPS)],
        capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    args = _arguments()
    output_dir = pathlib.Path(args.output_dir).resolve()
    shutil.rmtree(output_dir, ignore_errors=True)
    data_dir, _ = sst2_training_data(pathlib.Path(args.data_dir), args.steps * BATCH_SIZE,
                                     output_dir)
    checkpoint = install_offline_checkpoint()
    config = PipelineConfig.load(None, [
        *sst2_settings(data_dir, checkpoint), f"output_dir={output_dir / 'outputs'}",
        f"training.train_steps={args.steps}",
        "training.epochs=1", f"training.batch_size={BATCH_SIZE}", "training.learning_rate=1e-4",
        "training.eval_steps=1", "evaluation.min_accuracy=0",
        # Training speed only: no minutes of TFLite conversion after each Trainer.
        "tflite.variants="])
    started = time.monotonic()
    arms = {"pipeline": _pipeline_arm(config)}
    arms["pipeline_bf16"] = _pipeline_arm(dataclasses.replace(
        config, training=dataclasses.replace(config.training, precision="mixed_bfloat16")))
    arms["keras_fit"] = _keras_arm(config, checkpoint, "fp32")
    arms["keras_fit_bf16"] = _keras_arm(config, checkpoint, "mixed_bfloat16")
    for padding in ("max_length", "dynamic"):
        arms[f"hf_torch_{padding}"] = _torch_arm(checkpoint, data_dir / "train.tsv", args.steps,
                                                 padding)
    rate = {name: arm.get("examples_per_second") for name, arm in arms.items()}
    ratios = {"pipeline_overhead": round(1 - rate["pipeline"] / rate["keras_fit"], 3),
              "pipeline_bf16_overhead": round(
                  1 - rate["pipeline_bf16"] / rate["keras_fit_bf16"], 3),
              "bf16_vs_fp32": round(rate["keras_fit_bf16"] / rate["keras_fit"], 3)}
    for padding in ("max_length", "dynamic"):
        if rate[f"hf_torch_{padding}"]:
            for arm in ("pipeline", "pipeline_bf16"):
                ratios[f"{arm}_vs_hf_torch_{padding}"] = round(
                    rate[arm] / rate[f"hf_torch_{padding}"], 3)
    result = {
        **result_header(
            "Trainer throughput: pipeline vs bare Keras fit vs bf16 vs HF PyTorch Trainer"),
        "setup": {"checkpoint": "all-MiniLM-L6-v2", "data": "SST-2 train, seeded sample",
                  "steps": args.steps, "batch_size": BATCH_SIZE,
                  "max_seq_length": config.model.max_seq_length},
        "arms": arms,
        "ratios": ratios,
        "targets": {"pipeline_overhead": "<= 0.10", "pipeline_vs_hf_torch_max_length": ">= 1.5",
                    "pipeline_vs_hf_torch_dynamic": ">= 1.0"},
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    write_result(result, args.result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
