"""The bad-input corpus (`tests/bad_inputs.py`) through `textclf run`, against a served model.

Each bad case must stop at its gate with a message naming the problem, push nothing, leave the
served version as it was, and send a failure notification; the byte-order mark must go through.
"""

import codecs
import re

import pytest

from pipeline.cli import EXIT_BAD_INPUT, EXIT_DATA_REJECTED, EXIT_NOT_BLESSED
from pipeline.config import PipelineConfig
from pipeline.metadata import metadata_store_of, pipeline_runs, run_executions
from serving.store import ModelStore
from tests.bad_inputs import ACCEPTED, CASES, PREFLIGHT, SPAN_OVERRIDES, default_rows
from tests.webhook_receiver import fields

STOPPED = [case for case in CASES if case.gate != ACCEPTED]


def _store(workspace):
    config = PipelineConfig.load(None, workspace.overrides())
    return ModelStore(config.serving_dir, config.model_name), metadata_store_of(config)


@pytest.mark.parametrize("case", STOPPED, ids=lambda case: case.name)
def test_bad_input_stops_at_its_gate_and_the_served_model_stays(gate_workspace, case, tmp_path):
    models, metadata = _store(gate_workspace)
    versions_before = [version.number for version in models.versions()]
    runs_before = len(pipeline_runs(metadata))
    notifications_before = len(gate_workspace.receiver.payloads)

    overrides = case.write(tmp_path / case.name, default_rows(400))
    code, _, stderr = gate_workspace.run(tmp_path / case.name, *overrides)

    assert code == (EXIT_BAD_INPUT if case.gate == PREFLIGHT else EXIT_DATA_REJECTED), stderr
    assert stderr.startswith("error: ") and re.search(case.message, stderr), stderr
    runs = pipeline_runs(metadata)
    if case.gate == PREFLIGHT:
        assert len(runs) == runs_before  # nothing ran at all
        assert len(stderr.strip().splitlines()) == 1
    else:
        assert f"{case.gate}: " in stderr or f"{case.gate}, " in stderr
        executions = run_executions(metadata, runs[-1])
        assert executions["DataGate"].last_known_state == executions["DataGate"].FAILED
        assert "Transform" not in executions and "Trainer" not in executions
    assert [version.number for version in models.versions()] == versions_before
    assert models.serving_candidates()[0].number == versions_before[-1]
    [notification] = gate_workspace.receiver.payloads[notifications_before:]
    assert fields(notification)["event"] == "failure"
    assert re.search(case.message, fields(notification)["error"])


def test_a_byte_order_mark_is_read_as_utf8_and_the_model_ships(gate_workspace):
    """The accepted case is the good run `gate_workspace` serves (no second run of ~100 s)."""
    data_files = sorted((gate_workspace.root / "good").rglob("*.csv"))
    assert data_files and all(path.read_bytes().startswith(codecs.BOM_UTF8) for path in data_files)
    # The version the store served after that run is the one its Pusher wrote.
    assert gate_workspace.good_version.manifest["mlmd"]["pipeline_run_id"] == gate_workspace.good_run_id
    assert fields(gate_workspace.good_notification)["event"] == "success"


def test_a_model_the_evaluator_refuses_is_not_pushed_and_the_webhook_says_so(gate_workspace):
    models, _ = _store(gate_workspace)
    versions_before = [version.number for version in models.versions()]

    code, stdout, _ = gate_workspace.run(gate_workspace.root / "good", *SPAN_OVERRIDES,
                                         "evaluation.min_accuracy=1.0")

    assert code == EXIT_NOT_BLESSED and "nothing pushed" in stdout
    assert [version.number for version in models.versions()] == versions_before
    payload = gate_workspace.receiver.payloads[-1]
    assert fields(payload)["event"] == "not_blessed"
    assert payload["text"].endswith("not blessed: the Evaluator refused the model, nothing pushed")
    assert fields(payload)["report"].endswith(".html")
