"""The served model: the store's newest good version, verified, loaded, warmed up, swapped in.

A version that fails anywhere on the way (an unreadable folder, a refused signature, a graph
that does not load, a warm-up call that fails) is refused alone, logged once, and looked at
again only when its folder's content changes (signed in place, a missing file copied in); the
version in service keeps serving.

With `serving.rollout.mode` canary or shadow, a newer version does not take over at once: it
is loaded beside the stable one as the candidate and walks the rollout's steps
(`serving/rollout.py`), promoted at the end or rolled back through the store on the way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from typing import Any, Callable, Optional, Sequence

import tensorflow as tf
# Registers the WordPiece, case-folding and normalisation ops that fine-tuned models' transform
# graphs call; loading such a SavedModel fails without them.
import tensorflow_text  # noqa: F401  pylint: disable=unused-import
from kserve import Model
from kserve.errors import ModelNotReady

from modules import features
from pipeline.config import ServingConfig
from serving import filesystem, rollout, signing
from serving.batching import MicroBatcher
from serving.metrics import ServerMetrics
from serving.protocol import RequestError
from serving.rollout import CANARY, SHADOW, STABLE, RolloutState, StepWindow
from serving.store import ModelStore, StoreError, Version, verify_version

logger = logging.getLogger("textclf.serving")


@dataclasses.dataclass(frozen=True)
class LoadedVersion:
    """A version in memory: its number, its `predict_text` signature and its own batcher."""

    number: int
    predict_text: Any
    text_inputs: tuple[str, ...]
    num_labels: int
    # The signature holds its variables only while the loaded object lives.
    saved_model: Any
    batcher: Optional[MicroBatcher] = None

    async def predict(self, rows: Sequence[tuple[bytes, ...]]) -> list[dict]:
        results, _ = await self.batcher.submit(rows)
        return results


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a version was refused, and its folder's content then (None: unreadable)."""

    reason: str
    stamp: Optional[tuple]


@dataclasses.dataclass(frozen=True)
class Route:
    """Which version answers a request (`route`: stable or canary), and where its shadow copy
    goes (None: no copy) with the window the comparison counts in."""

    route: str
    version: LoadedVersion
    shadow: Optional[LoadedVersion]
    window: Optional[StepWindow]


class TextClassifier(Model):
    """Answers prediction requests with the store's newest good version, batched."""

    def __init__(self, name: str, store: ModelStore, settings: ServingConfig,
                 metrics: ServerMetrics, verify_key: Optional[signing.VerifyKey] = None,
                 notify: Callable[[str, str, dict], Any] = lambda *_: None):
        """`notify(event, summary, details)` is told of automatic rollbacks and promotions."""
        super().__init__(name)
        self.store = store
        self.settings = settings
        self.policy = settings.rollout
        self.metrics = metrics
        self.verify_key = verify_key
        self.notify = notify
        self.stable: Optional[LoadedVersion] = None
        self.candidate: Optional[LoadedVersion] = None
        self.rollout: Optional[RolloutState] = None
        self.window = StepWindow()
        self.leading = False
        self.server_id = rollout.server_id()
        self.refusals: dict[int, Refusal] = {}
        self._store_problem = ""
        self._state_problem = ""
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._shadow_tasks: set[asyncio.Task] = set()

    @property
    def loaded(self) -> Optional[LoadedVersion]:
        """The stable version: the one that answers every request outside a rollout."""
        return self.stable

    @property
    def queue_depth(self) -> int:
        return sum(version.batcher.queue_depth for version in (self.stable, self.candidate)
                   if version is not None)

    @property
    def candidate_share(self) -> float:
        """The candidate's share of requests now, percent (0: no rollout runs here)."""
        if self.candidate is None or self.rollout is None or \
                self.rollout.candidate != self.candidate.number:
            return 0.0
        return self.rollout.share(self.policy.steps)

    def load(self) -> bool:
        self.refresh()
        return self.ready

    def refresh(self) -> bool:
        """Brings the loaded versions in line with the store (and the rollout); True when the
        stable version changed."""
        try:
            candidates = self.store.serving_candidates()
        except StoreError as error:
            # The store as a whole is unreadable now (a permission, a network store down);
            # the next poll may read it.
            if str(error) != self._store_problem:
                logger.error("%s; still serving %s", error, self._serving())
            self._store_problem = str(error)
            return False
        self._store_problem = ""
        numbers = {candidate.number for candidate in candidates}
        self.refusals = {number: refusal for number, refusal in self.refusals.items()
                         if number in numbers}
        before = self.stable
        if self.policy.mode == "immediate":
            self._use(self._newest_loadable(candidates), None)
        else:
            self._follow_rollout(candidates)
        if self.stable is None:
            logger.warning("no servable version of %s under %s yet; not ready", self.name,
                           self.store.model_dir)
        return self.stable is not before

    async def poll(self) -> None:
        """Looks for a newer or rolled-back version every `poll_seconds`, forever."""
        self._loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                await self._loop.run_in_executor(None, self.refresh)
            except Exception:  # pylint: disable=broad-except
                # `refresh` confines every failure it knows; this is a bug, and the next poll
                # must still run.
                logger.exception("looking for new versions of %s failed", self.name)

    def route(self, key: bytes, version: Optional[int]) -> Route:
        """The version that answers a request with `key` (`version` when one is asked for)."""
        if version is not None:
            return Route(STABLE, self.serving_version(version), None, None)
        stable, candidate, share = self.serving_version(), self.candidate, self.candidate_share
        if candidate is None or not rollout.routes_to_candidate(key, share):
            return Route(STABLE, stable, None, self.window if candidate else None)
        if self.policy.mode == "shadow":
            return Route(STABLE, stable, candidate, self.window)
        return Route(CANARY, candidate, None, self.window)

    def observe(self, route: Route, status: int, latency: float,
                results: Optional[list[dict]]) -> None:
        """Counts an answered request in its step's window."""
        if route.window is not None:
            route.window.record(route.route, status, latency, _labels(results))

    def shadow(self, route: Route, rows: Sequence[tuple[bytes, ...]],
               answered: list[dict], protocol_name: str) -> None:
        """Sends a copy of an answered request to the candidate, in the background: its answer
        is compared with the one the caller got, counted, and dropped."""
        task = asyncio.get_running_loop().create_task(
            self._shadow(route, rows, answered, protocol_name))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(self, route: Route, rows: Sequence[tuple[bytes, ...]],
                      answered: list[dict], protocol_name: str) -> None:
        started = time.perf_counter()
        results, status = None, 200
        try:
            results = await route.shadow.predict(rows)
        except Exception:  # pylint: disable=broad-except
            status = 500
            logger.warning("the candidate (version %d) failed on a shadow copy",
                           route.shadow.number, exc_info=True)
        latency = time.perf_counter() - started
        route.window.record(SHADOW, status, latency, _labels(results))
        if results is not None:
            route.window.compare(_labels(answered), _labels(results))
        version = str(route.shadow.number)
        self.metrics.requests.labels(self.name, version, SHADOW, protocol_name,
                                     str(status)).inc()
        self.metrics.latency.labels(self.name, version).observe(latency)

    def serving_version(self, version: Optional[int] = None) -> LoadedVersion:
        """The stable version, or `version` when it is loaded; 503 when none is, 404 when
        `version` is asked for but not loaded."""
        stable, candidate = self.stable, self.candidate
        if stable is None:
            raise ModelNotReady(self.name, "no version loaded yet (see the server log)")
        if version is None or version == stable.number:
            return stable
        if candidate is not None and version == candidate.number:
            return candidate
        served = " and ".join(str(loaded.number) for loaded in (stable, candidate) if loaded)
        raise RequestError(404, f"version {version} of {self.name} is not served; version "
                                f"{served} is")

    def version_status(self) -> list[dict[str, Any]]:
        """TF Serving's `model_version_status`: the loaded versions, and each refused one."""
        status = []
        for loaded in (self.candidate, self.stable):
            if loaded is not None:
                status.append({"version": str(loaded.number), "state": "AVAILABLE",
                               "status": {"error_code": "OK", "error_message": ""}})
        for number, refusal in sorted(self.refusals.items(), reverse=True):
            status.append({"version": str(number), "state": "END",
                           "status": {"error_code": "FAILED_PRECONDITION",
                                      "error_message": refusal.reason}})
        return status

    def rollout_status(self) -> dict[str, Any]:
        """What `GET /rollout` answers: the state this server follows and its window."""
        state = self.rollout
        return {
            "model": self.name, "mode": self.policy.mode, "server": self.server_id,
            "leader": self.leading,
            "stable": self.stable.number if self.stable else None,
            "candidate": self.candidate.number if self.candidate else None,
            "share_percent": self.candidate_share,
            "step": state.step + 1 if state and state.candidate is not None else 0,
            "steps": list(self.policy.steps),
            "paused": bool(state and state.paused),
            "last_decision": state.last_decision if state else "",
            "window": self.window.figures().as_dict() if self.candidate else None,
        }

    def get_input_types(self) -> list[dict[str, Any]]:
        loaded = self.serving_version()
        return [{"name": name, "datatype": "BYTES", "shape": [-1]}
                for name in loaded.text_inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        loaded = self.serving_version()
        return [{"name": features.PROBABILITIES, "datatype": "FP32",
                 "shape": [-1, loaded.num_labels]},
                {"name": features.PREDICTED_LABEL, "datatype": "BYTES", "shape": [-1]},
                {"name": features.PREDICTED_CLASS_ID, "datatype": "INT64", "shape": [-1]}]

    def _serving(self) -> str:
        return f"version {self.stable.number}" if self.stable else "nothing"

    def _obtain(self, version: Version) -> Optional[LoadedVersion]:
        """`version` loaded (already, or now), or None when it is refused."""
        for loaded in (self.stable, self.candidate):
            if loaded is not None and loaded.number == version.number:
                return loaded
        stamp = _content_stamp(version.path)
        refusal = self.refusals.get(version.number)
        if refusal and refusal.stamp == stamp:
            return None
        try:
            verify_version(version, self.verify_key)
            loaded = _load(version)
        except Exception as error:  # pylint: disable=broad-except
            reason = str(error).strip().splitlines()[0] if str(error).strip() \
                else type(error).__name__
            self._refuse(version.number, reason, stamp)
            logger.debug("version %d refused", version.number, exc_info=True)
            return None
        batcher = MicroBatcher(functools.partial(_predict_batch, loaded),
                               self.settings.max_batch_size,
                               self.settings.max_batch_wait_ms / 1000,
                               self.settings.max_concurrent_batches,
                               observe_call=self.metrics.batch_size.observe)
        return dataclasses.replace(loaded, batcher=batcher)

    def _refuse(self, number: int, reason: str, stamp: Optional[tuple]) -> None:
        self.refusals[number] = Refusal(reason, stamp)
        self.metrics.refused_versions.labels(self.name).inc()
        logger.error("refusing version %d of %s: %s; still serving %s", number, self.name,
                     reason, self._serving())

    def _newest_loadable(self, candidates: Sequence[Version]) -> Optional[LoadedVersion]:
        for candidate in candidates:
            loaded = self._obtain(candidate)
            if loaded is not None:
                return loaded
        return None

    def _use(self, stable: Optional[LoadedVersion], candidate: Optional[LoadedVersion]) -> None:
        """Serves `stable` (None: keep the current one) and `candidate`; retires the others."""
        stable = stable or self.stable
        previous = {loaded.number: loaded for loaded in (self.stable, self.candidate) if loaded}
        if stable is not None and stable is not self.stable:
            logger.info("serving version %d of %s%s", stable.number, self.name,
                        f" (was {self.stable.number})" if self.stable else "")
        if candidate is not None and candidate is not self.candidate:
            logger.info("version %d of %s is the %s candidate beside version %d", candidate.number,
                        self.name, self.policy.mode, stable.number)
        self.stable, self.candidate = stable, candidate
        self.ready = stable is not None
        kept = {loaded.number for loaded in (stable, candidate) if loaded}
        for number, loaded in previous.items():
            if number not in kept and self._loop is not None:
                asyncio.run_coroutine_threadsafe(loaded.batcher.close(), self._loop)

    def _follow_rollout(self, candidates: Sequence[Version]) -> None:
        """Loads the versions the rollout state names; the leader also starts rollouts, keeps
        the state in line with the store, and decides each step."""
        now = time.time()
        seen, problem = rollout.read_state(self.store.model_dir)
        if problem and problem != self._state_problem:
            logger.error("%s; the leader writes a new one", problem)
        self._state_problem = problem
        offered = {candidate.number: candidate for candidate in candidates}
        obtained: dict[int, Optional[LoadedVersion]] = {}

        def obtain(number: Optional[int]) -> Optional[LoadedVersion]:
            if number not in offered:
                return None
            if number not in obtained:
                obtained[number] = self._obtain(offered[number])
            return obtained[number]

        def newest(above: int = -1) -> Optional[LoadedVersion]:
            for candidate in candidates:
                if candidate.number <= above:
                    break
                if obtain(candidate.number) is not None:
                    return obtained[candidate.number]
            return None

        # No rollout yet, or its stable version left the store (a rollback by hand): the
        # newest version that loads is stable, as without a rollout.
        stable = (obtain(seen.stable) if seen else None) or newest()
        if stable is None:
            return
        state = seen
        if seen is None or seen.leader == self.server_id or seen.lease_until < now:
            candidate = obtain(seen.candidate) if seen and seen.candidate is not None \
                and seen.candidate > stable.number else None
            # A newer push than the running candidate supersedes it (its rollout restarts).
            candidate = newest(above=candidate.number if candidate else stable.number) \
                or candidate
            candidate = candidate if self._fits(candidate, stable) else None
            # The clock read after loading: a step starts when its candidate can answer.
            state = rollout.update_state(self.store.model_dir, lambda fresh: self._lead(
                fresh, seen, stable.number, candidate.number if candidate else None,
                time.time()))
        # Follow the state as written: the leader's plan, or what another replica or a person
        # changed meanwhile.
        if state is not None:
            stable = obtain(state.stable) or stable
        candidate = obtain(state.candidate) if state is not None and state.candidate not in (
            None, stable.number) else None
        candidate = candidate if self._fits(candidate, stable) else None
        self.leading = state is not None and state.leader == self.server_id
        self.rollout = state
        if state is None or self.window.key != state.window_key():
            self.window = StepWindow(state.window_key() if state else ())
        self._use(stable, candidate)
        if self.leading and self.candidate is not None and not state.paused:
            self._decide(state, now)

    def _fits(self, candidate: Optional[LoadedVersion], stable: LoadedVersion) -> bool:
        """Whether `candidate` takes the stable version's inputs (requests are read by those);
        one that does not is refused here."""
        if candidate is None or candidate.text_inputs == stable.text_inputs:
            return True
        self.refusals[candidate.number] = Refusal(
            f"its inputs ({', '.join(candidate.text_inputs)}) differ from the stable version's "
            f"({', '.join(stable.text_inputs)}); a rollout needs the same inputs: serve it with "
            "serving.rollout.mode=immediate", _content_stamp(
                filesystem.join(self.store.model_dir, str(candidate.number))))
        logger.error("refusing version %d of %s as a candidate: %s", candidate.number, self.name,
                     self.refusals[candidate.number].reason)
        return False

    def _lead(self, fresh: Optional[RolloutState], seen: Optional[RolloutState], stable: int,
              candidate: Optional[int], now: float) -> Optional[RolloutState]:
        """The state the leader writes: its lease renewed, and its plan when nobody changed the
        state since it was read (a change by hand or another replica wins; the next poll plans
        again)."""
        lease = {"leader": self.server_id,
                 "lease_until": now + self.policy.leader_lease_seconds}
        if fresh is not None and fresh.leader != self.server_id and fresh.lease_until >= now:
            return fresh  # another replica took the lead meanwhile
        if fresh is not None and seen is not None and _moved(fresh, seen):
            return dataclasses.replace(fresh, **lease)
        if fresh is None or fresh.stable != stable:
            return RolloutState(stable, candidate, step_started=now, **lease,
                                last_decision=f"version {stable} is stable")
        if fresh.candidate != candidate:
            decision = (f"rollout of version {candidate} started" if candidate is not None
                        else f"candidate {fresh.candidate} left the store")
            logger.info("%s (%s)", decision, self.policy.mode)
            return RolloutState(stable, candidate, step_started=now, **lease,
                                last_decision=decision)
        return dataclasses.replace(fresh, **lease)

    def _decide(self, state: RolloutState, now: float) -> None:
        verdict = rollout.judge(self.policy, self.window.figures(), now - state.step_started)
        if verdict.action == "wait":
            return
        candidate, stable = self.candidate, self.stable
        share = state.share(self.policy.steps)
        if verdict.action == "rollback":
            reason = (f"automatic rollback of version {candidate.number} at step "
                      f"{state.step + 1} ({share:g} %): {verdict.reason}")
            logger.error("%s; version %d takes all traffic again", reason, stable.number)
            # Refused here at once, whatever the store does, so it is never routed to again.
            self.refusals[candidate.number] = Refusal(reason, _content_stamp(
                filesystem.join(self.store.model_dir, str(candidate.number))))
            try:
                self.store.rollback(stable.number, reason=reason, verify_key=self.verify_key)
            except StoreError as error:
                logger.error("the store could not mark version %d rejected: %s",
                             candidate.number, error)
            self._settle(state, dataclasses.replace(
                state, candidate=None, step=0, step_started=now, last_decision=reason))
            self.metrics.automatic_rollbacks.labels(self.name).inc()
            self.notify("rollback", f"textclf {self.name}: version {candidate.number} rolled "
                                    f"back automatically", {
                                        "model": self.name, "version": stable.number,
                                        "rejected": candidate.number, "reason": verdict.reason})
            return
        if state.step + 1 < len(self.policy.steps) - 1:
            next_share = self.policy.steps[state.step + 1]
            decision = (f"step {state.step + 2} ({next_share:g} %) after step "
                        f"{state.step + 1}: {verdict.reason}")
            logger.info("rollout of version %d: %s", candidate.number, decision)
            self._settle(state, dataclasses.replace(state, step=state.step + 1,
                                                    step_started=now, last_decision=decision))
            return
        decision = f"version {candidate.number} promoted: {verdict.reason}"
        logger.info("%s; it is the stable version", decision)
        if self._settle(state, dataclasses.replace(state, stable=candidate.number,
                                                   candidate=None, step=0, step_started=now,
                                                   last_decision=decision)):
            try:
                self.store.note({"event": "promoted", "version": candidate.number,
                                 "reason": verdict.reason, "replaced": stable.number})
            except (StoreError, OSError) as error:
                logger.warning("the promotion was not recorded in the history: %s", error)
            self.metrics.promotions.labels(self.name).inc()
            self.notify("promoted", f"textclf {self.name}: version {candidate.number} takes all "
                                    "traffic", {"model": self.name, "version": candidate.number,
                                                "replaced": stable.number,
                                                "reason": verdict.reason})

    def _settle(self, decided_on: RolloutState, new: RolloutState) -> bool:
        """Writes `new` unless the state changed since the decision; follows what is there."""
        state = rollout.update_state(self.store.model_dir, lambda fresh: new if (
            fresh is not None and fresh.window_key() == decided_on.window_key()
            and fresh.stable == decided_on.stable and not fresh.paused) else fresh)
        written = state is new
        if state is not None:
            self.rollout = state
            self.window = StepWindow(state.window_key())
            offered = {loaded.number: loaded for loaded in (self.stable, self.candidate)
                       if loaded}
            self._use(offered.get(state.stable), offered.get(state.candidate))
        return written


def _moved(fresh: RolloutState, seen: RolloutState) -> bool:
    """Whether the state changed other than by a lease renewal."""
    return dataclasses.replace(fresh, leader="", lease_until=0) != \
        dataclasses.replace(seen, leader="", lease_until=0)


def _labels(results: Optional[list[dict]]) -> list[str]:
    return [result[features.PREDICTED_LABEL] for result in results or ()]


def _predict_batch(loaded: LoadedVersion, rows: Sequence[tuple[bytes, ...]]
                   ) -> tuple[list[dict], int]:
    outputs = loaded.predict_text(**{
        name: tf.constant([row[index] for row in rows], tf.string)
        for index, name in enumerate(loaded.text_inputs)})
    probabilities = outputs[features.PROBABILITIES].numpy().tolist()
    labels = [label.decode() for label in outputs[features.PREDICTED_LABEL].numpy()]
    class_ids = outputs[features.PREDICTED_CLASS_ID].numpy().tolist()
    return [{features.PREDICTED_LABEL: label, features.PROBABILITIES: probability,
             features.PREDICTED_CLASS_ID: class_id}
            for label, probability, class_id in zip(labels, probabilities, class_ids)
            ], loaded.number


def _content_stamp(path: str) -> Optional[tuple]:
    """What a refusal remembers of a version's folder: its path (a version listed from a staging
    folder of a store change not yet applied is looked at again once it is in place) and each
    file's name, size and modification time."""
    try:
        return path, filesystem.content_stamp(path)
    except OSError:
        return None


def _load(version: Version) -> LoadedVersion:
    """Loads a SavedModel and calls it once, so its first real request is not the slow one."""
    saved_model = tf.saved_model.load(version.path)
    predict_text = saved_model.signatures[features.TEXT_SIGNATURE]
    text_inputs = tuple(name for name in features.TEXT_INPUT_NAMES
                        if name in predict_text.structured_input_signature[1])
    outputs = predict_text(**{name: tf.constant(["warm-up"]) for name in text_inputs})
    num_labels = int(outputs[features.PROBABILITIES].shape[-1])
    return LoadedVersion(version.number, predict_text, text_inputs, num_labels, saved_model)
