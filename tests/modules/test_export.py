"""The exported model serves raw text exactly as the in-memory Keras model predicts.

Uses the offline all-MiniLM-L6-v2 checkpoint (`offline_checkpoint` fixture) with a fresh head,
for one text column and for a sentence pair, with a transform graph made by tft_beam.
"""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modules import features
from modules.bert_classifier import build_classifier
from modules.export import TOKENIZATION_FILE, export_serving_model
from pipeline.checkpoint import resolve_checkpoint
from pipeline.config import DataConfig, ModelConfig
from tests.conftest import analyze_and_transform

LABELS = ["negative", "positive"]
ROWS = [
    {"text": "A gripping, beautifully acted film.", "pair": "I loved it.", "label": "positive"},
    {"text": "Dull and far too long; the plot goes nowhere.", "pair": "Skip it.",
     "label": "negative"},
]
SENTENCES = [("Résumé of a truly great movie!", "Worth it."),
             ("the worst two hours i have ever spent", ""),
             (" ".join(["long"] * 80), "and a pair")]
RAW_METADATA = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
    column: tf.io.FixedLenFeature([], tf.string) for column in ("text", "pair", "label")}))


# One text with the mean-pooled head (what `auto` picks for this checkpoint), a pair with
# Hugging Face's [CLS] head: both heads go through the export.
@pytest.fixture(scope="module", params=[("single", "mean"), ("pair", "cls")],
                ids=lambda param: "-".join(param))
def exported(request, offline_checkpoint, tmp_path_factory):
    """(text columns, in-memory model, TFTransformOutput, loaded SavedModel, its folder)."""
    columns, pooling = request.param
    tmp_path = tmp_path_factory.mktemp("export")
    data = DataConfig(slice_columns=[], text_pair_column="pair" if columns == "pair" else "")
    model_config = ModelConfig(max_seq_length=32)
    custom_config = {
        "data": dataclasses.asdict(data), "model": dataclasses.asdict(model_config),
        "label_values": LABELS,
        "checkpoint": resolve_checkpoint(str(offline_checkpoint), 32).to_dict(),
    }
    _, _, graph_dir = analyze_and_transform(ROWS, ROWS, RAW_METADATA, custom_config, tmp_path)
    tf_transform_output = tft.TFTransformOutput(str(graph_dir))
    model = build_classifier(model_config, vocab_size=0, num_labels=len(LABELS),
                             checkpoint_path=str(offline_checkpoint), pooling=pooling)
    export_serving_model(model, tf_transform_output, text_columns=data.text_columns,
                         label_names=LABELS, export_dir=str(tmp_path / "serving"),
                         max_seq_length=model_config.max_seq_length,
                         checkpoint=custom_config["checkpoint"])
    return (data.text_columns, model, tf_transform_output,
            tf.saved_model.load(str(tmp_path / "serving")), tmp_path / "serving")


def test_predict_text_equals_the_in_memory_model(exported):
    text_columns, model, tf_transform_output, loaded, _ = exported
    texts = {column: tf.constant([sentence[index] for sentence in SENTENCES])
             for index, column in enumerate(text_columns)}
    served = loaded.signatures[features.TEXT_SIGNATURE](**{
        name: texts[column] for name, column in zip(features.TEXT_INPUT_NAMES, text_columns)})

    transformed = tf_transform_output.transform_features_layer()(texts)
    logits = model({name: transformed[name] for name in features.MODEL_INPUTS}, training=False)
    in_memory = tf.nn.softmax(logits, axis=-1).numpy()

    np.testing.assert_allclose(served[features.PROBABILITIES].numpy(), in_memory, atol=1e-5)
    np.testing.assert_array_equal(served[features.PREDICTED_CLASS_ID].numpy(),
                                  in_memory.argmax(axis=1))
    assert [label.decode() for label in served[features.PREDICTED_LABEL].numpy()] == [
        LABELS[index] for index in in_memory.argmax(axis=1)]


def test_serving_default_reads_only_the_text_columns_of_a_tf_example(exported):
    text_columns, _, _, loaded, _ = exported
    examples = [tf.train.Example(features=tf.train.Features(feature={
        column: tf.train.Feature(bytes_list=tf.train.BytesList(value=[sentence[index].encode()]))
        for index, column in enumerate(text_columns)})).SerializeToString()
        for sentence in SENTENCES]
    from_examples = loaded.signatures[features.SERVING_SIGNATURE](
        examples=tf.constant(examples))[features.PROBABILITIES]
    from_text = loaded.signatures[features.TEXT_SIGNATURE](**{
        name: tf.constant([sentence[index] for sentence in SENTENCES])
        for index, name in enumerate(features.TEXT_INPUT_NAMES[:len(text_columns)])})[features.PROBABILITIES]
    np.testing.assert_allclose(from_examples.numpy(), from_text.numpy(), atol=1e-6)


def test_predict_ids_is_the_same_model_on_the_transform_graphs_ids(exported):
    """What a TFLite export puts its own tokenizer before: the encoder and head on ids, with
    the tokenization it needs recorded beside the model."""
    text_columns, _, tf_transform_output, loaded, export_dir = exported
    texts = {column: tf.constant([sentence[index] for sentence in SENTENCES])
             for index, column in enumerate(text_columns)}
    transformed = tf_transform_output.transform_features_layer()(texts)
    from_ids = loaded.signatures[features.IDS_SIGNATURE](
        **{name: transformed[name] for name in features.MODEL_INPUTS})
    from_text = loaded.signatures[features.TEXT_SIGNATURE](**{
        name: texts[column] for name, column in zip(features.TEXT_INPUT_NAMES, text_columns)})
    np.testing.assert_allclose(from_ids[features.PROBABILITIES].numpy(),
                               from_text[features.PROBABILITIES].numpy(), atol=1e-6)
    assert from_ids[features.PREDICTED_LABEL].numpy().tolist() == \
        from_text[features.PREDICTED_LABEL].numpy().tolist()

    recorded = json.loads((export_dir / TOKENIZATION_FILE).read_text(encoding="utf-8"))
    assert recorded["max_seq_length"] == 32 and recorded["text_columns"] == list(text_columns)
    assert recorded["checkpoint"]["tokenizer"] == "wordpiece"
    assert recorded["checkpoint"]["normalizer_steps"] == ["lowercase", "nfd", "strip_accents"]
