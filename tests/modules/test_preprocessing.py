"""`preprocessing_fn` through TFT's real Beam implementation on a few hand-checked rows."""

import dataclasses
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modules import features
from modules.preprocessing import preprocessing_fn
from pipeline.config import DataConfig, ModelConfig

MAX_SEQ_LENGTH = 10
RAW_METADATA = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
    column: tf.io.FixedLenFeature([], tf.string)
    for column in ("text", "label", "source", "domain")}))
TRAIN_ROWS = [
    {"text": "Great phone, great battery!", "label": "positive", "source": "web",
     "domain": "electronics"},
    {"text": "GREAT value", "label": "positive", "source": "email", "domain": "books"},
    {"text": "Terrible phone.", "label": "negative", "source": "web", "domain": "electronics"},
]
EVAL_ROWS = [
    {"text": "Fantastic phone", "label": "negative", "source": "survey", "domain": "hotels"},
    {"text": " ".join(["great"] * 20), "label": "positive", "source": "web", "domain": "books"},
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    custom_config = {
        "data": dataclasses.asdict(DataConfig()),
        "model": dataclasses.asdict(ModelConfig(max_seq_length=MAX_SEQ_LENGTH,
                                                min_word_frequency=2)),
        # Not frequency order (positive is more frequent): ids must follow this list.
        "label_values": ["negative", "positive"],
    }
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft"))):
        (train, _), transform_fn = (TRAIN_ROWS, RAW_METADATA) | tft_beam.AnalyzeAndTransformDataset(
            functools.partial(preprocessing_fn, custom_config=custom_config))
        evaluation, _ = ((EVAL_ROWS, RAW_METADATA), transform_fn) | tft_beam.TransformDataset()
    return train, evaluation


def test_word_ids_have_cls_sep_padding_and_unk_for_rare_words(transformed):
    train, _ = transformed
    # Vocabulary: reserved tokens, then words seen at least twice: great (3x) = 4, phone (2x) = 5.
    # "Great phone, great battery!" -> [CLS] great phone , great battery ! [SEP]; the comma,
    # "battery" and "!" were seen once, so they are [UNK].
    np.testing.assert_array_equal(train[0][features.INPUT_WORD_IDS],
                                  [2, 4, 5, 1, 4, 1, 1, 3, 0, 0])
    np.testing.assert_array_equal(train[0][features.INPUT_MASK], [1] * 8 + [0] * 2)
    np.testing.assert_array_equal(train[0][features.SEGMENT_IDS], [0] * MAX_SEQ_LENGTH)
    # Lower-casing happens in the graph: "GREAT" is "great".
    np.testing.assert_array_equal(train[1][features.INPUT_WORD_IDS][:4], [2, 4, 1, 3])


def test_unseen_words_map_to_unk_in_the_eval_split(transformed):
    _, evaluation = transformed
    np.testing.assert_array_equal(evaluation[0][features.INPUT_WORD_IDS],
                                  [2, 1, 5, 3, 0, 0, 0, 0, 0, 0])


def test_long_text_is_truncated_to_max_seq_length_with_sep_last(transformed):
    _, evaluation = transformed
    np.testing.assert_array_equal(evaluation[1][features.INPUT_WORD_IDS],
                                  [2] + [4] * (MAX_SEQ_LENGTH - 2) + [3])
    np.testing.assert_array_equal(evaluation[1][features.INPUT_MASK], [1] * MAX_SEQ_LENGTH)


def test_label_ids_follow_the_configured_label_order(transformed):
    train, evaluation = transformed
    assert [row[features.LABEL_ID] for row in train] == [1, 1, 0]
    assert [row[features.LABEL_ID] for row in evaluation] == [0, 1]


def test_slice_columns_pass_through(transformed):
    _, evaluation = transformed
    assert [(row["source"], row["domain"]) for row in evaluation] == [
        (b"survey", b"hotels"), (b"web", b"books")]
