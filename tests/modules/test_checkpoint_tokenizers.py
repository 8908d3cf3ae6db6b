"""The in-graph SentencePiece and byte-level BPE tokenizers against each family's own Hugging
Face tokenizer.

Tiny XLM-RoBERTa, ALBERT, DeBERTa-v2 and RoBERTa checkpoints are built offline
(`tests.checkpoint_families`): ids of every default-data text and of the hard cases, packed pairs
with truncation, the [UNK] count TextChecks makes, a model exported with its transform graph
that serves raw text without the checkpoint, and TokenizerParity failing on that graph when the
checkpoint's pieces or merges change. SST-2 dev parity is measured by `benchmarks/tokenizer_parity.py`; a
whole `textclf run` on a tiny XLM-R is quoted in the README.
"""

import dataclasses
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.text_figures import CountSettings, TokenCounter, describe_counting
from components.tokenizer_parity import measure_parity
from modules import features
from modules.bert_classifier import build_classifier
from modules.checkpoint_tokenizers import checkpoint_tokenizer
from modules.export import export_serving_model
from modules.preprocessing import Packing, pack_segments
from pipeline.checkpoint import reference_tokenizer, resolve_checkpoint
from pipeline.config import DataConfig, ModelConfig
from tests.checkpoint_families import (FAMILIES, HARD_CASES, SPECIAL_TOKEN_STRINGS,
                                       build_checkpoint, default_texts)
from tests.conftest import analyze_and_transform

MAX_SEQ_LENGTH = 24
LABELS = ["negative", "positive"]


def _family(name: str, tmp_path_factory):
    folder = build_checkpoint(name, tmp_path_factory.mktemp(name))
    return (name, folder, resolve_checkpoint(str(folder), MAX_SEQ_LENGTH),
            reference_tokenizer(str(folder)))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(family name, checkpoint folder, resolved Checkpoint, Hugging Face tokenizer)."""
    return _family(request.param, tmp_path_factory)


def test_the_checkpoint_check_reads_each_familys_format(family):
    name, _, checkpoint, reference = family
    assert checkpoint.tokenizer == FAMILIES[name].tokenizer
    assert checkpoint.tokenizer_file.endswith(FAMILIES[name].model_file)
    assert (checkpoint.cls_id, checkpoint.sep_id, checkpoint.pad_id, checkpoint.unk_id) == (
        reference.cls_token_id, reference.sep_token_id, reference.pad_token_id,
        reference.unk_token_id)
    # XLM-R, RoBERTa: <s> a </s></s> b </s> without token types; the others [CLS] a [SEP] b [SEP].
    assert (checkpoint.pair_separators, checkpoint.pair_token_type) == (
        (2, 0) if name in ("xlm-roberta", "roberta") else (1, 1))
    assert checkpoint.lower_case == (name == "albert") == checkpoint.trailing_space_piece


@pytest.mark.parametrize("texts", ["default data", "hard cases"])
def test_graph_ids_equal_the_hugging_face_tokenizer(family, texts):
    _, _, checkpoint, reference = family
    data = default_texts() if texts == "default data" else HARD_CASES
    [ids] = checkpoint_tokenizer(checkpoint).ids([tf.constant(data)])
    mismatches = [(text, reference.convert_ids_to_tokens(got),
                   reference.convert_ids_to_tokens(want))
                  for text, got, want in zip(
                      data, ids.to_list(),
                      reference(data, add_special_tokens=False)["input_ids"]) if got != want]
    assert mismatches == []


def test_special_tokens_strings_in_a_text_are_text(family):
    """A client cannot forge <s>, </s> or <mask> by typing them. Byte-level BPE matches the
    reference with special-token splitting; on SentencePiece checkpoints the Hugging Face fast
    tokenizer's Unigram model still matches the control pieces inside a text, which the
    SentencePiece library (the one these checkpoints were trained with) never does: the graph
    follows the library, and such a text counts as one mismatch in TokenizerParity."""
    name, _, checkpoint, reference = family
    [ids] = checkpoint_tokenizer(checkpoint).ids([tf.constant([SPECIAL_TOKEN_STRINGS])])
    assert not set(ids.to_list()[0]) & _forgeable_ids(reference)
    if FAMILIES[name].tokenizer == "bpe":
        assert ids.to_list() == reference([SPECIAL_TOKEN_STRINGS], add_special_tokens=False)[
            "input_ids"]


def test_packed_pairs_with_truncation_equal_the_hugging_face_tokenizer(family):
    _, _, checkpoint, reference = family
    texts = default_texts()
    first, second = texts[:300] + HARD_CASES, texts[300:600] + HARD_CASES[::-1]
    packed = pack_segments(checkpoint_tokenizer(checkpoint).ids(
        [tf.constant(first), tf.constant(second)]), MAX_SEQ_LENGTH, Packing.of(checkpoint))
    expected = reference(first, second, truncation=True, max_length=MAX_SEQ_LENGTH,
                         padding="max_length", return_token_type_ids=True)
    assert (np.array(expected["input_ids"]) > 0).sum() > 0
    for graph_name, reference_name in ((features.INPUT_WORD_IDS, "input_ids"),
                                       (features.SEGMENT_IDS, "token_type_ids"),
                                       (features.INPUT_MASK, "attention_mask")):
        np.testing.assert_array_equal(packed[graph_name].numpy(),
                                      np.array(expected[reference_name]), err_msg=graph_name)


def test_text_checks_counts_tokens_and_unknown_pieces_as_the_reference(family):
    _, _, checkpoint, reference = family
    tokens, unknown = TokenCounter(checkpoint).count([HARD_CASES])
    expected = reference(HARD_CASES)["input_ids"]
    assert tokens.tolist() == [len(ids) for ids in expected]
    assert unknown.tolist() == [ids.count(reference.unk_token_id) for ids in expected]
    # The CJK text is outside the SentencePiece models' pieces; byte-level BPE spells any text.
    assert (unknown.sum() > 0) == (FAMILIES[family[0]].tokenizer == "sentencepiece")
    assert checkpoint_tokenizer(checkpoint).display_name in describe_counting(
        CountSettings(checkpoint.to_dict(), 0, 0, MAX_SEQ_LENGTH), vocabulary_size=0)


# XLM-R (fairseq ids, RoBERTa's pair, no token types), ALBERT (normalizer steps and an edited
# SentencePiece model) and RoBERTa (the merge loop): DeBERTa-v2 has nothing the first two do not,
# and each export costs ~20 s.
@pytest.fixture(scope="module", params=["albert", "roberta", "xlm-roberta"])
def exported(request, tmp_path_factory):
    """A family, its transform graph and its exported (untrained) classifier: (family as the
    `family` fixture gives it, TFTransformOutput, in-memory model, the SavedModel's folder)."""
    family = _family(request.param, tmp_path_factory)
    _, folder, checkpoint, _ = family
    tmp_path = tmp_path_factory.mktemp("exported")
    rows = [{"text": text, "label": "positive"} for text in default_texts()[:40]]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
        {column: tf.io.FixedLenFeature([], tf.string) for column in ("text", "label")}))
    data, model_config = DataConfig(slice_columns=[]), ModelConfig(max_seq_length=MAX_SEQ_LENGTH)
    custom_config = {
        "data": dataclasses.asdict(data), "model": dataclasses.asdict(model_config),
        "label_values": LABELS, "checkpoint": checkpoint.to_dict()}
    _, _, graph_dir = analyze_and_transform(rows, rows[:1], metadata, custom_config, tmp_path)
    tf_transform_output = tft.TFTransformOutput(str(graph_dir))
    # The family's TF classifier (TFXLMRoberta..., TFAlbert..., TFDebertaV2...) through the
    # same path as a WordPiece checkpoint's.
    model = build_classifier(model_config, vocab_size=0, num_labels=len(LABELS),
                             checkpoint_path=str(folder))
    export_serving_model(model, tf_transform_output, text_columns=data.text_columns,
                         label_names=LABELS, export_dir=str(tmp_path / "serving"),
                         max_seq_length=MAX_SEQ_LENGTH, checkpoint=checkpoint.to_dict())
    return family, tf_transform_output, model, tmp_path / "serving", graph_dir


def test_the_served_model_tokenizes_raw_text_without_the_checkpoint(exported):
    """The SentencePiece op and its id table, or the merge table, are saved in the model: with the
    checkpoint folder gone, raw text gets the reference ids and the in-memory model's
    probabilities."""
    (_, folder, _, reference), tf_transform_output, model, serving_dir, _ = exported
    moved = folder.with_name(folder.name + "-moved")
    folder.rename(moved)
    try:
        loaded = tf.saved_model.load(str(serving_dir))
        served = loaded.signatures[features.TEXT_SIGNATURE](text=tf.constant(HARD_CASES))
    finally:
        moved.rename(folder)
    transformed = tf_transform_output.transform_features_layer()({"text": tf.constant(HARD_CASES)})
    expected = reference(HARD_CASES, truncation=True, max_length=MAX_SEQ_LENGTH,
                         padding="max_length")
    np.testing.assert_array_equal(transformed[features.INPUT_WORD_IDS].numpy(),
                                  np.array(expected["input_ids"]))
    logits = model({name: transformed[name] for name in features.MODEL_INPUTS}, training=False)
    np.testing.assert_allclose(served[features.PROBABILITIES].numpy(),
                               tf.nn.softmax(logits, axis=-1).numpy(), atol=1e-5)


def test_wordpiece_ids_of_the_hard_cases_equal_the_hugging_face_tokenizer(offline_checkpoint):
    """MiniLM's WordPiece on the same hard cases (ß, ﬁ, full-width letters and a final capital
    sigma are where case folding and per-character lower-casing part ways)."""
    checkpoint = resolve_checkpoint(str(offline_checkpoint), MAX_SEQ_LENGTH)
    reference = reference_tokenizer(str(offline_checkpoint))
    texts = HARD_CASES + [SPECIAL_TOKEN_STRINGS]
    [ids] = checkpoint_tokenizer(checkpoint).ids([tf.constant(texts)])
    assert ids.to_list() == reference(texts, add_special_tokens=False)["input_ids"]
    assert not set(ids.flat_values.numpy()) & _forgeable_ids(reference)


def _forgeable_ids(reference) -> set[int]:
    """The special ids but the unknown piece's (which any text may legitimately produce)."""
    return set(reference.all_special_ids) - {reference.unk_token_id}


def _changed_tokenizer(name: str, folder: pathlib.Path, changed: pathlib.Path) -> pathlib.Path:
    """A copy of `folder` whose merges (BPE) or piece scores (SentencePiece) are reordered; its
    tokenizer.json is left out so the reference is rebuilt from the changed file."""
    shutil.copytree(folder, changed, ignore=shutil.ignore_patterns("tokenizer.json"))
    model_file = changed / FAMILIES[name].model_file
    if FAMILIES[name].tokenizer == "bpe":
        header, *merges = model_file.read_text(encoding="utf-8").splitlines()
        model_file.write_text("\n".join([header, *merges[:50], *reversed(merges[50:])]) + "\n",
                              encoding="utf-8")
    else:
        from sentencepiece import sentencepiece_model_pb2  # pylint: disable=import-outside-toplevel

        model = sentencepiece_model_pb2.ModelProto.FromString(model_file.read_bytes())
        normal = [piece for piece in model.pieces if piece.type == piece.NORMAL]
        for piece, score in zip(normal, reversed([piece.score for piece in normal])):
            piece.score = score
        model_file.write_bytes(model.SerializeToString())
    return changed


def test_tokenizer_parity_passes_and_fails_on_a_changed_tokenizer_with_the_mismatches(
        exported, tmp_path):
    """TokenizerParity's measurement on the family's transform graph: every default-data text
    identical against the checkpoint, and mismatches listed against a copy whose merges or
    piece scores changed."""
    (name, folder, _, _), _, _, _, graph_dir = exported
    examples = tmp_path / "examples.gz"
    with tf.io.TFRecordWriter(str(examples), options="GZIP") as writer:
        for text in default_texts()[:300]:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                column: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
                for column, value in (("text", text), ("label", "positive"))
            })).SerializeToString())

    def parity(checkpoint_folder, sample_size=0):
        return measure_parity([str(examples)], str(graph_dir), str(checkpoint_folder), ["text"],
                              MAX_SEQ_LENGTH, sample_size=sample_size, min_parity=0.995)

    same = parity(folder)
    assert (same.examples, same.identical, same.mismatches) == (300, 300, [])
    assert (parity(folder, sample_size=50).examples, parity(folder, sample_size=500).examples) == (
        50, 300)
    changed = parity(_changed_tokenizer(name, folder, tmp_path / "changed"))
    assert not changed.passed and changed.identical < 300
    assert changed.mismatches and all(
        mismatch["transform_tokens"] != mismatch["reference_tokens"]
        for mismatch in changed.mismatches)
