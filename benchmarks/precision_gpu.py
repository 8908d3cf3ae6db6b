"""Examples/s and model FLOP utilisation of a BERT-base-sized classifier, fp32 vs bf16 vs fp16.

Usage: python benchmarks/precision_gpu.py            (on a GPU machine; unchanged elsewhere)
       python benchmarks/precision_gpu.py --layers 2 --steps 5 --result ''   (a CPU smoke run)
Writes benchmarks/results/precision_gpu.json. The model is this project's classifier
(modules.bert_classifier) with BERT-base sizes from scratch (12 layers, 768 hidden, seq 128), on
synthetic full-length batches, XLA-compiled, one device. MFU counts training FLOPs as
6 x parameters per token plus attention's 12 x layers x seq x hidden, against the device's dense
peak for the arm's math (fp32 runs as TF32 on Ampere and newer, TensorFlow's default).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import machine_description, result_header, write_result  # noqa: E402
from modules import features  # noqa: E402
from modules.bert_classifier import build_classifier, compile_classifier  # noqa: E402
from modules.strategy import precision_policy  # noqa: E402
from pipeline.config import ModelConfig, TrainingConfig  # noqa: E402
from pipeline.training_plan import plan_training  # noqa: E402

VOCAB_SIZE = 30522
# Dense peak FLOP/s by device-name fragment: (TF32 / fp32 path, bf16 and fp16).
PEAK_FLOPS = {"H100": (494.7e12, 989.4e12), "H200": (494.7e12, 989.4e12),
              "A100": (156e12, 312e12), "L4": (60e12, 121e12)}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--precisions", default="fp32,mixed_bfloat16,mixed_float16")
    parser.add_argument("--result", default=str(REPO_ROOT / "benchmarks" / "results" /
                                                "precision_gpu.json"),
                        help="JSON path; empty prints only")
    return parser.parse_args()


def _batches(batch_size: int, seq_length: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    word_ids = rng.integers(4, VOCAB_SIZE, size=(batch_size, seq_length))
    inputs = {features.INPUT_WORD_IDS: word_ids, features.INPUT_MASK: np.ones_like(word_ids),
              features.SEGMENT_IDS: np.zeros_like(word_ids)}
    labels = rng.integers(0, 2, size=batch_size)
    return tf.data.Dataset.from_tensors((inputs, labels)).repeat()


def _measure(args: argparse.Namespace, precision: str) -> dict:
    model_config = ModelConfig(num_layers=args.layers, hidden_size=768, num_attention_heads=12,
                               intermediate_size=3072, max_seq_length=512)
    tf.keras.utils.set_random_seed(0)
    with precision_policy(precision):
        model = build_classifier(model_config, vocab_size=VOCAB_SIZE, num_labels=2)
        training = TrainingConfig(jit_compile=True)
        compile_classifier(model, plan_training(training, fine_tuning=False).applied_to(training),
                           total_steps=10 * args.steps)
    dataset = _batches(args.batch_size, args.seq_length)
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # compile and warm up
    started = time.monotonic()
    model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.monotonic() - started
    parameters = model.count_params()
    embedding_parameters = (VOCAB_SIZE + 512 + 2) * 768
    flops_per_token = (6 * (parameters - embedding_parameters)
                       + 12 * args.layers * args.seq_length * 768)
    tokens_per_second = args.steps * args.batch_size * args.seq_length / seconds
    peak = _peak_flops(precision)
    return {"examples_per_second": round(args.steps * args.batch_size / seconds, 1),
            "model_tflops_per_second": round(tokens_per_second * flops_per_token / 1e12, 2),
            "mfu": round(tokens_per_second * flops_per_token / peak, 3) if peak else None,
            "parameters": parameters}


def _peak_flops(precision: str) -> float | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
    for fragment, (fp32_peak, half_peak) in PEAK_FLOPS.items():
        if fragment in name:
            return fp32_peak if precision == "fp32" else half_peak
    return None


def main() -> None:
    args = _arguments()
    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
              if gpus else "CPU")
    arms = {precision: _measure(args, precision) for precision in args.precisions.split(",")}
    result = {
        **result_header("BERT-base-sized classifier training: fp32 vs mixed precision, MFU"),
        "machine": {**machine_description(), "device": device},
        "setup": {"layers": args.layers, "hidden": 768, "seq_length": args.seq_length,
                  "batch_size": args.batch_size, "steps": args.steps, "xla": True},
        "arms": arms,
        "speedup_vs_fp32": {name: round(arm["examples_per_second"]
                                        / arms["fp32"]["examples_per_second"], 2)
                            for name, arm in arms.items() if "fp32" in arms},
    }
    print(json.dumps(result, indent=2))
    if args.result:
        write_result(result, args.result)


if __name__ == "__main__":
    main()
