"""TextChecks: the text-level data checks TFDV's ExampleValidator does not make.

Schema validation compares feature statistics with a schema; it cannot say that a third of the
texts will be cut at `max_seq_length`, that the eval split repeats training sentences, or that
the label balance moved since the data the last model was trained on. This component measures
those on ExampleGen's output with the tokenization the Transform applies, and writes every
figure beside the threshold that judges it (`text_checks.json`). It also writes TFDV statistics
of each example's token count and label (`derived_statistics.pb`): TFDV's comparators measure
skew (train vs eval) and drift (train vs the last accepted data) on them, and once the data gate
accepts this data, they are the baseline the next run's drift is measured against.

It never fails the run itself: DataGate reads the report and decides, so the figures of a
stopped run stay in ML Metadata for the run report.
"""

# No `from __future__ import annotations`: the @component decorator reads the annotations.
import collections
import dataclasses
import json
import math
import os
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_data_validation as tfdv
from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.types import artifact, artifact_utils
from tfx.types.experimental import simple_artifacts

from modules.checkpoint_tokenizers import checkpoint_tokenizer
from modules.preprocessing import Packing, split_words
from pipeline.checkpoint import Checkpoint
from pipeline.config import DataChecksConfig, section_from_dict

REPORT_FILE = "text_checks.json"
STATISTICS_FILE = "derived_statistics.pb"
# The per-example features of the derived statistics.
TOKEN_COUNT_FEATURE = "token_count"
LABEL_FEATURE = "label"
TRAIN_SPLIT, EVAL_SPLIT = "train", "eval"
# Example texts quoted for a failed duplicate, leakage or empty-text check.
_MAX_QUOTED = 3
_BATCH_SIZE = 4096
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
    """The texts (one list per text column; None where missing) and labels of one split."""

    texts: list[list[Optional[str]]]
    labels: list[str]


class TokenCounter:
    """Counts each example's tokens and [UNK] tokens as the Transform's `preprocessing_fn` would.

    With a checkpoint: its own tokenizer (WordPiece, SentencePiece or byte-level BPE), through
    the same ops. From scratch: lower-cased words against the vocabulary `tft.vocabulary` builds
    on the training split (words seen at least `min_word_frequency` times, the `max_vocab_size`
    most frequent).
    """

    def __init__(self, checkpoint: Optional[Checkpoint], train: SplitRows, max_vocab_size: int,
                 min_word_frequency: int):
        self.checkpoint = checkpoint
        self._tokenizer = checkpoint_tokenizer(checkpoint) if checkpoint else None
        self._packing = Packing.of(checkpoint)
        self._vocabulary: set[bytes] = set()
        if not checkpoint:
            counts = collections.Counter(
                word for column in train.texts for batch in _batches(column)
                for words in split_words(tf.constant(batch)).to_list() for word in words)
            frequent = [(count, word) for word, count in counts.items()
                        if count >= min_word_frequency]
            self._vocabulary = {word for _, word in sorted(frequent, reverse=True)[:max_vocab_size]}

    def describe(self) -> str:
        return (f"the {self._tokenizer.display_name} of {self.checkpoint.path}"
                if self.checkpoint else
                f"words against the training split's vocabulary ({len(self._vocabulary)} words)")

    def special_tokens(self, segment_count: int) -> int:
        return self._packing.special_tokens(segment_count)

    def count(self, rows: SplitRows) -> tuple[np.ndarray, np.ndarray]:
        """Per example: all tokens of the packed row ([CLS]/[SEP] included, before truncation),
        and the [UNK] tokens among them."""
        tokens = np.full(len(rows.labels), self.special_tokens(len(rows.texts)), dtype=np.int64)
        unknown = np.zeros(len(rows.labels), dtype=np.int64)
        for column in rows.texts:
            start = 0
            for batch in _batches(column):
                batch_tokens, batch_unknown = self._count_batch(batch)
                tokens[start:start + len(batch)] += batch_tokens
                unknown[start:start + len(batch)] += batch_unknown
                start += len(batch)
        return tokens, unknown

    def _count_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self.checkpoint:
            [ids] = self._tokenizer.ids([tf.constant(texts)])
            return (ids.row_lengths().numpy(),
                    tf.reduce_sum(tf.cast(ids == self.checkpoint.unk_id, tf.int64), axis=1).numpy())
        words = split_words(tf.constant(texts)).to_list()
        return (np.array([len(row) for row in words]),
                np.array([sum(word not in self._vocabulary for word in row) for row in words]))


def read_split(example_files: Sequence[str], text_columns: Sequence[str],
               label_column: str) -> SplitRows:
    """The texts and labels of gzipped TFRecord files of raw tf.Examples (one ExampleGen split)."""
    rows = SplitRows(texts=[[] for _ in text_columns], labels=[])
    dataset = tf.data.TFRecordDataset(list(example_files), compression_type="GZIP")
    for record in dataset.as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        for column, values in zip(text_columns, rows.texts):
            values.append(_first_value(feature, column))
        rows.labels.append(_first_value(feature, label_column) or "")
    return rows


def measure(splits: dict[str, SplitRows], counter: TokenCounter, max_seq_length: int,
            thresholds: DataChecksConfig,
            baseline: Optional[tuple[statistics_pb2.DatasetFeatureStatisticsList, dict]] = None,
            ) -> tuple[dict[str, Any], statistics_pb2.DatasetFeatureStatisticsList]:
    """Measures every check on the `train` and `eval` splits.

    Args:
      baseline: the derived statistics and the report of the last accepted data, for drift.
    Returns:
      The report (figures per split and every check) and the derived statistics.
    """
    report: dict[str, Any] = {"tokenizer": counter.describe(), "max_seq_length": max_seq_length,
                              "splits": {}, "checks": []}
    checks: list[Check] = []
    token_counts = {}
    for split, rows in splits.items():
        tokens, unknown = counter.count(rows)
        token_counts[split] = tokens
        empty = [index for index in range(len(rows.labels))
                 if any(column[index] is None or not column[index].strip()
                        for column in rows.texts)]
        text_tokens = int(tokens.sum()) - counter.special_tokens(len(rows.texts)) * len(tokens)
        report["splits"][split] = {
            "examples": len(rows.labels),
            "empty_texts": len(empty),
            "truncated": int((tokens > max_seq_length).sum()),
            "text_tokens": text_tokens,
            "unk_tokens": int(unknown.sum()),
            "token_length": _length_summary(tokens, max_seq_length),
            "label_counts": dict(sorted(collections.Counter(rows.labels).items())),
        }
        figures = report["splits"][split]
        checks += [
            Check("empty_text_rate", split, _share(len(empty), len(rows.labels)),
                  thresholds.max_empty_text_rate, "data_checks.max_empty_text_rate",
                  f"{len(empty)} of {len(rows.labels)} examples have an empty or missing text"),
            Check("truncation_rate", split, _share(figures["truncated"], len(rows.labels)),
                  thresholds.max_truncation_rate, "data_checks.max_truncation_rate",
                  f"{figures['truncated']} of {len(rows.labels)} examples are longer than "
                  f"model.max_seq_length {max_seq_length} tokens (longest "
                  f"{figures['token_length']['max']})"),
            Check("unk_rate", split, _share(figures["unk_tokens"], text_tokens),
                  thresholds.max_unk_rate, "data_checks.max_unk_rate",
                  f"{figures['unk_tokens']} of {text_tokens} tokens are [UNK]"),
        ]
    train, evaluation = splits[TRAIN_SPLIT], splits[EVAL_SPLIT]
    train_keys = [_text_key(row) for row in zip(*train.texts)]
    repeats = collections.Counter(train_keys)
    duplicated = [key for key, count in repeats.items() if count > 1]
    duplicate_count = len(train_keys) - len(repeats)
    checks.append(Check(
        "duplicate_rate", TRAIN_SPLIT, _share(duplicate_count, len(train_keys)),
        thresholds.max_duplicate_rate, "data_checks.max_duplicate_rate",
        f"{duplicate_count} of {len(train_keys)} training examples repeat another"
        + _quoted(duplicated)))
    leaked = [key for key in (_text_key(row) for row in zip(*evaluation.texts)) if key in repeats]
    checks.append(Check(
        "leakage_rate", f"{EVAL_SPLIT} in {TRAIN_SPLIT}", _share(len(leaked), len(evaluation.labels)),
        thresholds.max_leakage_rate, "data_checks.max_leakage_rate",
        f"{len(leaked)} of {len(evaluation.labels)} eval examples also appear in the training "
        "split" + _quoted(leaked)))

    statistics = derived_statistics(token_counts, {split: rows.labels
                                                   for split, rows in splits.items()})
    checks += _distribution_checks(statistics, report, thresholds, baseline)
    report["checks"] = [{**dataclasses.asdict(check), "passed": check.passed} for check in checks]
    report["passed"] = all(check.passed for check in checks)
    return report, statistics


def derived_statistics(token_counts: dict[str, np.ndarray], labels: dict[str, list[str]]
                       ) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of each example's token count and label, one dataset per split."""
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    for split, counts in token_counts.items():
        frame = pd.DataFrame({TOKEN_COUNT_FEATURE: counts, LABEL_FEATURE: labels[split]})
        dataset = tfdv.generate_statistics_from_dataframe(frame).datasets[0]
        dataset.name = split
        statistics.datasets.append(dataset)
    return statistics


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


def _length_summary(tokens: np.ndarray, max_seq_length: int) -> dict[str, Any]:
    top = max(int(tokens.max()), max_seq_length) + 1
    edges = np.unique(np.linspace(0, top, _HISTOGRAM_BINS + 1).astype(int))
    counts, _ = np.histogram(tokens, bins=edges)
    return {"mean": float(tokens.mean()), "p50": float(np.percentile(tokens, 50)),
            "p90": float(np.percentile(tokens, 90)), "p99": float(np.percentile(tokens, 99)),
            "max": int(tokens.max()),
            "histogram": [[int(low), int(high), int(count)]
                          for low, high, count in zip(edges[:-1], edges[1:], counts)]}


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {value: count / total for value, count in counts.items()} if total else {}


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _text_key(texts: Sequence[Optional[str]]) -> str:
    """Texts compared for duplicates and leakage: lower-cased, whitespace collapsed."""
    return "\x1f".join(" ".join((text or "").lower().split()) for text in texts)


def _quoted(keys: Sequence[str]) -> str:
    if not keys:
        return ""
    shown = [key.replace("\x1f", " || ")[:80] for key in keys[:_MAX_QUOTED]]
    return ", e.g. " + ", ".join(repr(text) for text in shown)


def _batches(values: list[Optional[str]]) -> list[list[str]]:
    return [[value or "" for value in values[start:start + _BATCH_SIZE]]
            for start in range(0, len(values), _BATCH_SIZE)]


def _first_value(feature: Any, name: str) -> Optional[str]:
    """The first value of a tf.Example feature as text; None when the feature is missing."""
    if name not in feature:
        return None
    values = feature[name]
    for kind in ("bytes_list", "int64_list", "float_list"):
        if values.HasField(kind) and getattr(values, kind).value:
            value = getattr(values, kind).value[0]
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return None


def _read_baseline(baseline: Optional[AcceptedData]
                   ) -> Optional[tuple[statistics_pb2.DatasetFeatureStatisticsList, dict]]:
    if baseline is None:
        return None
    statistics = tfdv.load_stats_binary(os.path.join(baseline.uri, STATISTICS_FILE))
    with tf.io.gfile.GFile(os.path.join(baseline.uri, REPORT_FILE)) as handle:
        return statistics, json.loads(handle.read())


# TFX names a function component after the function, as it names classes.
@tfx.dsl.components.component
def TextChecks(  # pylint: disable=invalid-name
        examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
        report: tfx.dsl.components.OutputArtifact[TextChecksReport],
        settings: tfx.dsl.components.Parameter[str],
        baseline: tfx.dsl.components.InputArtifact[AcceptedData] = None,
) -> None:
    """Measures the text checks on ExampleGen's train and eval splits.

    `settings` is JSON: `data_checks` (the thresholds), `text_columns`, `label_column`,
    `max_seq_length`, `max_vocab_size`, `min_word_frequency` and `checkpoint` (a
    `pipeline.checkpoint.Checkpoint` as a dict, or null from scratch). `baseline` is the last
    accepted data (none on a first run: drift is then not measured).
    """
    options = json.loads(settings)
    splits = {split: read_split(
        tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")),
        options["text_columns"], options["label_column"]) for split in (TRAIN_SPLIT, EVAL_SPLIT)}
    checkpoint = Checkpoint.from_dict(options["checkpoint"]) if options["checkpoint"] else None
    counter = TokenCounter(checkpoint, splits[TRAIN_SPLIT], options["max_vocab_size"],
                           options["min_word_frequency"])
    figures, statistics = measure(
        splits, counter, options["max_seq_length"],
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
