"""Micro-batching: concurrent requests to one model share a forward pass.

One worker thread per model takes the oldest waiting request plus whatever else is already
queued (it never waits for more, so a lone request pays no extra latency), concatenates their
review lists, calls ``predict_fn`` once and hands each caller its slice. If the merged call
fails, each request is retried alone so one bad request cannot fail its neighbours.

No caller waits unboundedly: ``submit`` on a closed batcher fails at once with
:class:`BatcherClosed` (the model was unloaded after a promote or rollback: the caller retries on
the endpoint's current fleet), requests still queued when it closes get the same error, and every
wait ends after ``timeout`` seconds with :class:`TimeoutError`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

MAX_BATCH_ITEMS = 64
# SageMaker gives a container 60 s to answer an invocation; so does the local endpoint.
INVOCATION_TIMEOUT_SECONDS = 60.0


class BatcherClosed(RuntimeError):
    """The model behind this batcher was unloaded; the request never ran."""


class MicroBatcher:
    def __init__(
        self,
        infer: Callable[[list], list],
        max_items: int = MAX_BATCH_ITEMS,
        timeout: float = INVOCATION_TIMEOUT_SECONDS,
    ):
        self._infer = infer
        self._max_items = max_items
        self._timeout = timeout
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, items: list) -> list:
        """The predictions for ``items``; BatcherClosed or TimeoutError instead of waiting long."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed("the model was unloaded (the endpoint's fleet changed)")
            self._queue.put((items, future))
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"the model did not answer within {self._timeout:g} s (invocation timeout)"
            ) from None

    def close(self) -> None:
        """Refuse new requests (BatcherClosed at once); those already queued still run."""
        with self._lock:
            self._closed = True
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._fail_queued()
                return
            batch, size = [first], len(first[0])
            while size < self._max_items:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                size += len(nxt[0])
            self._run_batch(batch)

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].set_exception(BatcherClosed("the model was unloaded before it ran"))

    def _run_batch(self, batch: list) -> None:
        if len(batch) > 1:
            merged = [item for items, _ in batch for item in items]
            try:
                result = self._infer(merged)
            except Exception:
                result = None
            if isinstance(result, list) and len(result) == len(merged):
                start = 0
                for items, future in batch:
                    future.set_result(result[start : start + len(items)])
                    start += len(items)
                return
        for items, future in batch:
            try:
                future.set_result(self._infer(items))
            except Exception as err:
                future.set_exception(err)
