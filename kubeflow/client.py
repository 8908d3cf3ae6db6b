"""Submitting runs and managing recurring runs on a Kubeflow Pipelines endpoint.

Listing and deleting go straight to the v2beta1 REST API (`kfp_server_api`, 0.2 s of imports);
`kfp.Client`, whose imports take 1.6 s (the Kubernetes client, the DSL), is built only for the
two calls that send a compiled package, so `textclf schedule list` starts in about a second.

Recurring runs are kept idempotent by name: creating or updating one first creates the new
recurring run, then deletes every older one of that name, so a failure never leaves the pipeline
without its schedule, and a second `create` never leaves two.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import urllib.error
import urllib.request
import warnings
from typing import Any, Callable, Optional, TypeVar

from pipeline.config import KubeflowConfig

ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
TOKEN_ENV = "KF_PIPELINES_TOKEN"
PROBE_TIMEOUT_SECONDS = 10
_Result = TypeVar("_Result")


class KubeflowApiError(RuntimeError):
    """The Kubeflow Pipelines endpoint is missing, unreachable, or refused a call."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One recurring run, as `textclf schedule list` prints it."""

    recurring_run_id: str
    name: str
    cron: str
    enabled: bool


class KubeflowClient:
    """The few `kfp.Client` calls the CLI makes, with one readable error for each failure."""

    def __init__(self, kubeflow: KubeflowConfig):
        self._endpoint = os.environ.get(ENDPOINT_ENV) or kubeflow.endpoint
        if not self._endpoint:
            raise KubeflowApiError(
                f"no Kubeflow Pipelines endpoint: set {ENDPOINT_ENV} or kubeflow.endpoint "
                "(e.g. http://127.0.0.1:8080 after `kubectl port-forward svc/ml-pipeline-ui`)")
        self._kubeflow = kubeflow
        self._token = os.environ.get(TOKEN_ENV) or None
        self._probe(self._token)
        import kfp_server_api  # pylint: disable=import-outside-toplevel

        configuration = kfp_server_api.Configuration(host=self._endpoint.rstrip("/"))
        if self._token:
            configuration.api_key["authorization"] = self._token
            configuration.api_key_prefix["authorization"] = "Bearer"
        api = kfp_server_api.ApiClient(configuration)
        self._experiments = kfp_server_api.ExperimentServiceApi(api)
        self._recurring_runs = kfp_server_api.RecurringRunServiceApi(api)
        self._package_client: Any = None
        self._experiment_id = ""

    def _kfp(self) -> Any:
        """`kfp.Client`, for the calls that read and send a compiled package."""
        if self._package_client is None:
            import kfp  # pylint: disable=import-outside-toplevel

            with warnings.catch_warnings():  # kfp warns on every client that it needs KFP >= 2.0
                warnings.simplefilter("ignore", FutureWarning)
                self._package_client = self._call("connect", lambda: kfp.Client(
                    host=self._endpoint, existing_token=self._token,
                    namespace=self._kubeflow.namespace or "kubeflow"))
        return self._package_client

    def _probe(self, token: Optional[str]) -> None:
        """One health check first: kfp.Client would retry a refused or wrong endpoint for 25 s."""
        request = urllib.request.Request(f"{self._endpoint.rstrip('/')}/apis/v2beta1/healthz")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS):
                return
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):
                raise KubeflowApiError(
                    f"Kubeflow Pipelines at {self._endpoint} refused the credentials (HTTP "
                    f"{error.code}): check the token in {TOKEN_ENV}") from error
            raise KubeflowApiError(
                f"{self._endpoint} does not answer as a Kubeflow Pipelines v2 API (HTTP "
                f"{error.code} on /apis/v2beta1/healthz): check {ENDPOINT_ENV} / "
                "kubeflow.endpoint") from error
        except (urllib.error.URLError, OSError) as error:
            raise KubeflowApiError(
                f"cannot reach Kubeflow Pipelines at {self._endpoint} "
                f"({getattr(error, 'reason', error)}): check {ENDPOINT_ENV} / kubeflow.endpoint"
            ) from error

    def submit_run(self, package_path: str, run_name: str, parameters: dict[str, Any]) -> str:
        """Starts one run of the compiled pipeline; returns its run id."""
        run = self._call("submit a run", lambda: self._kfp().run_pipeline(
            experiment_id=self._experiment(), job_name=run_name,
            pipeline_package_path=package_path, params=parameters,
            service_account=self._kubeflow.service_account or None))
        return run.run_id

    def apply_schedule(self, name: str, cron: str, package_path: str, parameters: dict[str, Any],
                       must_exist: bool = False) -> Schedule:
        """Creates the recurring run `name`, replacing any of that name (`must_exist`: update
        only)."""
        older = self._schedules_named(name)
        if must_exist and not older:
            raise KubeflowApiError(f"no recurring run named {name!r} to update: create it first "
                                   "(`textclf schedule create`)")
        created = self._call("create the recurring run", lambda: self._kfp().create_recurring_run(
            experiment_id=self._experiment(), job_name=name, cron_expression=cron,
            pipeline_package_path=package_path, params=parameters, max_concurrency=1,
            no_catchup=True, service_account=self._kubeflow.service_account or None))
        for schedule in older:
            self.delete_schedule_by_id(schedule.recurring_run_id)
        logging.info("recurring run %s (%s) now runs at %r", name, created.recurring_run_id, cron)
        return _schedule(created)

    def list_schedules(self) -> list[Schedule]:
        """The recurring runs of the configured experiment."""
        return self._list(filter_json=None)

    def delete_schedule(self, name: str) -> int:
        """Deletes every recurring run called `name`; returns how many there were."""
        schedules = self._schedules_named(name)
        for schedule in schedules:
            self.delete_schedule_by_id(schedule.recurring_run_id)
        return len(schedules)

    def delete_schedule_by_id(self, recurring_run_id: str) -> None:
        self._call("delete a recurring run",
                   lambda: self._recurring_runs.delete_recurring_run(recurring_run_id))

    def _schedules_named(self, name: str) -> list[Schedule]:
        return self._list(filter_json=_named(name))

    def _list(self, filter_json: Optional[str]) -> list[Schedule]:
        experiment_id = self._experiment(create=False)
        if not experiment_id:  # no experiment yet: nothing was ever scheduled in it
            return []
        schedules, token = [], ""
        while True:
            page = self._call("list recurring runs", lambda: (
                self._recurring_runs.list_recurring_runs(
                    page_token=token, page_size=100, experiment_id=experiment_id,
                    filter=filter_json)))
            schedules += [_schedule(run) for run in page.recurring_runs or []]
            token = page.next_page_token
            if not token:
                return schedules

    def _experiment(self, create: bool = True) -> str:
        """The configured experiment's id, created when missing (`create`) or else ""."""
        if not self._experiment_id:
            import kfp_server_api  # pylint: disable=import-outside-toplevel

            namespace = self._kubeflow.namespace or None
            found = self._call("find the experiment", lambda: self._experiments.list_experiments(
                filter=_named(self._kubeflow.experiment),
                **({"namespace": namespace} if namespace else {})))
            if found.experiments:
                self._experiment_id = found.experiments[0].experiment_id
            elif create:
                self._experiment_id = self._call(
                    "create the experiment", lambda: self._experiments.create_experiment(
                        body=kfp_server_api.V2beta1Experiment(
                            display_name=self._kubeflow.experiment, namespace=namespace))
                ).experiment_id
        return self._experiment_id

    def _call(self, action: str, call: Callable[[], _Result]) -> _Result:
        import kfp_server_api  # pylint: disable=import-outside-toplevel
        import urllib3  # pylint: disable=import-outside-toplevel

        try:
            # kfp prints links ("Run details: ...") to stdout; keep stdout for our own output.
            with contextlib.redirect_stdout(sys.stderr):
                return call()
        except kfp_server_api.ApiException as error:
            reason = f"HTTP {error.status} {error.reason}"
            if error.status in (401, 403):
                reason += f": check the token in {TOKEN_ENV}"
            raise KubeflowApiError(f"Kubeflow Pipelines at {self._endpoint} refused to {action} "
                                   f"({reason}): {(error.body or '').strip()[:300]}") from error
        except (urllib3.exceptions.HTTPError, OSError, TimeoutError) as error:
            raise KubeflowApiError(
                f"cannot reach Kubeflow Pipelines at {self._endpoint} to {action} "
                f"({type(error).__name__}): check {ENDPOINT_ENV} / kubeflow.endpoint") from error


def _named(name: str) -> str:
    """The API's filter for items whose display name is `name`."""
    return json.dumps({"predicates": [
        {"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def _schedule(run: Any) -> Schedule:
    cron = run.trigger.cron_schedule.cron if run.trigger and run.trigger.cron_schedule else ""
    return Schedule(recurring_run_id=run.recurring_run_id, name=run.display_name, cron=cron,
                    enabled=str(run.mode).upper() == "ENABLE")
