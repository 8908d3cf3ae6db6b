"""A tiny uncased WordPiece BERT (MiniLM's vocabulary and tokenizer files, 2 layers of 32, random
weights) exported as the Trainer exports, so the TFLite tests convert in seconds."""

import dataclasses
import pathlib
import shutil

import pytest

LABELS = ["negative", "positive"]
MAX_SEQ_LENGTH = 32
# The files a Hugging Face checkpoint's WordPiece tokenizer reads.
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json")


def build_tiny_wordpiece(source: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    """A tiny BertForSequenceClassification checkpoint with `source`'s tokenizer, in `folder`."""
    import transformers  # pylint: disable=import-outside-toplevel

    folder.mkdir(parents=True)
    for name in _TOKENIZER_FILES:
        shutil.copyfile(source / name, folder / name)
    vocabulary = (source / "vocab.txt").read_text(encoding="utf-8").splitlines()
    config = transformers.BertConfig(
        vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=len(LABELS))
    classifier = transformers.TFBertForSequenceClassification(config)
    classifier(classifier.dummy_inputs)
    classifier.save_pretrained(folder)
    return folder


def export_tiny_classifier(checkpoint_dir: pathlib.Path, folder: pathlib.Path,
                           texts: list[str]) -> pathlib.Path:
    """The checkpoint's classifier exported with its transform graph; the SavedModel's folder."""
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    import tensorflow_transform as tft
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from modules.bert_classifier import build_classifier
    from modules.export import export_serving_model
    from pipeline.checkpoint import resolve_checkpoint
    from pipeline.config import DataConfig, ModelConfig
    from tests.conftest import analyze_and_transform

    checkpoint = resolve_checkpoint(str(checkpoint_dir), MAX_SEQ_LENGTH)
    data, model_config = DataConfig(slice_columns=[]), ModelConfig(max_seq_length=MAX_SEQ_LENGTH)
    rows = [{"text": text, "label": LABELS[index % 2]} for index, text in enumerate(texts)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
        {column: tf.io.FixedLenFeature([], tf.string) for column in ("text", "label")}))
    custom_config = {"data": dataclasses.asdict(data), "model": dataclasses.asdict(model_config),
                     "label_values": LABELS, "checkpoint": checkpoint.to_dict()}
    _, _, graph_dir = analyze_and_transform(rows, rows[:1], metadata, custom_config, folder)
    tf.keras.utils.set_random_seed(7)
    model = build_classifier(model_config, vocab_size=0, num_labels=len(LABELS),
                             checkpoint_path=str(checkpoint_dir), pooling="cls")
    export_dir = folder / "serving"
    export_serving_model(model, tft.TFTransformOutput(str(graph_dir)),
                         text_columns=data.text_columns, label_names=LABELS,
                         export_dir=str(export_dir), max_seq_length=MAX_SEQ_LENGTH,
                         checkpoint=checkpoint.to_dict())
    return export_dir


@pytest.fixture(scope="session")
def tiny_wordpiece_export(offline_checkpoint, tmp_path_factory) -> pathlib.Path:
    """The SavedModel folder of a tiny WordPiece classifier, exported as the Trainer does."""
    from tests.checkpoint_families import default_texts  # pylint: disable=import-outside-toplevel

    root = tmp_path_factory.mktemp("tiny_wordpiece")
    checkpoint_dir = build_tiny_wordpiece(offline_checkpoint, root / "checkpoint")
    return export_tiny_classifier(checkpoint_dir, root / "export", default_texts()[:40])


@pytest.fixture(scope="session")
def tiny_float32_model(tiny_wordpiece_export, tmp_path_factory) -> bytes:
    """The tiny classifier as a float32 raw-text .tflite."""
    # pylint: disable=import-outside-toplevel
    from lite.convert import convert
    from lite.graph import RawTextClassifier, save_for_conversion

    folder = tmp_path_factory.mktemp("tiny_float32")
    save_for_conversion(RawTextClassifier(str(tiny_wordpiece_export)), str(folder / "graph"))
    return convert(str(folder / "graph"), "float32", calibration_texts=[])
