"""The TFMA configuration: which metrics, which slices, and thresholds on the overall slice."""

import tensorflow_model_analysis as tfma

from pipeline.config import PipelineConfig
from pipeline.evaluation import ACCURACY_METRIC, build_eval_config


def _metric_names(eval_config):
    return {metric.class_name for spec in eval_config.metrics_specs for metric in spec.metrics}


def test_binary_task_gets_auc_and_per_class_metrics_for_each_class():
    eval_config = build_eval_config(PipelineConfig(), ["negative", "positive"])
    assert {"ExampleCount", "SparseCategoricalAccuracy", "Precision", "Recall", "Calibration",
            "CalibrationPlot", "AUC", "MultiClassConfusionMatrixPlot"} <= _metric_names(eval_config)
    binarized = [spec for spec in eval_config.metrics_specs if spec.HasField("binarize")]
    assert list(binarized[0].binarize.class_ids.values) == [0, 1]


def test_multiclass_task_has_no_auc():
    eval_config = build_eval_config(PipelineConfig(), ["a", "b", "c"])
    assert "AUC" not in _metric_names(eval_config)


def test_slices_overall_each_column_and_one_cross():
    eval_config = build_eval_config(PipelineConfig(), ["negative", "positive"])
    assert [list(spec.feature_keys) for spec in eval_config.slicing_specs] == [
        [], ["source"], ["domain"], ["source", "domain"]]


def test_thresholds_come_from_config_and_hold_the_overall_slice_only():
    config = PipelineConfig.load(None, ["evaluation.min_accuracy=0.8",
                                        "evaluation.max_accuracy_drop=0.02"])
    eval_config = build_eval_config(config, ["negative", "positive"])
    accuracy = next(metric for spec in eval_config.metrics_specs for metric in spec.metrics
                    if ACCURACY_METRIC in metric.config)
    assert not accuracy.HasField("threshold")
    (per_slice,) = accuracy.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]
    assert per_slice.threshold.value_threshold.lower_bound.value == 0.8
    assert per_slice.threshold.change_threshold.absolute.value == -0.02
    assert per_slice.threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
