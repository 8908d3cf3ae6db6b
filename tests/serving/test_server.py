"""`textclf serve` on 127.0.0.1: V1 and V2 answers equal the SavedModel's, hot reload under load,
rollback, refused versions, auth and bad requests.

The tests share one server over one store and run in file order: v1 is served, v2 is pushed
under load, a rollback brings v1 back, then a tampered and an unsigned version are refused.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from serving.auth import TOKEN_ENV
from serving.store import ModelStore
from tests.conftest import REPO_ROOT
from tests.serving.conftest import keyed_store
from tests.serving.server_process import (MODEL_NAME, ServerProcess,
                                          assert_served_like_saved_model, predict_text)
from tests.serving.store_faults import flip_byte
from tests.webhook_receiver import WebhookReceiver, fields

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SENTENCES = ["A gripping, beautifully acted film.", "the worst two hours i have ever spent",
             "Résumé: fine, I guess", ""]
POLL_SECONDS = 0.5


@pytest.fixture(scope="module")
def setup(exported_models, tmp_path_factory):
    """(server, store, signing key, output dir) with version 1 (model-1, signed) in the store."""
    output_dir = tmp_path_factory.mktemp("serve")
    store, signing_key = keyed_store(output_dir, MODEL_NAME)
    store.publish(str(exported_models[0]), {"data_span": 1}, signing_key=signing_key)
    server = ServerProcess(output_dir, f"serving.verify_key_file={output_dir / 'public.pem'}",
                           "serving.max_instances=8", "serving.max_text_chars=200", token=TOKEN)
    try:
        server.wait_until_live()
        yield server, store, signing_key, output_dir
    finally:
        server.stop()


def v1_predict(server, instances, headers=AUTH):
    return requests.post(f"{server.url}/v1/models/{MODEL_NAME}:predict",
                         json={"instances": instances}, headers=headers, timeout=30)


def models_list(output_dir, *args):
    """`textclf models list` over the test store, the token in the environment."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "models", "list", "--output-dir", str(output_dir),
         "--set", f"model_name={MODEL_NAME}", *args], env={**os.environ, TOKEN_ENV: TOKEN},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def wait_for_version(server, number, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if v1_predict(server, ["probe"]).json().get("model_version") == str(number):
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"version {number} not served within {timeout} s:\n{server.log()}")


def test_v1_predict_equals_the_saved_model(setup, exported_models):
    server, store, _, _ = setup
    response = v1_predict(server, SENTENCES)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == str(store.versions()[0].number)
    expected_probabilities, expected_labels = predict_text(exported_models[0], SENTENCES)
    np.testing.assert_allclose([row["probabilities"] for row in body["predictions"]],
                               expected_probabilities, atol=1e-5)
    assert [row["label"] for row in body["predictions"]] == expected_labels
    assert [row["class_id"] for row in body["predictions"]] == list(
        expected_probabilities.argmax(axis=1))


def test_v2_infer_equals_the_saved_model(setup, exported_models):
    server, _, _, _ = setup
    response = requests.post(
        f"{server.url}/v2/models/{MODEL_NAME}/infer", headers=AUTH, timeout=30,
        json={"inputs": [{"name": "text", "shape": [len(SENTENCES)], "datatype": "BYTES",
                          "data": SENTENCES}]})

    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    expected_probabilities, expected_labels = predict_text(exported_models[0], SENTENCES)
    assert outputs["probabilities"]["shape"] == list(expected_probabilities.shape)
    np.testing.assert_allclose(
        np.reshape(outputs["probabilities"]["data"], expected_probabilities.shape),
        expected_probabilities, atol=1e-5)
    assert outputs["label"]["data"] == expected_labels


def _metric_samples(server) -> dict:
    """{(sample name, sorted labels): value} from /metrics, parsed by prometheus_client."""
    response = requests.get(f"{server.url}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def test_metrics_count_every_request_by_version_protocol_and_status(setup):
    server, store, _, _ = setup
    version = str(store.versions()[-1].number)
    before = _metric_samples(server)
    for _ in range(4):
        assert v1_predict(server, ["fine"]).status_code == 200
    for _ in range(2):
        assert requests.post(f"{server.url}/v2/models/{MODEL_NAME}/infer", headers=AUTH,
                             timeout=30, json={"inputs": [{"name": "text", "shape": [1],
                                                           "datatype": "BYTES",
                                                           "data": ["x"]}]}).status_code == 200
    for _ in range(3):
        assert requests.post(f"{server.url}/v1/models/{MODEL_NAME}:predict", headers=AUTH,
                             json={"texts": ["x"]}, timeout=30).status_code == 400
    assert requests.post(f"{server.url}/v1/models/other:predict", headers=AUTH,
                         json={"instances": ["x"]}, timeout=30).status_code == 404
    assert v1_predict(server, ["x"], headers={}).status_code == 401
    after = _metric_samples(server)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    def requests_delta(version_label, protocol, status):
        return delta("textclf_requests_total", model=MODEL_NAME, version=version_label,
                     route="stable", protocol=protocol, status=status)

    assert requests_delta(version, "v1", "200") == 4
    assert requests_delta(version, "v2", "200") == 2
    assert requests_delta("none", "v1", "400") == 3
    assert requests_delta("none", "v1", "404") == 1
    assert delta("textclf_refused_requests_total", status="401") == 1
    assert delta("textclf_request_duration_seconds_count", model=MODEL_NAME,
                 version=version) == 6
    assert delta("textclf_batch_size_texts_count") >= 1
    assert after[("textclf_served_version", (("model", MODEL_NAME),))] == float(version)
    assert after[("textclf_loaded_versions", (("model", MODEL_NAME),))] == 1


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain",
                                          None])
def test_a_json_body_is_read_whatever_its_content_type_as_tf_serving_does(
        setup, exported_models, content_type):
    """`curl -d '{"instances": [...]}'`, as TF Serving's documentation shows, sends a form type."""
    server, _, _, _ = setup
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    v1 = requests.post(f"{server.url}/v1/models/{MODEL_NAME}:predict", headers=headers,
                       data=json.dumps({"instances": SENTENCES}), timeout=30)
    v2 = requests.post(f"{server.url}/v2/models/{MODEL_NAME}/infer", headers=headers, timeout=30,
                       data=json.dumps({"inputs": [{"name": "text", "shape": [1],
                                                    "datatype": "BYTES", "data": SENTENCES[:1]}]}))

    assert v1.status_code == 200 and v2.status_code == 200, v1.text + v2.text
    expected_probabilities, _ = predict_text(exported_models[0], SENTENCES)
    np.testing.assert_allclose([row["probabilities"] for row in v1.json()["predictions"]],
                               expected_probabilities, atol=1e-5)
    [probabilities] = [output for output in v2.json()["outputs"]
                       if output["name"] == "probabilities"]
    np.testing.assert_allclose(probabilities["data"], expected_probabilities[0], atol=1e-5)


def test_health_is_open_and_everything_else_needs_the_token(setup):
    server, _, _, _ = setup
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
    assert v1_predict(server, ["x"], headers={}).status_code == 401
    wrong = v1_predict(server, ["x"], headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
    assert requests.get(f"{server.url}/v1/models/{MODEL_NAME}", timeout=5).status_code == 401
    assert requests.get(f"{server.url}/v1/models/{MODEL_NAME}", headers=AUTH,
                        timeout=5).json()["ready"] is True


@pytest.mark.parametrize("body, status, message", [
    (b'{"instances": ["unterminated', 400, "the body is not JSON"),
    (b'{"instances": [1, 2]}', 400, "must be a string"),
    (b'{"instances": "just text"}', 400, "to be a list"),
    (b'{"texts": ["x"]}', 400, "expected a JSON object"),
    (b'{"instances": []}', 400, "no instances"),
    (b'{"instances": ["' + b"long " * 50 + b'"]}', 413, "limit is 200"),
    (b'{"instances": [' + b",".join([b'"x"'] * 9) + b"]}", 413, "limit is 8"),
    (b'{"instances": ["' + b"x" * 200000 + b'"]}', 413, "serving.max_body_bytes"),
])
def test_bad_v1_requests_get_4xx_with_the_reason(setup, body, status, message):
    server, _, _, _ = setup
    response = requests.post(f"{server.url}/v1/models/{MODEL_NAME}:predict", data=body,
                             headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert v1_predict(server, ["still serving"]).status_code == 200


@pytest.mark.parametrize("body, message", [
    ({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, "BYTES"),
    ({"inputs": [{"name": "words", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
     "unknown input"),
    ({"inputs": "text"}, '"inputs" must be a non-empty list'),
    ({"no_inputs": []}, '"inputs" must be a non-empty list'),
])
def test_bad_v2_requests_get_400_with_the_reason(setup, body, message):
    server, _, _, _ = setup
    response = requests.post(f"{server.url}/v2/models/{MODEL_NAME}/infer", json=body,
                             headers=AUTH, timeout=30)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_a_pushed_version_is_served_within_the_poll_interval_with_no_failed_request(
        setup, exported_models):
    server, store, signing_key, _ = setup
    failures, answered_by, stop = [], [], threading.Event()

    def client_loop():
        while not stop.is_set():
            try:
                response = v1_predict(server, SENTENCES[:2])
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    answered_by.append(response.json()["model_version"])
            except requests.RequestException as error:
                failures.append(repr(error))

    clients = [threading.Thread(target=client_loop) for _ in range(4)]
    for client in clients:
        client.start()
    time.sleep(1.0)
    pushed_at = time.monotonic()
    version = store.publish(str(exported_models[1]), {"data_span": 2}, signing_key=signing_key)
    served_at = wait_for_version(server, version.number)
    time.sleep(0.5)
    stop.set()
    for client in clients:
        client.join()

    assert failures == []
    assert len(set(answered_by)) == 2 and answered_by[-1] == str(version.number)
    # A poll, plus loading and warming up the new SavedModel.
    assert served_at - pushed_at < POLL_SECONDS + 15
    expected_probabilities, _ = predict_text(exported_models[1], SENTENCES[:2])
    np.testing.assert_allclose(
        [row["probabilities"] for row in v1_predict(server, SENTENCES[:2]).json()["predictions"]],
        expected_probabilities, atol=1e-5)


def test_rollback_serves_the_previous_version_again_and_notifies(setup):
    server, store, _, output_dir = setup
    first, second = [version.number for version in store.versions()]
    receiver = WebhookReceiver()
    try:
        rollback = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "models", "rollback", "--output-dir",
             str(output_dir), "--set", f"model_name={MODEL_NAME}", "--reason",
             "bad in production", "--set", f"notifications.webhook_url={receiver.url}"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    finally:
        receiver.close()

    assert rollback.returncode == 0, rollback.stderr
    assert f"version {first} of {MODEL_NAME} serves again" in rollback.stdout
    [payload] = receiver.payloads
    assert fields(payload) == {"event": "rollback", "model": MODEL_NAME, "version": str(first),
                               "store": store.model_dir, "reason": "bad in production"}
    wait_for_version(server, first)
    listing = models_list(output_dir, "--server", server.url)
    assert listing.returncode == 0, listing.stderr
    assert f"{second}\trejected\t-\tyes" in listing.stdout
    assert f"{first}\tserving\tstable 100%\tyes" in listing.stdout


def test_tampered_and_unsigned_versions_are_refused_and_the_last_good_keeps_serving(
        setup, exported_models, tmp_path):
    server, store, signing_key, _ = setup
    serving_now = store.serving_candidates()[0].number
    # Tampered after signing: published elsewhere, one byte changed, then moved in.
    side_store = ModelStore(str(tmp_path / "side"), MODEL_NAME)
    tampered = side_store.publish(str(exported_models[1]), {}, signing_key=signing_key)
    weights = next((tampered_path for tampered_path in
                    (tmp_path / "side" / MODEL_NAME / str(tampered.number) / "variables").glob(
                        "variables.data-*")))
    flip_byte(weights)
    tampered_number = store.versions()[-1].number + 1
    shutil.move(tampered.path, f"{store.model_dir}/{tampered_number}")
    unsigned = store.publish(str(exported_models[1]), {})

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and f"refusing version {unsigned.number}" not in server.log():
        time.sleep(0.2)
    log = server.log()
    assert f"refusing version {unsigned.number} of {MODEL_NAME}: version {unsigned.number} is " \
           "not signed" in log
    assert f"refusing version {tampered_number} of {MODEL_NAME}: version {tampered_number}: " \
           "1 file(s) differ" in log
    assert v1_predict(server, ["x"]).json()["model_version"] == str(serving_now)


def test_a_signed_version_that_does_not_load_is_refused_and_the_last_good_keeps_serving(
        setup, tmp_path):
    server, store, signing_key, output_dir = setup
    serving_now = v1_predict(server, ["x"]).json()["model_version"]
    broken = tmp_path / "broken"
    (broken / "variables").mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    version = store.publish(str(broken), {}, signing_key=signing_key)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and f"refusing version {version.number}" not in server.log():
        time.sleep(0.2)
    assert f"refusing version {version.number} of {MODEL_NAME}" in server.log()
    assert v1_predict(server, ["x"]).json()["model_version"] == serving_now
    # The store cannot tell that it does not load; the server can, and `--server` asks it.
    from_store = models_list(output_dir)
    assert f"{version.number}\tverified\tstable 100%\tyes" in from_store.stdout
    assert "only a server knows" in from_store.stderr
    from_server = models_list(output_dir, "--server", server.url).stdout
    assert f"{version.number}\trefused\t-\tyes" in from_server
    assert f"{serving_now}\tserving\tstable 100%\tyes" in from_server


def test_a_fine_tuned_wordpiece_model_is_served_like_its_saved_model(pretrained_run):
    """The pipeline's fine-tuned MiniLM: its transform graph needs tensorflow_text's ops."""
    config, outcome = pretrained_run
    assert_served_like_saved_model(pathlib.Path(config.output_dir), config.model_name,
                                   outcome.pushed_model_dir, SENTENCES)
