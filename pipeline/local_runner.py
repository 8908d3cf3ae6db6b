"""Runs the pipeline on this machine: LocalDagRunner or BeamDagRunner, Beam DirectRunner, MLMD in SQLite."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Optional

from absl import logging
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
from tfx.orchestration.pipeline import RunOptions

from pipeline.config import PipelineConfig
from pipeline.evaluation import ACCURACY_METRIC, overall_metrics
from pipeline.metadata import metadata_store_of
from pipeline.pipeline import create_pipeline
from pipeline.preflight import RunInputs, preflight
from serving.store import read_manifest


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a run left behind, read back from MLMD."""

    blessed: bool
    accuracy: Optional[float]
    pushed_model_dir: Optional[str]
    # The TFLite variants in the pushed version, or why it has none (its manifest says).
    tflite_shipped: tuple[str, ...] = ()
    tflite_reason: str = ""


def run_local(config: PipelineConfig, inputs: Optional[RunInputs] = None,
              last_node: Optional[str] = None) -> RunOutcome:
    """Runs the whole DAG on checked input and reports the blessing and the pushed version.

    Args:
      config: the run's configuration.
      inputs: the result of `preflight(config)`; checked here when not given.
      last_node: run only this node and the nodes it needs (TFX's partial run), e.g.
        "Transform" for the data half alone; the whole DAG when not given.
    """
    inputs = inputs or preflight(config)
    data = inputs.data
    logging.info("Input: %d rows %sin %d file(s) under %s%s; labels %s", data.row_count,
                 "checked (the first rows of a large input; ExampleGen checks the rest) "
                 if data.sampled else "", len(data.files), data.input_base,
                 "" if data.span is None else f" (span {data.span})", data.label_values)
    pathlib.Path(config.metadata_path).parent.mkdir(parents=True, exist_ok=True)
    metadata_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        config.metadata_path)
    # BeamDagRunner (not in `tfx.v1`) runs the DAG itself as a Beam pipeline, one step per node.
    runner = BeamDagRunner() if config.orchestrator == "beam" else tfx.orchestration.LocalDagRunner()
    logging.info("Orchestrator: %s", type(runner).__name__)
    run_options = RunOptions(to_nodes=[last_node]) if last_node else None
    runner.run(create_pipeline(config, data, inputs.checkpoint,
                               metadata_connection_config=metadata_config),
               run_options=run_options)
    return read_outcome(metadata_config)


def newest_executions(config: PipelineConfig) -> dict:
    """Component id -> its newest MLMD execution, e.g. for timings or execution order."""
    store = metadata_store_of(config)
    newest = {}
    for node in store.get_contexts_by_type("node"):
        executions = store.get_executions_by_context(node.id)
        if executions:
            newest[node.name.split(".", 1)[1]] = _newest(executions)
    return newest


def newest_artifact(config: PipelineConfig, type_name: str):
    """The newest MLMD artifact of `type_name` (e.g. "ModelRun", "ModelBlessing")."""
    return _newest(metadata_store_of(config).get_artifacts_by_type(type_name))


def read_outcome(metadata_config) -> RunOutcome:
    """The newest blessing, its overall accuracy, and where the newest push landed (if any)."""
    store = metadata_store.MetadataStore(metadata_config)
    blessings = store.get_artifacts_by_type("ModelBlessing")
    evaluations = store.get_artifacts_by_type("ModelEvaluation")
    pushes = store.get_artifacts_by_type("PushedModel")
    blessed = bool(blessings) and _newest(blessings).custom_properties["blessed"].int_value == 1
    accuracy = (overall_metrics(_newest(evaluations).uri).get(ACCURACY_METRIC)
                if evaluations else None)
    pushed_model_dir = None
    if pushes and _newest(pushes).custom_properties["pushed"].int_value == 1:
        pushed_model_dir = _newest(pushes).custom_properties["pushed_destination"].string_value
    shipped, reason = (), ""
    if pushed_model_dir:
        entry = read_manifest(pushed_model_dir)[0].get("tflite")
        if isinstance(entry, dict):
            shipped, reason = tuple(entry.get("shipped") or ()), str(entry.get("reason") or "")
        else:
            reason = "the version was published without one"
    return RunOutcome(blessed=blessed, accuracy=accuracy, pushed_model_dir=pushed_model_dir,
                      tflite_shipped=shipped, tflite_reason=reason)


def _newest(items):
    return max(items, key=lambda item: item.id)
