"""Compiles the pipeline for Kubeflow Pipelines v2 (`textclf compile`).

Compiling is hermetic: the project is installed in the image (see the Dockerfile), Transform and
Trainer reference their code by module path, and nothing is uploaded, so it needs no network,
bucket or cluster. The data folder and the train arguments stay runtime parameters of the spec.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Optional

from pipeline.checkpoint import Checkpoint, resolve_checkpoint
from pipeline.config import REMOTE_ROOT_SCHEMES, PipelineConfig
from pipeline.data_check import declared_data
from pipeline.training_plan import run_plan

# Where the Dockerfile puts the project (its WORKDIR); checkpoints under checkpoints/ go with it.
IMAGE_PROJECT_DIR = "/opt/textclf"
PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent
# Runtime parameters a submitted run or a schedule may set.
DATA_PATH_PARAMETER = "data_path"
TRAIN_ARGS_PARAMETER = "train_args"


class KubeflowConfigError(ValueError):
    """The `kubeflow` configuration cannot produce a pipeline that runs on a cluster."""


def check_pipeline_root(root: str) -> None:
    """A Kubeflow step's pod can write to an object store or a mounted volume, nothing else."""
    if not root:
        raise KubeflowConfigError(
            "kubeflow.pipeline_root is empty: set a gs://, s3:// or minio:// bucket path, or an "
            "absolute path on a volume every step mounts (--set kubeflow.pipeline_root=...)")
    if root.startswith(REMOTE_ROOT_SCHEMES):
        if root.rstrip("/").count("/") < 2:
            raise KubeflowConfigError(f"kubeflow.pipeline_root {root!r} names no bucket")
        return
    if "://" in root:
        raise KubeflowConfigError(
            f"kubeflow.pipeline_root {root!r} has a scheme Kubeflow steps cannot write to: use "
            f"{', '.join(REMOTE_ROOT_SCHEMES)} or an absolute volume path")
    if not root.startswith("/"):
        raise KubeflowConfigError(
            f"kubeflow.pipeline_root {root!r} is relative: each step runs in its own pod, so give "
            "a bucket path or an absolute path on a shared volume")
    if pathlib.Path(root).resolve().is_relative_to(PROJECT_DIR):
        raise KubeflowConfigError(
            f"kubeflow.pipeline_root {root!r} is inside this checkout, which no pod can see: "
            "use a bucket or a shared volume path")


def kubeflow_config(config: PipelineConfig) -> PipelineConfig:
    """The run's configuration as the cluster sees it: data under the cluster's data path."""
    kubeflow = config.kubeflow
    check_pipeline_root(kubeflow.pipeline_root)
    root = kubeflow.pipeline_root.rstrip("/")
    data_path = kubeflow.data_path or f"{root}/data"
    return dataclasses.replace(config, data=dataclasses.replace(config.data, path=data_path))


def image_path(path: str, option: str, fix: str) -> pathlib.PurePosixPath:
    """Where the image holds `path`, a file or folder of the project (the Dockerfile copies it).

    Raises:
      KubeflowConfigError: `path` is outside the project, so the image would not carry it.
    """
    resolved = pathlib.Path(path).resolve()
    if not resolved.is_relative_to(PROJECT_DIR):
        raise KubeflowConfigError(
            f"{option} {path} is outside the project, so the image would not carry it: {fix}")
    return pathlib.PurePosixPath(IMAGE_PROJECT_DIR, resolved.relative_to(PROJECT_DIR).as_posix())


def image_checkpoint(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint as the image holds it: the Dockerfile copies checkpoints/ with the project."""
    in_image = image_path(checkpoint.path, "model.pretrained",
                          "copy the checkpoint under checkpoints/ (see `make pretrained`)")
    tokenizer_file = pathlib.Path(checkpoint.tokenizer_file).resolve().relative_to(
        pathlib.Path(checkpoint.path).resolve())
    return dataclasses.replace(checkpoint, path=str(in_image),
                               tokenizer_file=str(in_image / tokenizer_file))


def compile_pipeline(config: PipelineConfig, output_path: Optional[str] = None) -> str:
    """Writes the Kubeflow Pipelines v2 spec (YAML) of `create_pipeline` and returns its path.

    Raises:
      KubeflowConfigError, InputDataError, CheckpointError: before anything is written.
    """
    # TFX is imported here, not at module level: `textclf --help` should not take 20 s.
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel

    from pipeline.pipeline import Placement, create_pipeline  # pylint: disable=import-outside-toplevel

    cluster_config = kubeflow_config(config)
    data = declared_data(cluster_config.data)
    checkpoint = None
    if config.model.pretrained:
        checkpoint = image_checkpoint(
            resolve_checkpoint(config.model.pretrained, config.model.max_seq_length))
        cluster_config = dataclasses.replace(cluster_config, model=dataclasses.replace(
            cluster_config.model, pretrained=checkpoint.path))
    root = config.kubeflow.pipeline_root.rstrip("/")
    placement = Placement(
        pipeline_root=root,
        serving_dir=config.cluster_serving_dir,
        beam_pipeline_args=list(config.kubeflow.beam_pipeline_args),
        input_base=tfx.dsl.experimental.RuntimeParameter(
            name=DATA_PATH_PARAMETER, ptype=str, default=cluster_config.data.path),
        train_args=tfx.dsl.experimental.RuntimeParameter(
            name=TRAIN_ARGS_PARAMETER, ptype=str,
            default=train_args(run_plan(config).train_steps)),
        tfjob=tfjob_settings(config),
        schema_file=str(image_path(config.data.schema_file, "data.schema_file",
                                   "keep the reviewed schema under schemas/"))
        if config.data.schema_file else "")
    output = pathlib.Path(output_path or config.kubeflow.package_path)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow.image,
            # Pipeline spec schema 2.1 (typed parameters), which KFP 2.x servers and clients read;
            # TFX 1.16 fails writing 2.0 specs as YAML.
            use_pipeline_spec_2_1=True),
        output_dir=str(output.parent), output_filename=output.name)
    runner.run(create_pipeline(cluster_config, data, checkpoint, placement=placement))
    return str(output)


def tfjob_settings(config: PipelineConfig) -> dict:
    """`modules.tfjob.TFJobSettings` for multi-worker training: replicas run the pipeline image."""
    kubeflow = config.kubeflow
    return {"image": kubeflow.image, "namespace": kubeflow.namespace, "cpu": kubeflow.worker_cpu,
            "memory": kubeflow.worker_memory, "gpus": kubeflow.worker_gpus,
            "timeout_seconds": kubeflow.tfjob_timeout_seconds}


def train_args(train_steps: int) -> str:
    """The `train_args` runtime parameter's value: TFX's TrainArgs as JSON (0 steps: the Trainer
    counts `training.epochs` passes over the training rows)."""
    return json.dumps({"num_steps": train_steps})
