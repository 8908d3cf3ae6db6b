"""A Kubeflow Pipelines v2beta1 REST API on 127.0.0.1, holding its state in memory.

It implements the calls `kfp.Client` makes for runs, experiments and recurring runs, with the
request and response shapes of KFP 2.0's API (JSON field names as its protos declare them,
`display_name` filters, page tokens, bearer tokens), so the CLI's schedule logic is tested against the contract, not against mocks of itself.
No Kubeflow cluster can exist on these machines.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
import urllib.parse
from typing import Optional

from tests.json_api import JsonHandler
from tests.json_api import serve as serve_json_api

API = "/apis/v2beta1"


class KfpApiState:
    """What the fake cluster holds, and every request it received."""

    def __init__(self, token: Optional[str] = None):
        self.token = token
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self.lock = threading.Lock()

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"


def _matches(item: dict, filter_json: Optional[str]) -> bool:
    if not filter_json:
        return True
    for predicate in json.loads(filter_json).get("predicates", []):
        if predicate.get("operation") not in ("EQUALS", 1):
            raise ValueError(f"unsupported filter operation {predicate.get('operation')!r}")
        value = predicate.get("stringValue", predicate.get("string_value"))
        if item.get(predicate["key"]) != value:
            return False
    return True


class _Handler(JsonHandler):
    state: KfpApiState

    def _error(self, status: int, message: str) -> None:
        self._reply(status, {"error_message": message, "code": status})

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        state = self.state
        with state.lock:
            state.requests.append((method, path))
            if state.token and self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._error(401, "missing or wrong bearer token")
            if not path.startswith(API):
                return self._error(404, f"no route {path}")
            resource = path[len(API):].strip("/").split("/")
            try:
                return self._dispatch(method, resource, query)
            except (KeyError, ValueError) as error:
                return self._error(400, f"bad request: {error}")

    def _dispatch(self, method: str, resource: list[str], query: dict) -> None:
        state = self.state
        kind = resource[0]
        if kind == "healthz" and method == "GET":
            return self._reply(200, {"multi_user": False})
        if kind == "experiments" and method == "GET" and len(resource) == 1:
            found = [item for item in state.experiments.values() if _matches(item, query.get("filter"))]
            return self._reply(200, {"experiments": found, "total_size": len(found)})
        if kind == "experiments" and method == "POST":
            body = self._body()
            if not body.get("display_name"):
                raise ValueError("experiment needs display_name")
            experiment = {"experiment_id": state.new_id("experiment"),
                          "display_name": body["display_name"],
                          "namespace": body.get("namespace") or "", "storage_state": "AVAILABLE"}
            state.experiments[experiment["experiment_id"]] = experiment
            return self._reply(200, experiment)
        if kind == "runs" and method == "POST":
            body = self._body()
            self._require_spec(body)
            run = {**body, "run_id": state.new_id("run"), "state": "PENDING"}
            state.runs[run["run_id"]] = run
            return self._reply(200, run)
        if kind == "recurringruns":
            return self._recurring_runs(method, resource, query)
        return self._error(404, f"no route {method} {'/'.join(resource)}")

    def _recurring_runs(self, method: str, resource: list[str], query: dict) -> None:
        state = self.state
        if method == "POST" and len(resource) == 1:
            body = self._body()
            self._require_spec(body)
            cron = body.get("trigger", {}).get("cron_schedule", {}).get("cron")
            if not cron or len(cron.split()) != 6 and not cron.startswith("@"):
                raise ValueError(f"cron_schedule.cron must have 6 fields, got {cron!r}")
            run = {**body, "recurring_run_id": state.new_id("recurring"), "status": "ENABLED"}
            state.recurring_runs[run["recurring_run_id"]] = run
            return self._reply(200, run)
        if method == "GET" and len(resource) == 1:
            found = [run for run in state.recurring_runs.values()
                     if _matches(run, query.get("filter"))
                     and query.get("experiment_id") in (None, run.get("experiment_id"))]
            size = int(query.get("page_size") or 100)
            start = int(query.get("page_token") or 0)
            page = found[start:start + size]
            token = str(start + size) if start + size < len(found) else ""
            # KFP's proto names this field recurringRuns (the only camelCase one in these replies).
            return self._reply(200, {"recurringRuns": page, "total_size": len(found),
                                     "next_page_token": token})
        if method == "DELETE" and len(resource) == 2:
            if state.recurring_runs.pop(resource[1], None) is None:
                return self._error(404, f"recurring run {resource[1]} not found")
            return self._reply(200, {})
        return self._error(404, f"no route {method} recurringruns")

    def _require_spec(self, body: dict) -> None:
        if not body.get("display_name"):
            raise ValueError("display_name is required")
        if body.get("experiment_id") not in self.state.experiments:
            raise ValueError(f"unknown experiment_id {body.get('experiment_id')!r}")
        spec = body.get("pipeline_spec") or {}
        if "root" not in spec or "deploymentSpec" not in spec:
            raise ValueError("pipeline_spec must be a compiled PipelineSpec")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")



def serve(state: KfpApiState) -> http.server.ThreadingHTTPServer:
    """Starts the Kubeflow Pipelines API on a free port of 127.0.0.1 in a daemon thread."""
    return serve_json_api(_Handler, state)
