"""The bad-input corpus: data a user could really hand the pipeline, and which gate must stop it.

Each case writes its files from rows of the default data, so it differs from good data only by
its problem, and names the gate that must stop it and the words its message must contain. Gates,
in the order a run meets them:
  pre-flight     `pipeline.data_check` before anything runs (exit code 2);
  ExampleValidator / TextChecks  anomalies and text checks, reported by DataGate before Transform
                 (exit code 5);
  accepted       not a problem: the run must go through.
`tests/pipeline/test_bad_inputs.py` runs each case through `textclf run`; the README lists them.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
from typing import Callable

from tests.conftest import DEFAULT_DATA, REPO_ROOT

PREFLIGHT, EXAMPLE_VALIDATOR, TEXT_CHECKS, ACCEPTED = (
    "pre-flight", "ExampleValidator", "TextChecks", "accepted")
HEADER = ["text", "label", "source", "domain"]
# The reviewed schema of the default data, committed under schemas/.
REVIEWED_SCHEMA = REPO_ROOT / "schemas" / "textclf.pbtxt"
# Data that arrives in spans: the good run reads span 1, span cases add span 2.
SPAN_OVERRIDES = ["data.train_pattern=span-{SPAN}/train.csv",
                  "data.eval_pattern=span-{SPAN}/eval.csv"]

Rows = list[list[str]]


@dataclasses.dataclass(frozen=True)
class BadInput:
    name: str
    # What is wrong, in the words of the README's table.
    problem: str
    gate: str
    # Words the error message must contain (a regular expression).
    message: str
    # Writes the case's files into a folder from rows of the default data; returns the extra
    # `--set` overrides the case runs with.
    write: Callable[[pathlib.Path, Rows], list[str]]


def default_rows(count: int) -> Rows:
    """The first `count` data rows of the default dataset (text, label, source, domain)."""
    with DEFAULT_DATA.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == HEADER
        return [row for _, row in zip(range(count), reader)]


def write_csv(path: pathlib.Path, rows: Rows, header: list[str] = HEADER,
              delimiter: str = ",", encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


def write_span(folder: pathlib.Path, span: int, train: Rows, evaluation: Rows,
               encoding: str = "utf-8") -> list[str]:
    write_csv(folder / f"span-{span}" / "train.csv", train, encoding=encoding)
    write_csv(folder / f"span-{span}" / "eval.csv", evaluation, encoding=encoding)
    return list(SPAN_OVERRIDES)


def _with_text(rows: Rows, every: int, text: str) -> Rows:
    return [[text, *row[1:]] if index % every == 0 else row for index, row in enumerate(rows)]


def _missing_label_column(folder: pathlib.Path, rows: Rows) -> list[str]:
    write_csv(folder / "reviews.csv", [[row[0], row[2], row[3]] for row in rows],
              header=["text", "source", "domain"])
    return []


def _unknown_label(folder: pathlib.Path, rows: Rows) -> list[str]:
    rows[7][1] = "neutral"
    write_csv(folder / "reviews.csv", rows)
    return ["data.label_values=negative,positive"]


def _unknown_label_against_schema(folder: pathlib.Path, rows: Rows) -> list[str]:
    write_csv(folder / "reviews.csv", [[row[0], "neutral", *row[2:]] if index % 10 == 0 else row
                                       for index, row in enumerate(rows)])
    return [f"data.schema_file={REVIEWED_SCHEMA}"]


def _blank_text(folder: pathlib.Path, rows: Rows) -> list[str]:
    write_csv(folder / "reviews.csv", _with_text(rows, 50, "   "))
    return []


def _null_text(folder: pathlib.Path, rows: Rows) -> list[str]:
    write_csv(folder / "reviews.csv", _with_text(rows, 50, ""))
    return []


def _non_utf8(folder: pathlib.Path, rows: Rows) -> list[str]:
    rows[3][0] = "Caf\u00e9 au lait was cold."
    write_csv(folder / "reviews.csv", rows, encoding="latin-1")
    return []


def _utf16_read_as_utf8(folder: pathlib.Path, rows: Rows) -> list[str]:
    write_csv(folder / "reviews.csv", rows, encoding="utf-16")
    return []


def _invalid_in_named_encoding(folder: pathlib.Path, rows: Rows) -> list[str]:
    """0x81 is undefined in Windows-1252: the file is not what the option says either."""
    write_csv(folder / "reviews.csv", rows, encoding="cp1252")
    path = folder / "reviews.csv"
    lines = path.read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b" ", b" \x81", 1)
    path.write_bytes(b"\n".join(lines))
    return ["data.encoding=cp1252"]


def _huge_text(folder: pathlib.Path, rows: Rows) -> list[str]:
    rows[5][0] = "word " * (2**20 // 5)
    write_csv(folder / "reviews.csv", rows)
    return []


def _wrong_delimiter(folder: pathlib.Path, rows: Rows) -> list[str]:
    write_csv(folder / "reviews.csv", rows, delimiter=";")
    return []


def _byte_order_mark(folder: pathlib.Path, rows: Rows) -> list[str]:
    """Span 1, the good data that `gate_workspace` serves: its run is this case's test."""
    split = len(rows) * 4 // 5
    return write_span(folder, 1, rows[:split], rows[split:], encoding="utf-8-sig")


def _column_named_twice(folder: pathlib.Path, rows: Rows) -> list[str]:
    write_csv(folder / "reviews.csv", [[*row, row[0]] for row in rows], header=[*HEADER, "text"])
    return []


def _header_repeated(folder: pathlib.Path, rows: Rows) -> list[str]:
    half = len(rows) // 2
    write_csv(folder / "reviews.csv", rows[:half] + [HEADER] + rows[half:])
    return []


def _delimiter_inside_text(folder: pathlib.Path, rows: Rows) -> list[str]:
    path = folder / "reviews.csv"
    write_csv(path, rows)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("Cheap, cheerful and it works,positive,web,electronics\n")
    return []


def _label_drifted_span(folder: pathlib.Path, rows: Rows) -> list[str]:
    train, evaluation = rows[:320], rows[320:]
    drifted = [[row[0], "positive", *row[2:]] if index % 5 else row
               for index, row in enumerate(train)]
    return write_span(folder, 2, drifted, evaluation)


def _leaked_span(folder: pathlib.Path, rows: Rows) -> list[str]:
    train, evaluation = rows[:320], rows[320:]
    return write_span(folder, 2, train, evaluation[:60] + train[:20])


CASES = (
    BadInput("missing_label_column", "the label column is missing", PREFLIGHT,
             r"has no column 'label'", _missing_label_column),
    BadInput("unknown_label", "a label outside data.label_values", PREFLIGHT,
             r"line 9: label 'neutral' is not one of data.label_values", _unknown_label),
    BadInput("unknown_label_reviewed_schema",
             "a label outside the reviewed schema's values (no data.label_values)",
             EXAMPLE_VALIDATOR, r"feature 'label': Unexpected string values.*neutral",
             _unknown_label_against_schema),
    BadInput("blank_text", "texts that are only spaces", TEXT_CHECKS,
             r"empty text rate \(train\) .* crossed data_checks.max_empty_text_rate", _blank_text),
    BadInput("null_text", "empty (null) text fields", TEXT_CHECKS,
             r"empty text rate \(train\) .* crossed data_checks.max_empty_text_rate", _null_text),
    BadInput("non_utf8", "bytes that are not UTF-8 (a Latin-1 file)", PREFLIGHT,
             r"reviews.csv line 5 \(byte \d+: 0xe9\) is not valid utf-8: .*pass --encoding "
             r"cp1252 \(or latin-1\)", _non_utf8),
    BadInput("utf16_read_as_utf8", "a UTF-16 file (as Windows tools export) read as UTF-8",
             PREFLIGHT, r"reviews.csv line 1 \(byte 0: 0xff\) is not valid utf-8: the file "
             r"starts with a utf-16 byte-order mark; pass --encoding utf-16",
             _utf16_read_as_utf8),
    BadInput("invalid_in_named_encoding", "a byte undefined in the named encoding (0x81 in cp1252)",
             PREFLIGHT, r"reviews.csv line 7 \(byte \d+: 0x81\) is not valid cp1252",
             _invalid_in_named_encoding),
    BadInput("huge_text", "a 1 MB text field", PREFLIGHT,
             r"line 7: field larger than field limit .*data.max_text_chars", _huge_text),
    BadInput("wrong_delimiter", "semicolons where the config says commas", PREFLIGHT,
             r"the header has one column: is the delimiter ',' right\?", _wrong_delimiter),
    BadInput("column_named_twice", "a header naming a column twice", PREFLIGHT,
             r"names column\(s\) \['text'\] more than once", _column_named_twice),
    BadInput("header_repeated", "the header repeated inside the file (files concatenated)",
             PREFLIGHT, r"line 202 repeats the header", _header_repeated),
    BadInput("delimiter_inside_text", "an unquoted comma inside a text", PREFLIGHT,
             r"line 402 has 5 fields, the header 4", _delimiter_inside_text),
    BadInput("label_drifted_span", "a span whose labels moved (80% positive, was ~50%)",
             TEXT_CHECKS, r"label drift \(train vs last accepted data\) .* crossed "
             r"data_checks.max_label_drift", _label_drifted_span),
    BadInput("leaked_span", "a span whose eval split repeats training texts", TEXT_CHECKS,
             r"leakage rate \(eval in train\) 0.25 crossed data_checks.max_leakage_rate",
             _leaked_span),
    BadInput("byte_order_mark", "a UTF-8 byte-order mark (as Excel writes)", ACCEPTED, "",
             _byte_order_mark),
)
