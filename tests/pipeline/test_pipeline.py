"""The DAG's wiring and what each component is configured with (built, not run)."""

import json
import pathlib
import shutil

import modules
from pipeline import pipeline as pipeline_module
from pipeline.checkpoint import Checkpoint
from pipeline.config import PipelineConfig
from pipeline.data_check import DataSummary

DATA = DataSummary(input_base="/data", split_patterns={"single_split": "*"}, files=["/data/a.csv"],
                   columns=["text", "label", "source", "domain"],
                   label_values=["negative", "positive"], row_count=10)


CHECKPOINT = Checkpoint(
    path="/checkpoints/minilm", model_type="bert", tokenizer="wordpiece",
    tokenizer_file="/checkpoints/minilm/vocab.txt",
    cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
    unk_token="[UNK]", cls_id=101, sep_id=102, pad_id=0, unk_id=100, vocab_size=30522,
    pair_separators=1, pair_token_type=1, normalizer_steps=("lowercase", "nfd", "strip_accents"),
    trailing_space_piece=False,
    declared_pooling="mean", fingerprint="abc")


def _components(config=None, checkpoint=None):
    built = pipeline_module.create_pipeline(config or PipelineConfig(), DATA, checkpoint)
    return {component.id: component for component in built.components}, built


def test_dag_order_baseline_and_blessing_gate():
    components, built = _components()
    assert set(components) == {
        "CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
        "last_accepted_data_resolver", "TextChecks", "DataGate", "Transform", "Trainer",
        "latest_blessed_model_resolver", "Evaluator", "TFLiteExport", "Pusher"}
    assert components["Transform"].inputs["examples"].producer_component_id == "CsvExampleGen"
    # The data gate: anomalies and text checks, measured against the last accepted data.
    gate, text_checks = components["DataGate"], components["TextChecks"]
    assert gate.inputs["anomalies"].producer_component_id == "ExampleValidator"
    assert gate.inputs["text_checks"].producer_component_id == "TextChecks"
    assert text_checks.inputs["baseline"].producer_component_id == "last_accepted_data_resolver"
    assert "DataGate" in {node.id for node in components["Transform"].upstream_nodes}
    assert components["Trainer"].inputs["examples"].producer_component_id == "Transform"
    evaluator, pusher = components["Evaluator"], components["Pusher"]
    assert evaluator.inputs["baseline_model"].producer_component_id == \
        "latest_blessed_model_resolver"
    assert pusher.inputs["model_blessing"].producer_component_id == "Evaluator"
    assert pusher.inputs["model"].producer_component_id == "Trainer"
    # The TFLite variants of the blessed model go into the same push.
    tflite = components["TFLiteExport"]
    assert pusher.inputs["tflite_models"].producer_component_id == "TFLiteExport"
    assert tflite.inputs["model"].producer_component_id == "Trainer"
    # Not the blessing: evaluating the same model again reuses its export from the cache.
    assert set(tflite.inputs) == {"model", "examples"}
    assert tflite.inputs["examples"].producer_component_id == "CsvExampleGen"
    assert built.enable_cache is True
    _, uncached = _components(PipelineConfig.load(None, ["enable_cache=false"]))
    assert uncached.enable_cache is False


def test_components_get_only_the_config_sections_they_read():
    components, _ = _components()
    transform_config = json.loads(components["Transform"].exec_properties["custom_config"])
    trainer_config = json.loads(components["Trainer"].exec_properties["custom_config"])
    assert set(transform_config) == {"data", "model", "label_values", "checkpoint",
                                     "code_fingerprint"}
    assert transform_config["checkpoint"] is None
    assert set(trainer_config) == set(transform_config) | {"training", "plan", "backup_root"}
    assert transform_config["label_values"] == ["negative", "positive"]
    # Backups of an interrupted Trainer live under the pipeline root, outside any execution.
    assert trainer_config["backup_root"] == f"{PipelineConfig().pipeline_root}/trainer_backups"
    tflite_settings = json.loads(components["TFLiteExport"].exec_properties["settings"])
    assert set(tflite_settings) == {"tflite", "text_column", "label_column", "slice_columns"}


def test_warm_start_feeds_the_last_blessed_model_to_the_trainer():
    components, _ = _components()
    assert "base_model" not in components["Trainer"].inputs
    components, _ = _components(PipelineConfig.load(None, ["training.warm_start=true"]))
    assert components["Trainer"].inputs["base_model"].producer_component_id == (
        "latest_blessed_model_resolver")


def test_fine_tuning_checks_tokenizer_parity_before_the_trainer():
    config = PipelineConfig.load(None, ["model.pretrained=/checkpoints/minilm",
                                        "model.min_tokenizer_parity=0.99"])
    components, _ = _components(config, CHECKPOINT)
    parity, trainer = components["TokenizerParity"], components["Trainer"]
    assert parity.inputs["transform_graph"].producer_component_id == "Transform"
    assert parity.inputs["examples"].producer_component_id == "CsvExampleGen"
    assert parity.exec_properties["min_parity"] == 0.99
    assert parity.exec_properties["checkpoint_path"] == CHECKPOINT.path
    assert "TokenizerParity" in {node.id for node in trainer.upstream_nodes}
    trainer_config = json.loads(trainer.exec_properties["custom_config"])
    assert trainer_config["checkpoint"]["fingerprint"] == "abc"
    assert "TokenizerParity" not in _components()[0]  # from scratch: nothing to compare with


def test_code_fingerprint_changes_when_module_code_changes(tmp_path, monkeypatch):
    package_copy = tmp_path / "modules"
    shutil.copytree(pathlib.Path(modules.__file__).parent, package_copy)
    monkeypatch.setattr(modules, "__file__", str(package_copy / "__init__.py"))
    before = pipeline_module.code_fingerprint()
    assert pipeline_module.code_fingerprint() == before
    with (package_copy / "model.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# edited\n")
    assert pipeline_module.code_fingerprint() != before

