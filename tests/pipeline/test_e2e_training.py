"""The Trainer's scaling and safety features through the whole DAG (real LocalDagRunner, Beam,
MLMD): two local workers under MultiWorkerMirroredStrategy, mixed bfloat16, TensorBoard curves,
a SIGKILLed Trainer that resumes, warm start from the blessed model, a worker that dies, and
multi-worker training as a TFJob on a local stand-in for the Kubeflow Training Operator.

All runs share one output folder and one data sample, so after the first run ExampleGen to
Transform come from the cache and each test pays only for its Trainer, Evaluator and Pusher.
"""

import json
import logging
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from tfx.utils import path_utils

from modules import features
from modules.local_cluster import LocalClusterError, run_local_cluster
from modules.tfjob import TFJobError, TFJobSettings, run_tfjob
from modules.training import TRAINING_STATS_FILE, TrainingJob
from pipeline.config import PipelineConfig
from pipeline.local_runner import newest_artifact, newest_executions, run_local
from tests.conftest import REPO_ROOT, write_sample
from tests.modules.training_operator_server import OperatorState
from tests.modules.training_operator_server import serve as serve_operator

SENTENCES = ["The battery lasts all day. Great value.", "Avoid. The zipper jammed on day one."]
BASE_SETTINGS = ("training.train_steps=8", "training.epochs=1", "training.batch_size=16",
                 "training.log_every_steps=2", "evaluation.min_accuracy=0",
                 "evaluation.max_accuracy_drop=1")
MULTI_WORKER = ("training.strategy=multi_worker", "training.num_workers=2")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("training")
    write_sample(root / "data", rows=200)
    return root


def _settings(workspace: pathlib.Path, *overrides: str) -> list[str]:
    return [f"data.path={workspace / 'data'}", f"output_dir={workspace / 'outputs'}",
            *BASE_SETTINGS, *overrides]


def _config(workspace: pathlib.Path, *overrides: str) -> PipelineConfig:
    return PipelineConfig.load(None, _settings(workspace, *overrides))


def _predict(model_dir: str) -> dict[str, np.ndarray]:
    loaded = tf.saved_model.load(model_dir)
    output = loaded.signatures[features.TEXT_SIGNATURE](text=tf.constant(SENTENCES))
    return {name: tensor.numpy() for name, tensor in output.items()}


def _trained_model_dir(config: PipelineConfig) -> str:
    """The newest Trainer's SavedModel, for runs that stop at the Trainer (nothing pushed)."""
    return path_utils.serving_model_path(newest_artifact(config, "Model").uri)


def _newest_workers_dir(config: PipelineConfig) -> pathlib.Path:
    return max(pathlib.Path(config.pipeline_root, "trainer_backups").glob("*/workers"),
               key=lambda path: path.stat().st_mtime)


def test_two_local_workers_both_train_and_the_chief_exports(workspace):
    config = _config(workspace, *MULTI_WORKER)
    outcome = run_local(config)
    logs = {index: (_newest_workers_dir(config) / f"worker-{index}.log").read_text()
            for index in (0, 1)}
    for index, log in logs.items():
        assert "multi_worker strategy (CollectiveAllReduceStrategy) with 2 replica(s)" in log
        assert f"Trainer (worker {index} of 2): epoch 1 step 8/8" in log
    assert "exported the serving model" in logs[0] and "exported the serving model" not in logs[1]
    prediction = _predict(outcome.pushed_model_dir)
    np.testing.assert_allclose(prediction[features.PROBABILITIES].sum(axis=1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def bfloat16_run(workspace):
    config = _config(workspace, "training.precision=mixed_bfloat16")
    return config, run_local(config)


def _has_bfloat16(graph: tf.compat.v1.GraphDef) -> bool:
    nodes = [*graph.node, *(node for function in graph.library.function
                            for node in function.node_def)]
    return any(value.type == tf.bfloat16.as_datatype_enum
               for node in nodes for value in node.attr.values())


def test_mixed_bfloat16_trains_in_bfloat16_and_ships_a_float32_model(bfloat16_run):
    config, outcome = bfloat16_run
    model_run = pathlib.Path(newest_artifact(config, "ModelRun").uri)
    stats = json.loads((model_run / TRAINING_STATS_FILE).read_text())
    assert np.isfinite(stats["last_epoch"]["loss"])
    # The train step TensorBoard recorded computed in bfloat16...
    train_graphs = [tf.compat.v1.GraphDef.FromString(event.graph_def)
                    for event_file in model_run.glob("train/events.out.tfevents.*")
                    for event in tf.compat.v1.train.summary_iterator(str(event_file))
                    if event.graph_def]
    assert train_graphs and all(_has_bfloat16(graph) for graph in train_graphs)
    # ...and the export computes in float32 (portable to any CPU, convertible to TFLite).
    loaded = tf.saved_model.load(outcome.pushed_model_dir)
    predict_text = loaded.signatures[features.TEXT_SIGNATURE]
    assert not _has_bfloat16(predict_text.graph.as_graph_def())
    output = predict_text(text=tf.constant(SENTENCES))
    assert output[features.PROBABILITIES].dtype == tf.float32


def test_tensorboard_gets_loss_accuracy_and_learning_rate_per_step_and_epoch(bfloat16_run):
    config, _ = bfloat16_run
    model_run = pathlib.Path(newest_artifact(config, "ModelRun").uri)
    tags = set()
    for event_file in model_run.glob("*/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"batch_loss", "batch_accuracy", "batch_learning_rate", "epoch_loss",
            "epoch_accuracy", "epoch_learning_rate"} <= tags


def test_warm_start_begins_from_the_last_blessed_model(workspace, bfloat16_run):
    """The bfloat16 run's model is the workspace's last blessed one (each run here is blessed)."""
    _, blessed = bfloat16_run
    assert blessed.pushed_model_dir
    # With a learning rate of 0 the warm-started model must predict exactly as the blessed one
    # (in the same precision); a fresh (seeded) initialisation would not.
    config = _config(workspace, "training.precision=mixed_bfloat16", "training.warm_start=true",
                     "training.learning_rate=0")
    run_local(config, last_node="Trainer")
    np.testing.assert_allclose(_predict(_trained_model_dir(config))[features.PROBABILITIES],
                               _predict(blessed.pushed_model_dir)[features.PROBABILITIES],
                               atol=1e-6)


def _cli(workspace: pathlib.Path, *overrides: str) -> list[str]:
    command = [sys.executable, "-m", "pipeline.cli", "run"]
    for setting in _settings(workspace, *overrides):
        command += ["--set", setting]
    return command


def test_a_sigkilled_trainer_resumes_from_its_last_checkpoint(workspace, caplog):
    """~1.5 min: a CLI run (TFX imports) killed at its third backup (step 15 of 300, enough
    steps that the kill lands while training); the rerun, in this process, stops after the
    Trainer."""
    steps = 300
    settings = (f"training.train_steps={steps}", "training.checkpoint_every_steps=5",
                "training.keep_checkpoints=2", "training.log_every_steps=100")
    config = _config(workspace, *settings)
    backups = pathlib.Path(config.pipeline_root, "trainer_backups")
    started = time.monotonic()
    first = subprocess.Popen(_cli(workspace, *settings), cwd=REPO_ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Backups are numbered in order; at the third, the first was dropped (two are kept),
        # so at most two files are ever there to count.
        newest = 0
        while newest < 3 and time.monotonic() - started < 600:
            assert first.poll() is None, "the run ended before it could be killed"
            newest = max(_checkpoint_numbers(backups), default=0)
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    state_files = list(backups.glob("*/chief/checkpoint"))
    assert len(state_files) == 1
    kept = re.findall(r'all_model_checkpoint_paths: "(ckpt-\d+)"', state_files[0].read_text())
    assert len(kept) == 2  # training.keep_checkpoints

    with caplog.at_level(logging.INFO, logger="absl"):  # the Trainer logs through absl
        run_local(config, last_node="Trainer")
    resumed = re.search(r"resumed from the checkpoint at step (\d+)", caplog.text)
    assert resumed, "the rerun did not resume"
    resumed_step = int(resumed.group(1))
    assert 0 < resumed_step < steps
    stats = json.loads(pathlib.Path(newest_artifact(config, "ModelRun").uri,
                                    TRAINING_STATS_FILE).read_text())
    assert stats["train_steps"] == steps - resumed_step  # only the missing steps were trained
    assert not list(backups.glob("*/chief"))  # backups are dropped once the export exists
    assert _predict(_trained_model_dir(config))[features.PROBABILITIES].shape == (2, 2)


def _checkpoint_numbers(backups: pathlib.Path) -> list[int]:
    return sorted(int(path.name.split("-")[1].split(".")[0])
                  for path in backups.glob("*/chief/ckpt-*.index"))


def _job_from_cached_run(workspace: pathlib.Path, tmp_path: pathlib.Path, train_steps: int,
                         **training: object) -> TrainingJob:
    """A two-worker TrainingJob on the shared run's Transform outputs and Trainer config."""
    # The first test's run up to its Trainer, from the cache (run when this test runs alone):
    # its Transform outputs and its Trainer's config, already multi-worker, feed a job.
    config = _config(workspace, *MULTI_WORKER)
    run_local(config, last_node="Trainer")
    transform = pathlib.Path(config.pipeline_root, "Transform")
    examples = max((transform / "transformed_examples").iterdir(), key=os.path.getmtime)
    custom_config = json.loads(
        newest_executions(config)["Trainer"].custom_properties["custom_config"].string_value)
    custom_config["training"].update(training)
    custom_config["backup_root"] = str(tmp_path / "backups")
    return TrainingJob(train_files=[f"{examples}/Split-train/*"],
                       eval_files=[f"{examples}/Split-eval/*"],
                       transform_output=str(max((transform / "transform_graph").iterdir(),
                                                key=os.path.getmtime)),
                       serving_model_dir=str(tmp_path / "export"),
                       model_run_dir=str(tmp_path / "model_run"), train_steps=train_steps,
                       custom_config=custom_config)


def test_a_dying_worker_fails_the_run_with_its_log_and_stops_the_others(workspace, tmp_path):
    job = _job_from_cached_run(workspace, tmp_path, train_steps=100000, checkpoint_every_steps=0,
                               log_every_steps=1)
    worker_dir = tmp_path / "workers"
    killer = threading.Thread(target=_kill_worker_once_training, args=(worker_dir, 1))
    killer.start()
    started = time.monotonic()
    with pytest.raises(LocalClusterError, match="worker 1 was killed by SIGKILL") as failure:
        run_local_cluster(job.to_json(), str(worker_dir), num_workers=2, base_port=0)
    killer.join()
    assert "the other workers were stopped" in str(failure.value)
    assert time.monotonic() - started < 600
    assert not _worker_pids(worker_dir / "job.json")  # worker 0 did not outlive the failure


def _kill_worker_once_training(worker_dir: pathlib.Path, index: int) -> None:
    deadline = time.monotonic() + 600
    log = worker_dir / f"worker-{index}.log"
    while time.monotonic() < deadline:
        if log.exists() and f"Trainer (worker {index} of 2): epoch 1 step" in log.read_text():
            for pid, worker_index in _worker_pids(worker_dir / "job.json").items():
                if worker_index == index:
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def _worker_pids(job_path: pathlib.Path) -> dict[int, int]:
    """pid -> worker index of the live worker processes running `job_path`."""
    pids = {}
    for proc in pathlib.Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(job_path).encode() in (proc / "cmdline").read_bytes():
                environ = (proc / "environ").read_bytes().split(b"\0")
                tf_config = next(item for item in environ if item.startswith(b"TF_CONFIG="))
                pids[int(proc.name)] = json.loads(tf_config[10:])["task"]["index"]
        except (OSError, StopIteration):
            continue
    return pids


@pytest.fixture
def training_operator(tmp_path):
    """A Training Operator on 127.0.0.1 (no cluster exists here) and a Kubernetes API client."""
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    state = OperatorState(tmp_path / "replicas", python_path=str(REPO_ROOT))
    state.work_dir.mkdir()
    server = serve_operator(state)
    api = client.CustomObjectsApi(client.ApiClient(
        client.Configuration(host=f"http://127.0.0.1:{server.server_port}")))
    yield state, api
    for key in list(state.processes):
        state.stop(key)
    server.shutdown()


def test_a_tfjob_trains_on_a_chief_and_a_worker_and_the_chief_exports(workspace, tmp_path,
                                                                       training_operator):
    state, api = training_operator
    job = _job_from_cached_run(workspace, tmp_path, train_steps=8)
    settings = TFJobSettings(image="registry.example.com/textclf:1", namespace="ml")
    run_tfjob(job, num_workers=2, settings=settings, api=api)
    (manifest,) = state.submitted
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in replicas.items()} == {"Chief": 1, "Worker": 1}
    assert replicas["Chief"]["template"]["spec"]["containers"][0]["image"] == settings.image
    logs = {path.stem.rsplit("-", 2)[-2]: path.read_text()
            for path in state.work_dir.glob("*.log")}
    assert "Trainer (chief 0 of 1): epoch 1 step 8/8" in logs["chief"]
    assert "Trainer (worker 0 of 1): epoch 1 step 8/8" in logs["worker"]
    assert "exported the serving model" in logs["chief"]
    assert "exported the serving model" not in logs["worker"]
    prediction = _predict(job.serving_model_dir)
    np.testing.assert_allclose(prediction[features.PROBABILITIES].sum(axis=1), 1.0, rtol=1e-5)
    assert state.jobs == {}  # a finished job is deleted, with its pods


def test_a_failed_tfjob_fails_the_trainer_with_the_operators_reason(workspace, tmp_path,
                                                                    training_operator):
    _, api = training_operator
    job = _job_from_cached_run(workspace, tmp_path, train_steps=8)
    job.transform_output = str(tmp_path / "missing_transform_graph")  # every replica fails
    with pytest.raises(TFJobError, match=r"TFJob ml/textclf-train-\w+ failed: TFJobFailed .*"
                                         r"replica\(s\) failed.*kubectl logs -n ml"):
        run_tfjob(job, num_workers=2, settings=TFJobSettings(image="img", namespace="ml"),
                  api=api)
