"""The whole DAG with the real LocalDagRunner, Beam DirectRunner and MLMD (SQLite), on a sample.

One module-scoped run is shared: its assertions cover every component, the blessing, the push and
the pushed model's signatures; later tests rerun it to check caching and the Evaluator's gate.
The sample is a Latin-1 file with accented rows, read with `data.encoding`, as a spreadsheet
export would be.
"""

import csv
import glob
import json
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from modules import features
from modules.training import TRAINING_STATS_FILE
from pipeline.config import PipelineConfig
from pipeline.local_runner import newest_artifact, run_local
from serving import signing
from serving.store import ModelStore, verify_version
from tests.conftest import write_sample

COMPONENTS = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "TextChecks",
              "DataGate", "Transform", "Trainer", "Evaluator", "TFLiteExport", "Pusher")
# They compare the data with the last accepted data, which each accepted run replaces, so they
# measure again on every run (about a second); nothing downstream depends on their outputs.
DATA_GATE = ("TextChecks", "DataGate")
ACCENTS = " Tr\u00e8s bon caf\u00e9, na\u00efve fa\u00e7ade \u00e0 \u00a35."
SENTENCES = ["The battery lasts all day and the screen is bright and sharp. Great value.",
             "Avoid. The zipper jammed on day one and the return process was a hassle."]


def _config(tmp_path: pathlib.Path, *overrides: str) -> PipelineConfig:
    return PipelineConfig.load(None, [
        f"data.path={tmp_path / 'data'}", f"output_dir={tmp_path / 'outputs'}",
        "training.train_steps=80", "training.epochs=2", "evaluation.min_accuracy=0.6",
        "data.encoding=latin-1",
        f"serving.signing_key_file={tmp_path / 'keys' / 'private.pem'}", *overrides])


def _store(config: PipelineConfig) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def _newest_run_states(config: PipelineConfig) -> dict[str, int]:
    """Component id -> execution state in the newest pipeline run recorded in MLMD."""
    store = _store(config)
    newest_run = max(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.id)
    run_executions = {execution.id: execution
                      for execution in store.get_executions_by_context(newest_run.id)}
    states = {}
    for component in COMPONENTS:
        node = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.{component}")
        for execution in store.get_executions_by_context(node.id):
            if execution.id in run_executions:
                states[component] = execution.last_known_state
    return states


def _versions(config: PipelineConfig) -> list[pathlib.Path]:
    return [pathlib.Path(version.path)
            for version in ModelStore(config.serving_dir, config.model_name).versions()]


def _latin1_sample(folder: pathlib.Path) -> list[str]:
    """400 default rows as Latin-1, twenty of them with accented words (enough to reach the
    training split's vocabulary); returns those texts."""
    path = write_sample(folder, rows=400)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:21]:
        row[0] += ACCENTS
    with path.open("w", encoding="latin-1", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return [row[0] for row in rows[1:21]]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e")
    _latin1_sample(tmp_path / "data")
    signing.generate_key_pair(tmp_path / "keys" / "private.pem", tmp_path / "keys" / "public.pem")
    config = _config(tmp_path)
    return tmp_path, config, run_local(config)


def test_every_component_executes_and_the_model_is_blessed_and_pushed(first_run):
    _, config, outcome = first_run
    states = _newest_run_states(config)
    assert states == {component: metadata_store_pb2.Execution.COMPLETE
                      for component in COMPONENTS}
    assert outcome.blessed and outcome.accuracy >= 0.6
    versions = _versions(config)
    assert [str(version) for version in versions] == [outcome.pushed_model_dir]
    assert versions[0].name.isdigit()  # <store>/<model_name>/<version>/, as TF Serving expects


def _examples(config: PipelineConfig, component: str, split: str) -> list[tf.train.Example]:
    [examples] = [artifact for artifact in _store(config).get_artifacts_by_type("Examples")
                  if f"/{component}/" in artifact.uri]
    records = tf.data.TFRecordDataset(glob.glob(f"{examples.uri}/Split-{split}/*.gz"),
                                      compression_type="GZIP")
    return [tf.train.Example.FromString(record.numpy()) for record in records]


def test_a_latin1_file_reaches_the_examples_and_the_tokenizer_as_the_same_text(first_run):
    tmp_path, config, _ = first_run
    assert b"caf\xe9" in (tmp_path / "data" / "reviews.csv").read_bytes()
    texts = {example.features.feature[config.data.text_column].bytes_list.value[0]
             for example in _examples(config, "CsvExampleGen", "*")}
    accented = {text for text in texts if ACCENTS.encode("utf-8") in text}
    assert len(texts) == 400 and len(accented) == 20
    # The tokenizer saw the words, not mojibake: each is one vocabulary entry, and the
    # transformed training examples hold its id.
    vocabulary = tft.TFTransformOutput(newest_artifact(config, "TransformGraph").uri
                                       ).vocabulary_by_name(features.WORD_VOCABULARY)
    word_ids = {word: vocabulary.index(word.encode("utf-8"))
                for word in ("tr\u00e8s", "caf\u00e9", "na\u00efve", "fa\u00e7ade")}
    transformed_ids = {token for example in _examples(config, "Transform", "train")
                       for token in example.features.feature[features.INPUT_WORD_IDS].int64_list.value}
    assert set(word_ids.values()) <= transformed_ids


def test_the_pushed_version_is_signed_with_a_manifest_of_its_origin_and_files(first_run):
    tmp_path, config, outcome = first_run
    version = ModelStore(config.serving_dir, config.model_name).versions()[-1]
    manifest = version.manifest
    # Every file matches its SHA-256, and the Pusher signed the manifest with the configured key.
    assert version.signed
    verify_version(version, signing.load_verify_key(str(tmp_path / "keys" / "public.pem")))
    assert "saved_model.pb" in manifest["files"]
    assert manifest["blessed"] is True and manifest["data_span"] == 0
    assert manifest["metrics"]["accuracy"] == pytest.approx(outcome.accuracy)
    lineage = manifest["mlmd"]
    store = _store(config)
    [model] = store.get_artifacts_by_id([lineage["model_artifact_id"]])
    assert model.uri == manifest["model_uri"]
    trainer_executions = store.get_executions_by_id([lineage["trainer_execution_id"]])
    assert [execution.type for execution in trainer_executions] == [
        "tfx.components.trainer.component.Trainer"]
    assert len(manifest["code_fingerprint"]) == 64
    # The tests run from a git checkout: the version names its commit.
    assert re.fullmatch(r"0\.1\.0\+git\.[0-9a-f]{12}(\.dirty)?", manifest["code_version"])


def test_pushed_model_classifies_raw_text_like_serialized_examples(first_run):
    _, config, outcome = first_run
    model = tf.saved_model.load(outcome.pushed_model_dir)
    assert {features.SERVING_SIGNATURE, features.TEXT_SIGNATURE,
            features.TRANSFORM_SIGNATURE} <= set(model.signatures)
    from_text = model.signatures[features.TEXT_SIGNATURE](text=tf.constant(SENTENCES))
    probabilities = from_text[features.PROBABILITIES].numpy()
    assert probabilities.shape == (2, 2) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert [label.decode() for label in from_text[features.PREDICTED_LABEL].numpy()] == [
        "positive", "negative"]

    examples = [tf.train.Example(features=tf.train.Features(feature={
        config.data.text_column: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[sentence.encode()]))})).SerializeToString()
        for sentence in SENTENCES]
    from_examples = model.signatures[features.SERVING_SIGNATURE](examples=tf.constant(examples))
    np.testing.assert_allclose(from_examples[features.PROBABILITIES].numpy(), probabilities,
                               atol=1e-6)


def test_the_model_run_keeps_every_epochs_metrics(first_run):
    _, config, _ = first_run
    stats = json.loads(pathlib.Path(newest_artifact(config, "ModelRun").uri,
                                    TRAINING_STATS_FILE).read_text())
    by_epoch = stats["by_epoch"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(by_epoch)
    assert all(len(values) == config.training.epochs for values in by_epoch.values())
    assert {name: values[-1] for name, values in by_epoch.items()} == stats["last_epoch"]
    assert by_epoch["loss"][-1] < by_epoch["loss"][0]  # the second epoch is recorded, not a copy


def test_reruns_with_unchanged_inputs_reuse_cached_executions(first_run):
    tmp_path, config, first_outcome = first_run
    second_outcome = run_local(_config(tmp_path))
    states = _newest_run_states(config)
    # The resolver now finds the first run's blessed model, so the Evaluator has a new input (a
    # baseline) and runs again; everything upstream but the data gate is reused, and the same
    # model is not pushed a second time.
    upstream = [component for component in COMPONENTS[:8] if component not in DATA_GATE]
    assert {component: states[component] for component in upstream} == {
        component: metadata_store_pb2.Execution.CACHED for component in upstream}
    assert states["Evaluator"] == metadata_store_pb2.Execution.COMPLETE
    # The same model: its TFLite export (here, the record of why there is none) is reused.
    assert states["TFLiteExport"] == metadata_store_pb2.Execution.CACHED
    assert {states[component] for component in DATA_GATE} == {
        metadata_store_pb2.Execution.COMPLETE}
    assert [str(version) for version in _versions(config)] == [first_outcome.pushed_model_dir]
    # The same model, so the candidate's accuracy (not the baseline's, not the difference).
    assert second_outcome.accuracy == pytest.approx(first_outcome.accuracy)

    outcome = run_local(_config(tmp_path))
    assert _newest_run_states(config) == {
        component: metadata_store_pb2.Execution.COMPLETE if component in DATA_GATE
        else metadata_store_pb2.Execution.CACHED for component in COMPONENTS}
    assert outcome.pushed_model_dir == first_outcome.pushed_model_dir


def test_a_model_below_the_threshold_is_not_pushed(first_run):
    tmp_path, config, first_outcome = first_run
    strict = _config(tmp_path, "evaluation.min_accuracy=1.0")
    outcome = run_local(strict)
    states = _newest_run_states(strict)
    # Only the Evaluator's configuration changed: training is reused, the gate re-decides.
    assert states["Trainer"] == metadata_store_pb2.Execution.CACHED
    assert states["Evaluator"] == metadata_store_pb2.Execution.COMPLETE
    assert not outcome.blessed and outcome.pushed_model_dir is None
    assert [str(version) for version in _versions(strict)] == [first_outcome.pushed_model_dir]


def test_a_required_tflite_export_fails_the_run_of_a_model_that_cannot_have_one(first_run):
    """Trained from scratch: no TFLite tokenizer. By default the run ships without a TFLite
    export and says why (the first run did); with tflite.required it fails at TFLiteExport,
    before the Pusher."""
    tmp_path, _, first_outcome = first_run
    assert first_outcome.tflite_shipped == ()
    assert first_outcome.tflite_reason.startswith("the model was trained from scratch")
    required = _config(tmp_path, "tflite.required=true")
    with pytest.raises(RuntimeError, match=r"no TFLite export: the model was trained from "
                                           r"scratch.*\(tflite.required is set"):
        run_local(required)
    assert [str(version) for version in _versions(required)] == [first_outcome.pushed_model_dir]
