"""The prediction audit log: who called the model, when, on which version, with what answer.

One JSON line per prediction request, written by a background thread from a bounded queue so a
slow disk never stalls serving. Every line carries `seq` (one more than the line before, across
rotations) and `prev`, the SHA-256 of the line before it (of the last line of the previous file
for a rotated file's first line; 64 zeros for the very first), so a removed or edited line
breaks the chain where it was: `textclf audit verify` names it. A torn last line (the process
killed mid-write) is cut off when the log is next opened, and a `recovered` record says so.

Not covered by the chain: the newest line itself (nothing follows it yet) and a log truncated
after a whole line; anchor the newest `prev` elsewhere (a ticket, a WORM bucket) where that
matters.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import os
import queue
import threading
import time
from typing import Any, Iterator, Optional

import orjson

from pipeline.config import AuditConfig

GENESIS = "0" * 64
_BATCH_LINES = 1000
_FSYNC_INTERVAL_SECONDS = 1.0
_RETRY_SECONDS = 1.0
_TAIL_CHUNK_BYTES = 1 << 20

logger = logging.getLogger("textclf.serving")


def line_hash(line: bytes) -> str:
    """The chain's hash of one line (its bytes without the newline)."""
    return hashlib.sha256(line).hexdigest()


def text_fingerprint(text: bytes) -> dict[str, Any]:
    """What the log keeps of an input by default: its SHA-256 and length in characters."""
    return {"sha256": hashlib.sha256(text).hexdigest(),
            "chars": len(text.decode("utf-8", "replace"))}


def log_files(path: str) -> list[str]:
    """The log's files, oldest first: `<path>.1`, `<path>.2`, ..., then `<path>`."""
    folder, name = os.path.split(os.path.abspath(path))
    rotated = []
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            suffix = entry[len(name) + 1:]
            if entry.startswith(name + ".") and suffix.isdigit() and suffix.isascii():
                rotated.append((int(suffix), os.path.join(folder, entry)))
    files = [file for _, file in sorted(rotated)]
    return files + ([path] if os.path.exists(path) else [])


class AuditLog:
    """Queues records and writes them, chained, from one thread."""

    def __init__(self, settings: AuditConfig):
        self.settings = settings
        self.lost_records = 0
        self._queue: queue.Queue = queue.Queue(settings.queue_size)
        self._problem = ""
        self._closed = False
        self._lock = threading.Lock()
        self._handle = None
        self._seq, self._prev, self._size = 0, GENESIS, 0
        self._open()
        self._thread = threading.Thread(target=self._write_loop, name="audit-writer",
                                        daemon=True)
        self._thread.start()

    @property
    def problem(self) -> str:
        """Why records cannot be written now ("" while they can)."""
        return self._problem

    @property
    def refusing(self) -> bool:
        """True while predictions must be refused (fail_closed and the log cannot be written)."""
        return bool(self._problem) and self.settings.on_failure == "fail_closed"

    def record(self, entry: dict[str, Any]) -> concurrent.futures.Future:
        """Queues one record; the future says True once it is written (and synced as
        `fsync` says), False when it is lost. Under fail_closed a request is answered only
        after True: no answer without its record."""
        written: concurrent.futures.Future = concurrent.futures.Future()
        if self._problem or self._closed:
            written.set_result(self._lose(self._problem or "the audit log is closed"))
            return written
        try:
            self._queue.put_nowait((entry, written))
        except queue.Full:
            written.set_result(self._lose(
                f"the audit queue is full ({self.settings.queue_size} records waiting: the "
                "disk is slower than the traffic)"))
        return written

    def close(self, timeout: float = 10) -> None:
        """Writes what is queued, then stops the writer; later records are lost at once."""
        self._closed = True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            logger.error("audit log: the writer is stuck; %d queued record(s) may be lost",
                         self._queue.qsize())
        self._thread.join(timeout)
        if not self._thread.is_alive():
            # Records queued in the race with `_closed`: nobody will write them.
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    item[1].set_result(self._lose("the audit log is closed"))

    def _lose(self, reason: str) -> bool:
        """Counts a lost record; False (as a record's result)."""
        with self._lock:
            self.lost_records += 1
            first = self.lost_records == 1
        if first:
            logger.error("audit record lost: %s (serving.audit.on_failure=%s)", reason,
                         self.settings.on_failure)
        return False

    def _open(self) -> None:
        """Opens the log for appending, continuing the chain from its last whole line."""
        path = self.settings.path
        try:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            files, torn = log_files(path), 0
            if files:
                self._seq, self._prev, torn = _chain_tail(files[-1])
                if torn:
                    with open(files[-1], "r+b") as handle:
                        handle.truncate(os.path.getsize(files[-1]) - torn)
            for older in reversed(files[:-1]):
                if self._seq:
                    break
                # The newest file is empty (rotated just before a crash): chain on from the last.
                self._seq, self._prev, _ = _chain_tail(older)
            self._handle = open(path, "ab")  # pylint: disable=consider-using-with
            self._size = self._handle.tell()
            self._problem = ""
            if torn:
                logger.warning("%s ended in a torn record (%d bytes, a crash mid-write); cut "
                               "off, and a 'recovered' record added", files[-1], torn)
                self._write([{"event": "recovered", "torn_bytes": torn}])
        except OSError as error:
            self._fail(error)

    def _write_loop(self) -> None:
        last_sync = time.monotonic()
        while True:
            try:
                first = self._queue.get(timeout=_RETRY_SECONDS)
            except queue.Empty:
                if self._problem:
                    self._open()
                continue
            batch = [first]
            while len(batch) < _BATCH_LINES:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            batch = [item for item in batch if item is not None]
            if self._problem:
                self._open()
            written = 0
            if batch and not self._problem:
                try:
                    self._write([entry for entry, _ in batch])
                    if self.settings.fsync == "always" or (
                            self.settings.fsync == "interval"
                            and time.monotonic() - last_sync >= _FSYNC_INTERVAL_SECONDS):
                        os.fsync(self._handle.fileno())
                        last_sync = time.monotonic()
                    written = len(batch)
                except _WriteCutShort as cut:
                    # The records before the failure are in the log: say so to their requests.
                    written = cut.written
                    self._fail(cut.error)
                except OSError as error:
                    self._fail(error)
            for index, (_, future) in enumerate(batch):
                future.set_result(index < written or self._lose(self._problem))
            if stopping:
                if self._handle:
                    self._handle.close()
                return

    def _write(self, entries: list[dict[str, Any]]) -> None:
        """Appends `entries` chained, rotating before a line that would pass `rotate_bytes`;
        the chain advances only once the bytes are written. A rotation that fails after some
        entries were written (and synced) raises _WriteCutShort with their count."""
        for index, entry in enumerate(entries):
            line = orjson.dumps({"seq": self._seq + 1, "prev": self._prev, **entry})
            if self._size and self._size + len(line) + 1 > self.settings.rotate_bytes:
                try:
                    self._rotate()
                except OSError as error:
                    raise _WriteCutShort(index, error) from error
            self._handle.write(line + b"\n")
            self._seq, self._prev = self._seq + 1, line_hash(line)
            self._size += len(line) + 1
        self._handle.flush()

    def _rotate(self) -> None:
        """The full file is synced (its records were promised), renamed `<path>.<n>`."""
        self._handle.flush()
        if self.settings.fsync != "never":
            os.fsync(self._handle.fileno())
        self._handle.close()
        numbers = [int(file.rsplit(".", 1)[1]) for file in log_files(self.settings.path)[:-1]]
        os.replace(self.settings.path, f"{self.settings.path}.{max(numbers, default=0) + 1}")
        if self.settings.fsync != "never":
            folder = os.open(os.path.dirname(os.path.abspath(self.settings.path)), os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        self._handle = open(self.settings.path, "ab")  # pylint: disable=consider-using-with
        self._size = 0

    def _fail(self, error: OSError) -> None:
        problem = f"{self.settings.path} cannot be written: {error.strerror or error}"
        if problem != self._problem:
            logger.error("audit log: %s; %s", problem,
                         "refusing predictions (serving.audit.on_failure=fail_closed)"
                         if self.settings.on_failure == "fail_closed"
                         else "serving on, counting lost records")
        self._problem = problem
        if self._handle:
            try:
                self._handle.close()
            except OSError:
                pass
            self._handle = None


class _WriteCutShort(OSError):
    """A batch stopped part-way: `written` entries are in the log, then `error`."""

    def __init__(self, written: int, error: OSError):
        super().__init__(str(error))
        self.written = written
        self.error = error


def _chain_tail(path: str) -> tuple[int, str, int]:
    """(seq, hash) of `path`'s last whole line, and the bytes of a torn line after it."""
    if not os.path.isfile(path):
        return 0, GENESIS, 0
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        tail, position = b"", size
        while position > 0 and tail.count(b"\n") < 2:
            start = max(0, position - _TAIL_CHUNK_BYTES)
            handle.seek(start)
            tail = handle.read(position - start) + tail
            position = start
    torn = len(tail) - (tail.rfind(b"\n") + 1)
    whole = tail[:len(tail) - torn]
    if not whole:
        return 0, GENESIS, torn
    last = whole[:-1].rsplit(b"\n", 1)[-1]
    try:
        seq = int(orjson.loads(last)["seq"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        seq = 0
    return seq, line_hash(last), torn


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What `verify` found: the records that check out, and the first problem, if any."""

    records: int
    problem: str = ""
    # A torn last line (a crash mid-write): not a break in the chain.
    torn_tail: bool = False


def verify(path: str) -> Verdict:
    """Checks the chain across every file of the log, oldest first."""
    files = log_files(path)
    if not files:
        return Verdict(0, f"no audit log at {path}")
    expected_seq, prev, records, previous_where = 1, GENESIS, 0, "the start"
    for file_index, file in enumerate(files):
        for number, line, complete in _lines(file):
            where = f"{file} line {number}"
            if not complete:
                if file_index == len(files) - 1:
                    return Verdict(records, "", torn_tail=True)
                return Verdict(records, f"{where} is cut short in a rotated file")
            try:
                record = orjson.loads(line)
                seq, claimed = int(record["seq"]), record["prev"]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                return Verdict(records, f"{where} is not an audit record")
            if seq != expected_seq:
                return Verdict(records, f"{where} is record {seq}, expected {expected_seq}: "
                                        f"{seq - expected_seq} record(s) removed before it"
                               if seq > expected_seq else
                               f"{where} is record {seq}, expected {expected_seq}: a record "
                               "inserted or repeated")
            if claimed != prev:
                return Verdict(records - 1, f"{previous_where} was changed: the hash the next "
                                            "line holds of it does not match"
                               if records else f"{where} does not start the chain")
            prev, expected_seq, records = line_hash(line), seq + 1, records + 1
            previous_where = where
    return Verdict(records)


def _lines(path: str) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes without the newline, whether a newline ended it)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            yield number, line.rstrip(b"\n"), line.endswith(b"\n")


def request_record(request_id: str, caller: str, client: str, model: str,
                   version: Optional[int], route: str, protocol: str, status: int,
                   latency_seconds: float, rows: Optional[list[tuple[bytes, ...]]],
                   results: Optional[list[dict[str, Any]]], include_text: bool
                   ) -> dict[str, Any]:
    """One prediction request's record."""
    record: dict[str, Any] = {
        "event": "predict", "request_id": request_id,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "caller": caller, "client": client, "model": model,
        "version": version, "route": route, "protocol": protocol, "status": status,
        "latency_ms": round(latency_seconds * 1000, 2)}
    if rows is not None:
        record["inputs"] = [[text_fingerprint(text) for text in row] for row in rows]
        if include_text:
            record["texts"] = [[text.decode("utf-8") for text in row] for row in rows]
    if results is not None:
        record["answers"] = [{"label": result["label"],
                              "top_probability": round(max(result["probabilities"]), 6)}
                             for result in results]
    return record
