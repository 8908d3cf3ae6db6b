"""Ports for local workers, and the CLI stopping before any component when none are free."""

import logging
import socket
import subprocess
import sys

import pytest

from modules.local_cluster import LocalClusterError, reserve_ports
from pipeline.cli import EXIT_BAD_INPUT
from tests.conftest import REPO_ROOT, write_sample


def test_free_ports_are_distinct():
    ports = reserve_ports(3, base_port=0)
    assert len(set(ports)) == 3 and all(port > 0 for port in ports)


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_busy_port_in_the_configured_range_is_named(busy_port):
    with pytest.raises(LocalClusterError, match=f"port {busy_port} cannot be bound.*"
                                                "training.worker_base_port"):
        reserve_ports(2, base_port=busy_port)


def test_the_run_stops_before_any_component_when_the_worker_ports_are_busy(busy_port, tmp_path):
    data = write_sample(tmp_path / "data", rows=20)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--data-path", str(data),
         "--output-dir", str(tmp_path / "outputs"), "--set", "training.strategy=multi_worker",
         "--set", "training.num_workers=2", "--set", f"training.worker_base_port={busy_port}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_BAD_INPUT
    assert f"port {busy_port} cannot be bound" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs" / "pipelines").exists()  # nothing ran


def test_worker_progress_is_forwarded_once_and_only_for_complete_lines(tmp_path, caplog):
    from modules.local_cluster import _forward_progress  # pylint: disable=import-outside-toplevel

    log = tmp_path / "worker-0.log"
    log.write_bytes(b"INFO: Trainer (worker 0 of 2): step 1\nnoise\nINFO: Trainer (worker 0 of 2): st")
    caplog.set_level(logging.INFO, logger="absl")  # earlier tests may leave absl at WARNING
    offset = _forward_progress(log, 0)
    assert offset == log.read_bytes().rindex(b"\n") + 1
    with log.open("ab") as handle:
        handle.write(b"ep 2\n")
    assert _forward_progress(log, offset) == log.stat().st_size
    forwarded = [record.getMessage() for record in caplog.records]
    assert forwarded == ["Trainer (worker 0 of 2): step 1", "Trainer (worker 0 of 2): step 2"]
