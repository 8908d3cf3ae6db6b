"""Rollouts on real servers over one store, with real exported models and bounded client loops.

Two replicas walk a canary to 100 % (one is SIGKILLed mid-rollout and restarted), then three
worse candidates roll back by themselves, then a shadow server compares without answering.
The tests run in file order over shared servers: each server start costs ~20 s of imports.
The steps are seconds long and `step_requests` small so that a whole walk takes seconds.
"""

import collections
import math
import subprocess
import sys
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from serving import rollout
from serving.store import ModelStore
from tests.conftest import REPO_ROOT
from tests.serving.conftest import default_rows
from tests.serving.model_variants import FAILING_WORD, write_variant
from tests.serving.server_process import MODEL_NAME, ServerProcess
from tests.webhook_receiver import WebhookReceiver, fields

STEPS = (10, 50, 100)
STEP_REQUESTS = 50
SHADOW_STEP_REQUESTS = 400
Z_999 = 3.29


def _policy(mode: str, steps=STEPS, step_seconds=2, step_requests=STEP_REQUESTS) -> list[str]:
    return [f"serving.rollout.mode={mode}",
            f"serving.rollout.steps={','.join(str(step) for step in steps)}",
            f"serving.rollout.step_seconds={step_seconds}",
            f"serving.rollout.step_requests={step_requests}",
            "serving.rollout.leader_lease_seconds=2"]


def status(server) -> dict:
    return requests.get(f"{server.url}/rollout", timeout=10).json()


def predict(server, text: str, request_id: str) -> requests.Response:
    return requests.post(f"{server.url}/v1/models/{MODEL_NAME}:predict",
                         json={"instances": [text]}, headers={"X-Request-Id": request_id},
                         timeout=60)


class Traffic:
    """Client threads sending one-text requests round the servers until told to stop.

    Each chunk of requests is bracketed by the server's rollout status; a chunk whose status
    did not change is attributed to that step. Every fifth request is sent twice with the same
    X-Request-Id (a retry); a pair that met two versions is kept in `retry_splits` with the
    chunk's step (None when the step changed meanwhile, which may move a key on).
    """

    def __init__(self, servers, texts, threads=4, chunk=10):
        self.servers, self.texts, self.chunk = servers, texts, chunk
        self.answers: list[tuple[str, int, str, tuple]] = []  # (url, status, version, step)
        self.retry_splits: list[tuple[str, str, tuple]] = []  # (first, retry, step)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(index,), daemon=True)
                         for index in range(threads)]
        self._counter = 0

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _client(self, index: int) -> None:
        turn = index
        while not self._stop.is_set():
            server = self.servers[turn % len(self.servers)]
            turn += 1
            before = status(server)
            chunk, splits = [], []
            for _ in range(self.chunk):
                with self._lock:
                    self._counter += 1
                    number = self._counter
                text = self.texts[number % len(self.texts)]
                answer = predict(server, text, f"client-{number}")
                version = answer.headers.get("X-Model-Version", "")
                chunk.append((server.url, answer.status_code, version))
                if number % 5 == 0:
                    retry = predict(server, text, f"client-{number}")
                    chunk.append((server.url, retry.status_code,
                                  retry.headers.get("X-Model-Version", "")))
                    if retry.headers.get("X-Model-Version", "") != version:
                        splits.append((version, retry.headers.get("X-Model-Version", "")))
            after = status(server)
            step = (before["candidate"], before["step"]) if (
                before["candidate"], before["step"]) == (after["candidate"], after["step"]) \
                else None
            with self._lock:
                self.answers += [(*answer, step) for answer in chunk]
                self.retry_splits += [(*split, step) for split in splits]


def wait_for(condition, timeout: float, what: str, servers=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.1)
    logs = "\n".join(server.log()[-3000:] for server in servers)
    raise AssertionError(f"{what} not within {timeout} s:\n{logs}")


@pytest.fixture(scope="module")
def texts():
    return [row["text"] for row in default_rows(200)]


@pytest.fixture(scope="module")
def replicas(exported_models, tmp_path_factory):
    """Two canary servers over one store serving version 1, and the webhook receiver."""
    output_dir = tmp_path_factory.mktemp("rollout")
    store = ModelStore(str(output_dir / "serving_models"), MODEL_NAME)
    store.publish(str(exported_models[0]), {"data_span": 1})
    receiver = WebhookReceiver()
    overrides = [*_policy("canary"), f"notifications.webhook_url={receiver.url}"]
    servers = [ServerProcess(output_dir, *overrides) for _ in range(2)]
    try:
        for server in servers:
            server.wait_until_live()
        yield {"store": store, "servers": servers, "receiver": receiver,
               "output_dir": output_dir, "overrides": overrides}
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()
        receiver.close()


def _share_within_interval(answers, candidate: int, step: int) -> tuple[int, float]:
    in_step = [version for _, code, version, seen in answers if seen == (candidate, step)]
    share = sum(version == str(candidate) for version in in_step) / max(len(in_step), 1)
    expected = STEPS[step - 1] / 100
    margin = Z_999 * math.sqrt(expected * (1 - expected) / max(len(in_step), 1))
    assert abs(share - expected) <= margin, (step, share, len(in_step))
    return len(in_step), share


def test_a_canary_walks_every_step_across_replicas_a_kill_and_a_restart(
        replicas, exported_models, texts):
    """~60 s: two servers, one SIGKILLed at step 2 and restarted, ~2,000 requests."""
    store, servers = replicas["store"], replicas["servers"]
    stable = store.versions()[-1].number
    candidate = store.publish(str(exported_models[0]), {"data_span": 2}).number
    wait_for(lambda: all(status(server)["candidate"] == candidate for server in servers), 30,
             "both replicas loading the candidate", servers)

    with Traffic(servers, texts) as traffic:
        wait_for(lambda: status(servers[1])["step"] == 2, 90, "step 2", servers)
    first_leg, first_splits = list(traffic.answers), list(traffic.retry_splits)
    # Killed at step 2 with no traffic: nothing can decide meanwhile, so the step must hold.
    servers[0].kill()
    state, _ = rollout.read_state(store.model_dir)
    assert (state.stable, state.candidate, state.step) == (stable, candidate, 1)
    restarted = ServerProcess(replicas["output_dir"], *replicas["overrides"])
    servers[0] = restarted
    restarted.wait_until_live()
    back = status(restarted)
    assert (back["stable"], back["candidate"], back["step"], back["share_percent"]) == \
        (stable, candidate, 2, 50.0)

    with Traffic(servers, texts) as traffic:
        wait_for(lambda: all(status(server)["stable"] == candidate
                             and status(server)["candidate"] is None for server in servers),
                 90, "the promotion on both replicas", servers)
    answers = first_leg + traffic.answers
    assert [answer for answer in answers if answer[1] != 200] == []
    # Within a step a retry meets the same version; a step that grew meanwhile may only move a
    # key from the stable version to the candidate, never back.
    splits = first_splits + traffic.retry_splits
    assert [split for split in splits if split[2] is not None] == []
    assert {split[:2] for split in splits} <= {(str(stable), str(candidate))}
    for step in (1, 2):
        counted, _ = _share_within_interval(answers, candidate, step)
        assert counted >= 100, f"only {counted} requests observed in step {step}"
    history = store.history()
    assert [event["event"] for event in history].count("promoted") == 1
    assert history[-1]["version"] == candidate
    assert "promoted" in replicas["receiver"].events()
    # The replica that ran throughout counted exactly the requests it answered, per version.
    survivor = servers[1]
    answered = collections.Counter((version, str(code)) for url, code, version, _ in answers
                                   if url == survivor.url)
    counted = collections.Counter()
    routes = set()
    for family in text_string_to_metric_families(
            requests.get(f"{survivor.url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "textclf_requests_total" and sample.labels["model"] == MODEL_NAME:
                counted[(sample.labels["version"], sample.labels["status"])] += sample.value
                routes.add(sample.labels["route"])
    assert counted == answered
    assert {"stable", "canary"} <= routes


@pytest.mark.parametrize("kind, figure", [
    ("failing", "error rate"), ("slow", "p99 latency"), ("inverted", "predicted-label shares")])
def test_a_worse_candidate_rolls_back_by_itself_within_its_first_step(
        replicas, exported_models, texts, tmp_path, kind, figure):
    """~20 s each. Texts are chosen so that the stable version gives them one label, as
    label shift can only see an inversion of a skewed answer (shadow mode sees any)."""
    store, servers, receiver = replicas["store"], replicas["servers"], replicas["receiver"]
    if len(servers) == 2:
        servers.pop().stop()  # one server decides alone from here: a deterministic leader
    server = servers[0]
    stable = status(server)["stable"]
    labels = sorted({row["label"] for row in default_rows(200)})
    texts = _one_label_texts(exported_models[0], texts)
    if kind == "failing":
        texts = [f"{text} {FAILING_WORD}" if index % 3 == 0 else text
                 for index, text in enumerate(texts)]
    variant = write_variant(exported_models[0], kind, tmp_path / kind, labels)
    candidate = store.publish(str(variant), {"data_span": kind}).number
    wait_for(lambda: status(server)["candidate"] == candidate, 30, "the candidate", servers)

    with Traffic([server], texts) as traffic:
        wait_for(lambda: status(server)["candidate"] is None, 60, "the rollback", servers)
    decision = status(server)["last_decision"]
    assert decision.startswith(f"automatic rollback of version {candidate} at step 1 (10 %): "
                               f"{figure}"), decision
    assert [version.number for version in store.versions() if version.rejected][-1] == candidate
    assert store.history()[-1]["reason"] == decision
    event = fields(receiver.payloads[-1])
    assert (event["event"], event["rejected"], event["version"]) == \
        ("rollback", str(candidate), str(stable))
    # The candidate failed only what it was given; afterwards the stable version takes all.
    failed = [answer for answer in traffic.answers if answer[1] != 200]
    assert all(version == str(candidate) for _, _, version, _ in failed)
    after = [predict(server, text, f"after-{kind}-{index}")
             for index, text in enumerate(texts[:30])]
    assert {(answer.status_code, answer.headers["X-Model-Version"]) for answer in after} == \
        {(200, str(stable))}


def _one_label_texts(model_dir, texts: list[str]) -> list[str]:
    """The texts the model gives its most frequent label."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    answered = [label.decode() for label in tf.saved_model.load(str(model_dir)).signatures[
        "predict_text"](text=tf.constant(texts))["label"].numpy()]
    majority = collections.Counter(answered).most_common(1)[0][0]
    chosen = [text for text, label in zip(texts, answered) if label == majority]
    assert len(chosen) >= 50, "too few texts share a label to test label shift"
    return chosen


@pytest.fixture(scope="module")
def shadow_server(exported_models, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("shadow")
    store = ModelStore(str(output_dir / "serving_models"), MODEL_NAME)
    store.publish(str(exported_models[0]), {"data_span": 1})
    # Enough copies per step that `rollout status` sees the window before it decides.
    server = ServerProcess(output_dir, *_policy("shadow", steps=(50, 100), step_seconds=600,
                                                step_requests=SHADOW_STEP_REQUESTS))
    try:
        server.wait_until_live()
        yield server, store, output_dir
    finally:
        server.stop()


def test_shadow_mode_never_returns_the_candidate_and_reports_its_disagreement(
        shadow_server, exported_models, texts, tmp_path):
    """~30 s. The candidate is the stable model inverted: it disagrees on every text."""
    server, store, output_dir = shadow_server
    stable = status(server)["stable"]
    own = {}
    for text in texts[:40]:
        own[text] = predict(server, text, f"own-{len(own)}").json()["predictions"][0]
    labels = sorted({row["label"] for row in default_rows(200)})
    variant = write_variant(exported_models[0], "inverted", tmp_path / "inverted", labels)
    candidate = store.publish(str(variant), {}).number
    wait_for(lambda: status(server)["candidate"] == candidate, 30, "the candidate", [server])

    with Traffic([server], texts[:40]) as traffic:
        wait_for(lambda: (status(server)["window"] or {}).get("candidate_requests", 0)
                 >= 20, 60, "shadow copies", [server])
        shown = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "rollout", "status", "--output-dir",
             str(output_dir), "--set", f"model_name={MODEL_NAME}", "--set",
             "serving.rollout.mode=shadow", "--set", "serving.rollout.steps=50,100",
             "--server", server.url], cwd=REPO_ROOT, capture_output=True, text=True,
            timeout=60, check=False)
        wait_for(lambda: status(server)["candidate"] is None, 60, "the rollback", [server])
    assert shown.returncode == 0, shown.stderr
    assert f"candidate: version {candidate}, shadow at step 1 of 2 (50 % of requests)" in \
        shown.stdout and "disagreement" in shown.stdout
    assert {(code, version) for _, code, version, _ in traffic.answers} == {(200, str(stable))}
    for text in texts[:5]:
        assert predict(server, text, "again").json()["predictions"][0] == own[text]
    decision = status(server)["last_decision"]
    assert "labels differ from the stable version's on" in decision, decision
    shadow_counts = [sample.value for family in text_string_to_metric_families(
        requests.get(f"{server.url}/metrics", timeout=10).text) for sample in family.samples
        if sample.name == "textclf_requests_total" and sample.labels["route"] == "shadow"
        and sample.labels["version"] == str(candidate)]
    assert sum(shadow_counts) >= SHADOW_STEP_REQUESTS
