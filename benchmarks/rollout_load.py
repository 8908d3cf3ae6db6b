"""What a safe rollout costs a server under load, and how fast it brakes.

Usage: python benchmarks/rollout_load.py [--model-dir DIR] [--clients 16] [--requests 2000]
       [--repeats 4] [--result FILE]   (or `make bench`); writes
       benchmarks/results/rollout_load.json.

Without --model-dir it first runs the default pipeline on the default data (as
serving_load.py does) and serves what it pushed.
- everything on vs all off: the same bounded load (one-sentence V1 requests from N clients)
  against a server with the audit log (fail_closed, fsync always) and a canary at 50 % (a
  second copy of the model as the candidate, each version with its own batcher), and against
  one with neither. Run off, on, off, on, ... (--repeats pairs); the ratios compare the sums,
  and each pair's ratios are kept too, since these machines are noisy. Metrics are always
  on. Every request carries its own X-Request-Id, which the canary routes by.
- time to automatic rollback: a candidate that fails on a quarter of the texts is pushed
  while clients send; seconds (and requests) from its first answered request to the moment the
  server reports it rolled back, under the default rollout policy and under a small step.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import threading
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402

from benchmarks.machine import result_header, write_result  # noqa: E402
from benchmarks.serving_load import (SENTENCES, load_arm,  # noqa: E402
                                     pushed_model_of_default_pipeline)
from pipeline.config import RolloutConfig  # noqa: E402
from serving.store import ModelStore  # noqa: E402
from tests.serving.model_variants import FAILING_WORD, write_variant  # noqa: E402
from tests.serving.server_process import MODEL_NAME, ServerProcess  # noqa: E402

RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "rollout_load.json"
# A canary held at 50 %: the step never ends during the arm.
CANARY_AT_50 = ["serving.rollout.mode=canary", "serving.rollout.steps=50,100",
                "serving.rollout.step_seconds=100000"]
DEFAULT_POLICY = RolloutConfig()
SMALL_STEP_REQUESTS = 50


def _summed(runs: list[dict]) -> dict:
    requests_total = sum(run["requests"] for run in runs)
    seconds = sum(run["seconds"] for run in runs)
    return {"requests": requests_total, "errors": sum(run["errors"] for run in runs),
            "seconds": round(seconds, 2), "qps": round(requests_total / seconds, 1),
            "p50_ms": round(sum(run["p50_ms"] for run in runs) / len(runs), 2),
            "p99_ms": round(sum(run["p99_ms"] for run in runs) / len(runs), 2)}


def everything_on_vs_off(output_dir: pathlib.Path, store: ModelStore, model_dir: str,
                         clients: int, total: int, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"all_off": [], "everything_on": []}
    for repeat in range(repeats):
        for arm in ("all_off", "everything_on"):
            overrides = ([*CANARY_AT_50, f"serving.audit.path={output_dir}/audit-{repeat}.log"]
                         if arm == "everything_on" else [])
            server = ServerProcess(output_dir, *overrides)
            try:
                server.wait_until_live()
                if arm == "everything_on":
                    store.publish(model_dir, {})  # the candidate: the same model again
                    _wait(lambda: _rollout(server)["share_percent"] == 50.0, 120)
                load_arm(server.url, clients, 50, 60, request_ids=True)  # warm-up
                runs[arm].append(load_arm(server.url, clients, total, 120, request_ids=True))
                if arm == "everything_on":
                    runs[arm][-1]["candidate_share"] = _candidate_share(server)
            finally:
                server.stop()
            if arm == "everything_on":
                # Back to one version for the next all-off arm.
                store.rollback(reason="benchmark: next arm")
            print(arm, runs[arm][-1], flush=True)
    off, on = _summed(runs["all_off"]), _summed(runs["everything_on"])
    pairs = list(zip(runs["all_off"], runs["everything_on"]))
    return {"runs": runs, "all_off": off, "everything_on": on,
            "qps_ratio": round(on["qps"] / off["qps"], 3),
            "p99_ratio": round(on["p99_ms"] / off["p99_ms"], 3),
            "qps_ratio_per_pair": [round(b["qps"] / a["qps"], 3) for a, b in pairs],
            "p99_ratio_per_pair": [round(b["p99_ms"] / a["p99_ms"], 3) for a, b in pairs]}


def time_to_rollback(output_dir: pathlib.Path, store: ModelStore, variant_dir: str,
                     clients: int, step_requests: int) -> dict:
    """Clients send; a failing candidate is pushed; from its first answer to its rollback."""
    server = ServerProcess(output_dir, "serving.rollout.mode=canary",
                           f"serving.rollout.step_requests={step_requests}",
                           "serving.poll_seconds=2")
    seen, lock, stop = [], threading.Lock(), threading.Event()

    def client(index: int) -> None:
        session = requests.Session()
        sent = 0
        while not stop.is_set():
            sentence = SENTENCES[(index + sent) % len(SENTENCES)]
            if sent % 4 == 0:
                sentence = f"{sentence} {FAILING_WORD}"
            sent += 1
            try:
                response = session.post(f"{server.url}/v1/models/{MODEL_NAME}:predict",
                                        json={"instances": [sentence]},
                                        headers={"X-Request-Id": f"{index}-{sent}"}, timeout=60)
                answer = (response.headers.get("X-Model-Version"), response.status_code)
            except requests.RequestException:
                answer = (None, 0)
            with lock:
                seen.append((time.monotonic(), *answer))

    try:
        server.wait_until_live()
        threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        candidate = str(store.publish(variant_dir, {}).number)
        _wait(lambda: any(version == candidate for _, version, _ in list(seen)), 120)
        _wait(lambda: _rollout(server)["candidate"] is None, 600)
        rolled_back_at = time.monotonic()
        decision = _rollout(server)["last_decision"]
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    first = next(at for at, version, _ in seen if version == candidate)
    during = [entry for entry in seen if first <= entry[0] <= rolled_back_at]
    return {"step_requests": step_requests, "first_step_percent": DEFAULT_POLICY.steps[0],
            "poll_seconds": 2, "clients": clients,
            "first_candidate_answer_to_rollback_s": round(rolled_back_at - first, 2),
            "requests_meanwhile": len(during),
            "answered_by_candidate": sum(version == candidate for _, version, _ in during),
            "failed_meanwhile": sum(code != 200 for _, _, code in during),
            "decision": decision}


def _rollout(server) -> dict:
    return requests.get(f"{server.url}/rollout", timeout=10).json()


def _candidate_share(server) -> float:
    status = _rollout(server)
    return status["share_percent"] if status["candidate"] else 0.0


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="a SavedModel with predict_text (default: train one)")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=4, help="off/on pairs")
    parser.add_argument("--result", default=str(RESULT_PATH), help="'' to skip writing")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        output_dir = pathlib.Path(temporary)
        model_dir = args.model_dir or pushed_model_of_default_pipeline(
            temporary, args.train_steps, "")
        store = ModelStore(f"{temporary}/serving_models", MODEL_NAME)
        store.publish(model_dir, {})
        comparison = everything_on_vs_off(output_dir, store, model_dir, args.clients,
                                          args.requests, args.repeats)
        variant = write_variant(pathlib.Path(model_dir), "failing", output_dir / "failing")
        brakes = [time_to_rollback(output_dir, store, str(variant), args.clients, step_requests)
                  for step_requests in (DEFAULT_POLICY.step_requests, SMALL_STEP_REQUESTS)]
        for brake in brakes:
            print("rollback", brake, flush=True)
    result = {
        **result_header("textclf serve under load: audit log + canary at 50 % vs neither; "
                        "time from a failing candidate's first answer to its automatic rollback"),
        "setup": {"model": args.model_dir or "default pipeline model (BERT 2x128 from scratch)",
                  "clients": args.clients, "requests_per_arm": args.requests,
                  "pairs": args.repeats,
                  "everything_on": "audit log fail_closed, fsync always; canary at 50 % (the "
                                   "same model pushed again as the candidate); metrics on",
                  "all_off": "no audit log, no rollout (immediate); metrics on (always)",
                  "note": "clients run on the same 2 cores as the server"},
        **comparison,
        "targets": {"qps_ratio_at_least": 0.90, "p99_ratio_at_most": 1.2},
        "time_to_rollback": brakes,
    }
    print(json.dumps(result, indent=2))
    if args.result:
        write_result(result, args.result)


if __name__ == "__main__":
    main()
