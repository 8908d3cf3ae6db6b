"""`create_pipeline`: the one TFX DAG, shared by every orchestrator."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import pathlib
import subprocess
from typing import Any, Optional, Union

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

import modules
from components.csv_example_gen import delimited_example_gen
from components.data_gate import DataGate
from components.evaluator import RecordingEvaluator
from components.pusher import StorePusher
from components.text_checks import AcceptedData, TextChecks
from components.tflite_export import TFLiteExport
from components.tokenizer_parity import TokenizerParity
from pipeline import checkpoint as checkpoint_module
from pipeline import config as config_module
from pipeline.checkpoint import Checkpoint
from pipeline.config import PipelineConfig
from pipeline.data_check import DataSummary
from pipeline.evaluation import build_eval_config
from pipeline.training_plan import run_plan

PREPROCESSING_FN = "modules.preprocessing.preprocessing_fn"
RUN_FN = "modules.model.run_fn"


def code_fingerprint() -> str:
    """SHA-256 over the code Transform and Trainer import: `modules/`, config and checkpoint modules.

    They load their code by module path, which TFX's cache key does not cover; passing this
    fingerprint in `custom_config` makes an edited module invalidate their cached executions.
    """
    digest = hashlib.sha256()
    package_dir = pathlib.Path(modules.__file__).parent
    sources = {f"modules/{path.relative_to(package_dir).as_posix()}": path
               for path in sorted(package_dir.rglob("*.py"))}
    sources["pipeline/config.py"] = pathlib.Path(config_module.__file__)
    sources["pipeline/checkpoint.py"] = pathlib.Path(checkpoint_module.__file__)
    for name, path in sources.items():
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_version() -> str:
    """The package version, with the git commit when the code runs from a checkout
    (`0.1.0+git.1a2b3c4d5e6f`, `.dirty` when tracked files differ from it)."""
    version = importlib.metadata.version("tfx-text-classifier")
    project_dir = pathlib.Path(modules.__file__).resolve().parent.parent
    try:
        commit, changes = (subprocess.run(
            ["git", *arguments], cwd=project_dir, capture_output=True, text=True, timeout=10,
            check=True).stdout.strip() for arguments in (
                ("rev-parse", "--short=12", "HEAD"), ("status", "--porcelain", "--untracked-files=no")))
    except (OSError, subprocess.SubprocessError):
        return version  # an installed package (the pipeline image): no checkout
    return f"{version}+git.{commit}{'.dirty' if changes else ''}"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run reads its data and writes artifacts and pushed models, and how Beam runs.

    Local runs use folders under `output_dir`; a compiled Kubeflow pipeline uses the cluster's
    pipeline root and takes the data folder and the train arguments as runtime parameters.
    """

    pipeline_root: str
    serving_dir: str
    beam_pipeline_args: list[str]
    input_base: Union[str, tfx.dsl.experimental.RuntimeParameter]
    train_args: Union[tfx.proto.TrainArgs, tfx.dsl.experimental.RuntimeParameter]
    # On Kubernetes: the TFJob settings (`modules.tfjob.TFJobSettings`) for multi-worker training.
    tfjob: Optional[dict[str, Any]] = None
    # The reviewed schema ImportSchemaGen reads (data.schema_file where this run can read it);
    # empty: SchemaGen infers one.
    schema_file: str = ""


def local_placement(config: PipelineConfig, data: DataSummary) -> Placement:
    """Folders under `config.output_dir`, the checked input folder, the planned train steps
    (0: the Trainer counts them from the training rows)."""
    schema_file = str(pathlib.Path(config.data.schema_file).resolve()) \
        if config.data.schema_file else ""
    return Placement(pipeline_root=config.pipeline_root, serving_dir=config.serving_dir,
                     beam_pipeline_args=list(config.beam_pipeline_args),
                     input_base=data.input_base,
                     train_args=tfx.proto.TrainArgs(num_steps=run_plan(config).train_steps),
                     schema_file=schema_file)


def create_pipeline(
        config: PipelineConfig, data: DataSummary, checkpoint: Optional[Checkpoint] = None,
        metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
        placement: Optional[Placement] = None,
) -> tfx.dsl.Pipeline:
    """Builds ExampleGen -> statistics/schema/validation -> Transform -> Trainer -> Evaluator ->
    TFLiteExport -> Pusher.

    DataGate stops the run before Transform on ExampleValidator's anomalies or a failed text
    check; when fine-tuning, TokenizerParity checks the Transform's tokens before the Trainer.

    Args:
      config: the run's configuration.
      data: the checked input (`pipeline.data_check.check_input_data`): file layout and labels.
      checkpoint: the resolved `model.pretrained` checkpoint; None trains from scratch.
      metadata_connection_config: MLMD connection; the local runner passes SQLite.
      placement: where data, artifacts and pushed models live; local folders when not given.
    """
    placement = placement or local_placement(config, data)
    # Each component gets only the sections its code reads, so changing, say, an Evaluator
    # threshold does not invalidate the cached Transform and Trainer executions.
    transform_config = {
        "data": dataclasses.asdict(config.data),
        "model": dataclasses.asdict(config.model),
        "label_values": list(data.label_values),
        "checkpoint": checkpoint.to_dict() if checkpoint else None,
        "code_fingerprint": code_fingerprint(),
    }
    plan = run_plan(config)
    trainer_config = {**transform_config,
                      "training": dataclasses.asdict(plan.applied_to(config.training)),
                      # The rules behind them, for the run log and the report.
                      "plan": dataclasses.asdict(plan),
                      # Crash-safe backups: a rerun of an interrupted Trainer resumes from here.
                      "backup_root": f"{placement.pipeline_root}/trainer_backups"}
    if placement.tfjob and config.training.strategy == "multi_worker" \
            and config.training.num_workers > 1:
        trainer_config["tfjob"] = placement.tfjob
    splits = [tfx.proto.Input.Split(name=name, pattern=pattern)
              for name, pattern in data.split_patterns.items()]
    output_config = None
    if list(data.split_patterns) == ["single_split"]:
        output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=config.data.train_buckets),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=config.data.eval_buckets)]))
    example_gen = delimited_example_gen(
        input_base=placement.input_base, delimiter=config.data.delimiter,
        input_config=tfx.proto.Input(splits=splits), output_config=output_config,
        encoding=config.data.encoding, row_rules=data.row_rules(config.data))

    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if placement.schema_file:
        # A reviewed schema: each run's data is validated against it, not against itself.
        schema_gen = tfx.components.ImportSchemaGen(schema_file=placement.schema_file)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    accepted_data_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        accepted=tfx.dsl.Channel(type=AcceptedData),
    ).with_id("last_accepted_data_resolver")
    text_checks = TextChecks(
        examples=example_gen.outputs["examples"],
        baseline=accepted_data_resolver.outputs["accepted"],
        settings=json.dumps({
            "data_checks": dataclasses.asdict(config.data_checks),
            "text_columns": config.data.text_columns, "label_column": config.data.label_column,
            "max_seq_length": config.model.max_seq_length,
            "max_vocab_size": config.model.max_vocab_size,
            "min_word_frequency": config.model.min_word_frequency,
            "checkpoint": transform_config["checkpoint"]}, sort_keys=True))
    data_gate = DataGate(anomalies=example_validator.outputs["anomalies"],
                         text_checks=text_checks.outputs["report"],
                         stop_on_anomalies=int(config.data_checks.stop_on_anomalies))

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=transform_config,
        # No TFDV statistics of the data before and after the transform: nothing reads them
        # (StatisticsGen and TextChecks describe the data), and on Beam's DirectRunner they made
        # the runner hold the transformed split in memory: at 1.08M rows Transform peaked at
        # 9.7 GiB with them, 3.8 GiB without, and took 35 % longer
        # (benchmarks/results/data_scaling*.json).
        disable_statistics=True)
    # Nothing downstream runs on data that failed validation.
    transform.add_upstream_node(data_gate)

    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        # Warm start: the last blessed model's weights replace the initial ones.
        base_model=model_resolver.outputs["model"] if config.training.warm_start else None,
        train_args=placement.train_args,
        eval_args=tfx.proto.EvalArgs(num_steps=config.training.eval_steps or None),
        custom_config=trainer_config)

    parity_check = []
    if checkpoint:
        parity_check = [TokenizerParity(
            examples=example_gen.outputs["examples"],
            transform_graph=transform.outputs["transform_graph"],
            checkpoint_path=checkpoint.path,
            text_columns=",".join(config.data.text_columns),
            max_seq_length=config.model.max_seq_length,
            min_parity=config.model.min_tokenizer_parity,
            sample_size=config.model.parity_sample_size)]
        # Training on ids the checkpoint was not pretrained with would waste the whole run.
        trainer.add_upstream_node(parity_check[0])

    evaluator = RecordingEvaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=build_eval_config(config, data.label_values)).with_id("Evaluator")

    # The model as raw-text TFLite variants, measured and gated; with a blessed model the Pusher
    # publishes those that keep the accuracy in the same version.
    tflite_export = TFLiteExport(
        model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
        settings=json.dumps({"tflite": dataclasses.asdict(config.tflite),
                             "text_column": config.data.text_column,
                             "label_column": config.data.label_column,
                             "slice_columns": list(config.data.slice_columns)}, sort_keys=True))

    pusher = StorePusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        tflite_models=tflite_export.outputs["tflite_models"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=f"{placement.serving_dir}/{config.model_name}")),
        custom_config={"signing_key_file": config.serving.signing_key_file,
                       "keep_versions": config.serving.keep_versions,
                       "code_fingerprint": transform_config["code_fingerprint"],
                       "code_version": code_version()}).with_id("Pusher")

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=placement.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator,
                    accepted_data_resolver, text_checks, data_gate, transform, *parity_check,
                    model_resolver, trainer, evaluator, tflite_export, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=placement.beam_pipeline_args,
    )
