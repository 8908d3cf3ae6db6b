"""What the data gate reports: ExampleValidator's anomalies, read back from its files, and the
failed text checks, each as one line."""

import os

import pandas as pd
import tensorflow_data_validation as tfdv

from components.data_gate import ANOMALIES_FILE, anomaly_problems, gate_problems


def _write_anomalies(uri, split, anomalies):
    os.makedirs(os.path.join(uri, f"Split-{split}"))
    with open(os.path.join(uri, f"Split-{split}", ANOMALIES_FILE), "wb") as handle:
        handle.write(anomalies.SerializeToString())


def test_each_anomaly_is_one_line_naming_split_and_feature(tmp_path):
    train = pd.DataFrame({"label": ["pos", "neg"] * 10})
    schema = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(train))
    drifted = pd.DataFrame({"label": ["pos", "neutral"]})
    _write_anomalies(tmp_path, "train", tfdv.validate_statistics(
        tfdv.generate_statistics_from_dataframe(train), schema))
    _write_anomalies(tmp_path, "eval", tfdv.validate_statistics(
        tfdv.generate_statistics_from_dataframe(drifted), schema))

    problems = anomaly_problems(str(tmp_path), ["train", "eval"])

    assert problems == ["eval split, feature 'label': Unexpected string values: Examples contain "
                        "values missing from the schema: neutral (~50%)."]


def test_the_gate_lists_anomalies_unless_told_not_to_and_always_failed_checks():
    report = {"checks": [
        {"name": "leakage_rate", "scope": "eval in train", "value": 0.2, "threshold": 0.01,
         "option": "data_checks.max_leakage_rate", "detail": "16 of 80", "passed": False},
        {"name": "unk_rate", "scope": "eval", "value": 0.0, "threshold": 0.1,
         "option": "data_checks.max_unk_rate", "detail": "", "passed": True}]}
    anomaly = "eval split, feature 'label': Unexpected string values: neutral"

    assert gate_problems([anomaly], report, stop_on_anomalies=True) == [
        f"ExampleValidator, {anomaly}",
        "TextChecks: leakage rate (eval in train) 0.2 crossed data_checks.max_leakage_rate "
        "0.01: 16 of 80"]
    assert gate_problems([anomaly], report, stop_on_anomalies=False) == [
        "TextChecks: leakage rate (eval in train) 0.2 crossed data_checks.max_leakage_rate "
        "0.01: 16 of 80"]
