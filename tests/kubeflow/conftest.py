"""One compiled Kubeflow spec, shared: compiling imports TFX and takes most of a minute."""

import pathlib

import pytest

from pipeline.config import PipelineConfig
from tests.conftest import REPO_ROOT

IMAGE = "registry.example.com/ml/textclf-pipeline:1.2.3"
PIPELINE_ROOT = "gs://textclf-bucket/pipelines"
# The cluster configuration the README and the retrain workflow use.
CLUSTER_CONFIG = REPO_ROOT / "kubeflow" / "pipeline.yaml"
NUM_WORKERS = 3


@pytest.fixture(scope="session")
def compiled_spec(tmp_path_factory, offline_checkpoint) -> pathlib.Path:
    """The shipped cluster configuration, fine-tuning the offline checkpoint on 3 workers."""
    from kubeflow.compiler import compile_pipeline  # pylint: disable=import-outside-toplevel

    config = PipelineConfig.load(str(CLUSTER_CONFIG), overrides=[
        f"kubeflow.image={IMAGE}", f"kubeflow.pipeline_root={PIPELINE_ROOT}",
        f"kubeflow.serving_root={PIPELINE_ROOT}/serving_models",
        f"model.pretrained={offline_checkpoint}", "training.strategy=multi_worker",
        f"training.num_workers={NUM_WORKERS}"])
    return pathlib.Path(compile_pipeline(
        config, str(tmp_path_factory.mktemp("kubeflow") / "textclf.yaml")))
