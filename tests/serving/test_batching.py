"""MicroBatcher: concurrent requests share model calls, each gets back exactly its own results."""

import asyncio
import threading
import time

import pytest

from serving.batching import MicroBatcher


class RecordingModel:
    """Doubles numbers, slowly (as a model call is), and records each call's batch."""

    def __init__(self):
        self.batches = []
        self.lock = threading.Lock()

    def __call__(self, items):
        with self.lock:
            self.batches.append(list(items))
        time.sleep(0.02)
        return [item * 2 for item in items], len(self.batches)


async def _send_concurrently(batcher, requests):
    return await asyncio.gather(*(batcher.submit(items) for items in requests))


def test_concurrent_requests_are_grouped_and_answered_in_order():
    model = RecordingModel()
    batcher = MicroBatcher(model, max_batch_size=8, max_wait_seconds=0.05)
    requests = [[index, index + 100] for index in range(12)]

    answers = asyncio.run(_send_concurrently(batcher, requests))

    assert [results for results, _ in answers] == [[2 * a, 2 * b] for a, b in requests]
    # 24 items in calls of at most 8 (4 requests of 2): 3 calls, not 12.
    assert [len(batch) for batch in model.batches] == [8, 8, 8]


def test_batch_size_one_calls_the_model_per_request():
    model = RecordingModel()
    batcher = MicroBatcher(model, max_batch_size=1, max_wait_seconds=0.05)

    answers = asyncio.run(_send_concurrently(batcher, [[1], [2], [3]]))

    assert sorted(results[0] for results, _ in answers) == [2, 4, 6]
    assert len(model.batches) == 3


def test_a_failing_call_fails_its_requests_and_later_ones_still_run():
    calls = []

    def flaky(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("model call failed")
        return list(items), "ok"

    batcher = MicroBatcher(flaky, max_batch_size=4, max_wait_seconds=0.0)

    async def scenario():
        with pytest.raises(RuntimeError, match="model call failed"):
            await batcher.submit(["a"])
        return await batcher.submit(["b"])

    assert asyncio.run(scenario()) == (["b"], "ok")


def test_up_to_max_concurrent_batches_run_at_once_and_the_next_takes_what_queued():
    spans, lock = [], threading.Lock()

    def slow(items):
        started = time.monotonic()
        time.sleep(0.2)
        with lock:
            spans.append((started, time.monotonic(), list(items)))
        return [item * 2 for item in items], None

    async def scenario(concurrent):
        batcher = MicroBatcher(slow, max_batch_size=4, max_wait_seconds=0.0,
                               max_concurrent_batches=concurrent)
        # Three items each: two requests that cannot share a call of at most four.
        first = [asyncio.ensure_future(batcher.submit([index] * 3)) for index in range(2)]
        await asyncio.sleep(0.05)
        later = [asyncio.ensure_future(batcher.submit([index])) for index in range(2, 6)]
        return await asyncio.gather(*first, *later)

    answers = asyncio.run(scenario(concurrent=2))
    assert [results for results, _ in answers] == [[0, 0, 0], [2, 2, 2]] + [
        [2 * index] for index in range(2, 6)]
    # The first two requests ran side by side; the four that queued meanwhile became one call.
    first, second = sorted(spans)[:2]
    assert second[0] < first[1]
    assert [len(items) for _, _, items in sorted(spans)] == [3, 3, 4]

    spans.clear()
    asyncio.run(scenario(concurrent=1))
    ordered = sorted(spans)
    assert all(earlier[1] <= later[0] for earlier, later in zip(ordered, ordered[1:]))


class PoisonableModel(RecordingModel):
    """Fails the whole call whenever a negative number is in its batch, as a model call does
    when one text of the batch cannot become a tensor."""

    def __call__(self, items):
        results, tag = super().__call__(items)
        if any(item < 0 for item in items):
            raise ValueError("cannot convert a negative number")
        return results, tag


@pytest.mark.parametrize("poisoned", [{0}, {5}, {11}, {3, 8}, set(range(0, 12, 3))])
def test_a_poisoned_request_fails_alone_and_its_batch_mates_are_answered(poisoned):
    model = PoisonableModel()
    batcher = MicroBatcher(model, max_batch_size=24, max_wait_seconds=0.05)
    requests = [[-index - 1] if index in poisoned else [index, index + 100]
                for index in range(12)]

    async def scenario():
        return await asyncio.gather(*(batcher.submit(items) for items in requests),
                                    return_exceptions=True)

    answers = asyncio.run(scenario())

    for index, answer in enumerate(answers):
        if index in poisoned:
            assert isinstance(answer, ValueError)
        else:
            assert answer[0] == [2 * index, 2 * index + 200]
    # Bisecting, not one call per request: about 2 log2(12) calls for each poisoned one.
    assert len(model.batches) <= 1 + len(poisoned) * 2 * 4


def test_a_model_answering_the_wrong_number_of_results_fails_only_that_call():
    batcher = MicroBatcher(lambda items: (list(items)[:-1], "short"), max_batch_size=4,
                           max_wait_seconds=0.0)

    async def scenario():
        return await batcher.submit(["a", "b"])

    with pytest.raises(RuntimeError, match="answered 1 results for 2 items"):
        asyncio.run(scenario())
