"""Each TFLite variant against the SavedModel it came from, on the same eval examples, and the
gate that decides which variants ship.

Figures: accuracy overall and per slice (each slice column's values, as the Evaluator slices),
the change against the SavedModel's, the share of examples whose label changed, the largest
probability difference, and the median latency of one text. Pure numpy: the predictions come in
from whichever runtime made them.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.config import TFLiteConfig

OVERALL = "overall"
# Accuracy differences smaller than this are float noise, not a loss.
_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class EvalRows:
    """The eval examples the models are compared on: text, true label, and each slice column's
    value per example."""

    texts: list[str]
    labels: list[str]
    slices: dict[str, list[str]]


@dataclasses.dataclass(frozen=True)
class Predictions:
    """A model's answers on EvalRows: probabilities [examples, classes] and labels."""

    probabilities: np.ndarray
    labels: list[str]


def accuracies(predicted: Sequence[str], rows: EvalRows) -> dict[str, dict[str, Any]]:
    """Examples and accuracy overall and per slice ("column=value")."""
    correct = np.array([guess == truth for guess, truth in zip(predicted, rows.labels)])
    groups = {OVERALL: np.ones(len(correct), dtype=bool)}
    for column, values in sorted(rows.slices.items()):
        for value in sorted(set(values)):
            groups[f"{column}={value}"] = np.array([item == value for item in values])
    return {key: {"examples": int(member.sum()),
                  "accuracy": float(correct[member].mean()) if member.any() else 0.0}
            for key, member in groups.items()}


def compare(reference: Predictions, candidate: Predictions, rows: EvalRows) -> dict[str, Any]:
    """The candidate's figures and their change against the reference's."""
    ours, theirs = accuracies(candidate.labels, rows), accuracies(reference.labels, rows)
    slices = {key: {**figures, "accuracy_delta": figures["accuracy"] - theirs[key]["accuracy"]}
              for key, figures in ours.items()}
    overall = slices.pop(OVERALL)
    return {
        "accuracy": overall["accuracy"],
        "accuracy_delta": overall["accuracy_delta"],
        "changed_labels": float(np.mean([ours_label != theirs_label for ours_label, theirs_label
                                         in zip(candidate.labels, reference.labels)]))
        if rows.labels else 0.0,
        "max_probability_difference": float(np.abs(
            candidate.probabilities - reference.probabilities).max()) if rows.labels else 0.0,
        "slices": slices,
    }


def verdict(figures: dict[str, Any], settings: TFLiteConfig) -> tuple[bool, str]:
    """(ship it?, why not): the overall accuracy drop, the changed labels, then each large
    enough slice's accuracy drop."""
    if figures["accuracy_delta"] < -settings.max_accuracy_drop - _TOLERANCE:
        return False, (f"accuracy {figures['accuracy']:.4f} is {-figures['accuracy_delta']:.4f} "
                       f"below the SavedModel's (tflite.max_accuracy_drop "
                       f"{settings.max_accuracy_drop})")
    if figures["changed_labels"] > settings.max_changed_labels + _TOLERANCE:
        return False, (f"{figures['changed_labels']:.2%} of the labels differ from the "
                       f"SavedModel's (tflite.max_changed_labels {settings.max_changed_labels})")
    for key, slice_figures in sorted(figures["slices"].items()):
        if (slice_figures["examples"] >= settings.min_slice_examples
                and slice_figures["accuracy_delta"]
                < -settings.max_slice_accuracy_drop - _TOLERANCE):
            return False, (f"slice {key}: accuracy {slice_figures['accuracy']:.4f} is "
                           f"{-slice_figures['accuracy_delta']:.4f} below the SavedModel's "
                           f"(tflite.max_slice_accuracy_drop {settings.max_slice_accuracy_drop})")
    return True, ""


def median_latency_ms(predict_one: Callable[[str], Any], texts: Sequence[str],
                      samples: int) -> float:
    """The median milliseconds of `predict_one` on one text, over `samples` calls after one
    warm-up call (the texts taken in turn)."""
    predict_one(texts[0])
    timings = []
    for index in range(samples):
        started = time.perf_counter()
        predict_one(texts[index % len(texts)])
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)
