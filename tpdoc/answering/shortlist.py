"""Long documents cheaply: rank every page by its overview, then read the best few in full.

In: requests and the engine's way of answering them (``DocumentQA._run``). Out: what
``DocumentQA.ask_many`` gives, except that a request whose document has more pages than
``AskOptions.shortlist`` (and that names no ``pages`` and does not ask for
``all_pages``) is answered in two passes:

1. every page is asked as one tile holding the whole page (the cheapest rung of the
   planning ladder, ``tpdoc.answering.planning``: about a tenth of a full page's visual
   tokens), and the pages are ranked as answers are (found before "not found", then by
   confidence);
2. the ``shortlist`` best pages are asked at full resolution; the answer is theirs.

The result counts the tokens and seconds of both passes and says which pages were read
(``AnswerResult.shortlist``). Requests that are not shortlisted go through the engine
together, in order, so batching across requests is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import groupby
from typing import TYPE_CHECKING

from tpdoc.answering.jobs import PageCallback, RequestProgress
from tpdoc.answering.planning import overview_tokens
from tpdoc.answering.results import (
    AnswerResult,
    FailedRequest,
    Request,
    Shortlist,
    TokenUse,
    ranked_pages,
)
from tpdoc.errors import TpdocError

if TYPE_CHECKING:
    from tpdoc.answering.results import AskOptions
    from tpdoc.model.config import Geometry

Outcome = AnswerResult | FailedRequest
Run = Callable[..., Iterator[Outcome]]  # DocumentQA._run(requests, on_text=..., ...)
GeometryOf = Callable[["AskOptions"], "Geometry"]  # DocumentQA.geometry


def page_count(request: Request) -> int | None:
    """Pages in the request's document, or None when it cannot be opened (the engine then
    reports why, as for any request)."""
    from tpdoc.documents.pages import open_document

    options = request.options
    try:
        with open_document(request.file, password=options.password, dpi=options.dpi) as doc:
            return doc.page_count
    except TpdocError:
        return None


def is_shortlisted(request: Request) -> bool:
    options = request.options
    if not options.shortlist or options.all_pages or options.pages is not None:
        return False
    count = page_count(request)
    return count is not None and count > options.shortlist


def answer_shortlisted(
    requests: Iterable[Request],
    run: Run,
    geometry: GeometryOf,
    on_text: PageCallback | None = None,
    on_progress: RequestProgress | None = None,
) -> Iterator[Outcome]:
    """``run``'s outcomes for ``requests``, shortlisting the long documents; ``geometry``
    is the model's geometry for a request's options."""
    for shortlisted, group in groupby(requests, key=is_shortlisted):
        if not shortlisted:
            yield from run(group, on_text=on_text, on_progress=on_progress)
            continue
        for request in group:
            yield two_passes(request, run, geometry, on_text, on_progress)


def two_passes(
    request: Request,
    run: Run,
    geometry: GeometryOf,
    on_text: PageCallback | None = None,
    on_progress: RequestProgress | None = None,
) -> Outcome:
    options = request.options
    cheap = overview_tokens(geometry(options))
    if options.budget is not None:
        cheap = min(cheap, options.budget)
    overview = replace(request, options=replace(options, budget=cheap, all_pages=True))
    # Progress is the asked request's, whichever pass it is in.
    progress = None if on_progress is None else (lambda _r, *event: on_progress(request, *event))
    (first,) = run([overview], on_progress=progress, phase="ranking")
    if isinstance(first, FailedRequest):
        return first
    order = ranked_pages(first.pages)
    best = sorted(p.page for p in order[: options.shortlist])
    full = replace(request, options=replace(options, pages=",".join(map(str, best))))
    (second,) = run([full], on_text=on_text, on_progress=progress)
    if isinstance(second, FailedRequest):
        return second
    return combined(first, second)


def combined(first: AnswerResult, second: AnswerResult) -> AnswerResult:
    """The full-resolution answer, with the overview pass's tokens and seconds added."""
    timings = dict(second.timings)
    for stage, seconds in first.timings.items():
        timings[stage] = timings.get(stage, 0.0) + seconds
    tokens = TokenUse(
        visual=first.tokens.visual + second.tokens.visual,
        visual_uncompressed=first.tokens.visual_uncompressed + second.tokens.visual_uncompressed,
        text=second.tokens.text,
        context=max(first.tokens.context, second.tokens.context),
        context_limit=second.tokens.context_limit,
    )
    shortlist = Shortlist(
        ranked=len(first.pages),
        read=tuple(p.page for p in second.pages),
        overview_tokens=first.tokens.visual,
    )
    return replace(second, tokens=tokens, timings=timings, shortlist=shortlist)
