"""DataGate: stops the run before Transform when the data fails validation, naming each problem.

TFX's ExampleValidator writes anomalies but lets the pipeline go on, so a schema violation would
still be trained on and pushed. This component reads ExampleValidator's anomalies and the
TextChecks report, and fails with one message listing every problem (each anomaly; each figure
that crossed its threshold, with the threshold's configuration key). Transform depends on it,
so nothing downstream runs on data that failed. Data that passes becomes `AcceptedData`: the
baseline the next run's drift checks compare against.
"""

# No `from __future__ import annotations`: the @component decorator reads the annotations.
import json
import os

import tensorflow as tf
from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

from components.text_checks import (REPORT_FILE, STATISTICS_FILE, AcceptedData, TextChecksReport,
                                    report_checks)

# ExampleValidator's file of each split's anomalies.
ANOMALIES_FILE = "SchemaDiff.pb"


class DataGateError(RuntimeError):
    """The data failed validation; the message lists each problem and how to proceed."""


def anomaly_problems(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """One line per anomaly ExampleValidator found, e.g. "eval split, feature 'label': ..."."""
    problems = []
    for split in split_names:
        split_uri = os.path.join(anomalies_uri, f"Split-{split}")
        with tf.io.gfile.GFile(os.path.join(split_uri, ANOMALIES_FILE), "rb") as handle:
            anomalies = anomalies_pb2.Anomalies.FromString(handle.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            problems.append(f"{split} split, feature {feature!r}: {info.short_description}: "
                            f"{info.description.strip()}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            problems.append(f"{split} split: {info.short_description}: "
                            f"{info.description.strip()}")
    return problems


def read_report(text_checks_uri: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(text_checks_uri, REPORT_FILE)) as handle:
        return json.loads(handle.read())


def gate_problems(schema_problems: list[str], text_checks_report: dict,
                  stop_on_anomalies: bool) -> list[str]:
    """What stops the run: the anomalies (unless told not to) and every failed text check."""
    problems = ([f"ExampleValidator, {problem}" for problem in schema_problems]
                if stop_on_anomalies else [])
    return problems + [f"TextChecks: {check.describe()}"
                       for check in report_checks(text_checks_report) if not check.passed]


# TFX names a function component after the function, as it names classes.
@tfx.dsl.components.component
def DataGate(  # pylint: disable=invalid-name
        anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
        text_checks: tfx.dsl.components.InputArtifact[TextChecksReport],
        accepted: tfx.dsl.components.OutputArtifact[AcceptedData],
        stop_on_anomalies: tfx.dsl.components.Parameter[int] = 1,
) -> None:
    """Raises DataGateError if ExampleValidator found anomalies or a text check failed."""
    schema_problems = anomaly_problems(
        anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if not stop_on_anomalies:
        for problem in schema_problems:
            logging.warning("DataGate: not stopping for an anomaly (data_checks.stop_on_anomalies "
                            "is false): %s", problem)
    report = read_report(text_checks.uri)
    problems = gate_problems(schema_problems, report, bool(stop_on_anomalies))
    if problems:
        for problem in problems:
            logging.error("DataGate: %s", problem)
        raise DataGateError(
            f"the data gate stopped the run before Transform: {len(problems)} problem(s) in "
            f"span {report['span']}:\n" + "\n".join(f"  - {problem}" for problem in problems)
            + "\nFix the data; if a change is intended, raise the named data_checks threshold "
              "(--set data_checks.KEY=VALUE) or update the reviewed schema (data.schema_file)")
    for name in (REPORT_FILE, STATISTICS_FILE):
        tf.io.gfile.copy(os.path.join(text_checks.uri, name), os.path.join(accepted.uri, name),
                         overwrite=True)
    accepted.set_int_custom_property("span", report["span"])
    logging.info("DataGate: span %d passed ExampleValidator and %d text checks", report["span"],
                 len(report["checks"]))
