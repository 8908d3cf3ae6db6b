"""What one pipeline run did, read back from ML Metadata and its artifacts, for the run report.

Everything comes from what the components recorded (MLMD executions and the files of their
output artifacts), so a report can be rendered for any past run, not only the one that just
finished. A run that stopped early simply has fewer facts: the sections it never reached say so.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorboard.backend.event_processing import event_accumulator

from components.data_gate import anomaly_problems, gate_problems, read_report
from lite.layout import REPORT_FILE as TFLITE_REPORT_FILE
from modules import features
from pipeline import metadata
from pipeline.evaluation import metrics_by_slice
from reporting.facts import ComponentRow, RunFacts
from serving.store import MANIFEST_FILE, SIGNATURE_FILE

# Components in DAG order; resolvers are shown as the inputs they resolved, not as steps.
COMPONENT_ORDER = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen",
                   "ExampleValidator", "TextChecks", "DataGate", "Transform", "TokenizerParity",
                   "Trainer", "Evaluator", "TFLiteExport", "Pusher")
# TensorBoard tags the Trainer writes -> the chart they belong to.
_CURVES = {"loss": "loss", "accuracy": "accuracy", "learning_rate": "learning rate"}
_STATES = {value: name for name, value in metadata_store_pb2.Execution.State.items()}


def read_run_facts(store: metadata_store.MetadataStore, pipeline_name: str,
                   run_id: Optional[str] = None, error: str = "") -> RunFacts:
    """The facts of run `run_id` (default: the newest run) of `pipeline_name`.

    Raises:
      LookupError: the store holds no such run.
    """
    run = metadata.find_run(store, run_id)
    executions = metadata.run_executions(store, run)
    outputs = {component: metadata.execution_artifacts(store, execution.id)
               for component, execution in executions.items()}
    facts = RunFacts(pipeline_name=pipeline_name, run_id=run.name, outcome="", error=error)
    facts.components = [
        ComponentRow(component, _STATES[executions[component].last_known_state],
                     _seconds(executions[component]))
        for component in COMPONENT_ORDER if component in executions]
    facts.artifacts = sorted((component, key, artifact.uri)
                             for component, by_key in outputs.items()
                             for key, artifacts in by_key.items() for artifact in artifacts)

    def output(component: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
        artifacts = outputs.get(component, {}).get(key, [])
        return artifacts[0] if artifacts else None

    _read_data(facts, output("CsvExampleGen", "examples"), output("StatisticsGen", "statistics"))
    _read_validation(facts, output("ExampleValidator", "anomalies"),
                     output("TextChecks", "report"), executions.get("DataGate"))
    _read_training(facts, output("Trainer", "model_run"))
    _read_evaluation(facts, output("Evaluator", "evaluation"), output("Evaluator", "blessing"),
                     output("Transform", "transform_graph"))
    evaluator = executions.get("Evaluator")
    if evaluator is not None:
        baseline = metadata.execution_artifacts(store, evaluator.id, "input").get(
            "baseline_model", [])
        facts.baseline_model = baseline[0].uri if baseline else None
    _read_push(facts, output("Pusher", "pushed_model"))
    tflite = output("TFLiteExport", "tflite_models")
    if tflite is not None and tf.io.gfile.exists(os.path.join(tflite.uri, TFLITE_REPORT_FILE)):
        with tf.io.gfile.GFile(os.path.join(tflite.uri, TFLITE_REPORT_FILE)) as handle:
            facts.tflite = json.loads(handle.read())
    facts.outcome = _outcome(facts, executions)
    return facts


def _read_data(facts: RunFacts, examples, statistics) -> None:
    if examples is not None and "span" in examples.custom_properties:
        facts.span = examples.custom_properties["span"].int_value
    if statistics is None:
        return
    for split in json.loads(statistics.properties["split_names"].string_value):
        stats = tfdv.load_stats_binary(os.path.join(statistics.uri, f"Split-{split}",
                                                    "FeatureStats.pb"))
        facts.statistics[split] = [_feature_row(feature) for feature in stats.datasets[0].features]


def _feature_row(feature) -> dict[str, Any]:
    name = feature.path.step[0] if feature.path.step else feature.name
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind)
    common = stats.common_stats
    total = common.num_non_missing + common.num_missing
    row = {"feature": name, "type": feature.Type.Name(feature.type),
           "examples": int(total), "missing": int(common.num_missing),
           "missing_share": common.num_missing / total if total else 0.0}
    if kind == "string_stats":
        row["unique"] = int(stats.unique)
        row["avg_length"] = stats.avg_length
        row["top_values"] = [(value.value, int(value.frequency)) for value in stats.top_values[:5]]
    elif kind == "num_stats":
        row.update(mean=stats.mean, min=stats.min, max=stats.max, zeros=int(stats.num_zeros))
    return row


def _read_validation(facts: RunFacts, anomalies, text_checks, gate_execution) -> None:
    schema_problems = []
    if anomalies is not None:
        schema_problems = anomaly_problems(
            anomalies.uri, json.loads(anomalies.properties["split_names"].string_value))
        facts.anomalies = schema_problems
    if text_checks is not None:
        facts.text_checks = read_report(text_checks.uri)
    if gate_execution is None:
        return
    facts.gate_state = ("stopped the run" if gate_execution.last_known_state
                        == metadata_store_pb2.Execution.FAILED else "passed")
    if facts.text_checks is not None:
        stop_on_anomalies = gate_execution.custom_properties.get("stop_on_anomalies")
        facts.gate_problems = gate_problems(
            schema_problems, facts.text_checks,
            stop_on_anomalies is None or stop_on_anomalies.int_value != 0)


def _read_training(facts: RunFacts, model_run) -> None:
    if model_run is None:
        return
    stats_path = os.path.join(model_run.uri, "training_stats.json")
    if tf.io.gfile.exists(stats_path):
        with tf.io.gfile.GFile(stats_path) as handle:
            facts.training_stats = json.loads(handle.read())
    for folder, series_name in (("train", "train"), ("validation", "validation")):
        path = os.path.join(model_run.uri, folder)
        if not tf.io.gfile.isdir(path):
            continue
        accumulator = event_accumulator.EventAccumulator(
            path, size_guidance={event_accumulator.TENSORS: 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            scope, _, metric = tag.partition("_")
            if scope not in ("epoch", "batch") or metric not in _CURVES:
                continue
            chart = f"{_CURVES[metric]} per {'epoch' if scope == 'epoch' else 'step'}"
            facts.training_curves.setdefault(chart, {})[series_name] = [
                (float(event.step), float(tf.make_ndarray(event.tensor_proto)))
                for event in accumulator.Tensors(tag)]


def _read_evaluation(facts: RunFacts, evaluation, blessing, transform_graph) -> None:
    if blessing is not None:
        facts.blessed = blessing.custom_properties["blessed"].int_value == 1
    if evaluation is None:
        return
    facts.slices = metrics_by_slice(evaluation.uri)
    if transform_graph is not None:
        vocabulary = os.path.join(transform_graph.uri, "transform_fn", "assets",
                                  features.LABEL_VOCABULARY)
        with tf.io.gfile.GFile(vocabulary) as handle:
            facts.label_names = [line.rstrip("\n") for line in handle]
    facts.confusion = _confusion_matrix(evaluation.uri, len(facts.label_names))
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, "eval_config.json")) as handle:
        facts.thresholds = _thresholds(json.loads(handle.read())["evalConfig"])
    validation = tfma.load_validation_result(evaluation.uri)
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            facts.validation_failures.append(
                f"{failure.metric_key.name}"
                f"{' (baseline comparison)' if failure.metric_key.is_diff else ''} = "
                f"{failure.metric_value.double_value.value:.4f} fails "
                f"{_threshold_text(failure.metric_threshold)}")


def _confusion_matrix(evaluation_uri: str, classes: int) -> Optional[list[list[float]]]:
    """Counts by (actual, predicted) class of the candidate on the overall slice (argmax)."""
    for plots in tfma.load_plots(evaluation_uri):
        if plots.slice_key.single_slice_keys:
            continue
        for key_and_value in plots.plot_keys_and_values:
            if (key_and_value.key.model_name == tfma.BASELINE_KEY
                    or not key_and_value.value.HasField("multi_class_confusion_matrix_at_thresholds")):
                continue
            matrix = np.zeros((classes, classes))
            at_thresholds = key_and_value.value.multi_class_confusion_matrix_at_thresholds
            for entry in at_thresholds.matrices[0].entries:
                matrix[entry.actual_class_id, entry.predicted_class_id] = entry.num_weighted_examples
            return matrix.tolist()
    return None


def _thresholds(eval_config: dict[str, Any]) -> list[dict[str, Any]]:
    """The thresholds the Evaluator applied (TFX drops change thresholds without a baseline)."""
    rows = []
    for spec in eval_config.get("metricsSpecs", []):
        for metric in spec.get("metrics", []):
            name = json.loads("{" + metric["config"] + "}").get("name") if metric.get("config") \
                else metric["className"]
            for per_slice in metric.get("perSliceThresholds", []):
                slices = ", ".join(
                    "+".join(slicing.get("featureKeys", [])) or "overall"
                    for slicing in per_slice.get("slicingSpecs", [])) or "overall"
                threshold = per_slice["threshold"]
                value = threshold.get("valueThreshold", {})
                change = threshold.get("changeThreshold", {})
                for bound, kind, symbol in (("lowerBound", "lower bound", ">="),
                                            ("upperBound", "upper bound", "<=")):
                    if bound in value:
                        rows.append({"metric": name, "slices": slices, "kind": kind,
                                     "value": float(value[bound]),
                                     "rule": f"{name} {symbol} {value[bound]}"})
                if "absolute" in change:
                    better = change.get("direction") == "HIGHER_IS_BETTER"
                    rows.append({"metric": name, "slices": slices, "kind": "change",
                                 "value": float(change["absolute"]),
                                 "rule": f"{name} - baseline {'>=' if better else '<='} "
                                         f"{change['absolute']}"})
    return rows


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        value = threshold.value_threshold
        if value.HasField("lower_bound"):
            return f"the lower bound {value.lower_bound.value:g}"
        return f"the upper bound {value.upper_bound.value:g}"
    return f"the change threshold {threshold.change_threshold.absolute.value:g} against the baseline"


def _read_push(facts: RunFacts, pushed_model) -> None:
    if pushed_model is None or pushed_model.custom_properties["pushed"].int_value != 1:
        return
    destination = pushed_model.custom_properties["pushed_destination"].string_value
    manifest_path = os.path.join(destination, MANIFEST_FILE)
    manifest = {}
    if tf.io.gfile.exists(manifest_path):
        with tf.io.gfile.GFile(manifest_path) as handle:
            manifest = json.loads(handle.read())
    facts.pushed = {
        "destination": destination,
        "version": pushed_model.custom_properties["pushed_version"].string_value,
        "signed": tf.io.gfile.exists(os.path.join(destination, SIGNATURE_FILE)),
        "files": len(manifest.get("files", {})),
        "published_at": manifest.get("published_at", ""),
        "code_version": manifest.get("code_version", ""),
    }


def _outcome(facts: RunFacts, executions: dict[str, metadata_store_pb2.Execution]) -> str:
    failed = [row.component for row in facts.components if row.state == "FAILED"]
    if facts.pushed:
        return f"pushed as version {facts.pushed['version']}"
    if "DataGate" in failed:
        return "stopped by the data gate: nothing trained or pushed"
    if "TokenizerParity" in failed:
        return "stopped by the tokenizer parity check: nothing trained or pushed"
    if failed:
        return f"failed at {failed[0]}: nothing pushed"
    if facts.blessed is False:
        return "not blessed: the Evaluator refused the model, nothing pushed"
    return "unfinished" if "Pusher" not in executions else "nothing pushed"


def _seconds(execution: metadata_store_pb2.Execution) -> Optional[float]:
    if not execution.create_time_since_epoch or not execution.last_update_time_since_epoch:
        return None
    return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
