"""Training throughput with batches trimmed to their longest row vs padded to max_seq_length.

Usage: python benchmarks/padding_trim.py  (or `make bench`); writes
benchmarks/results/padding_trim.json. Both arms train the same default-sized classifier in the
same process on the same batches, whose row lengths are the default dataset's real token counts;
only the Trainer's `trim_to_longest_row` step differs. Fixed padding is the baseline.
"""

from __future__ import annotations

import csv
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

from benchmarks.machine import result_header, write_result  # noqa: E402
from modules import features  # noqa: E402
from modules.bert_classifier import build_classifier, compile_classifier  # noqa: E402
from modules.datasets import trim_to_longest_row  # noqa: E402
from modules.preprocessing import split_words  # noqa: E402
from pipeline.config import ModelConfig, TrainingConfig  # noqa: E402
from pipeline.training_plan import plan_training  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "padding_trim.json"
VOCAB_SIZE = 2000
WARMUP_STEPS = 10
TIMED_STEPS = 60


def _row_lengths(max_seq_length: int) -> np.ndarray:
    """Tokens per row of the default data, split by the Transform's own code, plus [CLS]/[SEP]."""
    with (REPO_ROOT / "data" / "reviews" / "reviews.csv").open(encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    words_per_row = split_words(tf.constant(texts)).row_lengths().numpy()
    return np.minimum(words_per_row + 2, max_seq_length)


def _batches(lengths: np.ndarray, batch_size: int, max_seq_length: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    word_ids = rng.integers(4, VOCAB_SIZE, size=(len(lengths), max_seq_length))
    mask = (np.arange(max_seq_length)[None, :] < lengths[:, None]).astype(np.int64)
    inputs = {features.INPUT_WORD_IDS: word_ids * mask, features.INPUT_MASK: mask,
              features.SEGMENT_IDS: np.zeros_like(mask)}
    labels = rng.integers(0, 2, size=len(lengths))
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size).repeat()


def _examples_per_second(dataset: tf.data.Dataset, batch_size: int) -> float:
    tf.keras.utils.set_random_seed(0)
    model_config = ModelConfig()
    model = build_classifier(model_config, vocab_size=VOCAB_SIZE, num_labels=2)
    training = plan_training(TrainingConfig(), fine_tuning=False).applied_to(TrainingConfig())
    compile_classifier(model, training, total_steps=WARMUP_STEPS + TIMED_STEPS)
    model.fit(dataset, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0)
    started = time.monotonic()
    model.fit(dataset, steps_per_epoch=TIMED_STEPS, epochs=1, verbose=0)
    return TIMED_STEPS * batch_size / (time.monotonic() - started)


def main() -> None:
    model_config, training = ModelConfig(), TrainingConfig()
    lengths = _row_lengths(model_config.max_seq_length)
    padded = _batches(lengths, training.batch_size, model_config.max_seq_length)
    trimmed = padded.map(trim_to_longest_row)
    padded_rate = _examples_per_second(padded, training.batch_size)
    trimmed_rate = _examples_per_second(trimmed, training.batch_size)
    result = {
        **result_header("Keras fit examples/s: batches trimmed to the longest row vs fixed padding"),
        "model": {"layers": model_config.num_layers, "hidden": model_config.hidden_size,
                  "max_seq_length": model_config.max_seq_length,
                  "batch_size": training.batch_size},
        "timed_steps": TIMED_STEPS,
        "mean_row_tokens": round(float(lengths.mean()), 1),
        "padded_examples_per_second": round(padded_rate, 1),
        "trimmed_examples_per_second": round(trimmed_rate, 1),
        "trimmed_to_padded_ratio": round(trimmed_rate / padded_rate, 2),
    }
    write_result(result, RESULT_PATH)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
