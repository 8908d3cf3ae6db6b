"""The audit log: chained lines, rotation, a torn tail after SIGKILL, edits and deletions named
by `textclf audit verify`, and a disk that cannot be written (fail closed or open)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from pipeline import cli
from pipeline.config import AuditConfig
from serving.audit import AuditLog, log_files, request_record, verify
from tests.conftest import REPO_ROOT


def _entry(index: int) -> dict:
    return request_record(f"req-{index}", "jwt:analyst-7", "127.0.0.1:5000", "reviews", 7,
                          "stable", "v1", 200, 0.012, [(f"text {index}".encode(),)],
                          [{"label": "positive", "probabilities": [0.1, 0.9]}], False)


def _write(settings: AuditConfig, count: int, start: int = 0) -> AuditLog:
    audit = AuditLog(settings)
    results = [audit.record(_entry(start + index)) for index in range(count)]
    assert all(result.result(timeout=30) for result in results)
    audit.close()
    return audit


def _lines(path):
    with open(path, "rb") as handle:
        return handle.read().splitlines(keepends=True)


def test_every_request_is_one_chained_line_that_verifies(tmp_path):
    path = str(tmp_path / "audit.log")
    _write(AuditConfig(path=path), 50)

    lines = [json.loads(line) for line in _lines(path)]
    assert [line["seq"] for line in lines] == list(range(1, 51))
    assert lines[0]["prev"] == "0" * 64
    assert lines[3]["inputs"] == [[{"sha256": lines[3]["inputs"][0][0]["sha256"], "chars": 6}]]
    assert "texts" not in lines[3] and lines[3]["answers"] == [
        {"label": "positive", "top_probability": 0.9}]
    assert verify(path).records == 50 and not verify(path).problem


def test_a_reopened_log_continues_the_chain(tmp_path):
    path = str(tmp_path / "audit.log")
    _write(AuditConfig(path=path), 10)
    _write(AuditConfig(path=path), 10, start=10)
    assert verify(path).records == 20 and not verify(path).problem


@pytest.mark.parametrize("change, phrase", [
    ("edit", "line 5 was changed"),
    ("delete", "line 5 is record 6, expected 5: 1 record(s) removed"),
    ("swap", "line 4 is record 5, expected 4"),
    ("insert", "line 5 is record 3, expected 5"),
])
def test_an_edited_removed_or_moved_line_is_named(tmp_path, capsys, change, phrase):
    path = str(tmp_path / "audit.log")
    _write(AuditConfig(path=path), 10)
    lines = _lines(path)
    if change == "edit":
        lines[4] = lines[4].replace(b'"positive"', b'"negative"')
    elif change == "delete":
        del lines[4]
    elif change == "swap":
        lines[3], lines[4] = lines[4], lines[3]
    else:
        lines.insert(4, lines[2])
    with open(path, "wb") as handle:
        handle.writelines(lines)

    verdict = verify(path)
    assert phrase in verdict.problem
    code = cli.main(["audit", "verify", "--log", path])
    assert code == 1 and phrase in capsys.readouterr().err


def test_rotated_files_verify_as_one_chain_and_a_missing_one_is_named(tmp_path):
    path = str(tmp_path / "audit.log")
    _write(AuditConfig(path=path, rotate_bytes=1 << 16), 400)

    files = log_files(path)
    assert len(files) >= 3 and files[-1] == path
    assert verify(path).records == 400 and not verify(path).problem
    os.remove(files[1])
    assert "removed before it" in verify(path).problem


def test_a_log_cut_by_sigkill_verifies_to_its_last_whole_line_and_recovers(tmp_path):
    """A writer process killed under load; the next open cuts the torn line and says so."""
    path = str(tmp_path / "audit.log")
    writer = subprocess.Popen([sys.executable, "-c", f"""
import itertools, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from pipeline.config import AuditConfig
from serving.audit import AuditLog
from tests.serving.test_audit import _entry
audit = AuditLog(AuditConfig(path={path!r}, fsync="never", include_text=True))
for index in itertools.count():
    audit.record(_entry(index))
"""], cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
            not os.path.exists(path) or os.path.getsize(path) < 1 << 20):
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 99999999, "prev": "ab')  # make sure the tail is torn

    verdict = verify(path)
    assert verdict.records > 100 and verdict.torn_tail and not verdict.problem
    reopened = _write(AuditConfig(path=path), 5)
    assert reopened.lost_records == 0
    after = verify(path)
    assert not after.torn_tail and not after.problem and after.records == verdict.records + 6
    assert json.loads(_lines(path)[verdict.records])["event"] == "recovered"


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
def test_a_full_disk_loses_the_records_and_the_policy_says_what_serving_does(policy):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    audit = AuditLog(AuditConfig(path="/dev/full", on_failure=policy, fsync="never"))
    try:
        assert audit.record(_entry(1)).result(timeout=30) is False
        assert "No space left on device" in audit.problem
        assert audit.refusing is (policy == "fail_closed")
        assert audit.record(_entry(2)).result(timeout=30) is False
        assert audit.lost_records == 2
    finally:
        audit.close()


def test_a_full_queue_loses_the_record_instead_of_waiting(tmp_path, monkeypatch):
    disk_stuck = threading.Event()
    real_write = AuditLog._write  # pylint: disable=protected-access

    def stuck_write(self, entries):
        disk_stuck.wait(30)
        real_write(self, entries)

    monkeypatch.setattr(AuditLog, "_write", stuck_write)
    audit = AuditLog(AuditConfig(path=str(tmp_path / "audit.log"), queue_size=1))
    first = audit.record(_entry(0))
    deadline = time.monotonic() + 10
    while not audit._queue.empty() and time.monotonic() < deadline:  # pylint: disable=protected-access
        time.sleep(0.01)  # the writer took it and is stuck writing it
    queued = audit.record(_entry(1))
    lost = audit.record(_entry(2))

    assert lost.result(timeout=1) is False and audit.lost_records == 1
    disk_stuck.set()
    assert first.result(timeout=30) and queued.result(timeout=30)
    audit.close()
    assert verify(str(tmp_path / "audit.log")).records == 2


def test_verify_on_no_log_says_so(tmp_path, capsys):
    assert cli.main(["audit", "verify", "--log", str(tmp_path / "none.log")]) == 1
    assert "no audit log" in capsys.readouterr().err


def test_a_rotation_that_fails_mid_batch_keeps_the_records_already_written(tmp_path,
                                                                            monkeypatch):
    """The records before the failure are in the log and their requests are told so; the
    rest are lost, not claimed."""
    path = str(tmp_path / "audit.log")
    _write(AuditConfig(path=path, rotate_bytes=1 << 16), 100)
    size = os.path.getsize(path)
    real_replace = os.replace

    def refuse(source, target):
        raise PermissionError(13, "Permission denied")

    audit = AuditLog(AuditConfig(path=path, rotate_bytes=size + 1000))
    monkeypatch.setattr(os, "replace", refuse)
    first = audit.record(_entry(0))  # fits: the writer takes it alone, before the others
    assert first.result(timeout=30) is True
    outcomes = [audit.record(_entry(index)).result(timeout=30) for index in range(1, 10)]
    problem = audit.problem
    monkeypatch.setattr(os, "replace", real_replace)
    audit.close()

    kept = outcomes.count(True)
    assert outcomes == [True] * kept + [False] * (len(outcomes) - kept) and kept < 9
    assert "Permission denied" in problem
    assert verify(path).records == 100 + 1 + kept
