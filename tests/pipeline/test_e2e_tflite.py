"""The TFLite export through the whole DAG (the `pretrained_run` fixture: MiniLM fine-tuned on
200 rows, the default variants): shipped in the pushed version, answering raw text as the
SavedModel does, covered by the manifest; refused by the gate without touching the SavedModel's
push; added to an already published version by `textclf models export-tflite`."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.pusher import StorePusher
from components.tflite_export import TFLiteExport
from lite.convert import interpreter, predict
from lite.export import read_split
from lite.layout import REPORT_FILE, VERSION_DIR, model_file
from modules import features
from pipeline import cli
from pipeline.local_runner import newest_artifact
from pipeline.metadata import metadata_store_of
from serving.store import ModelStore, VersionRefused, verify_version
from tests.serving.store_faults import flip_byte


def _version(outcome):
    pushed = pathlib.Path(outcome.pushed_model_dir)
    store = ModelStore(str(pushed.parent.parent), pushed.parent.name)
    return store, next(version for version in store.versions()
                       if version.number == int(pushed.name))


def _examples(config):
    """ExampleGen's output (Transform's transformed examples are of the same type)."""
    return [artifact for artifact in metadata_store_of(config).get_artifacts_by_type(
        "Examples") if "/CsvExampleGen/" in artifact.uri][-1]


def _eval_rows(config):
    return read_split(f"{_examples(config).uri}/Split-eval", 0, config.data.text_column,
                      config.data.label_column, list(config.data.slice_columns))


def test_the_run_ships_float16_and_int8_weight_variants_that_answer_like_the_saved_model(
        pretrained_run):
    config, outcome = pretrained_run
    _, version = _version(outcome)
    entry = version.manifest["tflite"]
    # float16, and int8 weights (dynamic range): what the fixture configures, both kept.
    assert entry["exported"] and entry["shipped"] == ["float16", "dynamic_range"]
    verify_version(version, None)  # the variants' sums are in the manifest, and they match
    rows = _eval_rows(config)
    saved = tf.saved_model.load(outcome.pushed_model_dir).signatures[features.TEXT_SIGNATURE](
        text=tf.constant(rows.texts))
    saved_labels = saved[features.PREDICTED_LABEL].numpy()
    report = json.loads((pathlib.Path(version.path) / VERSION_DIR / REPORT_FILE).read_text())
    for variant in entry["shipped"]:
        name = f"{VERSION_DIR}/{model_file(variant)}"
        assert name in version.manifest["files"]
        model = (pathlib.Path(version.path) / name).read_bytes()
        answers = predict(interpreter(model), rows.texts)
        changed = np.mean(answers[features.PREDICTED_LABEL] != saved_labels)
        # What the report says is what this interpreter finds, and it is within the gate.
        assert changed == pytest.approx(report["variants"][variant]["changed_labels"])
        assert changed <= config.tflite.max_changed_labels
        assert report["variants"][variant]["accuracy_delta"] >= -config.tflite.max_accuracy_drop
        assert report["variants"][variant]["size_ratio"] < 0.6
    assert report["eval_examples"] == len(rows.texts) > 20
    assert report["saved_model"]["latency_p50_ms"] > 0


def test_a_tampered_variant_makes_the_store_refuse_the_version(pretrained_run, tmp_path):
    _, outcome = pretrained_run
    _, version = _version(outcome)
    copy = tmp_path / "serving_models" / "textclf" / str(version.number)
    shutil.copytree(version.path, copy)
    variant = copy / VERSION_DIR / model_file(version.manifest["tflite"]["shipped"][0])
    flip_byte(variant)
    [copied] = ModelStore(str(tmp_path / "serving_models"), "textclf").versions()
    with pytest.raises(VersionRefused, match=f"differ from the manifest.*{variant.name}"):
        verify_version(copied, None)


def _importer(source_uri, artifact_type, name, **custom_properties):
    return tfx.dsl.Importer(source_uri=source_uri, artifact_type=artifact_type,
                            custom_properties=custom_properties).with_id(name)


def test_a_variant_the_gate_refuses_is_not_published_and_the_saved_model_is(pretrained_run,
                                                                             tmp_path):
    """int8 everywhere (LayerNorm and softmax too) changes labels; with no changed label
    allowed it is refused: the Pusher publishes the SavedModel and the report, no .tflite."""
    config, _ = pretrained_run
    examples = _examples(config)
    model = _importer(newest_artifact(config, "Model").uri,
                      tfx.types.standard_artifacts.Model, "model")
    blessing = _importer(newest_artifact(config, "ModelBlessing").uri,
                         tfx.types.standard_artifacts.ModelBlessing, "blessing", blessed=1)
    imported_examples = tfx.dsl.Importer(
        source_uri=examples.uri, artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["train", "eval"]'}).with_id("examples")
    export = TFLiteExport(
        model=model.outputs["result"], examples=imported_examples.outputs["result"],
        settings=json.dumps({"tflite": {"variants": ["int8_full"], "max_changed_labels": 0.0,
                                        "max_accuracy_drop": 1.0, "calibration_examples": 20,
                                        "latency_samples": 3},
                             "text_column": "text", "label_column": "label",
                             "slice_columns": []}))
    store_root = tmp_path / "serving_models"
    pusher = StorePusher(
        model=model.outputs["result"], model_blessing=blessing.outputs["result"],
        tflite_models=export.outputs["tflite_models"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=str(store_root / "textclf"))),
        custom_config={}).with_id("Pusher")
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="refused", pipeline_root=str(tmp_path / "root"),
        components=[model, blessing, imported_examples, export, pusher],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.db"))))

    [version] = ModelStore(str(store_root), "textclf").versions()
    verify_version(version, None)
    variant = version.manifest["tflite"]["variants"]["int8_full"]
    assert version.manifest["tflite"]["shipped"] == [] and variant["shipped"] is False
    assert variant["changed_labels"] > 0
    assert variant["reason"].endswith(
        "of the labels differ from the SavedModel's (tflite.max_changed_labels 0.0)")
    files = set(version.manifest["files"])
    assert "saved_model.pb" in files and f"{VERSION_DIR}/{REPORT_FILE}" in files
    assert not [name for name in files if name.endswith(".tflite")]


def test_export_tflite_adds_the_variants_to_a_published_version(pretrained_run, tmp_path,
                                                                 capsys):
    """On a copy of the run's store (and its ML Metadata, which names the examples the
    version's Evaluator read): another variant set replaces the version's tflite/ folder."""
    config, outcome = pretrained_run
    _, version = _version(outcome)
    output_dir = tmp_path / "outputs"
    for folder in ("serving_models", "metadata"):
        shutil.copytree(pathlib.Path(config.output_dir) / folder, output_dir / folder)
    arguments = ["models", "export-tflite", str(version.number), "--output-dir", str(output_dir),
                 "--set", "tflite.variants=dynamic_range", "--set", "tflite.latency_samples=3"]

    assert cli.main(arguments) == 0
    out = capsys.readouterr().out
    assert "dynamic_range: " in out and f"version {version.number}: " in out
    [amended] = [listed for listed in ModelStore(str(output_dir / "serving_models"),
                                                 "textclf").versions()
                 if listed.number == version.number]
    verify_version(amended, None)
    entry = amended.manifest["tflite"]
    # The fixture's gate lets dynamic range through (the run itself shipped it).
    assert list(entry["variants"]) == entry["shipped"] == ["dynamic_range"]
    tflite_files = sorted(name for name in amended.manifest["files"] if name.endswith(".tflite"))
    assert tflite_files == [f"{VERSION_DIR}/{model_file('dynamic_range')}"]
    store = ModelStore(str(output_dir / "serving_models"), "textclf")
    assert store.history()[-1]["event"] == "amended"
    assert store.history()[-1]["version"] == version.number
    assert amended.manifest["files"]["saved_model.pb"] == version.manifest["files"][
        "saved_model.pb"]

    assert cli.main([*arguments[:2], "999", *arguments[3:]]) == 2
    assert "version 999 is not a published version" in capsys.readouterr().err
