"""Canary and shadow rollouts: the state in the store, the step windows and the decisions.

While a rollout runs, a server holds two versions: the stable one and the candidate (the
newest good version the store offers). The candidate answers a share of requests (canary) or
is sent copies of them (shadow), a step at a time (`serving.rollout.steps`). Each step's window
counts, per version, requests, failures, latencies and predicted labels; `judge` compares them
and rolls the candidate back, moves to the next step, or waits.

The state lives beside the versions, `<model>/rollout.json`, replaced whole under the store's
writer lock, so a restarted server resumes its step and every replica over the store reads the
same step. One replica decides: the holder of a lease written in the state and renewed at
every poll; the others follow what it writes. Each server's window holds its own traffic, so
the leader decides on its share of the requests (with a load balancer, a fair sample).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Optional, Sequence

from pipeline.config import RolloutConfig
from serving import filesystem

STATE_FILE = "rollout.json"
# Roles a request meets, as the metrics' and the audit log's `route` label says them.
STABLE, CANARY, SHADOW = "stable", "canary", "shadow"
# Latencies kept per version and window for the p99: beyond it the oldest go.
_MAX_LATENCIES = 100_000
_MAX_STATE_BYTES = 1 << 20

logger = logging.getLogger("textclf.rollout")


class RolloutError(RuntimeError):
    """A rollout command cannot do what was asked (no rollout runs, the state is unreadable)."""


@dataclasses.dataclass(frozen=True)
class RolloutState:
    """What `rollout.json` holds: the two versions, the step, and who decides."""

    stable: int
    candidate: Optional[int] = None
    # Index into the policy's steps; the step began at `step_started` (epoch seconds).
    step: int = 0
    step_started: float = 0.0
    paused: bool = False
    leader: str = ""
    lease_until: float = 0.0
    # The last decision (automatic or by hand) and its reason, for `rollout status`.
    last_decision: str = ""

    def share(self, steps: Sequence[float]) -> float:
        """The candidate's share of requests, percent (0 with no candidate)."""
        if self.candidate is None:
            return 0.0
        return float(steps[min(self.step, len(steps) - 1)])

    def window_key(self) -> tuple:
        """What a step window belongs to: a new candidate, step or restart opens a new one."""
        return self.candidate, self.step, self.step_started


def state_path(model_dir: str) -> str:
    return filesystem.join(model_dir, STATE_FILE)


def read_state(model_dir: str) -> tuple[Optional[RolloutState], str]:
    """(state, "") ; (None, "") when there is none; (None, why) when it cannot be used."""
    path = state_path(model_dir)
    try:
        content = filesystem.read_bytes(path, _MAX_STATE_BYTES)
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        return None, f"{path} cannot be read: {error}"
    try:
        record = json.loads(content)
        fields = {field.name: field.type for field in dataclasses.fields(RolloutState)}
        if not isinstance(record, dict) or set(record) - set(fields):
            raise ValueError("not a rollout state object")
        state = RolloutState(**record)
        _check_types(state)
    except (ValueError, TypeError, RecursionError) as error:
        return None, f"{path} is not a rollout state ({error})"
    return state, ""


def _check_types(state: RolloutState) -> None:
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not (isinstance(state.stable, int) and not isinstance(state.stable, bool)
            and (state.candidate is None or isinstance(state.candidate, int))
            and isinstance(state.step, int) and state.step >= 0
            and number(state.step_started) and number(state.lease_until)
            and isinstance(state.paused, bool) and isinstance(state.leader, str)
            and isinstance(state.last_decision, str)):
        raise ValueError("a field has the wrong type")


def write_state(model_dir: str, state: RolloutState) -> None:
    filesystem.write_bytes(state_path(model_dir), json.dumps(
        dataclasses.asdict(state), indent=2, sort_keys=True).encode())


def update_state(model_dir: str,
                 change: Callable[[Optional[RolloutState]], Optional[RolloutState]]
                 ) -> Optional[RolloutState]:
    """Reads, changes and writes the state under the store's writer lock; returns the new one.

    `change` gets None when there is no usable state, and returns the state to write (the same
    object: nothing is written).
    """
    with filesystem.exclusive_lock(model_dir):
        state, problem = read_state(model_dir)
        if problem:
            logger.warning("%s; starting a new rollout state", problem)
        changed = change(state)
        if changed is not None and changed is not state:
            write_state(model_dir, changed)
        return changed


def server_id() -> str:
    """This server process among the replicas: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def routes_to_candidate(key: bytes, share: float) -> bool:
    """Whether a request with `key` meets the candidate at `share` percent.

    The key's SHA-256 places it at a fixed point in [0, 100): the same key meets the same
    version during a step, and one that met the candidate still does when its share grows.
    """
    point = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2 ** 64 * 100
    return point < share


def request_key(request_id: Optional[str], rows: Sequence[tuple[bytes, ...]]) -> bytes:
    """The client's X-Request-Id when it sent one, else a digest of the inputs, so a retried
    request meets the same version."""
    if request_id:
        return b"id:" + request_id.encode()
    digest = hashlib.sha256()
    for row in rows:
        for text in row:
            digest.update(len(text).to_bytes(8, "big"))
            digest.update(text)
        digest.update(b"\x00row")
    return b"inputs:" + digest.digest()


@dataclasses.dataclass
class _Tally:
    """One version's requests in a window."""

    requests: int = 0
    failures: int = 0
    latencies: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=_MAX_LATENCIES))
    labels: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, status: int, latency: float, labels: Sequence[str]) -> None:
        self.requests += 1
        self.failures += status >= 500
        self.latencies.append(latency)
        self.labels.update(labels)

    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def p99(self) -> Optional[float]:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def label_shares(self) -> dict[str, float]:
        total = sum(self.labels.values())
        return {label: count / total for label, count in self.labels.items()} if total else {}


@dataclasses.dataclass(frozen=True)
class Figures:
    """A window's comparison of the candidate with the stable version."""

    candidate_requests: int
    stable_requests: int
    candidate_failures: int
    candidate_failure_rate: float
    stable_failure_rate: float
    candidate_p99: Optional[float]
    stable_p99: Optional[float]
    # canary: L-infinity distance of the label shares; shadow: share of copies that disagreed.
    label_shift: Optional[float]
    disagreement: Optional[float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class StepWindow:
    """The current step's requests, per version; recorded from the event loop, read by the poll."""

    def __init__(self, key: tuple = ()):
        self.key = key
        self.opened = time.monotonic()
        self._lock = threading.Lock()
        self._stable = _Tally()
        self._candidate = _Tally()
        self._compared = 0
        self._disagreed = 0

    def record(self, route: str, status: int, latency: float, labels: Sequence[str]) -> None:
        """One answered request (route stable or canary) or shadow copy."""
        with self._lock:
            (self._stable if route == STABLE else self._candidate).add(status, latency, labels)

    def compare(self, stable_labels: Sequence[str], candidate_labels: Sequence[str]) -> None:
        """A shadow copy's labels beside the ones the caller got."""
        with self._lock:
            self._compared += len(stable_labels)
            self._disagreed += sum(a != b for a, b in zip(stable_labels, candidate_labels))

    def figures(self) -> Figures:
        with self._lock:
            stable, candidate = self._stable, self._candidate
            shift = None
            stable_shares, candidate_shares = stable.label_shares(), candidate.label_shares()
            if stable_shares and candidate_shares:
                shift = max(abs(stable_shares.get(label, 0.0) - candidate_shares.get(label, 0.0))
                            for label in set(stable_shares) | set(candidate_shares))
            return Figures(candidate.requests, stable.requests, candidate.failures,
                           candidate.failure_rate(),
                           stable.failure_rate(), candidate.p99(), stable.p99(), shift,
                           self._disagreed / self._compared if self._compared else None,
                           time.monotonic() - self.opened)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """`advance`, `rollback` or `wait`, and why, with the figure that decided."""

    action: str
    reason: str


def judge(policy: RolloutConfig, figures: Figures, step_age_seconds: float) -> Verdict:
    """The step's decision: a threshold crossed rolls back at once (once the window holds
    enough requests, or sooner when its failures alone already settle it); the step passes
    when it also lasted long enough."""
    needed = policy.step_requests
    # Failures already certain to cross the threshold over the step's requests, even if every
    # request still to come succeeds: a broken candidate is stopped after a few failures.
    certain = figures.candidate_failures / max(needed, figures.candidate_requests)
    if certain - figures.stable_failure_rate > policy.max_error_rate_increase:
        return Verdict("rollback", f"error rate {figures.candidate_failure_rate:.3f} on the "
                                   f"candidate ({figures.candidate_failures} of "
                                   f"{figures.candidate_requests} requests failed, at least "
                                   f"{certain:.3f} over the step's {needed}) vs "
                                   f"{figures.stable_failure_rate:.3f} on the stable version "
                                   f"(max increase {policy.max_error_rate_increase})")
    if figures.candidate_requests < needed:
        return Verdict("wait", f"{figures.candidate_requests} of the {needed} candidate "
                               "requests a step needs")
    if figures.candidate_p99 is not None and figures.stable_p99:
        ratio = figures.candidate_p99 / figures.stable_p99
        grown_ms = (figures.candidate_p99 - figures.stable_p99) * 1000
        if ratio > policy.max_p99_ratio and grown_ms > policy.min_p99_increase_ms:
            return Verdict("rollback", f"p99 latency {figures.candidate_p99 * 1000:.1f} ms on the "
                                       f"candidate vs {figures.stable_p99 * 1000:.1f} ms, "
                                       f"{ratio:.2f}x (max {policy.max_p99_ratio}x)")
    if policy.mode == "shadow" and figures.disagreement is not None \
            and figures.disagreement > policy.max_disagreement:
        return Verdict("rollback", f"labels differ from the stable version's on "
                                   f"{figures.disagreement:.3f} of the copied requests "
                                   f"(max {policy.max_disagreement})")
    if policy.mode == "canary" and figures.label_shift is not None \
            and figures.label_shift > policy.max_label_shift:
        return Verdict("rollback", f"predicted-label shares moved by {figures.label_shift:.3f} "
                                   f"(L-infinity) from the stable version's "
                                   f"(max {policy.max_label_shift})")
    if step_age_seconds < policy.step_seconds:
        return Verdict("wait", f"the step has run {step_age_seconds:.0f} of its "
                               f"{policy.step_seconds:.0f} s")
    return Verdict("advance", "every threshold held over "
                              f"{figures.candidate_requests} candidate requests")
