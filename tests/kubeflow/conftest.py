"""One compiled Kubeflow spec, shared: compiling imports TFX and takes most of a minute."""

import pathlib

import pytest

from pipeline.config import PipelineConfig

IMAGE = "registry.example.com/ml/textclf-pipeline:1.2.3"
PIPELINE_ROOT = "gs://textclf-bucket/pipelines"


@pytest.fixture(scope="session")
def compiled_spec(tmp_path_factory, offline_checkpoint) -> pathlib.Path:
    """The pipeline fine-tuning the offline checkpoint, compiled for Kubeflow Pipelines."""
    from kubeflow.compiler import compile_pipeline  # pylint: disable=import-outside-toplevel

    config = PipelineConfig.load(overrides=[
        f"kubeflow.image={IMAGE}", f"kubeflow.pipeline_root={PIPELINE_ROOT}",
        "data.label_values=negative,positive", f"model.pretrained={offline_checkpoint}"])
    return pathlib.Path(compile_pipeline(
        config, str(tmp_path_factory.mktemp("kubeflow") / "textclf.yaml")))
