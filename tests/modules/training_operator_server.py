"""A Kubeflow Training Operator on 127.0.0.1: the Kubernetes API for TFJobs, replicas as processes.

No Kubernetes cluster can exist here. This server answers the custom-object calls the
`kubernetes` client makes for `kubeflow.org/v1` TFJobs (create, get, delete, with Kubernetes'
Status bodies for errors) and does what the Operator does with a job: it starts each replica of
the manifest's containers as a local process with its TF_CONFIG (chief and workers on free
ports), and reports the job's conditions from their exit codes.
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import re
import subprocess
import sys
import threading

from modules.local_cluster import reserve_ports
from tests.json_api import JsonHandler
from tests.json_api import serve as serve_json_api

_PATH = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/(?P<namespace>[a-z0-9-]+)/tfjobs"
                   r"(?:/(?P<name>[a-z0-9-]+))?$")


class OperatorState:
    """The jobs the fake cluster holds, their replica processes, and what was submitted."""

    def __init__(self, work_dir: pathlib.Path, python_path: str):
        self.work_dir = work_dir
        self.python_path = python_path
        self.jobs: dict[tuple[str, str], dict] = {}
        self.processes: dict[tuple[str, str], dict[str, subprocess.Popen]] = {}
        self.submitted: list[dict] = []
        self.lock = threading.Lock()

    def start(self, namespace: str, manifest: dict) -> None:
        replicas = manifest["spec"]["tfReplicaSpecs"]
        counts = {kind.lower(): spec["replicas"] for kind, spec in replicas.items()}
        ports = iter(reserve_ports(sum(counts.values()), base_port=0))
        cluster = {kind: [f"127.0.0.1:{next(ports)}" for _ in range(count)]
                   for kind, count in counts.items()}
        processes = {}
        for kind, spec in replicas.items():
            (container,) = spec["template"]["spec"]["containers"]
            for index in range(spec["replicas"]):
                replica = f"{kind.lower()}-{index}"
                env = {**os.environ, **{item["name"]: item["value"] for item in container["env"]},
                       "PYTHONPATH": self.python_path,
                       "TF_CONFIG": json.dumps({"cluster": cluster,
                                                "task": {"type": kind.lower(), "index": index}})}
                command = list(container["command"])
                if command[0] == "python":  # the image's interpreter: here, this test's
                    command[0] = sys.executable
                log_path = self.work_dir / f"{manifest['metadata']['name']}-{replica}.log"
                with log_path.open("wb") as log:
                    processes[replica] = subprocess.Popen(command, env=env, stdout=log,
                                                          stderr=subprocess.STDOUT)
        self.processes[(namespace, manifest["metadata"]["name"])] = processes

    def status(self, key: tuple[str, str]) -> dict:
        conditions = [{"type": "Created", "status": "True", "reason": "TFJobCreated"}]
        processes = self.processes.get(key, {})
        codes = {replica: process.poll() for replica, process in processes.items()}
        failed = {replica: code for replica, code in codes.items() if code not in (None, 0)}
        if failed:
            self.stop(key)
            replica, code = sorted(failed.items())[0]
            conditions.append({"type": "Failed", "status": "True", "reason": "TFJobFailed",
                               "message": f"TFJob {key[1]} has failed because 1 {replica} "
                                          f"replica(s) failed (exit code {code})."})
        elif codes and all(code == 0 for code in codes.values()):
            conditions.append({"type": "Succeeded", "status": "True", "reason": "TFJobSucceeded",
                               "message": f"TFJob {key[1]} successfully completed."})
        else:
            conditions.append({"type": "Running", "status": "True", "reason": "TFJobRunning"})
        return {"conditions": conditions}

    def stop(self, key: tuple[str, str]) -> None:
        for process in self.processes.get(key, {}).values():
            if process.poll() is None:
                process.kill()
                process.wait()


class _Handler(JsonHandler):
    state: OperatorState

    def _not_found(self, name: str) -> None:
        self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": "NotFound", "code": 404,
                          "message": f'tfjobs.kubeflow.org "{name}" not found'})

    def _route(self) -> tuple[str, str]:
        match = _PATH.match(self.path.split("?")[0])
        if not match:
            self._reply(404, {"kind": "Status", "code": 404, "message": f"no route {self.path}"})
            return "", ""
        return match["namespace"], match["name"] or ""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        namespace, _ = self._route()
        if not namespace:
            return
        manifest = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = (namespace, manifest["metadata"]["name"])
        with self.state.lock:
            if key in self.state.jobs:
                return self._reply(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists",
                                         "message": f"tfjob {key[1]} already exists"})
            self.state.submitted.append(manifest)
            self.state.jobs[key] = manifest
            self.state.start(namespace, manifest)
        self._reply(201, manifest)

    def do_GET(self) -> None:  # noqa: N802
        namespace, name = self._route()
        with self.state.lock:
            if (namespace, name) not in self.state.jobs:
                return self._not_found(name)
            self._reply(200, {**self.state.jobs[(namespace, name)],
                              "status": self.state.status((namespace, name))})

    def do_DELETE(self) -> None:  # noqa: N802
        namespace, name = self._route()
        with self.state.lock:
            if self.state.jobs.pop((namespace, name), None) is None:
                return self._not_found(name)
            self.state.stop((namespace, name))
        self._reply(200, {"kind": "Status", "status": "Success"})



def serve(state: OperatorState) -> http.server.ThreadingHTTPServer:
    """Starts the Training Operator's API on a free port of 127.0.0.1 in a daemon thread."""
    return serve_json_api(_Handler, state)
