"""Two real exported classifiers (tiny BERTs from scratch, different seeds) and a store of them.

The models are untrained: the serving tests check that the server answers exactly what the
SavedModel's `predict_text` answers and which version answered, not accuracy. Different seeds
give the two versions different outputs, so a swap is visible in the probabilities too.
"""

import csv
import dataclasses
import os
import pathlib

import pytest

from serving import signing
from serving.store import ModelStore
from tests.conftest import DEFAULT_DATA, analyze_and_transform


def default_rows(count: int) -> list[dict]:
    with DEFAULT_DATA.open(encoding="utf-8", newline="") as handle:
        return [{"text": row["text"], "label": row["label"]}
                for _, row in zip(range(count), csv.DictReader(handle))]


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory) -> list[pathlib.Path]:
    """Two SavedModel folders written by `modules.export.export_serving_model`."""
    return export_models(tmp_path_factory.mktemp("serving_models"))


def export_models(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    """Two tiny BERTs (seeds 1 and 2) over one transform graph, exported under `tmp_path`."""
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    import tensorflow_transform as tft
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from modules import features
    from modules.bert_classifier import build_classifier
    from modules.export import export_serving_model
    from pipeline.config import DataConfig, ModelConfig

    data = DataConfig(slice_columns=[])
    model_config = ModelConfig(max_seq_length=32, num_layers=1, hidden_size=32,
                               num_attention_heads=2, intermediate_size=64)
    rows = default_rows(200)
    labels = sorted({row["label"] for row in rows})
    raw_metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
        column: tf.io.FixedLenFeature([], tf.string) for column in ("text", "label")}))
    custom_config = {"data": dataclasses.asdict(data), "model": dataclasses.asdict(model_config),
                     "label_values": labels, "checkpoint": None}
    _, _, graph_dir = analyze_and_transform(rows, rows, raw_metadata, custom_config, tmp_path)
    tf_transform_output = tft.TFTransformOutput(str(graph_dir))
    vocab_size = tf_transform_output.vocabulary_size_by_name(features.WORD_VOCABULARY)
    exported = []
    for seed in (1, 2):
        tf.keras.utils.set_random_seed(seed)
        model = build_classifier(model_config, vocab_size=vocab_size, num_labels=len(labels))
        export_dir = tmp_path / f"model-{seed}"
        export_serving_model(model, tf_transform_output, text_columns=data.text_columns,
                             label_names=labels, export_dir=str(export_dir),
                             max_seq_length=model_config.max_seq_length)
        exported.append(export_dir)
    return exported


@pytest.fixture
def model_dir(tmp_path):
    """A stand-in model folder: the store treats every file alike."""
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph" * 100)
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(4096))
    return folder


@pytest.fixture
def keys(tmp_path):
    signing.generate_key_pair(tmp_path / "keys" / "private.pem", tmp_path / "keys" / "public.pem")
    return (signing.load_signing_key(str(tmp_path / "keys" / "private.pem")),
            signing.load_verify_key(str(tmp_path / "keys" / "public.pem")))


def keyed_store(output_dir: pathlib.Path, model_name: str
                ) -> tuple[ModelStore, signing.SigningKey]:
    """An empty store under `output_dir` and a fresh key pair (`private.pem`, `public.pem`)."""
    signing.generate_key_pair(output_dir / "private.pem", output_dir / "public.pem")
    return (ModelStore(str(output_dir / "serving_models"), model_name),
            signing.load_signing_key(str(output_dir / "private.pem")))
