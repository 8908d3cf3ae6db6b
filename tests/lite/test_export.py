"""What the TFLite export reads to judge the variants: ExampleGen's split, or a refusal when
there is nothing to judge (a gate that passes on no examples would ship anything)."""

import pytest
import tensorflow as tf

from lite.export import read_split
from lite.graph import NotConvertible


def _write_split(folder, examples: list[dict[str, str]]) -> str:
    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"),
                              options="GZIP") as writer:
        for example in examples:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
                for name, value in example.items()})).SerializeToString())
    return str(folder)


def test_the_first_rows_of_a_split_with_their_labels_and_slices(tmp_path):
    split = _write_split(tmp_path / "Split-eval", [
        {"text": f"text {index}", "label": "positive ", "source": "web"} for index in range(5)])
    rows = read_split(split, 3, "text", "label", ["source"])
    assert rows.texts == ["text 0", "text 1", "text 2"]
    assert rows.labels == ["positive"] * 3 and rows.slices == {"source": ["web"] * 3}
    assert len(read_split(split, 0, "text", "label", []).texts) == 5


def test_examples_without_the_text_or_the_label_are_refused(tmp_path):
    """Transform's output (ids, no text) or a wrong data.text_column: nothing to judge."""
    transformed = _write_split(tmp_path / "transformed", [{"input_word_ids": "1 2", "label": "a"}])
    with pytest.raises(NotConvertible, match="have no 'text' feature"):
        read_split(transformed, 0, "text", "label", [])
    with pytest.raises(NotConvertible, match="have no 'verdict' feature"):
        read_split(_write_split(tmp_path / "raw", [{"text": "t", "label": "a"}]), 0, "text",
                   "verdict", [])


def test_an_empty_or_missing_split_is_refused(tmp_path):
    with pytest.raises(NotConvertible, match="no examples at .* to measure the variants on"):
        read_split(_write_split(tmp_path / "empty", []), 0, "text", "label", [])
    with pytest.raises(NotConvertible, match="no examples at"):
        read_split(str(tmp_path / "cleaned-up"), 0, "text", "label", [])
