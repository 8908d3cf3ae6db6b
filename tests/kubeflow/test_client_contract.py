"""Contract tests: the CLI's runs and schedules against a local Kubeflow Pipelines v2beta1 API.

No Kubeflow cluster can exist here, so `tests/kubeflow/kfp_api_server.py` serves the REST calls
`kfp.Client` makes on 127.0.0.1; the real `kfp.Client` and the real CLI talk to it over HTTP.
"""

import json

import pytest
import yaml

from kubeflow.client import ENDPOINT_ENV, TOKEN_ENV
from kubeflow.compiler import DATA_PATH_PARAMETER, TRAIN_ARGS_PARAMETER
from pipeline import cli
from tests.cli_process import run_cli
from tests.kubeflow.kfp_api_server import KfpApiState, serve

TOKEN = "s3cret-token"


@pytest.fixture
def kfp_api(monkeypatch, tmp_path):
    """The fake API, with the CLI pointed at it; kfp's context file stays out of $HOME."""
    state = KfpApiState(token=TOKEN)
    server = serve(state)
    monkeypatch.setenv(ENDPOINT_ENV, f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield state
    server.shutdown()


def _schedule(action, *args, package):
    return cli.main(["schedule", action, *args, "--package", str(package)])


def test_schedule_create_twice_update_list_delete_contract(kfp_api, compiled_spec, capsys):
    assert _schedule("create", "nightly", "--cron", "0 3 * * *", package=compiled_spec) == 0
    assert _schedule("create", "nightly", "--cron", "0 3 * * *", package=compiled_spec) == 0
    assert [run["display_name"] for run in kfp_api.recurring_runs.values()] == ["nightly"]
    (created,) = kfp_api.recurring_runs.values()
    assert created["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"  # KFP's 6 fields
    assert created["pipeline_spec"]["root"]["dag"]["tasks"]["Pusher"]
    assert created["max_concurrency"] == "1" or created["max_concurrency"] == 1

    assert _schedule("update", "nightly", "--cron", "30 4 * * 1-5", "--train-steps", "500",
                     package=compiled_spec) == 0
    (updated,) = kfp_api.recurring_runs.values()
    assert updated["recurring_run_id"] != created["recurring_run_id"]
    assert updated["trigger"]["cron_schedule"]["cron"] == "0 30 4 * * 1-5"
    assert json.loads(updated["runtime_config"]["parameters"][TRAIN_ARGS_PARAMETER]) == {
        "num_steps": 500}

    capsys.readouterr()
    assert cli.main(["schedule", "list"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert listed == [f"nightly\t0 30 4 * * 1-5\tenabled\t{updated['recurring_run_id']}"]

    assert cli.main(["schedule", "delete", "nightly"]) == 0
    assert kfp_api.recurring_runs == {}


def test_schedule_list_reads_only_and_starts_without_kfp(kfp_api, compiled_spec):
    """`schedule list` in a fresh process: a cluster with no experiment yet lists nothing and
    gets none; once a schedule exists it is listed, and kfp (1.6 s of imports) never loads."""
    result, imported = run_cli(["schedule", "list"])
    assert (result.returncode, result.stdout, imported) == (0, "", [])
    assert kfp_api.experiments == {} and kfp_api.recurring_runs == {}

    assert _schedule("create", "nightly", "--cron", "0 3 * * *", package=compiled_spec) == 0
    result, imported = run_cli(["schedule", "list"])
    (created,) = kfp_api.recurring_runs.values()
    assert result.stdout.splitlines() == [
        f"nightly\t0 0 3 * * *\tenabled\t{created['recurring_run_id']}"]
    assert imported == []


def test_update_of_a_missing_schedule_creates_nothing(kfp_api, compiled_spec, capsys):
    assert _schedule("update", "weekly", "--cron", "0 3 * * 0", package=compiled_spec) == \
        cli.EXIT_KUBEFLOW_API
    assert "no recurring run named 'weekly' to update" in capsys.readouterr().err
    assert kfp_api.recurring_runs == {}


def test_an_invalid_cron_stops_before_any_call(kfp_api, compiled_spec, capsys):
    assert _schedule("create", "nightly", "--cron", "0 25 * * *", package=compiled_spec) == \
        cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert error == "error: cron '0 25 * * *': hours '25' is outside 0-23"
    assert kfp_api.requests == []


def test_submit_sends_the_compiled_spec_and_the_runtime_parameters(kfp_api, compiled_spec,
                                                                   capsys):
    assert cli.main(["submit", "--package", str(compiled_spec), "--run-name", "manual",
                     "--data-path", "gs://textclf-bucket/data/reviews"]) == 0
    (run,) = kfp_api.runs.values()
    assert f"submitted run {run['run_id']} (manual)" in capsys.readouterr().out
    spec = yaml.safe_load(compiled_spec.read_text(encoding="utf-8"))
    assert run["pipeline_spec"]["root"] == spec["root"]
    assert run["runtime_config"]["parameters"] == {
        DATA_PATH_PARAMETER: "gs://textclf-bucket/data/reviews"}
    assert kfp_api.experiments[run["experiment_id"]]["display_name"] == "textclf"


def test_a_wrong_token_is_one_message_naming_the_token(kfp_api, compiled_spec, monkeypatch,
                                                       capsys):
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    assert cli.main(["submit", "--package", str(compiled_spec)]) == cli.EXIT_KUBEFLOW_API
    error = capsys.readouterr().err.strip()
    assert "refused the credentials (HTTP 401)" in error and TOKEN_ENV in error
    assert len(error.splitlines()) == 1
    assert kfp_api.runs == {}


def test_an_unreachable_endpoint_is_one_message_and_a_nonzero_exit(compiled_spec, monkeypatch,
                                                                   tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")  # the discard port: nothing listens
    assert _schedule("create", "nightly", "--cron", "0 3 * * *", package=compiled_spec) == \
        cli.EXIT_KUBEFLOW_API
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: cannot reach Kubeflow Pipelines at http://127.0.0.1:9")
    assert len(error.splitlines()) == 1
