"""One thread for the model; the requests waiting when it is free are answered together.

In: ``Request``s from any thread (the server's request handlers), each with a callback
for when it is done. Out: a ``concurrent.futures.Future`` per request, resolved with its
``AnswerResult`` or ``FailedRequest`` (a document or option the library refused), or
with the exception of a failure nobody expected.

The model is not thread-safe (nor is PyMuPDF), so every document is opened and every
tensor computed on this one thread. Each time it is free it takes every request that is
waiting (up to ``max_batch``) into one ``DocumentQA.ask_many`` call, whose pages share
the vision tower's and the language model's batches; answers are handed back in order as
soon as each is complete. A request whose future was cancelled before its turn (its
client went away) is skipped. At most ``max_pending`` requests wait; more are refused
(``Busy``). Should the thread itself stop (an exception that is not an ``Exception``,
such as ``SystemExit``), every request it held or that waits fails with
``ModelStopped`` and no new one is taken.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tpdoc.errors import UsageError
from tpdoc.serve import MAX_BATCH_CUDA, MAX_BATCH_OTHER, MAX_PENDING

if TYPE_CHECKING:
    from tpdoc.answering.qa import DocumentQA
    from tpdoc.answering.results import AnswerResult, FailedRequest, Request

    Outcome = AnswerResult | FailedRequest

log = logging.getLogger("tpdoc.serve")


class Unavailable(RuntimeError):
    """The batcher cannot answer a request now; ``code`` is OpenAI's error code for why."""

    code = "unavailable"


class ShuttingDown(Unavailable):
    """The batcher is closed: no new requests."""

    code = "shutting_down"


class Busy(Unavailable):
    """``max_pending`` requests are waiting already."""

    code = "server_busy"


class ModelStopped(Unavailable):
    """The model thread has stopped; the requests it held fail with this."""

    code = "model_stopped"


def default_max_batch(qa: DocumentQA) -> int:
    """Requests per ``ask_many`` call for ``qa``'s device: batching pays on a GPU only."""
    return MAX_BATCH_CUDA if qa.model.device.type == "cuda" else MAX_BATCH_OTHER


@dataclass
class _Item:
    request: Request
    future: Future
    done: Callable[[], None] | None  # called once the request is finished or dropped

    def finish(self) -> None:
        """Run ``done`` once; a failure there is logged, never the model thread's end."""
        done, self.done = self.done, None
        if done is None:
            return
        try:
            done()
        except Exception:
            log.exception("cleaning up after a request failed")


class Batcher:
    """Runs every request through one ``DocumentQA`` on one thread, batching those that
    wait together."""

    def __init__(
        self, qa: DocumentQA, *, max_batch: int = MAX_BATCH_CUDA, max_pending: int = MAX_PENDING
    ) -> None:
        for name, value in (("max_batch", max_batch), ("max_pending", max_pending)):
            if value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        self.qa = qa
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.batch_sizes: list[int] = []  # requests per ask_many call, for tests and stats
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed: Unavailable | None = None  # why no request is taken any more
        self._claimed: list[_Item] = []  # taken by the model thread, not yet all answered
        self._thread = threading.Thread(target=self._loop, name="tpdoc-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the model thread runs (it stops after ``close`` or on a fatal error)."""
        return self._thread.is_alive()

    @property
    def waiting(self) -> int:
        """Requests submitted and not yet taken by the model thread (those whose clients
        left included, until the thread drops them)."""
        return self._queue.qsize()

    def check(self) -> None:
        """Raise the ``Unavailable`` that ``submit`` would raise now, if any."""
        if self._closed is not None:
            raise type(self._closed)(str(self._closed))
        if self.waiting >= self.max_pending:
            raise Busy(
                f"{self.waiting} requests are waiting for the model already (tpdoc serve "
                f"--max-pending {self.max_pending}); try again shortly"
            )

    def submit(self, request: Request, done: Callable[[], None] | None = None) -> Future:
        """Queue ``request``; ``done()`` runs on the model thread once it is answered (or
        skipped), before its future resolves: the request's document is removed then.
        ``Unavailable`` if it cannot be queued (then ``done`` is not called)."""
        item = _Item(request, Future(), done)
        with self._lock:
            self.check()
            self._queue.put(item)
        return item.future

    def close(self) -> None:
        """Answer every request submitted so far, then stop the model thread."""
        with self._lock:
            if self._closed is not None:
                return
            self._closed = ShuttingDown("the server is shutting down")
            self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()
        else:  # never started: drop what was queued
            for item in self._drain():
                item.future.cancel()
                item.finish()

    def _drain(self) -> list[_Item]:
        items = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not None:
                items.append(item)

    # ------------------------------------------------------------ the model thread

    def _loop(self) -> None:
        try:
            while True:
                items, last = self._take()
                if items:
                    self._answer(items)
                if last:
                    return
        except BaseException as exc:  # SystemExit, ...: nothing is answered any more
            self._stop(exc)

    def _take(self) -> tuple[list[_Item], bool]:
        """The requests waiting now (blocking for the first), and whether the queue has
        ended."""
        first = self._queue.get()
        if first is None:
            return [], True
        items = [first]
        while len(items) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
        return items, False

    def _answer(self, items: list[_Item]) -> None:
        live = []
        for item in items:
            if item.future.set_running_or_notify_cancel():
                live.append(item)
            else:  # cancelled: its client is gone
                item.finish()
        self._claimed = live
        if live:
            self._run(live)
        self._claimed = []

    def _run(self, items: list[_Item]) -> None:
        self.batch_sizes.append(len(items))
        pending = list(items)
        try:
            outcomes = self.qa.ask_many([item.request for item in items])
            for item, outcome in zip(items, outcomes, strict=True):
                pending.remove(item)
                item.finish()  # before the answer goes out: its document is gone by then
                item.future.set_result(outcome)
        except Exception as exc:
            if len(items) > 1:
                # Something unexpected broke the batch: answer the rest one by one, so
                # only the request that causes it fails.
                log.warning("a batch of %d requests failed (%r); retrying one by one",
                            len(items), exc)  # fmt: skip
                for item in pending:
                    self._run([item])
                return
            for item in pending:
                item.finish()
                item.future.set_exception(exc)

    def _stop(self, exc: BaseException) -> None:
        """The model thread is ending on ``exc``: fail what it held and what waits."""
        log.error("the model thread stopped", exc_info=exc)
        error = ModelStopped(f"the model thread stopped ({exc!r}); restart tpdoc serve")
        with self._lock:
            self._closed = error
            stranded = [*self._claimed, *self._drain()]
        for item in stranded:
            item.finish()
            if not item.future.done():
                item.future.set_exception(error)
