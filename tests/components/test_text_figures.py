"""TextChecks' Beam pipeline against a plain-Python count, in memory and over two worker
processes (the component itself, as a cluster runs it)."""

import collections
import dataclasses
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.text_checks import REPORT_FILE, SplitRows, TextChecks, measure, report_checks
from components.text_figures import CountSettings, length_summary
from pipeline.config import DataChecksConfig

MAX_SEQ_LENGTH = 8
# Words only (no punctuation), so a plain split counts what the Transform's split counts.
TRAIN = [("good movie", "pos"), ("Good   movie", "pos"), ("a b c d e f", "neg"),  # 8 tokens: kept
         ("a b c d e f g", "neg"), (None, "pos"), ("   ", "neg"), ("fine plot", "pos"),
         ("", "neg"), ("the end", "pos"), ("the end", "neg"), ("plot twist", "pos")]
EVAL = [("good movie", "pos"), ("unseen words here", "neg"), ("THE END", "pos"),
        ("the end", "pos"), ("", "neg")]
SETTINGS = CountSettings(None, max_vocab_size=5, min_word_frequency=2,
                         max_seq_length=MAX_SEQ_LENGTH)


def _splits() -> dict[str, SplitRows]:
    return {split: SplitRows(texts=[[text for text, _ in rows]], labels=[label for _, label in rows])
            for split, rows in (("train", TRAIN), ("eval", EVAL))}


def _normalised(text):
    return " ".join((text or "").lower().split())


def _plain_python_figures() -> dict:
    """What TextChecks must report, counted the obvious way."""
    words = collections.Counter(word for text, _ in TRAIN for word in _normalised(text).split())
    frequent = sorted(((count, word) for word, count in words.items() if count >= 2), reverse=True)
    vocabulary = {word for _, word in frequent[:SETTINGS.max_vocab_size]}
    figures = {}
    for split, rows in (("train", TRAIN), ("eval", EVAL)):
        tokens = [len(_normalised(text).split()) + 2 for text, _ in rows]
        figures[split] = {
            "examples": len(rows),
            "empty_texts": sum(text is None or not text.strip() for text, _ in rows),
            "truncated": sum(count > MAX_SEQ_LENGTH for count in tokens),
            "text_tokens": sum(tokens) - 2 * len(rows),
            "unk_tokens": sum(word not in vocabulary for text, _ in rows
                              for word in _normalised(text).split()),
            "label_counts": dict(sorted(collections.Counter(label for _, label in rows).items())),
            "token_length": {"mean": float(np.mean(tokens)), "max": max(tokens),
                             **{name: float(np.percentile(tokens, share))
                                for name, share in (("p50", 50), ("p90", 90), ("p99", 99))}},
        }
    train_keys = collections.Counter(_normalised(text) for text, _ in TRAIN)
    figures["duplicates"] = sum(count - 1 for count in train_keys.values())
    figures["leaked"] = sum(_normalised(text) in train_keys for text, _ in EVAL)
    return figures


def _checked(report: dict) -> dict:
    """The report's figures in the plain count's shape."""
    checks = {(check.name, check.scope): check for check in report_checks(report)}
    figures = {split: {key: value for key, value in report["splits"][split].items()}
               for split in ("train", "eval")}
    for split in ("train", "eval"):
        figures[split]["token_length"] = {
            key: figures[split]["token_length"][key] for key in ("mean", "max", "p50", "p90", "p99")}
    figures["duplicates"] = round(checks["duplicate_rate", "train"].value * len(TRAIN))
    figures["leaked"] = round(checks["leakage_rate", "eval in train"].value * len(EVAL))
    return figures


def test_the_beam_figures_equal_a_plain_python_count_on_hand_made_splits():
    """Duplicates within and across the splits, missing, blank and empty texts, rows at and one
    past the truncation boundary, a vocabulary cut by size and by frequency."""
    report, statistics = measure(_splits(), SETTINGS, DataChecksConfig())
    assert _checked(report) == _plain_python_figures()
    checks = {(check.name, check.scope): check for check in report_checks(report)}
    # Quoted: the first repeated texts in sorted order, as normalised.
    assert "e.g. '', 'good movie', 'the end'" in checks["duplicate_rate", "train"].detail
    assert "e.g. '', 'good movie', 'the end'" in checks["leakage_rate", "eval in train"].detail
    assert [dataset.name for dataset in statistics.datasets] == ["eval", "train"]
    assert {dataset.num_examples for dataset in statistics.datasets} == {len(TRAIN), len(EVAL)}


def test_length_summary_equals_numpy_on_the_list_it_summarises():
    counts = np.random.default_rng(7).integers(1, 300, size=5000)
    summary = length_summary(collections.Counter(counts.tolist()), max_seq_length=128, bins=20)
    assert summary["mean"] == pytest.approx(counts.mean())
    for name, share in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert summary[name] == pytest.approx(np.percentile(counts, share))
    edges = np.unique(np.linspace(0, counts.max() + 1, 21).astype(int))
    assert [count for _, _, count in summary["histogram"]] == np.histogram(
        counts, bins=edges)[0].tolist()


def _write_split(folder: pathlib.Path, rows) -> None:
    """Raw tf.Examples in a gzipped TFRecord file, as ExampleGen writes a split."""
    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"),
                              options="GZIP") as writer:
        for text, label in rows:
            feature = {"label": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[label.encode()]))}
            if text is not None:
                feature["text"] = tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[text.encode()]))
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())


def test_the_component_over_two_worker_processes_reports_the_same_figures(tmp_path):
    """~1 min: a LocalDagRunner run of TextChecks alone, its Beam pipeline on the
    multi-processing DirectRunner with two workers (each imports TensorFlow)."""
    for split, rows in (("train", TRAIN), ("eval", EVAL)):
        _write_split(tmp_path / "examples" / f"Split-{split}", rows)
    examples = tfx.dsl.Importer(
        source_uri=str(tmp_path / "examples"),
        artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["train", "eval"]'}).with_id("examples")
    checks = TextChecks(examples=examples.outputs["result"], settings=json.dumps({
        "data_checks": dataclasses.asdict(DataChecksConfig()), "text_columns": ["text"],
        "label_column": "label", "max_seq_length": MAX_SEQ_LENGTH,
        "max_vocab_size": SETTINGS.max_vocab_size,
        "min_word_frequency": SETTINGS.min_word_frequency, "checkpoint": None}))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="text_checks", pipeline_root=str(tmp_path / "root"),
        components=[examples, checks],
        beam_pipeline_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.db"))))
    [report_file] = (tmp_path / "root").glob(f"TextChecks/report/*/{REPORT_FILE}")
    report = json.loads(report_file.read_text())
    in_memory, _ = measure(_splits(), SETTINGS, DataChecksConfig())
    assert report["splits"] == in_memory["splits"]
    assert report["checks"] == in_memory["checks"]
    assert _checked(report) == _plain_python_figures()
