"""The Kubeflow Pipelines v2 spec of the DAG: strict parse, wiring, image, parameters, no local paths."""

import json
import pathlib

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kubeflow.compiler import (DATA_PATH_PARAMETER, IMAGE_PROJECT_DIR, TRAIN_ARGS_PARAMETER,
                               KubeflowConfigError, check_pipeline_root, image_checkpoint)
from pipeline.checkpoint import resolve_checkpoint
from tests.conftest import REPO_ROOT, checkpoint_copy
from tests.kubeflow.conftest import IMAGE, NUM_WORKERS, PIPELINE_ROOT

# Component -> the components whose outputs it consumes. The shipped configuration validates
# against the reviewed schema (ImportSchemaGen), not one inferred per run.
EXPECTED_INPUTS = {
    "CsvExampleGen": set(),
    "StatisticsGen": {"CsvExampleGen"},
    "ImportSchemaGen": set(),
    "ExampleValidator": {"StatisticsGen", "ImportSchemaGen"},
    "TextChecks": {"CsvExampleGen", "last_accepted_data_resolver"},
    "DataGate": {"ExampleValidator", "TextChecks"},
    "Transform": {"CsvExampleGen", "ImportSchemaGen"},
    "TokenizerParity": {"CsvExampleGen", "Transform"},
    "Trainer": {"Transform", "ImportSchemaGen"},
    "Evaluator": {"CsvExampleGen", "Trainer", "latest_blessed_model_resolver-model-resolver"},
    "TFLiteExport": {"CsvExampleGen", "Trainer"},
    "Pusher": {"Trainer", "Evaluator", "TFLiteExport"},
}
# Resolvers: MLMD queries, not containers.
RESOLVERS = {"last_accepted_data_resolver", "latest_blessed_model_resolver-model-resolver",
             "latest_blessed_model_resolver-model-blessing-resolver"}


@pytest.fixture(scope="module")
def spec(compiled_spec) -> pipeline_spec_pb2.PipelineSpec:
    document = yaml.safe_load(compiled_spec.read_text(encoding="utf-8"))
    # Strict: an unknown field anywhere raises.
    return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec(),
                                 ignore_unknown_fields=False)


def test_every_component_is_there_with_its_inputs(spec):
    tasks = spec.root.dag.tasks
    assert set(EXPECTED_INPUTS) <= set(tasks)
    for name, producers in EXPECTED_INPUTS.items():
        consumed = {artifact.task_output_artifact.producer_task
                    for artifact in tasks[name].inputs.artifacts.values()}
        assert consumed == producers, name
        assert producers <= set(tasks[name].dependent_tasks), name
    # The data gate must pass before Transform, the parity check before the Trainer.
    assert "DataGate" in tasks["Transform"].dependent_tasks
    assert "TokenizerParity" in tasks["Trainer"].dependent_tasks
    assert set(tasks) == set(EXPECTED_INPUTS) | RESOLVERS


def test_the_reviewed_schema_is_read_where_the_image_holds_it(spec):
    schema_file = spec.root.dag.tasks["ImportSchemaGen"].inputs.parameters["schema_file"]
    assert schema_file.runtime_value.constant.string_value == \
        f"{IMAGE_PROJECT_DIR}/schemas/textclf.pbtxt"
    assert (REPO_ROOT / "schemas" / "textclf.pbtxt").is_file()


def test_the_pusher_is_guarded_by_the_evaluators_blessing(spec):
    blessing = spec.root.dag.tasks["Pusher"].inputs.artifacts["model_blessing"]
    assert blessing.task_output_artifact.producer_task == "Evaluator"
    assert blessing.task_output_artifact.output_artifact_key == "blessing"


def test_every_container_runs_the_configured_image(spec):
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    containers = {name: executor["container"] for name, executor in executors.items()
                  if "container" in executor}
    # Every component runs in a container; only the resolver's MLMD queries do not.
    assert {name.removesuffix("_executor") for name in containers} == set(EXPECTED_INPUTS)
    assert {container["image"] for container in containers.values()} == {IMAGE}


def test_data_path_and_train_args_are_runtime_parameters(spec):
    parameters = spec.root.input_definitions.parameters
    assert set(parameters) == {DATA_PATH_PARAMETER, TRAIN_ARGS_PARAMETER}
    example_gen = spec.root.dag.tasks["CsvExampleGen"].inputs.parameters["input_base"]
    assert example_gen.component_input_parameter == DATA_PATH_PARAMETER
    trainer = spec.root.dag.tasks["Trainer"].inputs.parameters["train_args"]
    assert trainer.component_input_parameter == TRAIN_ARGS_PARAMETER


def test_multi_worker_training_becomes_a_tfjob_in_the_pipeline_image(spec):
    trainer = spec.root.dag.tasks["Trainer"].inputs.parameters["custom_config"]
    custom_config = json.loads(trainer.runtime_value.constant.string_value)
    assert custom_config["training"]["num_workers"] == NUM_WORKERS
    assert custom_config["tfjob"]["image"] == IMAGE


def test_every_data_step_runs_beam_with_the_cluster_args(spec):
    """TextChecks and TokenizerParity count on Beam too: on a cluster they spread as
    StatisticsGen does."""
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    for task in ("StatisticsGen", "TextChecks", "Transform", "TokenizerParity", "Evaluator"):
        component = spec.components[spec.root.dag.tasks[task].component_ref.name]
        arguments = " ".join(executors[component.executor_label]["container"]["args"])
        assert "--direct_running_mode=multi_processing" in arguments, task


def test_beam_steps_use_the_configured_runner_args(compiled_spec):
    text = compiled_spec.read_text(encoding="utf-8")
    assert "--direct_running_mode=multi_processing" in text
    assert "--direct_running_mode=in_memory" not in text  # the local default stays local


def test_the_spec_holds_no_path_of_this_machine(compiled_spec, offline_checkpoint):
    text = compiled_spec.read_text(encoding="utf-8")
    for local in (str(REPO_ROOT), str(pathlib.Path.home()), "/tmp/"):
        assert local not in text
    # The checkpoint is referenced where the image holds it, and the artifacts go to the bucket.
    in_image = f"{IMAGE_PROJECT_DIR}/{offline_checkpoint.relative_to(REPO_ROOT).as_posix()}"
    assert in_image in text
    assert f"{PIPELINE_ROOT}/trainer_backups" in text
    assert json.dumps(f"{PIPELINE_ROOT}/serving_models/textclf")[1:-1] in text


@pytest.mark.parametrize("root, problem", [
    ("", "is empty"),
    ("outputs/pipelines", "is relative"),
    ("http://example.com/root", "has a scheme"),
    ("gs://", "names no bucket"),
    (str(REPO_ROOT / "outputs"), "inside this checkout"),
])
def test_a_pipeline_root_no_pod_can_use_is_refused(root, problem):
    with pytest.raises(KubeflowConfigError, match=problem):
        check_pipeline_root(root)


@pytest.mark.parametrize("root", ["gs://bucket/root", "s3://bucket/root", "minio://bucket/root",
                                  "/mnt/pipelines"])
def test_object_stores_and_volume_paths_are_accepted(root):
    check_pipeline_root(root)


def test_a_checkpoint_outside_the_project_is_refused(offline_checkpoint, tmp_path):
    outside = checkpoint_copy(offline_checkpoint, tmp_path / "checkpoint")
    with pytest.raises(KubeflowConfigError, match="outside the project.*checkpoints/"):
        image_checkpoint(resolve_checkpoint(str(outside), max_seq_length=64))


def test_the_drift_baseline_resolver_queries_only_accepted_statistics(spec):
    """Kubeflow gives every custom artifact type the title `tfx.Artifact`; the accepted data's
    standard type keeps the query from matching the pipeline's other reports."""
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    query = executors["last_accepted_data_resolver_executor"]["resolver"]
    assert query["outputArtifactQueries"]["accepted"]["filter"] == \
        'schema_title="tfx.Statistics" AND state=LIVE'
