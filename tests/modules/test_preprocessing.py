"""`preprocessing_fn` through TFT's real Beam implementation.

From scratch: a few hand-checked rows. Pretrained: the in-graph WordPiece against the Hugging Face
tokenizer of the offline all-MiniLM-L6-v2 checkpoint (the `offline_checkpoint` fixture) on
sentences chosen to break a naive copy: accents, CJK, control characters, truncated pairs.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modules import features
from pipeline.checkpoint import resolve_checkpoint
from pipeline.config import DataConfig, ModelConfig
from tests.conftest import analyze_and_transform

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
    train, evaluation, _ = analyze_and_transform(TRAIN_ROWS, EVAL_ROWS, RAW_METADATA,
                                                 custom_config, tmp_path_factory.mktemp("tft"))
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


PRETRAINED_MAX_SEQ_LENGTH = 24
PAIR_METADATA = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
    column: tf.io.FixedLenFeature([], tf.string) for column in ("text", "pair", "label")}))
PAIR_ROWS = [
    {"text": "Café naïve RÉSUMÉ: it's GREAT!!", "pair": "Short one.", "label": "positive"},
    {"text": "An unbelievably overwrought 東京 story, e.g. 3.5% of it", "pair": "ok",
     "label": "negative"},
    # Both segments too long: longest-first truncation must cut them as Hugging Face does.
    {"text": " ".join(["wonderful"] * 30), "pair": " ".join(["dreadful"] * 7),
     "label": "positive"},
    {"text": " ".join(["odd"] * 15), "pair": " ".join(["even"] * 15), "label": "negative"},
    {"text": "tabs\tand  spaces\u00a0nbsp, a bell\u0007char", "pair": "", "label": "positive"},
]


@pytest.fixture(scope="module", params=["single", "pair"])
def wordpiece_run(request, offline_checkpoint, tmp_path_factory):
    """Transformed rows and graph for one text column, or for a sentence pair."""
    checkpoint = resolve_checkpoint(str(offline_checkpoint), PRETRAINED_MAX_SEQ_LENGTH)
    data = DataConfig(slice_columns=[],
                      text_pair_column="pair" if request.param == "pair" else "")
    custom_config = {
        "data": dataclasses.asdict(data),
        "model": dataclasses.asdict(ModelConfig(max_seq_length=PRETRAINED_MAX_SEQ_LENGTH)),
        "label_values": ["negative", "positive"],
        "checkpoint": checkpoint.to_dict(),
    }
    train, _, graph_dir = analyze_and_transform(PAIR_ROWS, PAIR_ROWS[:1], PAIR_METADATA,
                                                custom_config, tmp_path_factory.mktemp("wp"))
    return data, train, graph_dir


def test_wordpiece_ids_equal_the_checkpoint_tokenizer(wordpiece_run, offline_checkpoint):
    from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

    data, train, _ = wordpiece_run
    tokenizer = AutoTokenizer.from_pretrained(str(offline_checkpoint))
    texts = [[row[column] for row in PAIR_ROWS] for column in data.text_columns]
    expected = tokenizer(*texts, truncation=True, max_length=PRETRAINED_MAX_SEQ_LENGTH,
                         padding="max_length")
    for index, row in enumerate(train):
        np.testing.assert_array_equal(row[features.INPUT_WORD_IDS], expected["input_ids"][index],
                                      err_msg=str(tokenizer.convert_ids_to_tokens(
                                          expected["input_ids"][index])))
        np.testing.assert_array_equal(row[features.SEGMENT_IDS],
                                      expected["token_type_ids"][index])
        np.testing.assert_array_equal(row[features.INPUT_MASK], expected["attention_mask"][index])


def test_a_pair_gets_two_separators_and_segment_ids_for_its_second_text(wordpiece_run):
    data, train, _ = wordpiece_run
    first = train[0]  # text, then the pair "Short one." = 3 word pieces
    separators = list(first[features.INPUT_WORD_IDS]).count(102)
    second_segment = first[features.SEGMENT_IDS].tolist().count(1)
    if data.text_pair_column:
        assert (separators, second_segment) == (2, 4)  # short, one, ., [SEP]
    else:
        assert (separators, second_segment) == (1, 0)


def test_the_vocabulary_is_an_asset_of_the_transform_graph(wordpiece_run, offline_checkpoint):
    _, _, graph_dir = wordpiece_run
    asset = graph_dir / "transform_fn" / "assets" / "vocab.txt"
    assert asset.read_bytes() == (offline_checkpoint / "vocab.txt").read_bytes()
