"""A micro-batcher: one worker thread runs a batch function over items that arrive close together.

Requests arriving within `max_wait_ms` of the first waiting one (up to
`max_batch` of them) share one call, so concurrent clients share a forward
pass, and the event loop only ever waits on futures. With `workers` > 1,
several batches run at once (one per core, each forward pass on one thread):
while one worker computes, the next gathers what queued up meanwhile.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class MicroBatcher(Generic[T, R]):
    """`submit(item)` returns a Future; the worker calls `fn(items)` and sets each item's result.

    `fn` must return one result per item, in order. If it raises, every item of
    that batch gets the exception; the worker carries on with the next batch.
    """

    def __init__(self, fn: Callable[[Sequence[T]], Sequence[R]], max_batch: int = 16,
                 max_wait_ms: float = 5.0, name: str = "micro-batcher", workers: int = 1):
        if max_batch < 1 or max_wait_ms < 0 or workers < 1:
            raise ValueError(f"max_batch {max_batch} and workers {workers} must be >= 1, "
                             f"max_wait_ms {max_wait_ms} >= 0")
        self.fn, self.max_batch, self.max_wait = fn, max_batch, max_wait_ms / 1000
        self.batches = 0  # forward passes run, and the sizes of the latest ones: for tests and /health
        self.recent_sizes: deque[int] = deque(maxlen=256)
        self._queue: queue.Queue = queue.Queue()
        self._count = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, item: T) -> Future[R]:
        if not any(thread.is_alive() for thread in self._threads):
            raise RuntimeError("the batcher is stopped")
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    def pending(self) -> int:
        """Items submitted that the worker has not taken yet."""
        return self._queue.qsize()

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish what is queued, then stop the workers."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)

    def _gather(self, first) -> tuple[list, bool]:
        """The first item plus whatever arrives within max_wait, up to max_batch; and whether to stop."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if entry is _STOP:
                return batch, True
            batch.append(entry)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._gather(first)
            batch = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if not batch:
                continue
            with self._count:
                self.batches += 1
                self.recent_sizes.append(len(batch))
            try:
                results = self.fn([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
            except Exception as exc:  # the worker must outlive any bad batch
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results):
                fut.set_result(result)
