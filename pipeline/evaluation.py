"""The Evaluator's TFMA configuration: metrics, slices and the thresholds that decide the blessing.

TFMA (many seconds to import, TensorFlow with it) is imported where it is used, so that the
names here (the run report's, a past run's report rendered from its facts) cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from modules import features
from pipeline.config import PipelineConfig

if TYPE_CHECKING:
    import tensorflow_model_analysis as tfma

ACCURACY_METRIC = "accuracy"


def build_eval_config(config: PipelineConfig, label_values: Sequence[str]) -> tfma.EvalConfig:
    """Builds the EvalConfig for a classifier over `label_values` (ids in that order).

    Accuracy carries both gates: an absolute lower bound, and a change threshold against the
    baseline (the latest blessed model) that TFX applies only when a baseline exists.
    """
    import tensorflow_model_analysis as tfma  # pylint: disable=import-outside-toplevel

    evaluation = config.evaluation
    class_ids = list(range(len(label_values)))
    # Thresholds on the overall slice only: `MetricConfig.threshold` would hold every slice
    # (down to a 4-example source x domain cross) to the same bar.
    accuracy = tfma.MetricConfig(
        class_name="SparseCategoricalAccuracy",
        config=f'"name": "{ACCURACY_METRIC}"',
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(
                    lower_bound={"value": evaluation.min_accuracy}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -evaluation.max_accuracy_drop})))])
    per_class_metrics = [tfma.MetricConfig(class_name=name)
                         for name in ("Precision", "Recall", "Calibration", "CalibrationPlot")]
    if len(label_values) == 2:
        per_class_metrics.append(tfma.MetricConfig(class_name="AUC"))
    slice_columns = list(config.data.slice_columns)
    slicing_specs = [tfma.SlicingSpec()]
    slicing_specs += [tfma.SlicingSpec(feature_keys=[column]) for column in slice_columns]
    if len(slice_columns) >= 2:
        slicing_specs.append(tfma.SlicingSpec(feature_keys=slice_columns[:2]))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=features.SERVING_SIGNATURE,
            preprocessing_function_names=[features.TRANSFORM_SIGNATURE],
            label_key=features.LABEL_ID,
            prediction_key=features.PROBABILITIES)],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                accuracy,
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]),
            tfma.MetricsSpec(metrics=per_class_metrics,
                             binarize=tfma.BinarizationOptions(class_ids={"values": class_ids})),
        ],
        slicing_specs=slicing_specs,
    )


OVERALL_SLICE = "overall"


def metrics_by_slice(evaluation_uri: str) -> dict[str, dict[str, dict[str, float]]]:
    """Slice name ("overall", "source=web", "source=web, domain=books") -> {"candidate": ...,
    "baseline": ...} scalar metrics of a TFMA evaluation output; per-class metrics are named
    `metric/class_<id>`. The baseline's figures exist only when the Evaluator had one."""
    import tensorflow_model_analysis as tfma  # pylint: disable=import-outside-toplevel

    slices: dict[str, dict[str, dict[str, float]]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        name = ", ".join(f"{key.column}={_slice_value(key)}"
                         for key in metrics_for_slice.slice_key.single_slice_keys) or OVERALL_SLICE
        models = slices.setdefault(name, {"candidate": {}, "baseline": {}})
        for key_and_value in metrics_for_slice.metric_keys_and_values:
            key, value = key_and_value.key, key_and_value.value
            if key.is_diff or not value.HasField("double_value"):
                continue
            metric = key.name
            if key.sub_key.HasField("class_id"):
                metric += f"/class_{key.sub_key.class_id.value}"
            model = "baseline" if key.model_name == tfma.BASELINE_KEY else "candidate"
            models[model][metric] = value.double_value.value
    return slices


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The candidate model's scalar metrics on the overall slice of a TFMA evaluation output."""
    return metrics_by_slice(evaluation_uri).get(OVERALL_SLICE, {}).get("candidate", {})


def _slice_value(key) -> str:
    kind = key.WhichOneof("kind")
    value = getattr(key, kind) if kind else ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
