"""Groups concurrent requests into one model call, as TF Serving's batching does.

A transformer's forward pass costs little more for 16 texts than for 1 on a CPU, while one call
per request leaves clients queueing behind each other. Requests wait at most `max_wait_seconds`
for company; a call never holds more than `max_batch_size` items unless one request alone does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Generic, Optional, Sequence, TypeVar

Item = TypeVar("Item")
# `run_batch(items)` returns one result per item, and a tag shared by the whole call (the model
# version that answered).
# How often a forming batch looks for more requests while it waits.
_POLL_SECONDS = 0.0005
BatchFunction = Callable[[Sequence[Any]], tuple[list[Any], Any]]


@dataclasses.dataclass
class _Request(Generic[Item]):
    items: Sequence[Item]
    answer: asyncio.Future


class MicroBatcher:
    """Runs `run_batch` in a worker thread on the items of as many waiting requests as fit."""

    def __init__(self, run_batch: BatchFunction, max_batch_size: int, max_wait_seconds: float):
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self._queue: Optional[asyncio.Queue] = None
        self._worker: Optional[asyncio.Task] = None

    async def submit(self, items: Sequence[Any]) -> tuple[list[Any], Any]:
        """The results for `items` and the call's tag, once the batch holding them has run."""
        loop = asyncio.get_running_loop()
        if self.max_batch_size <= 1:
            return await loop.run_in_executor(None, self._run_batch, items)
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._batch_loop())
        request = _Request(items, loop.create_future())
        self._queue.put_nowait(request)
        return await request.answer

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        carried: Optional[_Request] = None
        while True:
            batch = [carried or await self._queue.get()]
            carried = None
            size = len(batch[0].items)
            deadline = loop.time() + self.max_wait_seconds
            # Polled rather than `wait_for(queue.get())`: on Python 3.10 a timeout racing a get
            # can drop the dequeued request, which would then never be answered.
            while True:
                while size < self.max_batch_size and not self._queue.empty():
                    request = self._queue.get_nowait()
                    if size + len(request.items) > self.max_batch_size:
                        carried = request
                        break
                    batch.append(request)
                    size += len(request.items)
                if carried or size >= self.max_batch_size or loop.time() >= deadline:
                    break
                await asyncio.sleep(min(deadline - loop.time(), _POLL_SECONDS))
            items = [item for request in batch for item in request.items]
            try:
                results, tag = await loop.run_in_executor(None, self._run_batch, items)
            except Exception as error:  # pylint: disable=broad-except
                # The callers see the error; the loop keeps serving later requests.
                for request in batch:
                    if not request.answer.done():
                        request.answer.set_exception(error)
                continue
            start = 0
            for request in batch:
                # A request whose client went away was cancelled: nobody waits for its answer.
                if not request.answer.done():
                    request.answer.set_result((results[start:start + len(request.items)], tag))
                start += len(request.items)
