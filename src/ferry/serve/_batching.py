"""Dynamic batching: concurrent requests of the same shape run as one call of the runtime.

Requests wait in one bounded queue. A single worker takes the oldest; when the model's batch axis
is dynamic it also takes every queued request whose other axes, names and dtypes match, up to
``max_batch`` rows, waiting at most ``timeout_s`` after the oldest arrived for more to come. The
batch runs in one dedicated thread (a session is used by one thread at a time; a browser-backed
one must stay on the thread that opened it), and its outputs are split back along axis 0. While a
batch runs, new requests queue up, so a busy server batches without waiting at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ferry.errors import UserError
from ferry.serve._protocol import ProtocolError

RunBatch = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass
class _Item:
    feeds: dict[str, np.ndarray]
    rows: int
    key: tuple[object, ...]
    future: asyncio.Future[dict[str, np.ndarray]]
    arrived: float = field(default_factory=time.perf_counter)


def _key(feeds: Mapping[str, np.ndarray]) -> tuple[object, ...]:
    return tuple((name, arr.dtype.str, arr.shape[1:]) for name, arr in sorted(feeds.items()))


class Batcher:
    """Queue, batch and run requests on one session.

    Args:
        run: runs named inputs and returns named outputs (a session's ``run``).
        max_batch: most rows (axis 0) in one call; 1 runs every request alone.
        timeout_s: longest wait, after the oldest queued request arrived, for others to join it.
        max_queue: most requests waiting; one more is refused with 503.
        batchable: the model's batch axis is dynamic (otherwise requests never share a call).
        on_batch: called with (requests, rows) of every call, for the metrics.
        on_queue: called with the queue's length whenever it changes.
        executor: the single thread to run on (default: a new one).
        on_close: run on that thread when the batcher closes (closing the session).
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int,
        timeout_s: float,
        max_queue: int,
        batchable: bool,
        on_batch: Callable[[int, int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._run = run
        self.max_batch = max(1, max_batch) if batchable else 1
        self.timeout_s = max(0.0, timeout_s)
        self.max_queue = max(1, max_queue)
        self._on_batch = on_batch or (lambda requests, rows: None)
        self._on_queue = on_queue or (lambda depth: None)
        self._queue: collections.deque[_Item] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        # one thread: the session is never run by two threads at once (give the one that opened it)
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="ferry-serve-runtime")
        self._on_close = on_close

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._worker = asyncio.create_task(self._loop(), name="ferry-batcher")

    async def close(self) -> None:
        """Stop the worker; requests still queued get 503."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(ProtocolError(503, "the server is shutting down"))
        if self._on_close is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._on_close)
        self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def infer(self, feeds: dict[str, np.ndarray], timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """Queue one request and wait for its outputs.

        Raises:
            ProtocolError: 503 when the queue is full or the server stops, 504 after ``timeout_s``,
                400 when the runtime refuses the inputs.
        """
        if self._worker is None or self._wake is None:
            raise ProtocolError(503, "the model is not ready")
        if len(self._queue) >= self.max_queue:
            raise ProtocolError(
                503,
                f"overloaded: {len(self._queue)} requests are queued (--max-queue); retry later",
                {"Retry-After": "1"},
            )
        rows = int(next(iter(feeds.values())).shape[0]) if feeds and self.max_batch > 1 else 1
        item = _Item(feeds, rows, _key(feeds), asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._on_queue(len(self._queue))
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout_s)
        except asyncio.TimeoutError:
            item.future.cancel()  # the worker skips it if it has not started yet
            raise ProtocolError(504, f"the request timed out after {timeout_s:g} s (--timeout)") from None
        except asyncio.CancelledError:
            item.future.cancel()  # the client went away
            raise

    def _take(self) -> list[_Item]:
        """The oldest live request and the queued ones that can share its call."""
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch, rows = [first], first.rows
        if self.max_batch > 1:
            keep: collections.deque[_Item] = collections.deque()
            while self._queue:
                item = self._queue.popleft()
                if item.future.done():
                    continue
                if item.key == first.key and rows + item.rows <= self.max_batch:
                    batch.append(item)
                    rows += item.rows
                else:
                    keep.append(item)
            self._queue = keep
        self._on_queue(len(self._queue))
        return batch

    def _ready_rows(self) -> int:
        first = next((i for i in self._queue if not i.future.done()), None)
        if first is None:
            return 0
        return sum(i.rows for i in self._queue if i.key == first.key and not i.future.done())

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not any(not i.future.done() for i in self._queue):
                self._queue.clear()
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.max_batch > 1:
                await self._gather()
            batch = self._take()
            if not batch:
                continue
            self._on_batch(len(batch), sum(i.rows for i in batch))
            try:
                outputs = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except Exception as exc:  # handed to every waiting request, the server goes on
                error = _as_protocol_error(exc)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            for item, result in zip(batch, outputs, strict=True):
                if not item.future.done():
                    item.future.set_result(result)

    async def _gather(self) -> None:
        """Wait until ``max_batch`` rows of the oldest request's shape are queued, or its time is up."""
        assert self._wake is not None
        first = next(i for i in self._queue if not i.future.done())
        deadline = first.arrived + self.timeout_s
        while self._ready_rows() < self.max_batch:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                return

    def _run_batch(self, batch: list[_Item]) -> list[dict[str, np.ndarray]]:
        if len(batch) == 1:
            return [dict(self._run(batch[0].feeds))]
        names = list(batch[0].feeds)
        feeds = {n: np.concatenate([i.feeds[n] for i in batch]) for n in names}
        outputs = self._run(feeds)
        total = sum(i.rows for i in batch)
        bad = [n for n, a in outputs.items() if a.ndim == 0 or a.shape[0] != total]
        if bad:
            raise ProtocolError(500, f"output(s) {', '.join(bad)} have no batch axis: serve with --max-batch 1")
        bounds = np.cumsum([0, *[i.rows for i in batch]])
        return [{n: a[bounds[k] : bounds[k + 1]] for n, a in outputs.items()} for k in range(len(batch))]


def _as_protocol_error(exc: Exception) -> ProtocolError:
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, UserError):
        return ProtocolError(400, str(exc))
    return ProtocolError(500, f"the runtime failed: {type(exc).__name__}: {exc}")
