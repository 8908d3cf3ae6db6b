"""`textclf serve` against hostile clients: raw requests on a socket, each with the status a
well-behaved server answers, and the server's memory and latency while it is attacked.

One server (token and signature checks on, default limits) over a store whose newest folders
are corrupt in every way `store_faults` knows and whose only model is unsigned: it must start,
say it is not ready, then serve that model once it is signed in place. Every request of the
table then goes to it as bytes on a socket, so nothing (no client library) tidies it first.
"""

import base64
import concurrent.futures
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import requests

from pipeline.config import ServingConfig
from serving.store import MANIFEST_FILE, SIGNATURE_FILE
from tests.serving.conftest import keyed_store
from tests.serving.server_process import MODEL_NAME, ServerProcess
from tests.serving.store_faults import CORRUPTIONS, corrupt

TOKEN = "hostile-suite-token"
AUTH = ((b"authorization", b"Bearer " + TOKEN.encode()),)
JSON = ((b"content-type", b"application/json"),)
LIMITS = ServingConfig()
V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"


def exchange(port: int, raw: bytes, timeout: float = 60) -> tuple[int, dict, bytes]:
    """Sends `raw` on a fresh connection; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(raw)
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, {name.lower(): value for name, value in
                                 response.getheaders()}, response.read()


def build(method: str, target: str, headers=(), body: bytes = b"", host: bytes = b"127.0.0.1"
          ) -> bytes:
    """One HTTP/1.1 request as bytes; Content-Length added unless a framing header is given."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"host: " + host]
    lines += [name + b": " + value for name, value in headers]
    if body and not any(name in (b"content-length", b"transfer-encoding")
                        for name, _ in headers):
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines + [b"connection: close", b"", b""]) + body


def v2_body(data, shape=None, **fields) -> bytes:
    tensor = {"name": "text", "datatype": "BYTES",
              "shape": [len(data)] if shape is None else shape, "data": data}
    return json.dumps({"inputs": [tensor], **fields}).encode()


def v1_body(instances, **fields) -> bytes:
    return json.dumps({"instances": instances, **fields}).encode()


@pytest.fixture(scope="module")
def hostile_store(exported_models, tmp_path_factory):
    """(output dir, store, signing key, unsigned version, corrupt version numbers)."""
    output_dir = tmp_path_factory.mktemp("hostile")
    store, signing_key = keyed_store(output_dir, MODEL_NAME)
    unsigned = store.publish(str(exported_models[0]), {})
    corrupt_numbers = []
    for kind in sorted(CORRUPTIONS):
        version = store.publish(str(exported_models[1]), {}, signing_key=signing_key)
        corrupt(version.path, kind)
        corrupt_numbers.append(version.number)
    return output_dir, store, signing_key, unsigned, corrupt_numbers


@pytest.fixture(scope="module")
def unready_server(hostile_store):
    output_dir, _, _, _, _ = hostile_store
    server = ServerProcess(output_dir, f"serving.verify_key_file={output_dir / 'public.pem'}",
                           token=TOKEN)
    try:
        server.wait_until_live()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(unready_server, hostile_store):
    """The same server once its one model is signed in place (and so served)."""
    _, _, signing_key, unsigned, _ = hostile_store
    signature = os.path.join(unsigned.path, SIGNATURE_FILE)
    if not os.path.exists(signature):
        with open(os.path.join(unsigned.path, MANIFEST_FILE), "rb") as manifest:
            content = signing_key.sign(manifest.read())
        with open(signature, "wb") as handle:
            handle.write(content)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _, _ = exchange(unready_server.port, build("GET", "/v2/health/ready"))
        if status == 200:
            return unready_server
        time.sleep(0.2)
    raise AssertionError(f"the signed version was not served:\n{unready_server.log()}")


def test_a_server_over_corrupt_folders_and_only_unsigned_versions_starts_but_is_not_ready(
        unready_server, hostile_store):
    _, _, _, unsigned, corrupt_numbers = hostile_store
    port = unready_server.port
    if exchange(port, build("GET", "/v2/health/ready"))[0] == 200:
        pytest.fail("the server was already signed in place: run this test first")

    assert exchange(port, build("GET", "/"))[0] == 200  # alive
    status, _, body = exchange(port, build("GET", "/v2/health/ready"))
    assert status == 503 and json.loads(body) == {"ready": False}
    status, _, body = exchange(port, build("POST", V1, AUTH + JSON, v1_body(["x"])))
    assert status == 503 and "no version loaded" in json.loads(body)["error"]
    status, _, body = exchange(port, build("GET", f"/v1/models/{MODEL_NAME}", AUTH))
    answer = json.loads(body)
    assert status == 503 and answer["ready"] is False
    refused = {int(entry["version"]): entry["status"]["error_message"]
               for entry in answer["model_version_status"]}
    assert set(refused) == {unsigned.number, *corrupt_numbers}
    assert "not signed" in refused[unsigned.number]
    for number, kind in zip(corrupt_numbers, sorted(CORRUPTIONS)):
        assert CORRUPTIONS[kind][1] in refused[number], kind
    assert unready_server.log().count(f"refusing version {unsigned.number} ") == 1


def test_a_refused_version_is_looked_at_again_once_signed_in_place(server, hostile_store):
    _, _, _, unsigned, _ = hostile_store
    status, headers, body = exchange(server.port, build("POST", V1, AUTH + JSON, v1_body(["x"])))
    assert status == 200, body
    assert headers["x-model-version"] == str(unsigned.number)
    assert f"serving version {unsigned.number} of {MODEL_NAME}" in server.log()


# (id, method, target, headers, body, expected status, a phrase of the error or None).
HOSTILE_REQUESTS = [
    # Auth is decided on the path the router uses, never on one rebuilt from Host.
    ("crafted host on predict", "POST", V1, JSON, v1_body(["x"]), 401, "bearer token",
     b"127.0.0.1/v2/health/live?"),
    ("crafted host on metrics", "GET", "/metrics", (), b"", 401, "bearer token",
     b"x/v2/health/ready#"),
    ("absolute-form target", "POST", f"http://127.0.0.1{V1}", JSON, v1_body(["x"]), 401, None),
    ("percent-encoded colon", "POST", f"/v1/models/{MODEL_NAME}%3Apredict", JSON,
     v1_body(["x"]), 401, None),
    ("dot segments to a probe", "POST", f"/v2/health/live/../..{V1}", JSON, v1_body(["x"]),
     401, None),
    ("trailing slash on a probe", "GET", "/v2/health/live/", (), b"", 401, None),
    ("probe path with a query", "GET", "/v2/health/live?x=1", (), b"", 200, None),
    ("post to a probe", "POST", "/v2/health/ready", (), b"{}", 401, None),
    ("no token", "POST", V1, JSON, v1_body(["x"]), 401, "bearer token"),
    ("wrong token", "POST", V1, ((b"authorization", b"Bearer nope"),) + JSON, v1_body(["x"]),
     401, None),
    ("non-ascii token byte", "POST", V1, ((b"authorization", b"Bearer " + TOKEN.encode()[:-1]
                                           + b"\xe9"),) + JSON, v1_body(["x"]), 401, None),
    ("token as basic auth", "POST", V1, ((b"authorization", b"Basic " + base64.b64encode(
        TOKEN.encode())),) + JSON, v1_body(["x"]), 401, None),
    ("two authorization headers", "POST", V1, AUTH + ((b"authorization", b"Bearer nope"),)
     + JSON, v1_body(["x"]), 401, None),
    ("scheme in lower case", "POST", V1, ((b"authorization", b"bearer " + TOKEN.encode()),)
     + JSON, v1_body(["x"]), 200, None),
    # The repository API could unload the model; it is not on a prediction port.
    ("repository unload", "POST", f"/v2/repository/models/{MODEL_NAME}/unload", AUTH, b"{}",
     404, "no such path"),
    ("repository load", "POST", f"/v2/repository/models/{MODEL_NAME}/load", AUTH, b"{}", 404,
     None),
    ("repository index", "POST", "/v2/repository/index", AUTH, b"{}", 404, None),
    # Methods and paths.
    ("get on predict", "GET", V1, AUTH, b"", 405, "not allowed"),
    ("put on infer", "PUT", V2, AUTH + JSON, v2_body(["x"]), 405, None),
    ("delete a model", "DELETE", f"/v2/models/{MODEL_NAME}", AUTH, b"", 405, None),
    ("unknown path", "GET", "/v3/anything", AUTH, b"", 404, "no such path"),
    ("unknown model", "POST", "/v1/models/other:predict", AUTH + JSON, v1_body(["x"]), 404,
     "other"),
    ("version not a number", "POST", f"/v1/models/{MODEL_NAME}/versions/latest:predict",
     AUTH + JSON, v1_body(["x"]), 404, None),
    ("a version not served", "POST", f"/v1/models/{MODEL_NAME}/versions/7:predict",
     AUTH + JSON, v1_body(["x"]), 404, "not served"),
    ("v2 version not served", "POST", f"/v2/models/{MODEL_NAME}/versions/7/infer",
     AUTH + JSON, v2_body(["x"]), 404, "not served"),
    ("a websocket upgrade", "GET", V1, AUTH + ((b"upgrade", b"websocket"),
                                               (b"connection", b"Upgrade")), b"", 405, None),
    # Media types: parsed, case-insensitive, with parameters.
    ("json with charset", "POST", V1, AUTH + ((b"content-type",
                                               b"application/json; charset=utf-8"),),
     v1_body(["x"]), 200, None),
    ("json in capitals", "POST", V1, AUTH + ((b"content-type", b"Application/JSON"),),
     v1_body(["x"]), 200, None),
    ("quoted charset", "POST", V1, AUTH + ((b"content-type", b'application/json;charset="UTF-8"'),),
     v1_body(["x"]), 200, None),
    ("a +json type", "POST", V2, AUTH + ((b"content-type", b"application/vnd.api+json"),),
     v2_body(["x"]), 200, None),
    ("latin-1 charset", "POST", V1, AUTH + ((b"content-type",
                                             b"application/json; charset=latin-1"),),
     v1_body(["x"]), 415, "UTF-8"),
    ("binary content", "POST", V2, AUTH + ((b"content-type", b"application/octet-stream"),),
     v2_body(["x"]), 415, "not JSON"),
    ("not a media type", "POST", V1, AUTH + ((b"content-type", b"json"),), v1_body(["x"]), 400,
     "not a media type"),
    ("two content types", "POST", V1, AUTH + JSON + ((b"content-type", b"text/plain"),),
     v1_body(["x"]), 400, "more than one"),
    # Bodies.
    ("empty body", "POST", V1, AUTH + JSON, b"", 400, "not JSON"),
    ("not json", "POST", V1, AUTH + JSON, b"instances=x", 400, "not JSON"),
    ("a latin-1 byte", "POST", V1, AUTH + JSON, b'{"instances": ["caf\xe9"]}', 400, "not JSON"),
    ("utf-8 byte-order mark", "POST", V1, AUTH + JSON, b"\xef\xbb\xbf" + v1_body(["x"]), 400,
     None),
    ("lone surrogate v1", "POST", V1, AUTH + JSON, b'{"instances": ["\\ud800"]}', 400, None),
    ("lone surrogate v2", "POST", V2, AUTH + JSON, v2_body(["\ud800"]), 400, None),
    ("nan", "POST", V1, AUTH + JSON, b'{"instances": [NaN]}', 400, None),
    ("nested 100,000 deep", "POST", V1, AUTH + JSON, b'{"instances": ' + b"[" * 100_000
     + b"]" * 100_000 + b"}", 400, None),
    ("a number for a text", "POST", V1, AUTH + JSON, v1_body([1]), 400, "must be a string"),
    ("null for a text", "POST", V1, AUTH + JSON, v1_body([None]), 400, "must be a string"),
    ("b64 text", "POST", V1, AUTH + JSON, v1_body([{"b64": base64.b64encode(
        "déjà vu".encode()).decode()}]), 200, None),
    ("b64 not base64", "POST", V1, AUTH + JSON, v1_body([{"b64": "%%%"}]), 400, "base64"),
    ("b64 not ascii", "POST", V1, AUTH + JSON, v1_body([{"b64": "\u00e9t\u00e9"}]), 400,
     "base64"),
    ("a signature nested 1,000 deep", "POST", V1, AUTH + JSON,
     b'{"instances": ["x"], "signature_name": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400,
     "signature_name a list"),
    ("a shape nested 1,000 deep", "POST", V2, AUTH + JSON, b'{"inputs": [{"name": "text", '
     b'"datatype": "BYTES", "data": ["x"], "shape": ' + b"[" * 1000 + b"]" * 1000 + b"}]}",
     400, "shape must be a list of sizes, got a list"),
    ("an unparsable host on a refused body", "POST", V1, AUTH + JSON, b"not json", 400,
     "not JSON", b"["),
    ("an unparsable host on an unknown path", "GET", "/nope", AUTH, b"", 404, "no such path",
     b"["),
    ("a content-length of 5,000 digits", "POST", V1, AUTH + JSON + (
        (b"content-length", b"0" * 4999 + b"1"),), b"x", 400, None),
    ("a content-length past 64 bits", "POST", V1, AUTH + JSON + (
        (b"content-length", b"9" * 5000), (b"expect", b"100-continue")), b"", 400, None),
    ("b64 not utf-8", "POST", V1, AUTH + JSON, v1_body([{"b64": base64.b64encode(
        b"\xff\xfe").decode()}]), 400, "UTF-8"),
    ("too many instances", "POST", V1, AUTH + JSON, v1_body(["x"] * (LIMITS.max_instances + 1)),
     413, "serving.max_instances"),
    ("a text too long", "POST", V1, AUTH + JSON, v1_body(["x" * (LIMITS.max_text_chars + 1)]),
     413, "serving.max_text_chars"),
    # V1 shapes.
    ("another signature", "POST", V1, AUTH + JSON, v1_body(["x"], signature_name="serving_default"),
     400, "predict_text"),
    ("instances and inputs", "POST", V1, AUTH + JSON, v1_body(["x"], inputs=["y"]), 400,
     "not both"),
    ("columnar list", "POST", V1, AUTH + JSON, b'{"inputs": ["x", "y"]}', 200, None),
    ("columnar object", "POST", V1, AUTH + JSON, b'{"inputs": {"text": ["x"]}}', 200, None),
    ("a row object", "POST", V1, AUTH + JSON, v1_body([{"text": "x"}]), 200, None),
    ("a row with an unknown input", "POST", V1, AUTH + JSON, v1_body([{"text": "x", "y": "z"}]),
     400, "unknown input"),
    ("a pair for a one-text model", "POST", V1, AUTH + JSON,
     v1_body([{"text": "x", "text_pair": "y"}]), 400, "unknown input"),
    # V2 shapes.
    ("shape larger than data", "POST", V2, AUTH + JSON, v2_body(["x"], shape=[2]), 400,
     "holds 2 values"),
    ("shape smaller than data", "POST", V2, AUTH + JSON, v2_body(["x", "y"], shape=[1]), 400,
     "holds 1 values"),
    ("shape n by 1, nested", "POST", V2, AUTH + JSON, v2_body([["x"], ["y"]], shape=[2, 1]),
     200, None),
    ("shape n by 2", "POST", V2, AUTH + JSON, v2_body(["x", "y"], shape=[1, 2]), 400,
     "not [n] or [n, 1]"),
    ("negative shape", "POST", V2, AUTH + JSON, v2_body(["x"], shape=[-1]), 400, "shape"),
    ("shape of strings", "POST", V2, AUTH + JSON, v2_body(["x"], shape=["1"]), 400, "shape"),
    ("shape of booleans", "POST", V2, AUTH + JSON, v2_body(["x"], shape=[True]), 400, "shape"),
    ("shape over the limit", "POST", V2, AUTH + JSON, v2_body(["x"], shape=[10 ** 12]), 413,
     "serving.max_instances"),
    ("fp32 datatype", "POST", V2, AUTH + JSON, json.dumps({"inputs": [
        {"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}).encode(), 400,
     "BYTES"),
    ("binary tensor data", "POST", V2, AUTH + JSON, json.dumps({"inputs": [
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"],
         "parameters": {"binary_data_size": 1}}]}).encode(), 415, "binary"),
    ("an input twice", "POST", V2, AUTH + JSON, json.dumps({"inputs": [
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}] * 2}).encode(), 400,
     "twice"),
    ("id not a string", "POST", V2, AUTH + JSON, v2_body(["x"], id=7), 400, '"id"'),
    ("unknown output", "POST", V2, AUTH + JSON, v2_body(["x"], outputs=[{"name": "logits"}]),
     400, "unknown output"),
    ("outputs not a list", "POST", V2, AUTH + JSON, v2_body(["x"], outputs="label"), 400,
     '"outputs"'),
    # Framing: what the HTTP parser refuses never reaches a route.
    ("content-length and chunked", "POST", V1, AUTH + JSON + (
        (b"content-length", b"5"), (b"transfer-encoding", b"chunked")),
     b"5\r\n{\"in\"\r\n0\r\n\r\n", 400, None),
    ("bad chunk size", "POST", V1, AUTH + JSON + ((b"transfer-encoding", b"chunked"),),
     b"zz\r\nabc\r\n0\r\n\r\n", 400, None),
    ("declared over the limit, expecting 100-continue", "POST", V1, AUTH + JSON + (
        (b"content-length", str(LIMITS.body_limit_bytes() + 1).encode()),
        (b"expect", b"100-continue")), b"", 413, "serving.max_body_bytes"),
    ("declared a terabyte", "POST", V1, AUTH + JSON + ((b"content-length", b"1" + b"0" * 12),),
     b"", 413, "serving.max_body_bytes"),
]


@pytest.mark.parametrize("case", HOSTILE_REQUESTS, ids=[case[0] for case in HOSTILE_REQUESTS])
def test_a_hostile_request_gets_its_status_and_the_model_keeps_serving(server, case):
    _, method, target, headers, body, expected, phrase, *host = case
    status, _, answer = exchange(server.port, build(method, target, headers, body, *host))

    assert status == expected, answer[:500]
    if phrase:
        assert phrase in json.loads(answer)["error"]
    assert exchange(server.port, build("POST", V1, AUTH + JSON, v1_body(["still"])))[0] == 200


def _post(server, path, body: bytes, timeout=60) -> requests.Response:
    return requests.post(server.url + path, data=body, timeout=timeout,
                         headers={"Authorization": f"Bearer {TOKEN}",
                                  "Content-Type": "application/json"})


def test_the_protocols_paths_outputs_and_metadata(server, hostile_store):
    _, _, _, served, _ = hostile_store
    version = served.number
    v1 = _post(server, f"/v1/models/{MODEL_NAME}/versions/{version}:predict", v1_body(["x"]))
    v2 = _post(server, f"/v2/models/{MODEL_NAME}/versions/{version}/infer",
               v2_body(["x", "y"], outputs=[{"name": "label"}], id="req-7"))
    metadata = requests.get(f"{server.url}/v2/models/{MODEL_NAME}", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"}).json()

    assert v1.status_code == 200 and v1.json()["model_version"] == str(version)
    assert v2.status_code == 200, v2.text
    answer = v2.json()
    assert answer["id"] == "req-7" and answer["model_version"] == str(version)
    assert [output["name"] for output in answer["outputs"]] == ["label"]
    assert answer["outputs"][0]["shape"] == [2]
    assert [tensor["name"] for tensor in metadata["inputs"]] == ["text"]
    assert [tensor["name"] for tensor in metadata["outputs"]] == [
        "probabilities", "label", "class_id"]
    assert metadata["versions"] == [str(version)]


def test_sixty_four_texts_of_ten_thousand_emoji_fit_the_limits(server):
    """The largest request the documented limits allow: JSON escapes each emoji in 12 bytes."""
    body = json.dumps({"instances": ["\N{GRINNING FACE}" * LIMITS.max_text_chars]
                       * LIMITS.max_instances}).encode()
    assert len(body) > 12 * LIMITS.max_text_chars * LIMITS.max_instances

    response = _post(server, V1, body, timeout=120)

    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["predictions"]) == LIMITS.max_instances


def test_a_body_declared_over_the_limit_gets_a_readable_413_with_urllib(server):
    """urllib sends the whole body before it reads, with `Connection: close`."""
    request = urllib.request.Request(server.url + V1, data=b" " * (LIMITS.body_limit_bytes() + 1),
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)  # pylint: disable=consider-using-with

    assert refused.value.code == 413
    assert "serving.max_body_bytes" in json.loads(refused.value.read())["error"]


def _memory_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1])


def _latencies(server, count: int, stop: threading.Event = None) -> list[float]:
    taken = []
    with requests.Session() as session:
        while len(taken) < count or (stop is not None and not stop.is_set()):
            started = time.perf_counter()
            response = session.post(server.url + V1, data=v1_body(["one short text"]),
                                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            assert response.status_code == 200, response.text
            taken.append(time.perf_counter() - started)
    return taken


def test_a_50_mb_chunked_body_is_refused_holding_at_most_the_limit_while_others_are_served(
        server):
    """Peak RSS is reset (clear_refs 5) before the upload and read (VmHWM) after it."""
    limit = LIMITS.body_limit_bytes()
    unloaded = _latencies(server, 60)
    chunk = b" " * (256 << 10)
    pid = server.process.pid
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")
    resident_before = _memory_kib(pid, "VmRSS")
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loaded = pool.submit(_latencies, server, 30, stop)
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as connection:
            connection.sendall(build("POST", V1, AUTH + JSON + (
                (b"transfer-encoding", b"chunked"),)).replace(b"connection: close\r\n", b""))
            for _ in range((50 << 20) // len(chunk)):
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                time.sleep(0.01)  # about 25 MB/s, so the upload overlaps the client's requests
            connection.sendall(b"0\r\n\r\n")
            response = http.client.HTTPResponse(connection)
            response.begin()
            status, answer = response.status, response.read()
        stop.set()
        loaded = loaded.result()
    peak_growth = (_memory_kib(pid, "VmHWM") - resident_before) * 1024

    assert status == 413 and "serving.max_body_bytes" in json.loads(answer)["error"]
    # The refused body's buffer (the limit, with a bytearray's spare room) and a constant.
    assert peak_growth <= limit * 1.25 + (16 << 20), (peak_growth, limit)
    assert np.percentile(loaded, 99) <= 2 * np.percentile(unloaded, 99), (
        np.percentile(loaded, 99), np.percentile(unloaded, 99), len(loaded))


POISONED_BODIES = [
    (V2, v2_body(["\ud800"])),
    (V1, b'{"instances": ["ok", "\\udfff"]}'),
    (V1, v1_body([{"b64": base64.b64encode(b"\xc3\x28").decode()}])),
    (V2, v2_body(["x", 7])),
    (V1, v1_body(["x" * (LIMITS.max_text_chars + 1)])),
    (V2, v2_body(["x"], shape=[2])),
]


def test_poisoned_requests_among_concurrent_ones_fail_alone(server):
    """8 clients and one poisoner, every batch window: each innocent answer must be the one
    its text gets alone."""
    texts = [f"innocent request {index}: a fine film" for index in range(8)]
    alone = {text: _post(server, V1, v1_body([text])).json()["predictions"][0]
             for text in texts}
    failures, answered, poisoned_statuses = [], [], []
    stop = threading.Event()

    def innocent(text):
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(server.url + V1, data=v1_body([text]), timeout=60,
                                        headers={"Authorization": f"Bearer {TOKEN}"})
                if response.status_code != 200:
                    failures.append((response.status_code, response.text[:200]))
                    continue
                [prediction] = response.json()["predictions"]
                if prediction["label"] != alone[text]["label"] or not np.allclose(
                        prediction["probabilities"], alone[text]["probabilities"], atol=1e-5):
                    failures.append(("wrong answer", text))
                answered.append(text)

    def poisoner():
        with requests.Session() as session:
            for round_number in range(60):
                path, body = POISONED_BODIES[round_number % len(POISONED_BODIES)]
                poisoned_statuses.append(session.post(
                    server.url + path, data=body, timeout=60,
                    headers={"Authorization": f"Bearer {TOKEN}"}).status_code)
                time.sleep(LIMITS.max_batch_wait_ms / 1000)

    threads = [threading.Thread(target=innocent, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    poisoner()
    stop.set()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(answered) >= 100
    assert set(poisoned_statuses) <= {400, 413} and len(poisoned_statuses) == 60


def test_the_running_server_over_corrupt_folders_serves_the_next_good_push(
        server, hostile_store, exported_models):
    _, store, signing_key, _, _ = hostile_store
    pushed = store.publish(str(exported_models[1]), {}, signing_key=signing_key)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, headers, _ = exchange(server.port, build("POST", V1, AUTH + JSON, v1_body(["x"])))
        if headers.get("x-model-version") == str(pushed.number):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"version {pushed.number} not served:\n{server.log()}")
    assert "Traceback" not in server.log()
