"""`retrain` on data that arrives in spans, with the DAG orchestrated by TFX's BeamDagRunner.

The first span runs the whole pipeline under BeamDagRunner (real Beam, real MLMD); asking again
starts nothing; a new span starts a run that trains on it.
"""

import pathlib
import subprocess
import sys

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline.config import PipelineConfig
from pipeline.local_runner import newest_executions, run_local
from pipeline.metadata import metadata_store_of
from pipeline.preflight import preflight
from pipeline.retrain import last_trained_span, retrain
from tests.conftest import REPO_ROOT, write_sample

COMPONENTS = ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
              "Trainer", "Evaluator", "TFLiteExport", "Pusher")
OPTIONS = {"data.file_pattern": "span-{SPAN}/*.csv", "training.train_steps": "40",
           "training.epochs": "1", "evaluation.min_accuracy": "0.5",
           "evaluation.max_accuracy_drop": "1.0",
           # 200 rows a span: a from-scratch vocabulary of ~160 training rows leaves ~11% of the
           # eval words [UNK], which is what such small data is, and not what this test is about.
           "data_checks.max_unk_rate": "0.2"}


def _config(tmp_path: pathlib.Path, orchestrator: str) -> PipelineConfig:
    return PipelineConfig.load(None, [f"data.path={tmp_path / 'data'}",
                                      f"output_dir={tmp_path / 'outputs'}",
                                      f"orchestrator={orchestrator}",
                                      *(f"{key}={value}" for key, value in OPTIONS.items())])


def _retrain(config: PipelineConfig):
    return retrain(preflight(config).data.span, metadata_store_of(config),
                   lambda: run_local(config))


@pytest.fixture(scope="module")
def first_span(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("spans")
    write_sample(tmp_path / "data" / "span-1", rows=200)
    config = _config(tmp_path, orchestrator="beam")
    return tmp_path, config, _retrain(config)


def test_the_first_span_runs_every_component_under_the_beam_dag_runner(first_span):
    _, config, decision = first_span
    assert decision.started and decision.newest_span == 1 and decision.last_trained_span is None
    executions = newest_executions(config)
    assert all(executions[component].last_known_state == metadata_store_pb2.Execution.COMPLETE
               for component in COMPONENTS)
    outcome = decision.run_result
    assert outcome.blessed and pathlib.Path(outcome.pushed_model_dir, "saved_model.pb").is_file()
    assert last_trained_span(metadata_store_of(config)) == 1


def test_retrain_without_a_new_span_starts_nothing(first_span):
    tmp_path, config, _ = first_span
    runs_before = len(metadata_store_of(config).get_contexts_by_type("pipeline_run"))
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "retrain", "--data-path", str(tmp_path / "data"),
         "--output-dir", str(tmp_path / "outputs"),
         *(arg for key, value in OPTIONS.items() for arg in ("--set", f"{key}={value}"))],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("nothing to do: the newest span 1 is not newer than the last trained span 1"
            in result.stdout)
    assert len(metadata_store_of(config).get_contexts_by_type("pipeline_run")) == runs_before


def test_a_new_span_starts_a_run_that_trains_on_it(first_span):
    tmp_path, _, _ = first_span
    write_sample(tmp_path / "data" / "span-2", rows=150)
    config = _config(tmp_path, orchestrator="local")
    decision = _retrain(config)
    assert decision.started and (decision.newest_span, decision.last_trained_span) == (2, 1)
    assert decision.run_result.accuracy is not None  # the run reached the Evaluator
    assert last_trained_span(metadata_store_of(config)) == 2
