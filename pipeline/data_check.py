"""Checks the input files before any component runs, so bad data fails in seconds, not in Transform.

ExampleGen would otherwise accept a missing column or an empty file and the run would fail much
later with a tensor-shape error that names neither the file nor the column. The check also finds
the label values, which the Evaluator's per-class metrics and the label vocabulary need up front.

Inputs up to `data.preflight_max_bytes` are read here row by row. Larger ones are not read twice:
here only their headers and first `data.preflight_sample_rows` rows (encoding included), while
ExampleGen checks every row as it reads it, on Beam, by the same `RowRules` and with the same
file-and-line messages.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import os
import pathlib
import re
from typing import Any, Iterator, Optional, Sequence

from pipeline import spans
from pipeline.config import DataConfig
from pipeline.encodings import reading_name, undecodable_at


class InputDataError(ValueError):
    """The input files cannot be used; the message names the file, the column and the fix."""


def input_data_error_in(error: BaseException) -> Optional[str]:
    """The InputDataError message inside what a run raised (ExampleGen's row checks run on Beam,
    which re-raises them with the step appended, or as text from a worker process), or None."""
    seen = error
    while seen is not None:
        if isinstance(seen, InputDataError):
            return _BEAM_STEP.sub("", str(seen))
        seen = seen.__cause__ or seen.__context__
    found = _QUOTED_ERROR.search(str(error))
    return _BEAM_STEP.sub("", found.group(1)) if found else None


# What Beam appends to a re-raised error, and how a worker's error reads inside another's text.
_BEAM_STEP = re.compile(r"( \[while running '[^']*'\])+$")
_QUOTED_ERROR = re.compile(r"InputDataError: (.+?)(?:\n|$)")


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What the check learnt about the input."""

    input_base: str
    # Split name -> file pattern relative to input_base ("*" for one hash-split input).
    split_patterns: dict[str, str]
    files: list[str]
    columns: list[str]
    label_values: list[str]
    row_count: int
    # The newest span, which ExampleGen will read; None when the patterns hold no {SPAN}.
    span: Optional[int] = None
    # Only the first data.preflight_sample_rows rows of each file were read (a large input):
    # `row_count` counts those, and `label_values` found there are all ExampleGen accepts.
    sampled: bool = False

    def row_rules(self, data: DataConfig) -> dict[str, Any]:
        """What ExampleGen checks every row against (`RowRules.from_dict` with the header)."""
        source = ("data.label_values" if data.label_values else
                  f"the labels of the first {data.preflight_sample_rows} rows of each file"
                  if self.sampled else "the labels found in the files")
        return {"label_column": data.label_column, "label_values": list(self.label_values),
                "label_source": source, "delimiter": data.delimiter,
                "max_text_chars": data.max_text_chars}


@dataclasses.dataclass(frozen=True)
class RowRules:
    """What every data row must be, checked by the pre-flight and by ExampleGen as it reads
    (`components.csv_example_gen`), so both name a bad row's file and line the same way."""

    header: tuple[str, ...]
    label_column: str
    # The labels a row may have ("" and empty: any label), and how a message names that list.
    label_values: tuple[str, ...]
    label_source: str
    delimiter: str
    max_text_chars: int

    @classmethod
    def from_dict(cls, rules: dict[str, Any], header: Sequence[str]) -> "RowRules":
        return cls(header=tuple(header), label_column=rules["label_column"],
                   label_values=tuple(rules["label_values"]), label_source=rules["label_source"],
                   delimiter=rules["delimiter"], max_text_chars=rules["max_text_chars"])

    def check(self, path: str, line_number: int, row: list[str]) -> str:
        """The row's label; raises InputDataError naming `path`, the line and the fix."""
        if [field.lstrip("\ufeff") for field in row] == list(self.header):
            raise InputDataError(
                f"{path} line {line_number} repeats the header: files were concatenated with "
                "their headers; keep the first header only, or keep the files apart")
        if len(row) != len(self.header):
            raise InputDataError(
                f"{path} line {line_number} has {len(row)} fields, the header {len(self.header)}: "
                f"a {self.delimiter!r} inside an unquoted text, or a missing field; quote "
                "the text or fix the row")
        label = row[self.header.index(self.label_column)].strip()
        if not label:
            raise InputDataError(
                f"{path} line {line_number}: column {self.label_column!r} is empty; every "
                "row needs a label")
        if self.label_values and label not in self.label_values:
            fix = ("fix the row or add the value" if self.label_source == "data.label_values"
                   else "fix the row, or list every label in data.label_values")
            raise InputDataError(
                f"{path} line {line_number}: label {label!r} is not one of "
                f"{self.label_source} {list(self.label_values)}: {fix}")
        return label

    def check_record(self, path: str, line_number: int, record: str) -> None:
        """`check` on one delimited record (quoted fields may span lines), fields over
        `max_text_chars` refused as the pre-flight's csv reader refuses them."""
        default_field_limit = csv.field_size_limit(self.max_text_chars)
        try:
            row = next(csv.reader([record], delimiter=self.delimiter), [])
        except csv.Error as error:
            raise InputDataError(field_limit_message(path, line_number, error,
                                                     self.max_text_chars)) from error
        finally:
            csv.field_size_limit(default_field_limit)
        if row:
            self.check(path, line_number, row)


def field_limit_message(path: str, line_number: int, error: csv.Error,
                        max_text_chars: int) -> str:
    return (f"{path} line {line_number}: {error} (data.max_text_chars, {max_text_chars} "
            "characters): a field that long is usually many rows merged by an unclosed quote; "
            "fix the quoting, or raise data.max_text_chars if the texts really are that long")


def check_input_data(data: DataConfig) -> DataSummary:
    """Validates every input file against `data` and returns the label values found.

    Raises:
      InputDataError: no files, an empty file, a missing column, differing headers, an empty label
        or a label outside `data.label_values`.
    """
    input_base, split_patterns = _locate(data)
    try:
        span = spans.latest_span(input_base, split_patterns.values())
    except ValueError as error:
        raise InputDataError(str(error)) from error
    span_patterns = [spans.with_span(pattern, span) if span is not None else pattern
                     for pattern in split_patterns.values()]
    files = sorted({str(path) for pattern in span_patterns
                    for path in pathlib.Path(input_base).glob(pattern) if path.is_file()})
    if not files:
        raise InputDataError(
            f"no data files match {', '.join(split_patterns.values())} in {input_base}: "
            "point --data-path at a CSV/TSV file or a folder that holds them")
    required = [*data.text_columns, data.label_column, *data.slice_columns]
    sampled = sum(os.path.getsize(path) for path in files) > data.preflight_max_bytes
    columns: list[str] = []
    labels: set[str] = set()
    row_count = 0
    for path in files:
        header, file_labels, file_rows = _read_file(
            path, data, required, data.preflight_sample_rows if sampled else 0)
        if columns and header != columns:
            raise InputDataError(
                f"{path} has columns {header}, but {files[0]} has {columns}: files read together "
                "must share one header")
        columns = header
        labels |= file_labels
        row_count += file_rows
    label_values = list(data.label_values) or sorted(labels)
    if len(label_values) < 2:
        raise InputDataError(
            f"label column {data.label_column!r} in {input_base} has only {label_values}: "
            "a classifier needs at least two classes")
    return DataSummary(input_base, split_patterns, files, columns, label_values, row_count, span,
                       sampled)


def declared_data(data: DataConfig) -> DataSummary:
    """The input as configured, for a run whose data this machine cannot read (a Kubeflow run's
    bucket): `data.path` is the input folder and the labels must be listed in the config."""
    if not data.label_values:
        raise InputDataError("data.label_values is empty: a compiled pipeline cannot look at the "
                             "data, so list the labels in id order (--label-values a,b)")
    split_patterns = ({"train": data.train_pattern, "eval": data.eval_pattern}
                      if data.train_pattern else {"single_split": data.file_pattern})
    return DataSummary(data.path, split_patterns, files=[], columns=[],
                       label_values=list(data.label_values), row_count=0)


def _locate(data: DataConfig) -> tuple[str, dict[str, str]]:
    path = pathlib.Path(data.path).resolve()
    if path.is_file():
        if data.train_pattern or data.file_pattern != "*":
            raise InputDataError(
                f"{path} is a file, but data.train_pattern/eval_pattern/file_pattern need a folder: "
                "point --data-path at the folder that holds the split files")
        return str(path.parent), {"single_split": path.name}
    if not path.is_dir():
        raise InputDataError(f"data path {path} does not exist: point --data-path at a CSV/TSV "
                             "file or a folder of them")
    if data.train_pattern:
        return str(path), {"train": data.train_pattern, "eval": data.eval_pattern}
    if data.file_pattern != "*":
        return str(path), {"single_split": data.file_pattern}
    hidden = [entry.name for entry in path.iterdir() if fnmatch.fnmatch(entry.name, ".*")]
    if hidden:
        raise InputDataError(f"{path} holds hidden files {hidden}, which ExampleGen would read "
                             "as data: remove them or point --data-path at a single file")
    return str(path), {"single_split": "*"}


def _read_file(path: str, data: DataConfig, required: list[str],
               max_rows: int) -> tuple[list[str], set[str], int]:
    """(header, labels, rows) of the file's rows, or of its first `max_rows` (0: all)."""
    # A field over the limit raises csv.Error at the line that holds it.
    default_field_limit = csv.field_size_limit(data.max_text_chars)
    try:
        return _read_rows(path, data, required, max_rows)
    except UnicodeDecodeError as error:
        raise InputDataError(undecodable_at(path, data.encoding)) from error
    finally:
        csv.field_size_limit(default_field_limit)


def _read_rows(path: str, data: DataConfig, required: list[str],
               max_rows: int) -> tuple[list[str], set[str], int]:
    # Decoded as ExampleGen decodes it (a UTF-8 byte-order mark dropped).
    with open(path, encoding=reading_name(data.encoding), newline="") as handle:
        records = _numbered_records(csv.reader(handle, delimiter=data.delimiter), path, data)
        header = next(records, (1, None))[1]
        if not header or not any(header):
            raise InputDataError(f"{path} is empty: it needs a header line and at least one row")
        repeated = sorted({column for column in header if header.count(column) > 1})
        if repeated:
            raise InputDataError(f"{path}: the header names column(s) {repeated} more than once: "
                                 "give every column its own name")
        missing = [column for column in required if column not in header]
        if missing:
            hint = (f" (the header has one column: is the delimiter {data.delimiter!r} right?)"
                    if len(header) == 1 else "")
            raise InputDataError(
                f"{path} has no column {', '.join(repr(column) for column in missing)}; its "
                f"columns are {header}{hint}: set --text-column/--label-column/--slice-columns "
                "to match the file")
        rules = RowRules(tuple(header), data.label_column, tuple(data.label_values),
                         "data.label_values", data.delimiter, data.max_text_chars)
        labels: set[str] = set()
        rows = 0
        for line_number, row in records:
            if not row:
                continue
            labels.add(rules.check(path, line_number, row))
            rows += 1
            if rows == max_rows:
                break
    if rows == 0:
        raise InputDataError(f"{path} has a header but no rows: add labelled rows or remove it")
    return header, labels, rows


def _numbered_records(reader: Any, path: str, data: DataConfig) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each record; a field over the size limit stops at its line.

    csv counts physical lines, so a record whose quoted field spans lines gets its last one.
    """
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputDataError(field_limit_message(path, reader.line_num, error,
                                                     data.max_text_chars)) from error
        yield reader.line_num, row
