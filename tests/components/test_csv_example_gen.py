"""The delimiter- and encoding-aware CsvExampleGen, run by the real LocalDagRunner."""

import glob
import os

import tensorflow as tf
from tfx import v1 as tfx

from components.csv_example_gen import delimited_example_gen


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
