"""The served model: the store's newest good version, verified, loaded, warmed up, swapped in.

A version that fails anywhere on the way (an unreadable folder, a refused signature, a graph
that does not load, a warm-up call that fails) is refused alone, logged once, and looked at
again only when its folder's content changes (signed in place, a missing file copied in); the
version in service keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Optional, Sequence

import tensorflow as tf
# Registers the WordPiece, case-folding and normalisation ops that fine-tuned models' transform
# graphs call; loading such a SavedModel fails without them.
import tensorflow_text  # noqa: F401  pylint: disable=unused-import
from kserve import Model
from kserve.errors import ModelNotReady

from modules import features
from pipeline.config import ServingConfig
from serving import filesystem, signing
from serving.batching import MicroBatcher
from serving.metrics import ServerMetrics
from serving.protocol import RequestError
from serving.store import ModelStore, StoreError, Version, verify_version

logger = logging.getLogger("textclf.serving")


@dataclasses.dataclass(frozen=True)
class LoadedVersion:
    """A version in memory: its number and its `predict_text` signature."""

    number: int
    predict_text: Any
    text_inputs: tuple[str, ...]
    num_labels: int
    # The signature holds its variables only while the loaded object lives.
    saved_model: Any


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a version was refused, and its folder's content then (None: unreadable)."""

    reason: str
    stamp: Optional[tuple]


class TextClassifier(Model):
    """Answers prediction requests with the store's newest good version, batched."""

    def __init__(self, name: str, store: ModelStore, settings: ServingConfig,
                 metrics: ServerMetrics, verify_key: Optional[signing.VerifyKey] = None):
        super().__init__(name)
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.verify_key = verify_key
        self.loaded: Optional[LoadedVersion] = None
        self.refusals: dict[int, Refusal] = {}
        self._store_problem = ""
        self._batcher = MicroBatcher(self._predict_batch, settings.max_batch_size,
                                     settings.max_batch_wait_ms / 1000,
                                     settings.max_concurrent_batches,
                                     observe_call=metrics.batch_size.observe)

    @property
    def queue_depth(self) -> int:
        return self._batcher.queue_depth

    def load(self) -> bool:
        self.refresh()
        return self.ready

    def refresh(self) -> bool:
        """Serves the newest good version if it is not the one loaded; True when it swapped."""
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
        for candidate in candidates:
            if self.loaded and candidate.number == self.loaded.number:
                return False
            stamp = _content_stamp(candidate)
            refusal = self.refusals.get(candidate.number)
            if refusal and refusal.stamp == stamp:
                continue
            try:
                verify_version(candidate, self.verify_key)
                loaded = _load(candidate)
            except Exception as error:  # pylint: disable=broad-except
                reason = str(error).strip().splitlines()[0] if str(error).strip() \
                    else type(error).__name__
                self.refusals[candidate.number] = Refusal(reason, stamp)
                self.metrics.refused_versions.labels(self.name).inc()
                logger.error("refusing version %d of %s: %s; still serving %s", candidate.number,
                             self.name, reason, self._serving())
                logger.debug("version %d refused", candidate.number, exc_info=True)
                continue
            previous = self.loaded
            self.loaded = loaded
            self.ready = True
            logger.info("serving version %d of %s%s", loaded.number, self.name,
                        f" (was {previous.number})" if previous else "")
            return True
        if self.loaded is None:
            logger.warning("no servable version of %s under %s yet; not ready", self.name,
                           self.store.model_dir)
        return False

    async def poll(self) -> None:
        """Looks for a newer or rolled-back version every `poll_seconds`, forever."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                await loop.run_in_executor(None, self.refresh)
            except Exception:  # pylint: disable=broad-except
                # `refresh` confines every failure it knows; this is a bug, and the next poll
                # must still run.
                logger.exception("looking for new versions of %s failed", self.name)

    async def predict_texts(self, rows: Sequence[tuple[bytes, ...]], version: Optional[int]
                            ) -> tuple[list[dict], int]:
        """One result per row and the version that answered (`version` when one is asked for)."""
        self.serving_version(version)
        results, answered_by = await self._batcher.submit(rows)
        if version is not None and answered_by != version:
            raise RequestError(503, f"version {version} of {self.name} was swapped out while "
                                    f"answering (version {answered_by} serves now): retry")
        return results, answered_by

    def serving_version(self, version: Optional[int] = None) -> LoadedVersion:
        """The loaded version; 503 when none is, 404 when `version` is asked for but not it."""
        loaded = self.loaded
        if loaded is None:
            raise ModelNotReady(self.name, "no version loaded yet (see the server log)")
        if version is not None and version != loaded.number:
            raise RequestError(404, f"version {version} of {self.name} is not served; version "
                                    f"{loaded.number} is")
        return loaded

    def version_status(self) -> list[dict[str, Any]]:
        """TF Serving's `model_version_status`: the served version, and each refused one."""
        status = []
        if self.loaded:
            status.append({"version": str(self.loaded.number), "state": "AVAILABLE",
                           "status": {"error_code": "OK", "error_message": ""}})
        for number, refusal in sorted(self.refusals.items(), reverse=True):
            status.append({"version": str(number), "state": "END",
                           "status": {"error_code": "FAILED_PRECONDITION",
                                      "error_message": refusal.reason}})
        return status

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
        return f"version {self.loaded.number}" if self.loaded else "nothing"

    def _predict_batch(self, rows: Sequence[tuple[bytes, ...]]) -> tuple[list[dict], int]:
        loaded = self.loaded  # one version answers the whole batch, even during a swap
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


def _content_stamp(version: Version) -> Optional[tuple]:
    try:
        return filesystem.content_stamp(version.path)
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
