"""Span numbers found in folders, and the pre-flight check reading only the newest span."""

import pytest

from pipeline import spans
from pipeline.config import PipelineConfig
from pipeline.data_check import InputDataError, check_input_data
from tests.conftest import write_sample


def test_span_numbers_are_read_from_matching_names_only(tmp_path):
    for name in ("span-1", "span-2", "span-10", "span-x", "other-3"):
        write_sample(tmp_path / name, rows=3)
    assert spans.spans_present(str(tmp_path), "span-{SPAN}/*.csv") == [1, 2, 10]
    assert spans.latest_span(str(tmp_path), ["span-{SPAN}/*.csv"]) == 10
    assert spans.latest_span(str(tmp_path), ["*"]) is None  # no {SPAN}: spans do not apply


def test_splits_whose_newest_spans_differ_are_refused(tmp_path):
    write_sample(tmp_path / "train-2", rows=3)
    write_sample(tmp_path / "eval-1", rows=3)
    with pytest.raises(ValueError, match="newest spans differ"):
        spans.latest_span(str(tmp_path), ["train-{SPAN}/*.csv", "eval-{SPAN}/*.csv"])


def test_the_check_reads_the_newest_span_and_names_it(tmp_path):
    (tmp_path / "span-1").mkdir()
    (tmp_path / "span-1" / "old.csv").write_text("an,old,header\n1,2,3\n")  # not read any more
    write_sample(tmp_path / "span-2", rows=20)
    config = PipelineConfig.load(None, [f"data.path={tmp_path}", "data.file_pattern=span-{SPAN}/*.csv"])
    summary = check_input_data(config.data)
    assert summary.span == 2
    assert summary.split_patterns == {"single_split": "span-{SPAN}/*.csv"}  # ExampleGen resolves it
    assert [path.split("/")[-2] for path in summary.files] == ["span-2"]


def test_a_pattern_no_span_matches_is_named(tmp_path):
    write_sample(tmp_path / "data", rows=3)
    config = PipelineConfig.load(None, [f"data.path={tmp_path}", "data.file_pattern=span-{SPAN}/*.csv"])
    with pytest.raises(InputDataError, match="no span matches span-{SPAN}/\\*.csv"):
        check_input_data(config.data)
