"""Multi-worker training on Kubernetes: the Trainer step submits a Kubeflow Training Operator TFJob.

The Operator starts one chief and the workers, each with its TF_CONFIG, and every replica runs the
worker entrypoint of a local multi-worker run (`python -m modules.local_cluster JOB_URI`) on the
same `TrainingJob`, so MultiWorkerMirroredStrategy trains the same way and only the chief exports.
The Trainer step waits for the job and fails with the Operator's reason when a replica fails; a
rerun resumes from the crash-safe backups, which live on the pipeline root with the job file.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

import tensorflow as tf
from absl import logging

from modules.training import TrainingJob

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
POLL_SECONDS = 5.0
_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class TFJobError(RuntimeError):
    """The TFJob failed, timed out, or finished without the chief's export."""


@dataclasses.dataclass(frozen=True)
class TFJobSettings:
    """What each replica runs on: the pipeline's image and the resources of one worker."""

    image: str
    namespace: str = ""
    cpu: str = "4"
    memory: str = "16Gi"
    gpus: int = 0
    timeout_seconds: int = 24 * 3600


def tfjob_manifest(name: str, job_uri: str, num_workers: int, settings: TFJobSettings) -> dict:
    """The TFJob: a chief plus `num_workers - 1` workers, each running the worker entrypoint."""
    resources: dict[str, Any] = {"requests": {"cpu": settings.cpu, "memory": settings.memory}}
    if settings.gpus:
        resources["limits"] = {"nvidia.com/gpu": settings.gpus}
    container = {"name": "tensorflow", "image": settings.image,
                 "command": ["python", "-m", "modules.local_cluster", job_uri],
                 "env": [{"name": "TF_USE_LEGACY_KERAS", "value": "1"}],
                 "resources": resources}
    # restartPolicy Never: a dead replica fails the job at once instead of stalling its peers'
    # collectives; rerunning the Trainer resumes from the backups.
    replica = {"restartPolicy": "Never", "template": {"spec": {"containers": [container]}}}
    replicas = {"Chief": {"replicas": 1, **replica}}
    if num_workers > 1:
        replicas["Worker"] = {"replicas": num_workers - 1, **replica}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TFJob",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "textclf"}},
            "spec": {"runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "Running"},
                     "tfReplicaSpecs": replicas}}


def run_tfjob(job: TrainingJob, num_workers: int, settings: TFJobSettings,
              api: Optional[Any] = None) -> None:
    """Writes the job file beside the backups, runs the TFJob, and waits for the chief's export.

    Args:
      api: a `kubernetes.client.CustomObjectsApi`; by default from the pod's service account
        (or the local kubeconfig when run outside a cluster).
    """
    api = api or _custom_objects_api()
    namespace = settings.namespace or _pod_namespace()
    job_uri = f"{job.backup_dir}/tfjob/job.json"
    tf.io.gfile.makedirs(job_uri.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(job_uri, "w") as job_file:
        job_file.write(job.to_json())
    name = f"textclf-train-{job.backup_dir.rstrip('/').rsplit('/', 1)[-1]}"
    # A job of this name is left over from an interrupted Trainer: the backups carry its progress.
    _delete(api, namespace, name)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                        tfjob_manifest(name, job_uri, num_workers, settings))
    logging.info("Trainer: submitted TFJob %s/%s (1 chief + %d workers, image %s)", namespace,
                 name, num_workers - 1, settings.image)
    state = _wait(api, namespace, name, settings.timeout_seconds)
    if state["type"] != "Succeeded":
        raise TFJobError(
            f"TFJob {namespace}/{name} {state['type'].lower()}: {state.get('reason', '')} "
            f"{state.get('message', '')}".strip() + "; replica logs: kubectl logs -n "
            f"{namespace} -l training.kubeflow.org/job-name={name}")
    _delete(api, namespace, name)
    if not tf.io.gfile.exists(f"{job.serving_model_dir}/saved_model.pb"):
        raise TFJobError(f"TFJob {namespace}/{name} succeeded but the chief wrote no model to "
                         f"{job.serving_model_dir}")
    logging.info("Trainer: TFJob %s/%s succeeded", namespace, name)


def _wait(api: Any, namespace: str, name: str, timeout_seconds: float) -> dict:
    """Polls the job until a terminal condition (Succeeded or Failed) or the timeout."""
    deadline = time.monotonic() + timeout_seconds
    last_type = ""
    while time.monotonic() < deadline:
        status = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                  name).get("status", {})
        current = [condition for condition in status.get("conditions", [])
                   if condition.get("status") == "True"]
        if current:
            condition = current[-1]
            if condition["type"] != last_type:
                last_type = condition["type"]
                logging.info("Trainer: TFJob %s/%s is %s", namespace, name, last_type)
            if condition["type"] in ("Succeeded", "Failed"):
                return condition
        time.sleep(POLL_SECONDS)
    _delete(api, namespace, name)
    return {"type": "Timed out", "message": f"after {timeout_seconds} s; the job was deleted"}


def _delete(api: Any, namespace: str, name: str) -> None:
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status != 404:
            raise


def _custom_objects_api() -> Any:
    # pylint: disable=import-outside-toplevel
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def _pod_namespace() -> str:
    try:
        with open(_NAMESPACE_FILE, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return "kubeflow"
