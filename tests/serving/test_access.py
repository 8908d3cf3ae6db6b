"""`textclf serve` over HTTPS with JWT bearer tokens and the audit log: the real server on
127.0.0.1, a test CA, RS256 tokens from a test issuer; access settings that stop `serve` before
it binds; and a server whose audit disk is full."""

import json
import socket
import subprocess
import sys

import pytest
import requests

from serving.audit import verify
from serving.store import ModelStore
from tests.conftest import REPO_ROOT
from tests.serving.credentials import (AUDIENCE, ISSUER, hmac_token_signed_with, public_pem,
                                       rsa_key, token, unsigned_token, write_tls_files)
from tests.serving.server_process import MODEL_NAME, ServerProcess, free_port

PREDICT = f"/v1/models/{MODEL_NAME}:predict"


@pytest.fixture(scope="module")
def https_server(exported_models, tmp_path_factory):
    """(server, RSA key of the issuer): HTTPS, JWTs required, no static token."""
    output_dir = tmp_path_factory.mktemp("access")
    ModelStore(str(output_dir / "serving_models"), MODEL_NAME).publish(
        str(exported_models[0]), {})
    ca_file, cert_file, key_file = write_tls_files(output_dir)
    issuer_key = rsa_key()
    (output_dir / "issuer.pem").write_bytes(public_pem(issuer_key))
    server = ServerProcess(output_dir, f"serving.tls_cert_file={cert_file}",
                           f"serving.tls_key_file={key_file}", f"serving.jwt.issuer={ISSUER}",
                           f"serving.jwt.audience={AUDIENCE}",
                           f"serving.jwt.public_key_file={output_dir / 'issuer.pem'}",
                           f"serving.audit.path={output_dir / 'audit' / 'reviews.log'}",
                           ca_file=str(ca_file))
    server.audit_log = str(output_dir / "audit" / "reviews.log")
    try:
        server.wait_until_live()
        yield server, issuer_key
    finally:
        server.stop()


def _predict(server, credential):
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    return requests.post(server.url + PREDICT, json={"instances": ["a fine film"]},
                         headers=headers, timeout=30, verify=server.verify)


def test_a_valid_token_over_https_is_answered(https_server):
    server, issuer_key = https_server
    response = _predict(server, token(issuer_key))
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1
    probes = requests.get(server.url + "/v2/health/ready", timeout=10, verify=server.verify)
    assert probes.status_code == 200


@pytest.mark.parametrize("name, make, status, reason", [
    ("no token", lambda key: "", 401, "missing bearer token"),
    ("expired", lambda key: token(key, lifetime=-120), 401, "expired"),
    ("not yet valid", lambda key: token(key, not_before=600), 401, "not yet valid"),
    ("wrong audience", lambda key: token(key, aud="billing"), 401, "audience"),
    ("wrong issuer", lambda key: token(key, iss="https://evil.example"), 401, "issuer"),
    ("alg none", lambda key: unsigned_token(), 401, "'none'"),
    ("hs256 with the public key", lambda key: hmac_token_signed_with(public_pem(key)), 401,
     "'HS256'"),
    ("another issuer's key", lambda key: token(rsa_key()), 401, "invalid"),
    ("missing scope", lambda key: token(key, scope="read"), 403, "'predict' scope"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_bad_token_gets_its_status_and_reason_and_no_stack_trace(https_server, name, make,
                                                                    status, reason):
    server, issuer_key = https_server
    response = _predict(server, make(issuer_key))

    assert response.status_code == status, (name, response.text)
    assert reason in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Traceback" not in server.log()


def test_metrics_need_the_admin_scope(https_server):
    server, issuer_key = https_server

    def metrics(scope):
        return requests.get(server.url + "/metrics", timeout=10, verify=server.verify,
                            headers={"Authorization": f"Bearer {token(issuer_key, scope=scope)}"})

    assert metrics("predict").status_code == 403
    assert metrics("admin").status_code == 200


def test_plain_http_to_the_https_port_gets_no_answer(https_server):
    server, _ = https_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = connection.recv(4096)
    assert not answer.startswith(b"HTTP/")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/v2/health/live", timeout=10)


@pytest.mark.parametrize("overrides, message", [
    (["serving.jwt.issuer=x", "serving.jwt.audience=y",
      "serving.jwt.public_key_file=/nonexistent/issuer.pem"],
     "serving.jwt.public_key_file /nonexistent/issuer.pem cannot be read"),
    (["serving.jwt.issuer=x", "serving.jwt.audience=y"], "neither serving.jwt.public_key_file"),
    (["serving.tls_cert_file=/nonexistent/cert.pem", "serving.tls_key_file=/nonexistent/key"],
     "serving.tls_cert_file /nonexistent/cert.pem and serving.tls_key_file"),
    (["serving.rollout.steps=10,5,100"], "serving.rollout.steps must rise step by step"),
    (["serving.rollout.max_label_shift=-1"], "serving.rollout.max_label_shift must be in [0, 1]"),
])
def test_bad_access_settings_stop_serve_before_it_binds(tmp_path, overrides, message):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "serve", "--output-dir", str(tmp_path),
         "--port", str(port), *[part for override in overrides for part in ("--set", override)]],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "tensorflow" not in result.stderr.lower()


def _audit_lines(server) -> list[dict]:
    try:
        with open(server.audit_log, "rb") as handle:
            return [json.loads(line) for line in handle]
    except FileNotFoundError:
        return []


def test_every_prediction_request_is_one_audit_line_whose_chain_verifies(https_server):
    """Answers wait for their record (fail_closed), so the lines are there when they return."""
    server, issuer_key = https_server
    before = len(_audit_lines(server))
    credential = {"Authorization": f"Bearer {token(issuer_key)}"}
    statuses = []
    for index in range(12):
        body = {"instances": [f"review {index}", "second text"]} if index % 4 else {"x": 1}
        response = requests.post(server.url + PREDICT, json=body, timeout=30,
                                 verify=server.verify,
                                 headers={**credential, "X-Request-Id": f"audit-{index}"})
        statuses.append(response.status_code)
        assert response.headers["x-request-id"] == f"audit-{index}"

    lines = _audit_lines(server)[before:]
    assert [line["status"] for line in lines] == statuses and statuses.count(400) == 3
    assert [line["request_id"] for line in lines] == [f"audit-{index}" for index in range(12)]
    assert {line["caller"] for line in lines} == {"jwt:analyst-7"}
    answered = [line for line in lines if line["status"] == 200]
    assert all(len(line["inputs"]) == 2 and len(line["answers"]) == 2 for line in answered)
    assert all("texts" not in line for line in lines)
    assert all(line["version"] is not None for line in answered)
    verdict = verify(server.audit_log)
    assert not verdict.problem and verdict.records == before + 12


def test_a_full_audit_disk_refuses_predictions_when_failing_closed(exported_models, tmp_path):
    """/dev/full answers every write with ENOSPC: the default policy answers no prediction
    it cannot record, and the probes still answer."""
    ModelStore(str(tmp_path / "serving_models"), MODEL_NAME).publish(str(exported_models[0]), {})
    server = ServerProcess(tmp_path, "serving.audit.path=/dev/full")
    try:
        server.wait_until_live()
        first = requests.post(server.url + PREDICT, json={"instances": ["x"]}, timeout=30)
        second = requests.post(server.url + PREDICT, json={"instances": ["x"]}, timeout=30)
        ready = requests.get(server.url + "/v2/health/live", timeout=10)
    finally:
        server.stop()

    assert first.status_code == 503 and "No space left on device" in first.json()["error"]
    assert second.status_code == 503 and "fail_closed" in second.json()["error"]
    assert ready.status_code == 200
