"""The delimiter- and encoding-aware CsvExampleGen, run by the real LocalDagRunner, and its
row checks (the pre-flight's, for inputs too large to read twice) on its own Beam transform."""

import dataclasses
import glob
import os
import pathlib

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_component_specs

from components.csv_example_gen import Executor, delimited_example_gen
from pipeline.config import DataConfig
from pipeline.data_check import DataSummary, InputDataError, check_input_data, input_data_error_in


def _read_split(pipeline_root, component_id: str, split: str) -> list[tf.train.Example]:
    files = glob.glob(os.path.join(str(pipeline_root), component_id, "examples", "*",
                                   f"Split-{split}", "*.gz"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.train.Example.FromString(record.numpy()) for record in records]


def test_tsv_rows_become_examples_with_commas_kept_inside_fields(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "train.tsv").write_text(
        "sentence\tlabel\n"
        "good , really good\t1\n"
        "bad, sad and \"slow\"\t0\n", encoding="utf-8")
    (data_dir / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n", encoding="utf-8")
    example_gen = delimited_example_gen(
        input_base=str(data_dir), delimiter="\t",
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="train.tsv"),
            tfx.proto.Input.Split(name="eval", pattern="dev.tsv")]))
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="tsv", pipeline_root=str(tmp_path / "root"), components=[example_gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.db")))
    tfx.orchestration.LocalDagRunner().run(pipeline)

    def read_split(split):
        return _read_split(tmp_path / "root", "CsvExampleGen", split)

    train = read_split("train")
    sentences = sorted(example.features.feature["sentence"].bytes_list.value[0].decode()
                       for example in train)
    assert sentences == ["bad, sad and \"slow\"", "good , really good"]
    assert sorted(example.features.feature["label"].int64_list.value[0] for example in train) \
        == [0, 1]
    assert len(read_split("eval")) == 1


# Rows as a spreadsheet would export them: accents, typographic quotes, the euro sign, a quoted
# field over two lines.
_CP1252_ROWS = ["caf\u00e9 cr\u00e8me, \u201cna\u00efve\u201d", "\u20ac5 \u2013 fair price",
                "line one\nline two"]
# UTF-16 holds what cp1252 cannot: CJK, emoji.
_UTF16_ROWS = ["\u6f22\u5b57 are fine", "thumbs \U0001F44D up", "quoted\nover \"two\" lines"]


def _csv_text(rows: list[str]) -> str:
    quoted = ['"' + row.replace('"', '""') + '"' for row in rows]
    return "text,label\n" + "".join(f"{row},{index % 2}\r\n" for index, row in enumerate(quoted))


def test_files_in_any_encoding_become_utf8_examples_with_multiline_fields_intact(tmp_path):
    """One pipeline, two ExampleGens: a Windows-1252 export and a UTF-16 one (byte-order mark,
    CRLF line ends) each reach the examples as the same text in UTF-8."""
    exports = {"cp1252": _CP1252_ROWS, "utf-16": _UTF16_ROWS}
    components = []
    for encoding, rows in exports.items():
        folder = tmp_path / encoding
        folder.mkdir()
        (folder / "train.csv").write_bytes(_csv_text(rows).encode(encoding))
        (folder / "eval.csv").write_bytes(_csv_text(rows[:1]).encode(encoding))
        components.append(delimited_example_gen(
            input_base=str(folder), delimiter=",", encoding=encoding,
            input_config=tfx.proto.Input(splits=[
                tfx.proto.Input.Split(name="train", pattern="train.csv"),
                tfx.proto.Input.Split(name="eval", pattern="eval.csv")])
        ).with_id(f"ExampleGen_{encoding.replace('-', '')}"))
    assert (tmp_path / "utf-16" / "train.csv").read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="encodings", pipeline_root=str(tmp_path / "root"), components=components,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.db")))
    tfx.orchestration.LocalDagRunner().run(pipeline)

    for encoding, rows in exports.items():
        train = _read_split(tmp_path / "root", f"ExampleGen_{encoding.replace('-', '')}", "train")
        texts = [example.features.feature["text"].bytes_list.value[0] for example in train]
        assert sorted(texts) == sorted(row.encode("utf-8") for row in rows), encoding
        labels = [example.features.feature["label"].int64_list.value[0] for example in train]
        assert sorted(labels) == [0, 0, 1], encoding


# A row the pre-flight refuses, placed past a three-row sample and past the bytes decoding that
# sample reads ahead: ExampleGen must refuse it with the message the pre-flight gives when it
# reads the whole file.
_GOOD_ROWS = ["nice and sturdy,positive,web,books\n", "broke at once,negative,web,books\n",
              "works as promised,positive,shop,toys\n"] * 200
_BAD_LINE = 2 + len(_GOOD_ROWS)
_BAD_ROWS = {
    "ragged row": b"Cheap, cheerful and it works,positive,web,electronics\n",
    "empty label": b"fine text,,web,books\n",
    "unknown label": b"fine text,neutral,web,books\n",
    "repeated header": b"text,label,source,domain\n",
    "field over max_text_chars": b'"' + b"word " * 30 + b'",positive,web,books\n',
    "undecodable byte": b"caf\xe9 au lait,positive,web,books\n",
    "after a quoted line break": b'"two\nlines",positive,web\n',
}


def _file_with(folder: pathlib.Path, bad_row: bytes) -> pathlib.Path:
    folder.mkdir(parents=True)
    good = "".join(_GOOD_ROWS).encode()
    (folder / "reviews.csv").write_bytes(b"text,label,source,domain\n" + good + bad_row + good)
    return folder


def _example_gen_error(folder: pathlib.Path, data: DataConfig, summary: DataSummary) -> str:
    """ExampleGen's Beam transform on `folder` (as its executor runs it) with the row rules of
    `summary`: the message it fails with."""
    component = delimited_example_gen(
        input_base=str(folder), delimiter=",", encoding=data.encoding,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name="train",
                                                                   pattern="*.csv")]),
        row_rules=summary.row_rules(data))
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(folder),
        standard_component_specs.CUSTOM_CONFIG_KEY:
            component.exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY]}
    with pytest.raises(Exception) as raised:
        with beam.Pipeline() as pipeline:
            _ = pipeline | Executor().GetInputSourceToExamplePTransform()(exec_properties,
                                                                          "*.csv")
    message = input_data_error_in(raised.value)
    assert message, raised.value
    return message


@pytest.mark.parametrize("case", sorted(_BAD_ROWS))
def test_past_the_preflight_sample_examplegen_refuses_a_bad_row_as_the_preflight_would(
        tmp_path, case):
    folder = _file_with(tmp_path / "data", _BAD_ROWS[case])
    data = DataConfig(path=str(folder), label_values=["negative", "positive"], max_text_chars=100)
    with pytest.raises(InputDataError) as whole_file:
        check_input_data(data)
    sampled = dataclasses.replace(data, preflight_max_bytes=0, preflight_sample_rows=3)
    summary = check_input_data(sampled)  # the bad row is past the sample
    assert summary.sampled and summary.row_count == 3
    assert _example_gen_error(folder, sampled, summary) == str(whole_file.value)


def test_a_label_outside_the_sample_asks_for_data_label_values(tmp_path):
    folder = _file_with(tmp_path / "data", _BAD_ROWS["unknown label"])
    data = DataConfig(path=str(folder), preflight_max_bytes=0, preflight_sample_rows=3)
    summary = check_input_data(data)
    assert summary.label_values == ["negative", "positive"]
    assert _example_gen_error(folder, data, summary) == (
        f"{folder / 'reviews.csv'} line {_BAD_LINE}: label 'neutral' is not one of the labels of "
        "the first "
        "3 rows of each file ['negative', 'positive']: fix the row, or list every label in "
        "data.label_values")
