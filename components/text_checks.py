"""TextChecks: the text-level data checks TFDV's ExampleValidator does not make.

Schema validation compares feature statistics with a schema; it cannot say that a third of the
texts will be cut at `max_seq_length`, that the eval split repeats training sentences, or that
the label balance moved since the data the last model was trained on. This component measures
those on ExampleGen's output with the tokenization the Transform applies, and writes every
figure beside the threshold that judges it (`text_checks.json`). It also writes TFDV statistics
of each example's token count and label (`derived_statistics.pb`): TFDV's comparators measure
skew (train vs eval) and drift (train vs the last accepted data) on them, and once the data gate
accepts this data, they are the baseline the next run's drift is measured against.

The counting is a Beam pipeline (`components.text_figures`) run with the pipeline's
`beam_pipeline_args`, so it spreads over a cluster's workers as StatisticsGen and Transform do;
only its small sums come back here to be judged.

It never fails the run itself: DataGate reads the report and decides, so the figures of a
stopped run stay in ML Metadata for the run report.
"""

# No `from __future__ import annotations`: the @component decorator reads the annotations.
import dataclasses
import json
import math
import os
import tempfile
from typing import Any, Optional, Sequence

import apache_beam as beam
import tensorflow as tf
import tensorflow_data_validation as tfdv
from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.types import artifact, artifact_utils
from tfx.types.experimental import simple_artifacts

from components.text_figures import (EVAL_SPLIT, LABEL_FEATURE, TOKEN_COUNT_FEATURE,
                                     TRAIN_SPLIT, CountSettings, Figures, MeasureTexts, Row,
                                     SplitFigures, describe_counting, figures_from_json,
                                     length_summary, row_of_example)
from pipeline.config import DataChecksConfig, section_from_dict

REPORT_FILE = "text_checks.json"
STATISTICS_FILE = "derived_statistics.pb"
# What the Beam pipeline measured, judged into REPORT_FILE.
FIGURES_FILE = "figures.json"
_HISTOGRAM_BINS = 20


class TextChecksReport(artifact.Artifact):
    """Every text check's figure and threshold (`text_checks.json`) and the derived statistics."""

    # Kubeflow Pipelines wants `namespace.Name` for custom artifact types.
    TYPE_NAME = "textclf.TextChecksReport"


# The derived statistics of data the gate let through: the baseline later runs measure drift
# against. A standard type, not a custom one: Kubeflow Pipelines v2 gives every custom type the
# schema title `tfx.Artifact`, so a "latest artifact" query for one would match them all, while
# `tfx.Statistics` is produced by nothing else in this pipeline.
AcceptedData = simple_artifacts.Statistics


@dataclasses.dataclass
class Check:
    """One figure against the threshold that judges it."""

    name: str
    # What was measured: a split ("train"), or two compared ("train vs eval").
    scope: str
    value: float
    threshold: float
    # The configuration key that holds the threshold.
    option: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.value <= self.threshold

    def describe(self) -> str:
        verdict = "crossed" if not self.passed else "within"
        return (f"{self.name.replace('_', ' ')} ({self.scope}) {self.value:.4g} {verdict} "
                f"{self.option} {self.threshold:g}" + (f": {self.detail}" if self.detail else ""))


@dataclasses.dataclass
class SplitRows:
    """The texts (one list per text column; None where missing) and labels of one split, held
    in memory: for `measure` on hand-made splits."""

    texts: list[list[Optional[str]]]
    labels: list[str]


def measure(splits: dict[str, SplitRows], settings: CountSettings, thresholds: DataChecksConfig,
            baseline: Optional[tuple[statistics_pb2.DatasetFeatureStatisticsList, dict]] = None,
            ) -> tuple[dict[str, Any], statistics_pb2.DatasetFeatureStatisticsList]:
    """Measures every check on in-memory `train` and `eval` splits, through the component's
    Beam pipeline on the in-process DirectRunner."""
    rows = [Row(split, tuple(texts), label) for split, split_rows in splits.items()
            for texts, label in zip(zip(*split_rows.texts), split_rows.labels)]
    with tempfile.TemporaryDirectory(prefix="text-checks-") as folder:
        path = os.path.join(folder, FIGURES_FILE)
        with beam.Pipeline() as pipeline:
            _ = (pipeline | "Rows" >> beam.Create(rows, reshuffle=False)
                 | MeasureTexts(settings) | _WriteFigures(path))
        figures = _read_figures(path)
    return judge(figures, settings, thresholds, baseline)


def judge(figures: Figures, settings: CountSettings, thresholds: DataChecksConfig,
          baseline: Optional[tuple[statistics_pb2.DatasetFeatureStatisticsList, dict]] = None,
          ) -> tuple[dict[str, Any], statistics_pb2.DatasetFeatureStatisticsList]:
    """Every check of the measured `figures` against its threshold.

    Args:
      baseline: the derived statistics and the report of the last accepted data, for drift.
    Returns:
      The report (figures per split and every check) and the derived statistics.
    """
    max_seq_length = settings.max_seq_length
    report: dict[str, Any] = {
        "tokenizer": describe_counting(settings, figures.vocabulary_size),
        "max_seq_length": max_seq_length, "splits": {}, "checks": []}
    checks: list[Check] = []
    for split in (TRAIN_SPLIT, EVAL_SPLIT):
        sums = figures.splits.get(split, SplitFigures())
        report["splits"][split] = {
            "examples": sums.examples,
            "empty_texts": sums.empty_texts,
            "truncated": sums.truncated(max_seq_length),
            "text_tokens": sums.text_tokens,
            "unk_tokens": sums.unk_tokens,
            "token_length": length_summary(sums.token_counts, max_seq_length, _HISTOGRAM_BINS),
            "label_counts": dict(sorted(sums.label_counts.items())),
        }
        figures_of_split = report["splits"][split]
        checks += [
            Check("empty_text_rate", split, _share(sums.empty_texts, sums.examples),
                  thresholds.max_empty_text_rate, "data_checks.max_empty_text_rate",
                  f"{sums.empty_texts} of {sums.examples} examples have an empty or missing "
                  "text"),
            Check("truncation_rate", split, _share(figures_of_split["truncated"], sums.examples),
                  thresholds.max_truncation_rate, "data_checks.max_truncation_rate",
                  f"{figures_of_split['truncated']} of {sums.examples} examples are longer than "
                  f"model.max_seq_length {max_seq_length} tokens (longest "
                  f"{figures_of_split['token_length']['max']})"),
            Check("unk_rate", split, _share(sums.unk_tokens, sums.text_tokens),
                  thresholds.max_unk_rate, "data_checks.max_unk_rate",
                  f"{sums.unk_tokens} of {sums.text_tokens} tokens are [UNK]"),
        ]
    repeats = figures.repeats
    train_examples = report["splits"][TRAIN_SPLIT]["examples"]
    eval_examples = report["splits"][EVAL_SPLIT]["examples"]
    checks.append(Check(
        "duplicate_rate", TRAIN_SPLIT, _share(repeats.duplicates, train_examples),
        thresholds.max_duplicate_rate, "data_checks.max_duplicate_rate",
        f"{repeats.duplicates} of {train_examples} training examples repeat another"
        + _quoted(repeats.duplicated_texts)))
    checks.append(Check(
        "leakage_rate", f"{EVAL_SPLIT} in {TRAIN_SPLIT}", _share(repeats.leaked, eval_examples),
        thresholds.max_leakage_rate, "data_checks.max_leakage_rate",
        f"{repeats.leaked} of {eval_examples} eval examples also appear in the training "
        "split" + _quoted(repeats.leaked_texts)))

    checks += _distribution_checks(figures.statistics, report, thresholds, baseline)
    report["checks"] = [{**dataclasses.asdict(check), "passed": check.passed} for check in checks]
    report["passed"] = all(check.passed for check in checks)
    return report, figures.statistics


def report_checks(report: dict[str, Any]) -> list[Check]:
    """The checks of a `text_checks.json` report."""
    return [Check(**{key: value for key, value in check.items() if key != "passed"})
            for check in report["checks"]]


def _distribution_checks(statistics: statistics_pb2.DatasetFeatureStatisticsList,
                         report: dict[str, Any], thresholds: DataChecksConfig,
                         baseline: Optional[tuple[statistics_pb2.DatasetFeatureStatisticsList,
                                                  dict]]) -> list[Check]:
    """Label (L-infinity) and token-length (Jensen-Shannon) skew and drift, by TFDV's comparators."""
    train, evaluation = (_dataset(statistics, split) for split in (TRAIN_SPLIT, EVAL_SPLIT))
    schema = tfdv.infer_schema(train)
    label, length = (tfdv.get_feature(schema, name)
                     for name in (LABEL_FEATURE, TOKEN_COUNT_FEATURE))
    label.skew_comparator.infinity_norm.threshold = thresholds.max_label_skew
    length.skew_comparator.jensen_shannon_divergence.threshold = thresholds.max_length_skew
    previous = None
    if baseline:
        label.drift_comparator.infinity_norm.threshold = thresholds.max_label_drift
        length.drift_comparator.jensen_shannon_divergence.threshold = thresholds.max_length_drift
        previous = _dataset(baseline[0], TRAIN_SPLIT)
    measured = tfdv.validate_statistics(train, schema, previous_statistics=previous,
                                        serving_statistics=evaluation)
    train_figures = report["splits"][TRAIN_SPLIT]
    # Kind of comparison -> what it compares, and the figures of the reference side.
    comparisons = {
        "skew": (f"{TRAIN_SPLIT} vs {EVAL_SPLIT}", report["splits"][EVAL_SPLIT]),
        "drift": (f"{TRAIN_SPLIT} vs last accepted data",
                  baseline[1]["splits"][TRAIN_SPLIT] if baseline else None),
    }
    reference_names = {"skew": EVAL_SPLIT, "drift": "last accepted"}
    checks = []
    for info in measured.drift_skew_info:
        feature = info.path.step[0]
        subject = "label" if feature == LABEL_FEATURE else "length"
        for kind, measurements in (("skew", info.skew_measurements),
                                   ("drift", info.drift_measurements)):
            scope, other_figures = comparisons[kind]
            for measurement in measurements:
                floor = noise_floor(measurement.type, train_figures["examples"],
                                    other_figures["examples"])
                raised = (f"threshold raised from {measurement.threshold:g} to {floor:.3g}, what "
                          f"sampling alone reaches with {train_figures['examples']} vs "
                          f"{other_figures['examples']} examples; "
                          if floor > measurement.threshold else "")
                checks.append(Check(
                    f"{subject}_{kind}", scope, measurement.value,
                    max(measurement.threshold, floor), f"data_checks.max_{subject}_{kind}",
                    raised + _distribution_detail(feature, measurement, train_figures,
                                                  other_figures, reference_names[kind])))
    return checks


def noise_floor(measurement_type: int, examples: int, other_examples: int) -> float:
    """The distance two samples of one distribution reach by chance, which a threshold is raised
    to, so that small data is not stopped for sampling noise.

    L-infinity of label shares: three standard errors of a difference of two proportions, each at
    most 0.5 * sqrt(1/n). Jensen-Shannon of token-length histograms: 10 * (1/n1 + 1/n2) + 0.01,
    above the largest of 40 random same-distribution splits of the default data at 160/40 to
    1,941/459 examples (0.23 to 0.027). They fall under the default 0.10 from about 450 and 220
    examples a side.
    """
    spread = 1 / max(examples, 1) + 1 / max(other_examples, 1)
    if measurement_type == anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY:
        return 1.5 * math.sqrt(spread)
    return 10 * spread + 0.01


def _distribution_detail(feature: str, measurement: anomalies_pb2.DriftSkewInfo.Measurement,
                         train: dict[str, Any], reference: Optional[dict[str, Any]],
                         reference_name: str) -> str:
    """E.g. "L_INFTY; 'positive': train 90.0%, last accepted 52.0%"."""
    name = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(measurement.type)
    if reference is None:
        return name
    if feature == TOKEN_COUNT_FEATURE:
        return (f"{name}; mean tokens: train {train['token_length']['mean']:.1f}, "
                f"{reference_name} {reference['token_length']['mean']:.1f}")
    ours, theirs = (_shares(split["label_counts"]) for split in (train, reference))
    # Sorted first, so that a tie always names the same label.
    widest = max(sorted(set(ours) | set(theirs)),
                 key=lambda value: abs(ours.get(value, 0.0) - theirs.get(value, 0.0)))
    return (f"{name}; {widest!r}: train {ours.get(widest, 0.0):.1%}, "
            f"{reference_name} {theirs.get(widest, 0.0):.1%}")


def _dataset(statistics: statistics_pb2.DatasetFeatureStatisticsList,
             split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    [dataset] = [dataset for dataset in statistics.datasets if dataset.name == split]
    return statistics_pb2.DatasetFeatureStatisticsList(datasets=[dataset])


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {value: count / total for value, count in counts.items()} if total else {}


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _quoted(texts: Sequence[str]) -> str:
    return ", e.g. " + ", ".join(repr(text) for text in texts) if texts else ""


class _WriteFigures(beam.PTransform):
    """MeasureTexts' one JSON text -> the file at `path` (on any file system Beam writes to)."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, figures: beam.PCollection) -> beam.pvalue.PDone:
        return figures | beam.io.WriteToText(self._path, shard_name_template="")


def _read_figures(path: str) -> Figures:
    with tf.io.gfile.GFile(path) as handle:
        return figures_from_json(handle.read())


def _read_baseline(baseline: Optional[AcceptedData]
                   ) -> Optional[tuple[statistics_pb2.DatasetFeatureStatisticsList, dict]]:
    if baseline is None:
        return None
    statistics = tfdv.load_stats_binary(os.path.join(baseline.uri, STATISTICS_FILE))
    with tf.io.gfile.GFile(os.path.join(baseline.uri, REPORT_FILE)) as handle:
        return statistics, json.loads(handle.read())


# TFX names a function component after the function, as it names classes.
@tfx.dsl.components.component(use_beam=True)
def TextChecks(  # pylint: disable=invalid-name
        examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
        report: tfx.dsl.components.OutputArtifact[TextChecksReport],
        settings: tfx.dsl.components.Parameter[str],
        baseline: tfx.dsl.components.InputArtifact[AcceptedData] = None,
        beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Measures the text checks on ExampleGen's train and eval splits, on Beam with the
    pipeline's `beam_pipeline_args`.

    `settings` is JSON: `data_checks` (the thresholds), `text_columns`, `label_column`,
    `max_seq_length`, `max_vocab_size`, `min_word_frequency` and `checkpoint` (a
    `pipeline.checkpoint.Checkpoint` as a dict, or null from scratch). `baseline` is the last
    accepted data (none on a first run: drift is then not measured).
    """
    options = json.loads(settings)
    count_settings = CountSettings(
        checkpoint=options["checkpoint"], max_vocab_size=options["max_vocab_size"],
        min_word_frequency=options["min_word_frequency"],
        max_seq_length=options["max_seq_length"])
    figures_path = os.path.join(report.uri, FIGURES_FILE)
    with beam_pipeline as pipeline:
        rows = [pipeline
                | f"Read{split}" >> beam.io.ReadFromTFRecord(os.path.join(
                    artifact_utils.get_split_uri([examples], split), "*"))
                | f"Parse{split}" >> beam.Map(row_of_example, split, options["text_columns"],
                                              options["label_column"])
                for split in (TRAIN_SPLIT, EVAL_SPLIT)]
        _ = rows | beam.Flatten() | MeasureTexts(count_settings) | _WriteFigures(figures_path)
    figures, statistics = judge(
        _read_figures(figures_path), count_settings,
        section_from_dict(DataChecksConfig, options["data_checks"]), _read_baseline(baseline))
    figures["span"] = examples.span
    figures["baseline"] = ({"uri": baseline.uri, "span": baseline.get_int_custom_property("span")}
                           if baseline else None)
    with tf.io.gfile.GFile(os.path.join(report.uri, REPORT_FILE), "w") as handle:
        handle.write(json.dumps(figures, indent=2, ensure_ascii=False))
    with tf.io.gfile.GFile(os.path.join(report.uri, STATISTICS_FILE), "wb") as handle:
        handle.write(statistics.SerializeToString())
    checks = report_checks(figures)
    failed = [check for check in checks if not check.passed]
    report.set_int_custom_property("failed_checks", len(failed))
    report.set_int_custom_property("span", examples.span)
    logging.info("TextChecks: span %d, %d checks, %d crossed their thresholds%s (%s)",
                 examples.span, len(checks), len(failed),
                 "" if baseline else "; no accepted data yet, so no drift checks",
                 os.path.join(report.uri, REPORT_FILE))
    for check in failed:
        logging.warning("TextChecks: %s", check.describe())
