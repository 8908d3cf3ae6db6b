"""The delimiter-aware CsvExampleGen, run by the real LocalDagRunner on a TSV file."""

import glob
import os

import tensorflow as tf
from tfx import v1 as tfx

from components.csv_example_gen import delimited_example_gen


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
        files = glob.glob(os.path.join(str(tmp_path / "root"), "CsvExampleGen", "examples", "*",
                                       f"Split-{split}", "*.gz"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        return [tf.train.Example.FromString(record.numpy()) for record in records]

    train = read_split("train")
    sentences = sorted(example.features.feature["sentence"].bytes_list.value[0].decode()
                       for example in train)
    assert sentences == ["bad, sad and \"slow\"", "good , really good"]
    assert sorted(example.features.feature["label"].int64_list.value[0] for example in train) \
        == [0, 1]
    assert len(read_split("eval")) == 1
