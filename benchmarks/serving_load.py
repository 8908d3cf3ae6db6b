"""Load test of `textclf serve` on loopback: batching on vs off, and the server's overhead.

Usage: python benchmarks/serving_load.py [--model-dir DIR | --pretrained CHECKPOINT] [--clients 16]
       [--requests 2000] [--max-seconds 120] [--result FILE]   (or `make bench`); writes
       benchmarks/results/serving_load.json unless --result says otherwise.

Without --model-dir it first runs the default pipeline on the default data (trained for
--train-steps; fine-tuning --pretrained when given) and serves what it pushed. Each load arm
sends a fixed number of one-sentence V1 requests from N concurrent clients and stops at that
count or after --max-seconds, whichever comes first; the server's /metrics give the texts per
model call it formed and its CPU seconds, and this process's CPU time is the clients' cost (they
share the cores). The in-process baselines call the same SavedModel's `predict_text` directly,
in this process, one call at a time: at batch 1 and 32 against one client's requests, and at
the batching arm's mean batch size against its QPS (`served_vs_in_process`).
The audited arm repeats the batching arm with the audit log on (its default fail_closed policy:
an answer waits for its fsynced line). The swap arm pushes the same model again as a new version
while --swap-clients keep sending, and times the push to the first answer by it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from benchmarks.machine import result_header, write_result  # noqa: E402
from pipeline.config import ServingConfig  # noqa: E402
from serving.store import ModelStore  # noqa: E402
from tests.serving.server_process import MODEL_NAME, ServerProcess  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "serving_load.json"
# The batching arm serves with the default settings; the other turns batching off.
BATCHING = ServingConfig()
# How long the model runs in this process at the server's batch size, for goal 3's baseline.
IN_PROCESS_SECONDS = 15.0
# The swap arm polls the store as often as a production server might.
SWAP_POLL_SECONDS = 2.0
SENTENCES = [
    "The battery lasts all day and the screen is bright and sharp. Great value.",
    "Avoid. The zipper jammed on day one and the return process was a hassle.",
    "Arrived late, but the quality is better than I expected for the price.",
    "Not worth it: the sound is tinny and the app keeps crashing.",
]


def sentences(count: int) -> list[str]:
    """`count` texts, SENTENCES taken in turn: one batch of the in-process baselines."""
    return [SENTENCES[index % len(SENTENCES)] for index in range(count)]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _latency_summary(latencies: list[float]) -> dict:
    return {"p50_ms": round(1000 * _percentile(latencies, 0.50), 2),
            "p99_ms": round(1000 * _percentile(latencies, 0.99), 2),
            "mean_ms": round(1000 * statistics.fmean(latencies), 2)}


def server_counters(url: str) -> dict[str, float]:
    """The server's own CPU seconds and the texts/calls its batcher has run, from /metrics."""
    wanted = {"process_cpu_seconds_total": "cpu_s", "textclf_batch_size_texts_sum": "texts",
              "textclf_batch_size_texts_count": "calls"}
    response = requests.get(f"{url}/metrics", timeout=10)
    response.raise_for_status()
    text = response.text
    return {wanted[sample.name]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name in wanted}


def load_arm(url: str, clients: int, total_requests: int, max_seconds: float,
             request_ids: bool = False) -> dict:
    """`total_requests` one-sentence requests from `clients` threads, bounded by `max_seconds`;
    with `request_ids` each carries its own X-Request-Id (a canary routes by it). Besides the
    latencies: the texts per model call the server formed, and the CPU seconds the server and
    the clients (this process) spent, since they share the cores."""
    latencies, errors, lock = [], [], threading.Lock()
    remaining = [total_requests]
    deadline = time.monotonic() + max_seconds

    def client(index: int) -> None:
        session = requests.Session()
        sent = 0
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            sentence = SENTENCES[(index + sent) % len(SENTENCES)]
            sent += 1
            started = time.monotonic()
            try:
                response = session.post(
                    f"{url}/v1/models/{MODEL_NAME}:predict", json={"instances": [sentence]},
                    headers={"X-Request-Id": f"{index}-{sent}"} if request_ids else {},
                    timeout=30)
                ok = response.status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                (latencies if ok else errors).append(time.monotonic() - started)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    server_before, client_cpu_before = server_counters(url), time.process_time()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    client_cpu = time.process_time() - client_cpu_before
    server = {key: value - server_before.get(key, 0.0)
              for key, value in server_counters(url).items()}
    answered = max(1, len(latencies))
    return {"requests": len(latencies) + len(errors), "errors": len(errors),
            "seconds": round(seconds, 2), "qps": round(len(latencies) / seconds, 1),
            **_latency_summary(latencies),
            "mean_texts_per_call": round(server["texts"] / max(1.0, server["calls"]), 2),
            "server_cpu_ms_per_request": round(1000 * server["cpu_s"] / answered, 2),
            "client_cpu_ms_per_request": round(1000 * client_cpu / answered, 2),
            "client_share_of_cpu": round(client_cpu / max(1e-9, client_cpu + server["cpu_s"]),
                                         3)}


def swap_under_load(url: str, store: ModelStore, model_dir: str, clients: int,
                    poll_seconds: float) -> dict:
    """Seconds from a push to the first answer by the new version while `clients` keep
    sending, and the requests that failed meanwhile (there must be none)."""
    answered_by, errors, lock, stop = [], [], threading.Lock(), threading.Event()

    def client(index: int) -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.post(f"{url}/v1/models/{MODEL_NAME}:predict",
                                        json={"instances": [SENTENCES[index % 4]]}, timeout=60)
                ok = response.status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                if ok:
                    answered_by.append((time.monotonic(), response.json()["model_version"]))
                else:
                    errors.append(time.monotonic())

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    pushed_at = time.monotonic()
    version = str(store.publish(model_dir, {}).number)
    deadline = pushed_at + 120
    while time.monotonic() < deadline and not any(
            number == version for _, number in list(answered_by)):
        time.sleep(0.05)
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    served = [at for at, number in answered_by if number == version]
    return {"clients": clients, "poll_seconds": poll_seconds,
            "push_to_first_answer_s": round(served[0] - pushed_at, 2) if served else None,
            "requests": len(answered_by) + len(errors), "errors": len(errors)}


def sequential_latencies(call, repeats: int) -> list[float]:
    latencies = []
    for _ in range(repeats):
        started = time.monotonic()
        call()
        latencies.append(time.monotonic() - started)
    return latencies


def load_predict_text(model_dir: str):
    """The SavedModel's `predict_text`, loaded in this process."""
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  pylint: disable=unused-import  (the graph's text ops)

    return tf.saved_model.load(model_dir).signatures["predict_text"]


def in_process_throughput(predict_text, batch_size: int, seconds: float) -> dict:
    """`predict_text` on `batch_size` texts a call, one call after another in this process for
    `seconds`: the model's own throughput at the batch size the server formed, and its CPU cost
    per text (what the server's CPU per request is compared with)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    texts = tf.constant(sentences(batch_size))
    predict_text(text=texts)  # trace once, outside the timing
    calls, cpu_before, started = 0, time.process_time(), time.monotonic()
    while time.monotonic() - started < seconds:
        predict_text(text=texts)
        calls += 1
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_before
    return {"batch_size": batch_size, "calls": calls,
            "texts_per_second": round(calls * batch_size / wall, 1),
            "cpu_ms_per_text": round(1000 * cpu / (calls * batch_size), 2)}


def overhead(url: str, predict_text, batch_sizes: list[int], repeats: int) -> dict:
    """One client, one request at a time, vs `predict_text` called in this process."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    session = requests.Session()
    result = {}
    for batch_size in batch_sizes:
        batch = sentences(batch_size)
        texts = tf.constant(batch)
        predict_text(text=texts)  # trace once, outside the timing
        direct = sequential_latencies(lambda: predict_text(text=texts), repeats)

        def over_http():
            response = session.post(f"{url}/v1/models/{MODEL_NAME}:predict",
                                    json={"instances": batch}, timeout=30)
            response.raise_for_status()

        over_http()
        served = sequential_latencies(over_http, repeats)
        result[f"batch_{batch_size}"] = {
            "direct_p50_ms": round(1000 * statistics.median(direct), 2),
            "server_p50_ms": round(1000 * statistics.median(served), 2),
            "overhead_ms": round(1000 * (statistics.median(served) - statistics.median(direct)),
                                 2),
            "server_to_direct_ratio": round(statistics.median(served) / statistics.median(direct),
                                            2)}
    return result


def served_vs_in_process(served: dict, in_process: dict) -> dict:
    """The issue's goal 3: served QPS against the model's own throughput at the batch size the
    server formed, and where the server's CPU went besides the model."""
    return {"served_qps": served["qps"], "mean_texts_per_call": served["mean_texts_per_call"],
            "in_process": in_process,
            "ratio": round(served["qps"] / in_process["texts_per_second"], 2),
            "target": ">= 0.85",
            "server_cpu_ms_per_request": served["server_cpu_ms_per_request"],
            "model_cpu_ms_per_text_in_process": in_process["cpu_ms_per_text"],
            "client_cpu_ms_per_request": served["client_cpu_ms_per_request"],
            "client_share_of_cpu": served["client_share_of_cpu"]}


def pushed_model_of_default_pipeline(output_dir: str, train_steps: int, pretrained: str) -> str:
    # pylint: disable=import-outside-toplevel
    from pipeline.config import PipelineConfig
    from pipeline.local_runner import run_local

    overrides = [f"data.path={REPO_ROOT / 'data' / 'reviews'}", f"output_dir={output_dir}/pipeline",
                 f"training.train_steps={train_steps}"]
    if pretrained:
        overrides += [f"model.pretrained={pretrained}", "training.epochs=1",
                      "training.learning_rate=5e-5"]
    config = PipelineConfig.load(None, overrides)
    outcome = run_local(config)
    if not outcome.pushed_model_dir:
        raise SystemExit("the default pipeline pushed nothing; pass --model-dir")
    return outcome.pushed_model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="a SavedModel with predict_text (default: train one)")
    parser.add_argument("--pretrained", default="",
                        help="fine-tune this checkpoint when training (default: from scratch)")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--swap-clients", type=int, default=32,
                        help="clients sending while a new version is pushed and swapped in")
    parser.add_argument("--result", default=str(RESULT_PATH), help="'' to skip writing")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as output_dir:
        model_dir = args.model_dir or pushed_model_of_default_pipeline(
            output_dir, args.train_steps, args.pretrained)
        store = ModelStore(f"{output_dir}/serving_models", MODEL_NAME)
        store.publish(model_dir, {})
        arms = {}
        for arm, batch_size, audit in (
                ("batching_off", 1, ""), ("batching_on", BATCHING.max_batch_size, ""),
                ("batching_on_audited", BATCHING.max_batch_size, f"{output_dir}/audit.log")):
            server = ServerProcess(pathlib.Path(output_dir),
                                   f"serving.max_batch_size={batch_size}",
                                   f"serving.audit.path={audit}")
            try:
                server.wait_until_live()
                load_arm(server.url, args.clients, 50, args.max_seconds)  # warm-up
                arms[arm] = load_arm(server.url, args.clients, args.requests, args.max_seconds)
                if arm == "batching_on":
                    predict_text = load_predict_text(model_dir)
                    arms["overhead"] = overhead(server.url, predict_text, [1, 32], args.repeats)
                    arms["in_process"] = in_process_throughput(
                        predict_text, max(1, round(arms[arm]["mean_texts_per_call"])),
                        IN_PROCESS_SECONDS)
            finally:
                server.stop()
            print(arm, arms[arm], flush=True)
        server = ServerProcess(pathlib.Path(output_dir),
                               f"serving.poll_seconds={SWAP_POLL_SECONDS}")
        try:
            server.wait_until_live()
            arms["swap"] = swap_under_load(server.url, store, model_dir, args.swap_clients,
                                           SWAP_POLL_SECONDS)
        finally:
            server.stop()
        print("swap", arms["swap"], flush=True)
    result = {
        **result_header("textclf serve on 127.0.0.1: one-sentence V1 requests from concurrent "
                        "clients, batching on vs off; server vs predict_text in-process"),
        "setup": {"model": args.model_dir or (
                      f"{args.pretrained} fine-tuned {args.train_steps} steps on the default data"
                      if args.pretrained else "default pipeline model (BERT 2x128 from scratch)"),
                  "clients": args.clients, "requests_per_arm": args.requests,
                  "max_seconds_per_arm": args.max_seconds,
                  "batching_on": {"max_batch_size": BATCHING.max_batch_size,
                                  "max_batch_wait_ms": BATCHING.max_batch_wait_ms,
                                  "max_concurrent_batches": BATCHING.max_concurrent_batches},
                  "note": "clients run on the same 2 cores as the server"},
        "batching_off": arms["batching_off"],
        "batching_on": arms["batching_on"],
        "qps_batching_on_to_off": round(arms["batching_on"]["qps"]
                                        / arms["batching_off"]["qps"], 2),
        "batching_on_audited": arms["batching_on_audited"],
        "audit_log_cost": {
            "qps_ratio": round(arms["batching_on_audited"]["qps"] / arms["batching_on"]["qps"],
                               2),
            "p99_ratio": round(arms["batching_on_audited"]["p99_ms"]
                               / arms["batching_on"]["p99_ms"], 2),
            "note": "audit log on (fail_closed: each answer waits for its fsynced line) vs "
                    "off; metrics are always on"},
        "served_vs_in_process": served_vs_in_process(arms["batching_on"], arms["in_process"]),
        "overhead_vs_in_process": arms["overhead"],
        "swap_under_load": arms["swap"],
    }
    print(json.dumps(result, indent=2))
    if args.result:
        write_result(result, args.result)


if __name__ == "__main__":
    main()
