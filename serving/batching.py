"""Groups concurrent requests into model calls, as TF Serving's batching does.

A transformer's forward pass costs far less per text for 16 texts than for 1 on a CPU, while
one call per request leaves clients queueing behind each other. Requests wait at most
`max_wait_seconds` for company; a call never holds more than `max_batch_size` items unless one
request alone does. Up to `max_concurrent_batches` calls run at once (TF Serving's
`num_batch_threads`): the next batch forms only when one finishes, so under load it takes every
request that queued meanwhile, and the CPU is not idle while a batch waits for company.

Batching never lets one request fail another: a call that fails is split and retried until
the failure is confined to the requests that cause it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Generic, Optional, Sequence, TypeVar

Item = TypeVar("Item")
# `run_batch(items)` returns one result per item, and a tag shared by the whole call (the model
# version that answered).
BatchFunction = Callable[[Sequence[Any]], tuple[list[Any], Any]]
# How often a forming batch looks for more requests while it waits.
_POLL_SECONDS = 0.0005


@dataclasses.dataclass
class _Request(Generic[Item]):
    items: Sequence[Item]
    answer: asyncio.Future


class MicroBatcher:
    """Runs `run_batch` in worker threads on the items of as many waiting requests as fit."""

    def __init__(self, run_batch: BatchFunction, max_batch_size: int, max_wait_seconds: float,
                 max_concurrent_batches: int = 1,
                 observe_call: Optional[Callable[[int], None]] = None):
        """`observe_call(items)` is told the size of every model call (for metrics)."""
        self._run_batch = run_batch
        self._observe_call = observe_call
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self.max_concurrent_batches = max_concurrent_batches
        self._queue: Optional[asyncio.Queue] = None
        self._worker: Optional[asyncio.Task] = None
        self._running: set[asyncio.Task] = set()
        # Requests submitted and not yet answered; `close` waits for them.
        self._pending = 0
        self._closed = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a model call."""
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, items: Sequence[Any]) -> tuple[list[Any], Any]:
        """The results for `items` and the call's tag, once the batch holding them has run."""
        loop = asyncio.get_running_loop()
        if self.max_batch_size <= 1 or self._closed:
            # Closed: a request that chose this version just before it was retired is still
            # answered, alone.
            return await loop.run_in_executor(None, self._call, items)
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._batch_loop())
        request = _Request(items, loop.create_future())
        self._queue.put_nowait(request)
        self._pending += 1
        try:
            return await request.answer
        finally:
            self._pending -= 1

    async def close(self) -> None:
        """Stops the worker once every request submitted so far is answered (a version taken
        out of service finishes what it was given, then frees its model)."""
        self._closed = True
        while self._pending:
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()

    async def _batch_loop(self) -> None:
        free_slots = asyncio.Semaphore(self.max_concurrent_batches)
        carried: Optional[_Request] = None
        while True:
            await free_slots.acquire()
            batch, carried = await self._next_batch(carried)
            task = asyncio.get_running_loop().create_task(self._answer(batch))
            # Kept referenced until done: the event loop holds tasks only weakly.
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: free_slots.release())

    async def _next_batch(self, carried: Optional[_Request]
                          ) -> tuple[list[_Request], Optional[_Request]]:
        """The requests of one call, and a request that did not fit (it starts the next)."""
        loop = asyncio.get_running_loop()
        batch = [carried or await self._queue.get()]
        size = len(batch[0].items)
        deadline = loop.time() + self.max_wait_seconds
        # Polled rather than `wait_for(queue.get())`: on Python 3.10 a timeout racing a get can
        # drop the dequeued request, which would then never be answered.
        while True:
            while size < self.max_batch_size and not self._queue.empty():
                request = self._queue.get_nowait()
                if size + len(request.items) > self.max_batch_size:
                    return batch, request
                batch.append(request)
                size += len(request.items)
            if size >= self.max_batch_size or loop.time() >= deadline:
                return batch, None
            await asyncio.sleep(min(deadline - loop.time(), _POLL_SECONDS))

    async def _answer(self, batch: list[_Request]) -> None:
        # A request whose client went away was cancelled: nobody waits for its answer.
        batch = [request for request in batch if not request.answer.done()]
        if not batch:
            return
        items = [item for request in batch for item in request.items]
        try:
            results, tag = await asyncio.get_running_loop().run_in_executor(
                None, self._call, items)
            if len(results) != len(items):
                raise RuntimeError(f"the model answered {len(results)} results for "
                                   f"{len(items)} items")
        except Exception as error:  # pylint: disable=broad-except
            if len(batch) == 1:
                if not batch[0].answer.done():
                    batch[0].answer.set_exception(error)
                return
            # One request's items may be what failed the call: its halves run apart, again and
            # again, so the failure reaches only the requests whose own items fail it (a few
            # calls for one bad request in a batch, not one per request).
            middle = len(batch) // 2
            await self._answer(batch[:middle])
            await self._answer(batch[middle:])
            return
        start = 0
        for request in batch:
            if not request.answer.done():
                request.answer.set_result((results[start:start + len(request.items)], tag))
            start += len(request.items)

    def _call(self, items: Sequence[Any]) -> tuple[list[Any], Any]:
        if self._observe_call is not None:
            self._observe_call(len(items))
        return self._run_batch(items)
