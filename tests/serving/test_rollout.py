"""The rollout's parts without a server: decisions, sticky routing, the state file, the CLI.

The server-side walk, rollbacks, shadow mode and restarts are in test_rollout_server.py.
"""

import dataclasses
import json
import math
import time

import pytest

from pipeline import cli
from pipeline.config import RolloutConfig
from serving import rollout
from serving.rollout import Figures, RolloutState, StepWindow, judge
from serving.store import ModelStore
from tests.webhook_receiver import WebhookReceiver, fields

MODEL = "reviews"
POLICY = RolloutConfig(mode="canary", step_seconds=60, step_requests=100)
# The 99.9 % two-sided normal quantile.
Z_999 = 3.29


def _figures(**changes) -> Figures:
    calm = Figures(candidate_requests=200, stable_requests=2000, candidate_failures=0,
                   candidate_failure_rate=0.0,
                   stable_failure_rate=0.0, candidate_p99=0.050, stable_p99=0.045,
                   label_shift=0.02, disagreement=None, seconds=61)
    return dataclasses.replace(calm, **changes)


def test_a_step_passes_only_with_enough_requests_and_time():
    assert judge(POLICY, _figures(), step_age_seconds=61).action == "advance"
    too_few = judge(POLICY, _figures(candidate_requests=99), step_age_seconds=3600)
    assert too_few.action == "wait" and "99 of the 100" in too_few.reason
    too_soon = judge(POLICY, _figures(), step_age_seconds=10)
    assert too_soon.action == "wait" and "10 of its 60 s" in too_soon.reason


def test_failures_that_settle_the_step_roll_back_before_it_holds_enough_requests():
    """2 failures of the 100 a step needs is 0.02 whatever comes next: over 0.01, so now."""
    early = _figures(candidate_requests=12, candidate_failures=2, candidate_failure_rate=0.17)
    verdict = judge(POLICY, early, step_age_seconds=1)
    assert verdict.action == "rollback" and "2 of 12 requests failed" in verdict.reason
    not_yet = _figures(candidate_requests=12, candidate_failures=1, candidate_failure_rate=0.08)
    assert judge(POLICY, not_yet, step_age_seconds=1).action == "wait"


@pytest.mark.parametrize("figures, mode, named", [
    (_figures(candidate_failures=10, candidate_failure_rate=0.05, stable_failure_rate=0.01),
     "canary", "error rate 0.050"),
    (_figures(candidate_p99=0.200, stable_p99=0.050), "canary", "p99 latency 200.0 ms"),
    (_figures(label_shift=0.4), "canary", "moved by 0.400"),
    (_figures(disagreement=0.2), "shadow", "differ from the stable version's on 0.200"),
])
def test_a_crossed_threshold_rolls_back_at_once_and_names_its_figure(figures, mode, named):
    """Before the step's time is up: the brake does not wait for the clock."""
    verdict = judge(dataclasses.replace(POLICY, mode=mode), figures, step_age_seconds=1)
    assert verdict.action == "rollback" and named in verdict.reason


@pytest.mark.parametrize("figures", [
    _figures(candidate_failures=3, candidate_failure_rate=0.015,
             stable_failure_rate=0.01),  # within the increase
    _figures(candidate_p99=0.004, stable_p99=0.001),  # 4x, but only 3 ms slower
    _figures(label_shift=0.9, disagreement=0.0),  # shadow judges disagreement, not shift
])
def test_noise_within_the_thresholds_does_not_roll_back(figures):
    assert judge(dataclasses.replace(POLICY, mode="shadow" if figures.disagreement is not None
                                     else "canary"), figures, 61).action == "advance"


def test_the_window_counts_failures_latencies_and_labels_per_version():
    window = StepWindow()
    for index in range(100):
        window.record(rollout.STABLE, 200, 0.010, ["positive" if index % 2 else "negative"])
    for index in range(10):
        window.record(rollout.CANARY, 500 if index < 2 else 200, 0.030,
                      [] if index < 2 else ["positive"])
    figures = window.figures()
    assert (figures.stable_requests, figures.candidate_requests) == (100, 10)
    assert figures.candidate_failure_rate == 0.2 and figures.stable_failure_rate == 0.0
    assert figures.candidate_p99 == 0.030 and figures.stable_p99 == 0.010
    assert figures.label_shift == pytest.approx(0.5)
    window.compare(["a", "b", "c", "d"], ["a", "x", "c", "d"])
    assert window.figures().disagreement == 0.25


@pytest.mark.parametrize("share", [1, 5, 25, 50])
def test_the_candidate_share_of_keys_is_within_a_binomial_interval(share):
    keys = [rollout.request_key(f"request-{index}", []) for index in range(20000)]
    observed = sum(rollout.routes_to_candidate(key, share) for key in keys) / len(keys)
    expected = share / 100
    assert abs(observed - expected) <= Z_999 * math.sqrt(expected * (1 - expected) / len(keys))


def test_a_key_keeps_its_version_and_a_candidate_key_stays_one_as_the_share_grows():
    keys = [rollout.request_key(None, [(f"text {index}".encode(),)]) for index in range(2000)]
    for earlier, later in ((1, 5), (5, 25), (25, 50), (50, 100)):
        first = [rollout.routes_to_candidate(key, earlier) for key in keys]
        assert first == [rollout.routes_to_candidate(key, earlier) for key in keys]
        assert all(rollout.routes_to_candidate(key, later)
                   for key, chosen in zip(keys, first) if chosen)


def test_request_keys_tell_inputs_apart_and_prefer_the_request_id():
    assert rollout.request_key(None, [(b"ab", b"c")]) != rollout.request_key(None, [(b"a", b"bc")])
    assert rollout.request_key(None, [(b"a",), (b"b",)]) != rollout.request_key(None, [(b"ab",)])
    assert rollout.request_key("id-1", [(b"a",)]) == rollout.request_key("id-1", [(b"b",)])


@pytest.mark.parametrize("content, problem", [
    (b"{not json", "is not a rollout state"),
    (b"[1, 2]", "not a rollout state object"),
    (b'{"stable": true}', "wrong type"),
    (b'{"stable": 1, "step": -1}', "wrong type"),
    (b'{"stable": 1, "candidate": "2"}', "wrong type"),
    (b'{"stable": 1, "surprise": 0}', "not a rollout state object"),
    (b'{"candidate": 2}', "is not a rollout state"),
    (b"\xff\xfe{}", "is not a rollout state"),
    (b"[" * 100000, "is not a rollout state"),
])
def test_an_unusable_state_file_is_a_problem_named_not_a_crash(tmp_path, content, problem):
    (tmp_path / rollout.STATE_FILE).write_bytes(content)
    state, found = rollout.read_state(str(tmp_path))
    assert state is None and problem in found and rollout.STATE_FILE in found


def test_the_state_round_trips_and_an_unchanged_state_is_not_rewritten(tmp_path):
    state = RolloutState(stable=1, candidate=2, step=3, step_started=12.5, leader="a",
                         lease_until=99.0, last_decision="x")
    assert rollout.update_state(str(tmp_path), lambda _: state) == state
    assert rollout.read_state(str(tmp_path)) == (state, "")
    written = (tmp_path / rollout.STATE_FILE).stat().st_mtime_ns
    time.sleep(0.01)
    assert rollout.update_state(str(tmp_path), lambda fresh: fresh) == state
    assert (tmp_path / rollout.STATE_FILE).stat().st_mtime_ns == written


@pytest.fixture
def running(tmp_path, model_dir):
    """A store of two versions and a rollout of the newer at step 2, as a server writes it."""
    store = ModelStore(str(tmp_path / "out" / "serving_models"), MODEL)
    stable, candidate = (store.publish(str(model_dir), {}).number for _ in range(2))
    rollout.write_state(store.model_dir, RolloutState(stable, candidate, step=1,
                                                      step_started=time.time()))
    receiver = WebhookReceiver()
    yield store, stable, candidate, receiver
    receiver.close()


def _rollout(tmp_path, capsys, receiver, *args):
    code = cli.main(["rollout", *args, "--output-dir", str(tmp_path / "out"),
                     "--set", f"model_name={MODEL}", "--set", "serving.rollout.mode=canary",
                     "--set", f"notifications.webhook_url={receiver.url}"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rollout_status_pause_resume_and_promote_by_hand(tmp_path, capsys, running):
    store, stable, candidate, receiver = running
    code, out, _ = _rollout(tmp_path, capsys, receiver, "status")
    assert code == 0
    assert f"candidate: version {candidate}, canary at step 2 of 5 (5 % of requests)" in out
    assert f"stable version: {stable}" in out

    assert _rollout(tmp_path, capsys, receiver, "pause", "--reason", "look first")[0] == 0
    paused, _ = rollout.read_state(store.model_dir)
    assert paused.paused and paused.last_decision == "pause by hand: look first"
    listing = cli.main(["models", "list", "--output-dir", str(tmp_path / "out"), "--set",
                        f"model_name={MODEL}", "--set", "serving.rollout.mode=canary"])
    out = capsys.readouterr().out
    assert listing == 0 and f"{candidate}\tverified\tcanary 5% (paused)\t" in out
    assert f"{stable}\tverified\tstable 95%\t" in out

    assert _rollout(tmp_path, capsys, receiver, "resume")[0] == 0
    resumed, _ = rollout.read_state(store.model_dir)
    assert not resumed.paused and resumed.step_started > paused.step_started

    code, out, _ = _rollout(tmp_path, capsys, receiver, "promote", "--reason", "looks right")
    assert code == 0 and f"version {candidate} is the stable version" in out
    promoted, _ = rollout.read_state(store.model_dir)
    assert (promoted.stable, promoted.candidate) == (candidate, None)
    assert store.history()[-1]["event"] == "promoted"
    assert fields(receiver.payloads[-1])["event"] == "promoted"
    code, _, error = _rollout(tmp_path, capsys, receiver, "pause")
    assert code == 2 and "no rollout runs" in error


def test_rollout_abort_rejects_the_candidate_in_the_store_and_notifies(tmp_path, capsys, running):
    store, stable, candidate, receiver = running
    code, out, _ = _rollout(tmp_path, capsys, receiver, "abort", "--reason", "complaints")
    assert code == 0 and f"version {stable} takes all traffic" in out
    assert [version.number for version in store.versions() if version.rejected] == [candidate]
    assert store.history()[-1]["reason"] == "rollout aborted by hand: complaints"
    state, _ = rollout.read_state(store.model_dir)
    assert (state.stable, state.candidate) == (stable, None)
    assert fields(receiver.payloads[-1]) == {
        "event": "rollback", "model": MODEL, "version": str(stable), "rejected": str(candidate),
        "reason": "complaints"}


def test_a_rollout_command_on_an_unreadable_state_is_one_line_of_error(tmp_path, capsys, running):
    store, _, _, receiver = running
    with open(rollout.state_path(store.model_dir), "wb") as handle:
        handle.write(json.dumps({"stable": "one"}).encode())
    code, _, error = _rollout(tmp_path, capsys, receiver, "promote")
    assert code == 2 and "is not a rollout state" in error and "Traceback" not in error
