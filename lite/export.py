"""Every configured TFLite variant of a pushed SavedModel: converted, measured against the
SavedModel on the eval examples, and sorted into the shipped and the refused (`lite.layout`).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable

import numpy as np
import tensorflow as tf
from absl import logging

from components.text_figures import example_value
from lite import convert as lite_convert
from lite.graph import NotConvertible, RawTextClassifier, save_for_conversion
from lite.layout import REFUSED_DIR, REPORT_FILE, SHIPPED_DIR, VERSION_DIR, model_file
from lite.measure import (OVERALL, EvalRows, Predictions, accuracies, compare,
                          median_latency_ms, verdict)
from modules import features
from pipeline.config import TFLiteConfig
from serving.store import MANIFEST_FILE, SIGNATURE_FILE

_BATCH_SIZE = 64


def export_tflite(saved_model_dir: str, rows: EvalRows, calibration_texts: list[str],
                  settings: TFLiteConfig, output_dir: str) -> dict[str, Any]:
    """Converts, measures and gates `settings.variants` of the model; returns the report.

    Raises:
      NotConvertible: the model cannot be a raw-text TFLite model at all (its tokenizer, its
        export), or no variant converted.
    """
    module = RawTextClassifier(saved_model_dir)
    models, failures = {}, {}
    with tempfile.TemporaryDirectory(prefix="tflite-") as work:
        save_for_conversion(module, work)
        for variant in settings.variants:
            logging.info("TFLite export: converting the %s variant", variant)
            try:
                models[variant] = lite_convert.convert(work, variant, calibration_texts)
            except NotConvertible as error:
                logging.warning("TFLite export: %s", error)
                failures[variant] = str(error)
    if not models:
        raise NotConvertible(next(iter(failures.values()), "tflite.variants is empty"))

    # The SavedModel RawTextClassifier loaded, not a second copy of it.
    saved_model = module.model.signatures[features.TEXT_SIGNATURE]

    def saved_model_predict(texts: list[str]) -> dict[str, np.ndarray]:
        return {name: value.numpy() for name, value in saved_model(
            **{features.TEXT_INPUT_NAMES[0]: tf.constant(texts)}).items()}

    reference = _predictions(saved_model_predict, rows.texts)
    saved_model_bytes = _saved_model_bytes(saved_model_dir)
    latency_texts = rows.texts or [""]
    saved_model_latency = median_latency_ms(lambda text: saved_model_predict([text]),
                                            latency_texts, settings.latency_samples)
    report: dict[str, Any] = {
        "exported": True, "eval_examples": len(rows.texts),
        "saved_model": {"size_bytes": saved_model_bytes,
                        "accuracy": accuracies(reference.labels, rows)[OVERALL]["accuracy"],
                        "latency_p50_ms": round(saved_model_latency, 3)},
        "thresholds": {"max_accuracy_drop": settings.max_accuracy_drop,
                       "max_changed_labels": settings.max_changed_labels,
                       "max_slice_accuracy_drop": settings.max_slice_accuracy_drop,
                       "min_slice_examples": settings.min_slice_examples},
        "variants": {variant: {"shipped": False, "reason": reason}
                     for variant, reason in failures.items()},
    }
    for folder in (SHIPPED_DIR, REFUSED_DIR):
        tf.io.gfile.makedirs(os.path.join(output_dir, folder))
    for variant, model in models.items():
        interpreter = lite_convert.interpreter(model)
        figures = compare(reference, _predictions(
            lambda texts: lite_convert.predict(interpreter, texts), rows.texts), rows)
        shipped, reason = verdict(figures, settings)
        latency = median_latency_ms(lambda text: lite_convert.predict(interpreter, [text]),
                                    latency_texts, settings.latency_samples)
        report["variants"][variant] = {
            "shipped": shipped, "reason": reason, "file": model_file(variant),
            "size_bytes": len(model), "size_ratio": round(len(model) / saved_model_bytes, 4),
            **figures, "latency_p50_ms": round(latency, 3),
            "latency_ratio": round(latency / saved_model_latency, 3)}
        with tf.io.gfile.GFile(os.path.join(
                output_dir, SHIPPED_DIR if shipped else REFUSED_DIR, model_file(variant)),
                "wb") as handle:
            handle.write(model)
        logging.info("TFLite export: %s %s", "shipped" if shipped else "refused",
                     summary_line(variant, report["variants"][variant]))
    report["shipped"] = [variant for variant, figures in report["variants"].items()
                         if figures["shipped"]]
    for folder in (output_dir, os.path.join(output_dir, SHIPPED_DIR)):
        _write_report(report, folder)
    return report


def write_no_export(output_dir: str, reason: str) -> dict[str, Any]:
    """The report of an export that was not made, and why."""
    report = {"exported": False, "reason": reason, "shipped": [], "variants": {}}
    _write_report(report, output_dir)
    return report


def _write_report(report: dict[str, Any], folder: str) -> None:
    with tf.io.gfile.GFile(os.path.join(folder, REPORT_FILE), "w") as handle:
        handle.write(json.dumps(report, indent=2, sort_keys=True))


def export_from_examples(saved_model_dir: str, examples_uri: str, text_column: str,
                         label_column: str, slice_columns: list[str], settings: TFLiteConfig,
                         output_dir: str) -> dict[str, Any]:
    """`export_tflite` on ExampleGen's output at `examples_uri`: its eval split measured, its
    train split's texts calibrating the int8 variants."""
    if not settings.variants:
        raise NotConvertible("tflite.variants is empty")
    rows = read_split(os.path.join(examples_uri, "Split-eval"), settings.eval_examples,
                      text_column, label_column, slice_columns)
    calibration = read_split(os.path.join(examples_uri, "Split-train"),
                             settings.calibration_examples, text_column, label_column, []).texts
    return export_tflite(saved_model_dir, rows, calibration, settings, output_dir)


def read_split(split_uri: str, limit: int, text_column: str, label_column: str,
               slice_columns: list[str]) -> EvalRows:
    """The first `limit` (0: all) examples of an ExampleGen split as EvalRows; NotConvertible
    when it holds none, or examples without the text or label feature (not ExampleGen's raw
    examples: nothing could be judged on them)."""
    dataset = tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(split_uri, "*")),
                                      compression_type="GZIP")
    if limit:
        dataset = dataset.take(limit)
    rows = EvalRows(texts=[], labels=[], slices={column: [] for column in slice_columns})
    for record in dataset.as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        for column in (text_column, label_column):
            if column not in feature:
                raise NotConvertible(f"the examples at {split_uri} have no {column!r} feature")
        rows.texts.append(example_value(feature, text_column) or "")
        rows.labels.append((example_value(feature, label_column) or "").strip())
        for column in slice_columns:
            rows.slices[column].append(example_value(feature, column) or "")
    if not rows.texts:
        raise NotConvertible(f"no examples at {split_uri} to measure the variants on")
    return rows


def summary_line(variant: str, figures: dict[str, Any]) -> str:
    """One variant in one line: its size, accuracy change, changed labels, latency; or why not."""
    if "size_bytes" not in figures:
        return f"{variant}: {figures['reason']}"
    line = (f"{variant}: {figures['size_bytes'] / 2**20:.1f} MiB "
            f"({figures['size_ratio']:.0%} of the SavedModel), accuracy "
            f"{figures['accuracy']:.4f} ({figures['accuracy_delta']:+.4f}), "
            f"{figures['changed_labels']:.1%} labels changed, p50 "
            f"{figures['latency_p50_ms']:.1f} ms ({figures['latency_ratio']:.2f}x)")
    return line + (f"; not shipped: {figures['reason']}" if figures["reason"] else "")


def _predictions(predict: Callable[[list[str]], dict[str, np.ndarray]],
                 texts: list[str]) -> Predictions:
    probabilities, labels = [], []
    for start in range(0, len(texts), _BATCH_SIZE):
        outputs = predict(texts[start:start + _BATCH_SIZE])
        probabilities.append(outputs[features.PROBABILITIES])
        labels += [label.decode("utf-8") for label in outputs[features.PREDICTED_LABEL]]
    return Predictions(np.concatenate(probabilities) if probabilities else np.zeros((0, 0)),
                       labels)


def _saved_model_bytes(folder: str) -> int:
    """The SavedModel's own files (not a store version's manifest, signature or variants)."""
    return sum(tf.io.gfile.stat(os.path.join(root, name)).length
               for root, _, names in tf.io.gfile.walk(folder) for name in names
               if os.path.relpath(os.path.join(root, name), folder).split(os.sep)[0]
               not in (VERSION_DIR, MANIFEST_FILE, SIGNATURE_FILE))
