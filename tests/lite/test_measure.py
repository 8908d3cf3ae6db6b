"""The TFLite gate's figures and verdicts on hand-made predictions (no model involved)."""

import dataclasses

import numpy as np
import pytest

from lite.measure import OVERALL, EvalRows, Predictions, accuracies, compare, verdict
from pipeline.config import TFLiteConfig

ROWS = EvalRows(texts=[f"text {index}" for index in range(8)],
                labels=["pos", "pos", "pos", "pos", "neg", "neg", "neg", "neg"],
                slices={"source": ["web"] * 6 + ["app"] * 2})


def _predictions(labels, high=0.9):
    return Predictions(np.array([[1 - high, high] if label == "pos" else [high, 1 - high]
                                 for label in labels]), list(labels))


def test_accuracy_is_counted_overall_and_per_slice_value():
    figures = accuracies(["pos", "neg", "pos", "pos", "neg", "neg", "pos", "pos"], ROWS)
    assert figures[OVERALL] == {"examples": 8, "accuracy": 5 / 8}
    assert figures["source=web"] == {"examples": 6, "accuracy": 5 / 6}
    assert figures["source=app"] == {"examples": 2, "accuracy": 0.0}


def test_compare_gives_the_change_the_changed_labels_and_the_largest_probability_gap():
    reference = _predictions(ROWS.labels)
    candidate_labels = ["pos", "pos", "pos", "neg", "neg", "neg", "neg", "pos"]
    candidate = _predictions(candidate_labels, high=0.8)
    figures = compare(reference, candidate, ROWS)
    assert figures["accuracy"] == pytest.approx(6 / 8)
    assert figures["accuracy_delta"] == pytest.approx(-2 / 8)
    assert figures["changed_labels"] == pytest.approx(2 / 8)
    # A flipped row moves from [0.1, 0.9] to [0.8, 0.2]: 0.7 apart.
    assert figures["max_probability_difference"] == pytest.approx(0.7)
    assert figures["slices"]["source=web"]["accuracy_delta"] == pytest.approx(-1 / 6)
    assert figures["slices"]["source=app"]["accuracy_delta"] == pytest.approx(-1 / 2)
    assert OVERALL not in figures["slices"]


@pytest.mark.parametrize("changes, settings, reason", [
    ({}, TFLiteConfig(), ""),
    # An exact tie is not a loss, even through float arithmetic.
    ({"accuracy_delta": -0.01 + 1e-12}, TFLiteConfig(max_accuracy_drop=0.01), ""),
    ({"accuracy_delta": -0.02}, TFLiteConfig(max_accuracy_drop=0.01),
     "is 0.0200 below the SavedModel's (tflite.max_accuracy_drop 0.01)"),
    ({"changed_labels": 0.08}, TFLiteConfig(max_changed_labels=0.05),
     "8.00% of the labels differ from the SavedModel's (tflite.max_changed_labels 0.05)"),
    ({"slices": {"source=app": {"examples": 60, "accuracy": 0.8, "accuracy_delta": -0.1}}},
     TFLiteConfig(max_slice_accuracy_drop=0.05, min_slice_examples=50),
     "slice source=app: accuracy 0.8000 is 0.1000 below"),
    # Too few examples to judge: reported, not refused.
    ({"slices": {"source=app": {"examples": 10, "accuracy": 0.5, "accuracy_delta": -0.5}}},
     TFLiteConfig(min_slice_examples=50), ""),
])
def test_the_verdict_names_the_first_threshold_crossed(changes, settings, reason):
    figures = {"accuracy": 0.9, "accuracy_delta": 0.0, "changed_labels": 0.0,
               "max_probability_difference": 0.0,
               "slices": {"source=web": {"examples": 100, "accuracy": 0.9,
                                         "accuracy_delta": 0.0}}}
    figures.update(changes)
    shipped, why = verdict(figures, settings)
    assert shipped == (reason == "")
    assert reason in why and (why == "") == shipped


def test_thresholds_are_checked_in_the_configuration():
    from pipeline.config import ConfigError, PipelineConfig

    with pytest.raises(ConfigError, match="tflite.variants must be among"):
        PipelineConfig.load(None, ["tflite.variants=float16,int4"])
    with pytest.raises(ConfigError, match="max_changed_labels must be >= 0"):
        PipelineConfig.load(None, ["tflite.max_changed_labels=-0.1"])
    assert dataclasses.asdict(PipelineConfig.load(None, ["tflite.variants="]).tflite)[
        "variants"] == []
