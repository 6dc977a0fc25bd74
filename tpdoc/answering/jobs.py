"""A request's pages on their way through the model, and the result they add up to.

In: a ``Request`` and, page by page, its ``PagePlan`` and cache key; the engine
(``tpdoc.answering.qa``) fills in views ``[V, 3, T, T]``, packed tokens ``[V, Q, D]``,
page answers and stage times. Out: the request's ``AnswerResult`` (the best page's
answer, token use, timings) or ``FailedRequest``; and the small helpers the engine uses
to batch pages (views per forward, a batched stage's time split by share of work).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tpdoc.answering.results import (
    AnswerResult,
    FailedRequest,
    PageAnswer,
    Request,
    TokenUse,
    best_page,
)
from tpdoc.answering.streaming import Stopwatch

if TYPE_CHECKING:
    import torch

    from tpdoc.answering.cache import CacheKey
    from tpdoc.answering.planning import PagePlan, TokenLimit
    from tpdoc.errors import TpdocError

PageCallback = Callable[[int, str], None]  # (page number, its answer so far)
# (phase, pages answered, pages to answer): phase "reading", or "ranking" for the overview
# pass of a long document (tpdoc.answering.shortlist); ``ask_many``'s callback gets the
# request first (RequestProgress)
ProgressCallback = Callable[[str, int, int], None]
RequestProgress = Callable[["Request", str, int, int], None]


@dataclass
class Job:
    """One page of one request on its way through the model."""

    state: RequestState
    index: int  # position among the request's pages
    plan: PagePlan
    key: CacheKey | None
    views: torch.Tensor | None = None  # [V, 3, T, T] before encoding
    packed: torch.Tensor | None = None  # [V, Q, D] after (or from the cache)
    cached: bool = False


@dataclass
class RequestState:
    """A request while its pages are in flight."""

    request: Request
    question: str = ""
    prompt: Any = None  # PromptIds
    limit: TokenLimit | None = None  # what each page is planned to fit
    on_text: PageCallback | None = None
    on_progress: RequestProgress | None = None
    phase: str = "reading"
    total: int | None = None  # pages selected, once the document is open
    queued: int = 0
    answers: dict[int, PageAnswer] = field(default_factory=dict)  # by position
    watch: Stopwatch = field(default_factory=Stopwatch)
    all_queued: bool = False
    error: TpdocError | None = None

    def answered(self, index: int, answer: PageAnswer) -> None:
        """Keep the answer of the request's ``index``-th page, and say so."""
        self.answers[index] = answer
        if self.on_progress is not None and self.total is not None:
            self.on_progress(self.request, self.phase, len(self.answers), self.total)

    @property
    def complete(self) -> bool:
        return self.error is not None or (self.all_queued and len(self.answers) == self.queued)


@dataclass(frozen=True)
class EncodedPage:
    """A page's plan and its packed tokens laid out for the LLM ``[P, D]``."""

    plan: PagePlan
    embeddings: torch.Tensor
    cached: bool


def outcome(
    state: RequestState, model: str, context_limit: int | None
) -> AnswerResult | FailedRequest:
    """The request's result once every page is answered, or its failure."""
    request = state.request
    if state.error is not None:
        return FailedRequest(
            request.file, request.question, request.id, str(state.error),
            state.error.exit_code, cause=state.error,
        )  # fmt: skip
    pages = tuple(state.answers[i] for i in range(state.queued))
    best = best_page(pages)
    plans = [p.plan for p in pages]
    down = any(p.planned_down for p in plans)
    text = len(state.prompt)
    return AnswerResult(
        file=request.file,
        question=state.question,
        answer=best.answer,
        page=best.page,
        confidence=best.confidence,
        pages=pages,
        tokens=TokenUse(
            visual=sum(p.visual_tokens for p in plans),
            visual_uncompressed=sum(p.visual_tokens_uncompressed for p in plans),
            text=text,
            context=max(p.visual_tokens for p in plans) + text + request.options.max_new_tokens,
            context_limit=context_limit,
        ),
        timings=dict(state.watch.seconds),
        model=model,
        id=request.id,
        budget=request.options.budget,
        all_pages=request.options.all_pages,
        # Which limit planned pages down; None when no page had to be.
        limited_by=state.limit.source if down and state.limit is not None else None,
    )


def take_views(jobs: list[Job], limit: int) -> list[Job]:
    """The leading jobs whose views fit one forward (at least one job)."""
    taken, views = [], 0
    for job in jobs:
        if taken and views + job.views.shape[0] > limit:
            break
        taken.append(job)
        views += job.views.shape[0]
    return taken


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds ``fn`` took, waiting for a GPU's queued kernels so that the time lands
    on the stage that launched them rather than on the next one that reads a result."""
    start = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter() - start, value


def share(jobs: list[Job], stage: str, seconds: float, weights: list[int]) -> None:
    """Split a batched stage's time between the jobs' requests by their share of work."""
    total = sum(weights) or 1
    for job, weight in zip(jobs, weights, strict=True):
        job.state.watch.add(stage, seconds * weight / total)
