"""Local multi-worker training: N worker processes on 127.0.0.1, each told its part by TF_CONFIG.

The Trainer process starts the workers, forwards the chief's progress lines to its own log, and
fails the run as soon as one worker dies (the others would wait on its gradients until the
collective timeout), stopping the rest. On Kubeflow the TFJob starts the workers instead.

Run as `python -m modules.local_cluster JOB.json` it is one worker.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence

from absl import logging

import modules

POLL_SECONDS = 0.5
# Lines of a failed worker's log quoted in the error.
LOG_TAIL_LINES = 15


class LocalClusterError(RuntimeError):
    """The local workers could not start, or one of them failed."""


def reserve_ports(count: int, base_port: int) -> list[int]:
    """Ports for `count` workers on 127.0.0.1: consecutive from `base_port`, or free ones (0).

    The ports are held until all are found, so free ones are distinct; they are released for
    the workers to bind.
    """
    sockets: list[socket.socket] = []
    try:
        for index in range(count):
            port = base_port + index if base_port else 0
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as error:
                raise LocalClusterError(
                    f"multi-worker training needs {count} free ports on 127.0.0.1 but port "
                    f"{port or '(any)'} cannot be bound ({error.strerror}): set "
                    f"training.worker_base_port to the start of a free range, or to 0 to let "
                    f"the system pick free ports") from error
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_local_cluster(job_json: str, worker_dir: str, num_workers: int,
                      base_port: int) -> None:
    """Trains `job_json` (a `TrainingJob`) on `num_workers` local processes; worker 0 exports.

    Worker logs and the job file go to `worker_dir`, which must outlive a failed run (TFX
    deletes a failed execution's outputs).
    """
    ports = reserve_ports(num_workers, base_port)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    worker_dir = pathlib.Path(worker_dir)
    worker_dir.mkdir(parents=True, exist_ok=True)
    job_path = worker_dir / "job.json"
    job_path.write_text(job_json, encoding="utf-8")
    # The workers import this project's packages the way this process found them.
    package_root = str(pathlib.Path(modules.__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    log_paths = [worker_dir / f"worker-{index}.log" for index in range(num_workers)]
    processes: list[subprocess.Popen] = []
    try:
        for index, log_path in enumerate(log_paths):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            with log_path.open("wb") as log:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "modules.local_cluster", str(job_path)],
                    env={**os.environ, "TF_CONFIG": json.dumps(tf_config),
                         "PYTHONPATH": python_path},
                    stdout=log, stderr=subprocess.STDOUT))
        logging.info("Trainer: started %d workers on %s; their logs are in %s", num_workers,
                     ", ".join(cluster["worker"]), worker_dir)
        _wait_for(processes, log_paths)
    finally:
        _stop(processes)
    logging.info("Trainer: all %d workers finished", num_workers)


def _wait_for(processes: Sequence[subprocess.Popen], log_paths: Sequence[pathlib.Path]) -> None:
    """Waits for every worker to exit 0; raises on the first failure. Forwards worker 0's
    progress lines so the run log shows training advance."""
    forwarded = 0  # bytes of worker 0's log already read
    while True:
        forwarded = _forward_progress(log_paths[0], forwarded)
        codes = [process.poll() for process in processes]
        failed = [index for index, code in enumerate(codes) if code]
        if failed:
            # A killed worker's peers exit 1 soon after ("collective ops aborted"): when several
            # are found dead at once, the one a signal killed is the cause to report.
            index = min(failed, key=lambda worker: (codes[worker] > 0, worker))
            raise LocalClusterError(
                f"multi-worker training failed: worker {index} {_describe_exit(codes[index])}; "
                f"the other workers were stopped. The end of {log_paths[index]}:\n"
                + _tail(log_paths[index]))
        if all(code == 0 for code in codes):
            return
        time.sleep(POLL_SECONDS)


def _forward_progress(log_path: pathlib.Path, offset: int) -> int:
    """Logs the progress lines among the complete lines after byte `offset`; returns the offset
    after them."""
    with log_path.open("rb") as log:
        log.seek(offset)
        complete, newline, _ = log.read().rpartition(b"\n")
    for line in complete.decode("utf-8", errors="replace").splitlines():
        if "Trainer (" in line:
            logging.info("%s", line[line.index("Trainer ("):])
    return offset + len(complete) + len(newline)


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _tail(log_path: pathlib.Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _stop(processes: Sequence[subprocess.Popen]) -> None:
    """Terminates the workers still running, then kills those that ignore it."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _worker_main(job_path: str) -> None:
    """One worker: TF_CONFIG (set by the launcher or a TFJob) says which.

    `job_path` may be on a bucket (gs://, s3://), as it is for a TFJob on a cluster.
    """
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf

    from modules.training import TrainingJob, train

    logging.set_verbosity(logging.INFO)
    with tf.io.gfile.GFile(job_path) as job_file:
        train(TrainingJob.from_json(job_file.read()))


if __name__ == "__main__":
    exit_code = 0
    try:
        _worker_main(sys.argv[1])
    except Exception:  # pylint: disable=broad-except
        logging.exception("worker failed")
        exit_code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: collective ops' threads can keep a finished worker alive.
    os._exit(exit_code)  # pylint: disable=protected-access
