"""The pre-flight input check: every bad input gets one message naming the file and the column."""

import contextlib
import io
import subprocess

import pytest

from pipeline.config import DataConfig
from pipeline.data_check import InputDataError, check_input_data
from tests.conftest import REPO_ROOT, write_sample


def test_default_data_passes_and_labels_are_found():
    summary = check_input_data(DataConfig(path=str(REPO_ROOT / "data" / "reviews")))
    assert summary.label_values == ["negative", "positive"]
    assert summary.row_count >= 2000
    assert summary.split_patterns == {"single_split": "*"}


def test_tsv_with_given_splits(tmp_path):
    write_sample(tmp_path / "train", rows=20, delimiter="\t").rename(tmp_path / "train.tsv")
    write_sample(tmp_path / "eval", rows=10, delimiter="\t").rename(tmp_path / "dev.tsv")
    summary = check_input_data(DataConfig(path=str(tmp_path), delimiter="\t",
                                          train_pattern="train.tsv", eval_pattern="dev.tsv"))
    assert summary.split_patterns == {"train": "train.tsv", "eval": "dev.tsv"}
    assert summary.row_count == 30


def _write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("content, data_overrides, message", [
    ("", {}, r"is empty: it needs a header"),
    ("text,label,source,domain\n", {}, r"has a header but no rows"),
    ("review,label,source,domain\nnice,positive,web,books\n", {},
     r"has no column 'text'; its columns are \['review', 'label', 'source', 'domain'\]"),
    ("text,stars,source,domain\nnice,5,web,books\n", {}, r"has no column 'label'"),
    ("text;label;source;domain\nnice;positive;web;books\n", {},
     r"the header has one column: is the delimiter ',' right\?"),
    ("text,label,source,domain\nnice,,web,books\n", {}, r"line 2: column 'label' is empty"),
    ("text,label,source,domain\nnice,positive,web,books\nmeh,neutral,web,books\n",
     {"label_values": ["negative", "positive"]}, r"line 3: label 'neutral' is not one of"),
    ("text,label,source,domain\nnice,positive,web,books\n", {}, r"only \['positive'\]"),
    (b"text,label,source,domain\ncaf\xe9,positive,web,books\n", {},
     r"line 2 \(byte 28: 0xe9\) is not valid utf-8: .*--encoding cp1252"),
])
def test_bad_files_are_named_with_the_problem(tmp_path, content, data_overrides, message):
    path = _write(tmp_path / "data" / "bad.csv", content)
    with pytest.raises(InputDataError, match=message) as raised:
        check_input_data(DataConfig(path=str(path.parent), **data_overrides))
    assert str(path.parent) in str(raised.value)


_ACCENTED = "text,label,source,domain\nna\u00efve caf\u00e9 \u20ac5,positive,web,books\n" \
    "\u201cbad\u201d,negative,web,books\n"


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-8-sig"])
def test_a_file_in_the_named_encoding_passes(tmp_path, encoding):
    path = _write(tmp_path / "data" / "export.csv", _ACCENTED, encoding=encoding)
    summary = check_input_data(DataConfig(path=str(path.parent), encoding=encoding))
    assert summary.row_count == 2 and summary.label_values == ["negative", "positive"]


@pytest.mark.parametrize("content, encoding, message", [
    # A single bad byte far into a big file: the line and byte are exact, not a guess.
    (b"text,label\n" + b"fine,positive\n" * 150_000 + b"bad \xe9,negative\n", "utf-8",
     r"line 150002 \(byte 2100015: 0xe9\) is not valid utf-8"),
    # UTF-16 read as UTF-8: the byte-order mark names the option to pass.
    ("text,label\nfine,positive\n".encode("utf-16"), "utf-8",
     r"line 1 \(byte 0: 0xff\) .*utf-16 byte-order mark; pass --encoding utf-16"),
    # Bytes invalid in the named encoding too: 0x81 is undefined in Windows-1252.
    (b"text,label\nfine,positive\nbad \x81,negative\n", "cp1252",
     r"line 3 \(byte 29: 0x81\) is not valid cp1252: pass --encoding with the file's real"),
    # A UTF-16 file with an odd number of bytes: the half character at its end.
    ("text,label\nfine,positive\n".encode("utf-16") + b"x", "utf-16",
     r"line 3 \(byte 52: 0x78\) is not valid utf-16"),
])
def test_undecodable_bytes_are_located_by_file_line_and_byte(tmp_path, content, encoding, message):
    path = _write(tmp_path / "data" / "export.csv", content)
    with pytest.raises(InputDataError, match=message) as raised:
        check_input_data(DataConfig(path=str(path.parent), encoding=encoding, slice_columns=[]))
    assert str(path) in str(raised.value) and len(str(raised.value).splitlines()) == 1


def test_a_folder_without_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match=r"no data files match \* in .*empty"):
        check_input_data(DataConfig(path=str(tmp_path / "empty")))


def test_files_read_together_must_share_a_header(tmp_path):
    _write(tmp_path / "data" / "a.csv", "text,label,source,domain\nnice,positive,web,books\n")
    _write(tmp_path / "data" / "b.csv", "text,label,domain,source\nbad,negative,books,web\n")
    with pytest.raises(InputDataError, match="must share one header"):
        check_input_data(DataConfig(path=str(tmp_path / "data")))


def test_cli_stops_before_training_and_pushes_nothing(tmp_path):
    """The real `textclf` command: exit code 2, one line naming file and column, no outputs."""
    data_file = _write(tmp_path / "data" / "reviews.csv",
                       "comment,label,source,domain\nnice,positive,web,books\n")
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "textclf"), "run", "--data-path", str(data_file),
         "--output-dir", str(tmp_path / "outputs")],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ")
    assert "reviews.csv has no column 'text'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs" / "serving_models").exists()


def _with_bad_row_at_line_9(tmp_path):
    rows = "".join(f"text {index},{('negative', 'positive')[index % 2]},web,books\n"
                   for index in range(7))
    return _write(tmp_path / "data" / "reviews.csv",
                  f"text,label,source,domain\n{rows}ragged,positive\nlast,negative,web,books\n")


def test_a_large_input_is_read_up_to_its_sample_only(tmp_path):
    """Above data.preflight_max_bytes the pre-flight reads each file's first rows; ExampleGen
    checks the rest (tests/components/test_csv_example_gen.py)."""
    path = _with_bad_row_at_line_9(tmp_path)
    with pytest.raises(InputDataError, match="line 9 has 2 fields"):
        check_input_data(DataConfig(path=str(path.parent)))  # small: read whole
    summary = check_input_data(DataConfig(path=str(path.parent), preflight_max_bytes=100,
                                          preflight_sample_rows=4))
    assert (summary.sampled, summary.row_count, summary.label_values) == (
        True, 4, ["negative", "positive"])
    with pytest.raises(InputDataError, match="line 9 has 2 fields"):  # inside a larger sample
        check_input_data(DataConfig(path=str(path.parent), preflight_max_bytes=100,
                                    preflight_sample_rows=8))


def test_a_bad_row_past_the_sample_stops_textclf_run_as_bad_input(tmp_path):
    """~45 s (TFX imports, then the DAG until ExampleGen refuses the row): exit code 2 and the
    pre-flight's own message, nothing trained."""
    # pylint: disable-next=import-outside-toplevel
    from pipeline import cli

    path = _with_bad_row_at_line_9(tmp_path)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = cli.main(["run", "--data-path", str(path.parent), "--output-dir",
                         str(tmp_path / "outputs"), "--set", "data.preflight_max_bytes=100",
                         "--set", "data.preflight_sample_rows=4"])
    assert code == 2
    assert stderr.getvalue().startswith(
        f"error: {path} line 9 has 2 fields, the header 4: a ',' inside an unquoted text, or a "
        "missing field; quote the text or fix the row\n(full traceback in ")
    assert not list((tmp_path / "outputs").glob("pipelines/*/Trainer"))
