"""The batching queue on its own: who shares a call, a full queue, a timeout, a runtime's refusal."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ferry.errors import UserError
from ferry.serve._batching import Batcher
from ferry.serve._protocol import ProtocolError


class Doubler:
    """A 'runtime' that doubles its input, records every call, and can be held back."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        self.gate.wait(10)
        x = feeds["x"]
        if x.dtype == np.int64:
            raise UserError("the runtime refuses int64")
        self.calls.append(x.shape)
        return {"y": 2 * x}


def run(coro_fn, *args):  # type: ignore[no-untyped-def]
    """The coroutine on an event loop of its own thread: the main thread may hold a running loop
    (Playwright's sync API keeps one while the ort-web backend's browser is open)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args)).result()


def test_same_shapes_share_a_call_and_get_their_own_rows_back() -> None:
    runtime = Doubler()

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(runtime, max_batch=4, timeout_s=0.2, max_queue=16, batchable=True)
        await batcher.start()
        xs = [np.full((1, 3), k, np.float32) for k in range(4)] + [np.full((2, 5), 9, np.float32)]
        results = await asyncio.gather(*(batcher.infer({"x": x}) for x in xs))
        await batcher.close()
        return results

    results = run(main)
    assert [r["y"][0, 0] for r in results] == [0, 2, 4, 6, 18] and results[4]["y"].shape == (2, 5)
    assert sorted(runtime.calls) == [(2, 5), (4, 3)]  # four rows of one shape in one call, the other alone


def test_no_batching_when_the_batch_axis_is_static_or_max_batch_is_one() -> None:
    for kwargs in ({"max_batch": 8, "batchable": False}, {"max_batch": 1, "batchable": True}):
        runtime = Doubler()

        async def main(kw: dict[str, object] = kwargs, runtime: Doubler = runtime) -> None:
            batcher = Batcher(runtime, timeout_s=0.05, max_queue=16, **kw)  # type: ignore[arg-type]
            await batcher.start()
            await asyncio.gather(*(batcher.infer({"x": np.ones((1, 2), np.float32)}) for _ in range(3)))
            await batcher.close()

        run(main)
        assert runtime.calls == [(1, 2)] * 3


def test_a_full_queue_answers_503_and_a_slow_call_504() -> None:
    runtime = Doubler()
    runtime.gate.clear()  # the runtime is busy until released

    async def main() -> list[object]:
        batcher = Batcher(runtime, max_batch=1, timeout_s=0.0, max_queue=2, batchable=True)
        await batcher.start()
        x = {"x": np.ones((1, 2), np.float32)}
        first = asyncio.create_task(batcher.infer(x, timeout_s=5))
        await asyncio.sleep(0.05)  # taken by the worker, now stuck in the runtime
        queued = [asyncio.create_task(batcher.infer(x, timeout_s=t)) for t in (5, 0.1)]
        await asyncio.sleep(0.01)
        with pytest.raises(ProtocolError) as full:
            await batcher.infer(x)
        assert full.value.status == 503 and "--max-queue" in full.value.message and full.value.headers["Retry-After"]
        with pytest.raises(ProtocolError) as late:
            await queued[1]
        assert late.value.status == 504
        runtime.gate.set()
        done = [await first, await queued[0]]
        await batcher.close()
        return done

    started = time.perf_counter()
    done = run(main)
    assert all(d["y"].shape == (1, 2) for d in done) and time.perf_counter() - started < 5  # type: ignore[index]
    assert len(runtime.calls) == 2  # the timed-out request never ran


def test_a_refusal_reaches_every_request_of_its_call_and_the_queue_goes_on() -> None:
    runtime = Doubler()

    async def main() -> None:
        batcher = Batcher(runtime, max_batch=4, timeout_s=0.1, max_queue=8, batchable=True)
        await batcher.start()
        bad = [batcher.infer({"x": np.ones((1, 2), np.int64)}) for _ in range(2)]
        outcomes = await asyncio.gather(*bad, return_exceptions=True)
        assert all(isinstance(o, ProtocolError) and o.status == 400 and "int64" in o.message for o in outcomes)
        assert (await batcher.infer({"x": np.ones((1, 2), np.float32)}))["y"].sum() == 4
        await batcher.close()

    run(main)
