"""The files that deploy the pipeline: workflows (actionlint), Dockerfile (hadolint), manifests."""

import pathlib
import re
import subprocess
import sys

import yaml

from kubeflow.compiler import IMAGE_PROJECT_DIR, check_pipeline_root
from pipeline.config import PipelineConfig
from tests.conftest import REPO_ROOT
from tests.kubeflow.conftest import CLUSTER_CONFIG

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
MANIFESTS = REPO_ROOT / "kubeflow" / "manifests"
BIN = pathlib.Path(sys.executable).parent


def _lint(tool: str, *paths: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *map(str, paths)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_workflows_pass_actionlint():
    assert [path.name for path in WORKFLOWS] == ["retrain.yml", "tests.yml"]
    result = _lint("actionlint", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text((REPO_ROOT / ".github" / "workflows" / "retrain.yml").read_text()
                      .replace("runs-on: ubuntu-22.04", "runs-on: ${{ matrix.os }}"))
    result = _lint("actionlint", broken)
    assert result.returncode != 0 and "matrix" in result.stdout


def test_retraining_runs_on_data_and_code_changes_on_a_schedule_and_by_hand():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "retrain.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(triggers["push"]["paths"]) == {"data/**", "modules/**", "pipeline/**"}
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    commands = "\n".join(step.get("run", "") for step in workflow["jobs"]["retrain"]["steps"])
    for expected in (".ci/run", "textclf compile", "textclf submit", "docker build"):
        assert expected in commands
    submit = next(step for step in workflow["jobs"]["retrain"]["steps"]
                  if "textclf submit" in step.get("run", ""))
    assert submit["env"]["KF_PIPELINES_TOKEN"] == "${{ secrets.KF_PIPELINES_TOKEN }}"


def test_the_dockerfile_passes_hadolint():
    result = _lint("hadolint", REPO_ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_base_image(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text((REPO_ROOT / "Dockerfile").read_text().replace(
        "FROM python:3.10.13-slim-bookworm", "FROM python:latest"))
    result = _lint("hadolint", dockerfile)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_the_image_installs_the_lock_and_every_package_where_the_compiler_expects():
    lines = [line.split() for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()
             if line and not line.startswith("#")]
    assert ["WORKDIR", IMAGE_PROJECT_DIR] in lines
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert "-r requirements.lock" in text and "--no-deps ." in text
    copied = {line[1].rstrip("/") for line in lines if line[0] == "COPY"}
    # Every package setup.py installs: a step imports any of them (TFLiteExport imports lite).
    packages = set(re.findall(r'"(\w+)"', (REPO_ROOT / "setup.py").read_text().split(
        "include=[", 1)[1].split("]", 1)[0]))
    assert {"pipeline", "components", "modules", "kubeflow", "serving", "lite"} <= packages
    assert packages | {"checkpoints", "requirements.lock", "setup.py"} <= copied


def test_the_shipped_cluster_config_is_usable():
    config = PipelineConfig.load(str(CLUSTER_CONFIG))
    check_pipeline_root(config.kubeflow.pipeline_root)
    assert config.data.label_values and "{SPAN}" in config.data.file_pattern


def test_kserve_serves_the_store_the_pusher_writes():
    config = PipelineConfig.load(str(CLUSTER_CONFIG))
    service = yaml.safe_load((MANIFESTS / "inference_service.yaml").read_text())
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1",
                                                        "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "tensorflow"
    assert model["storageUri"] == f"{config.kubeflow.serving_root}/{config.model_name}"



def test_the_textclf_predictor_serves_the_cluster_store_with_the_real_cli_arguments():
    from pipeline import cli  # pylint: disable=import-outside-toplevel

    service = yaml.safe_load((MANIFESTS / "inference_service_textclf.yaml").read_text())
    [container] = service["spec"]["predictor"]["containers"]
    args = cli._parser().parse_args(container["args"])  # pylint: disable=protected-access
    assert (args.command, args.kubeflow, args.host, args.port) == ("serve", True, "0.0.0.0",
                                                                   "8080")
    # The config named is the repository's, at its path inside the image.
    config_path = pathlib.PurePosixPath(args.config)
    assert config_path.is_relative_to(IMAGE_PROJECT_DIR)
    local_config = REPO_ROOT / config_path.relative_to(IMAGE_PROJECT_DIR)
    assert local_config == CLUSTER_CONFIG
    args.config = str(local_config)
    config = cli.load_config(args)
    assert config.cluster_serving_dir == config.kubeflow.serving_root  # where the Pusher writes
    # The probes are the paths the server leaves open without the token.
    from serving.auth import TOKEN_ENV  # pylint: disable=import-outside-toplevel
    from serving.edge import OPEN_PATHS  # pylint: disable=import-outside-toplevel
    assert {container["readinessProbe"]["httpGet"]["path"],
            container["livenessProbe"]["httpGet"]["path"]} <= set(OPEN_PATHS)
    assert [variable["name"] for variable in container["env"]] == [TOKEN_ENV]
    mount = container["volumeMounts"][0]["mountPath"]
    assert config.serving.verify_key_file.startswith(mount + "/")
