"""What asking a document produces: options in, answers and their costs out.

In: nothing (plain data). Out: ``AskOptions`` and ``Request`` (what to ask), ``PageAnswer``
(one page's answer and plan), ``AnswerResult`` (the chosen answer, every page, token use,
timings) and ``FailedRequest``, each with the stable JSON form ``tpdoc ask --json`` and
``tpdoc batch`` write.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tpdoc.answering.planning import PagePlan
from tpdoc.documents.tiling import GRID_CANDIDATES
from tpdoc.errors import UsageError
from tpdoc.model.prompts import IMAGE_PLACEHOLDER

DEFAULT_MAX_NEW_TOKENS = 32
SCALES = (2, 3, 4)
TIMING_DIGITS = 4
CONFIDENCE_DIGITS = 4
NOT_FOUND = "not found"  # the answer when the document does not say
# Documents with more pages than this are ranked by each page's overview first, and only
# this many of the best are read in full (tpdoc.answering.shortlist); 0 reads every page.
DEFAULT_SHORTLIST = 3


@dataclass(frozen=True)
class AskOptions:
    """How to read and ask a document; ``None`` means the model's default."""

    pages: str | None = None  # page spec, e.g. "1,3-5"
    dpi: float | None = None
    max_tiles: int | None = None
    scale: int | None = None
    budget: int | None = None  # most visual tokens per page
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    password: str | None = None
    all_pages: bool = False  # ask and report every page, not only the best
    shortlist: int = DEFAULT_SHORTLIST  # pages read in full after ranking; 0: every page

    def __post_init__(self) -> None:
        if self.max_tiles is not None and self.max_tiles not in GRID_CANDIDATES:
            raise UsageError(
                f"--max-tiles must be one of {', '.join(map(str, sorted(GRID_CANDIDATES)))}, "
                f"got {self.max_tiles}"
            )
        if self.scale is not None and self.scale not in SCALES:
            raise UsageError(
                f"--scale must be one of {', '.join(map(str, SCALES))}, got {self.scale}"
            )
        if self.budget is not None and self.budget < 1:
            raise UsageError(f"--budget must be a positive number of tokens, got {self.budget}")
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.shortlist < 0:
            raise UsageError(f"--shortlist must be 0 or more pages, got {self.shortlist}")
        if self.dpi is not None and not self.dpi > 0:
            raise UsageError(f"--dpi must be positive, got {self.dpi}")


@dataclass(frozen=True)
class Request:
    """One question about one document."""

    file: str
    question: str
    id: Any = None  # echoed in batch records
    options: AskOptions = field(default_factory=AskOptions)


def check_question(question: str) -> str:
    """The question without surrounding whitespace; an empty one, or one holding the
    prompt's page placeholder, is a usage error."""
    text = question.strip()
    if not text:
        raise UsageError("the question is empty")
    if IMAGE_PLACEHOLDER in text:
        raise UsageError(
            f"the question contains {IMAGE_PLACEHOLDER}, which marks where the page goes in "
            f"the prompt; ask without it"
        )
    return text


@dataclass(frozen=True)
class PageAnswer:
    """One page's answer and how the page was planned."""

    page: int
    answer: str
    confidence: float  # mean log-probability of the generated tokens, EOS included
    plan: PagePlan
    cached: bool  # packed tokens came from the visual-token cache
    # Where a pointer model read the answer: x0, y0, x1, y1 as fractions of the page's
    # width and height; None for generated answers and "not found".
    box: tuple[float, float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "page": self.page,
            "answer": self.answer,
            "confidence": round_finite(self.confidence, CONFIDENCE_DIGITS),
            "box": list(self.box) if self.box is not None else None,
            "grid": [p.plan.rows, p.plan.cols],
            "tiles": p.plan.num_views,
            "max_tiles": p.max_tiles,
            "scale": p.scale,
            "visual_tokens": p.visual_tokens,
            "visual_tokens_uncompressed": p.visual_tokens_uncompressed,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class TokenUse:
    """Token counts of a question: visual summed over the asked pages; ``context`` is the
    longest single input (one page + the prompt + the answer's room)."""

    visual: int
    visual_uncompressed: int
    text: int  # prompt text tokens (the template and the question)
    context: int
    context_limit: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "visual": self.visual,
            "visual_uncompressed": self.visual_uncompressed,
            "text": self.text,
            "context": self.context,
            "context_limit": self.context_limit,
        }


@dataclass(frozen=True)
class Shortlist:
    """How a long document was read: every page ranked by its overview, a few in full."""

    ranked: int  # pages asked as one overview tile each
    read: tuple[int, ...]  # the pages then read at full resolution
    overview_tokens: int  # visual tokens the ranking pass took (in TokenUse too)

    def to_json(self) -> dict[str, Any]:
        return {
            "ranked": self.ranked,
            "read": list(self.read),
            "overview_tokens": self.overview_tokens,
        }


@dataclass(frozen=True)
class AnswerResult:
    """The answer to one question: the most confident page's, with every page's too."""

    file: str
    question: str
    answer: str
    page: int
    confidence: float
    pages: tuple[PageAnswer, ...]  # every asked page, in the order asked
    tokens: TokenUse
    timings: dict[str, float]  # seconds per stage
    model: str
    id: Any = None
    budget: int | None = None
    all_pages: bool = False
    # The limit the pages were planned to fit: "budget" (--budget), "context" (what the
    # model's context leaves after the prompt and the answer), or None (nothing limits).
    limited_by: str | None = None
    shortlist: Shortlist | None = None  # set when a long document was ranked first

    @property
    def best(self) -> PageAnswer:
        return next(p for p in self.pages if p.page == self.page)

    def to_json(self) -> dict[str, Any]:
        best = self.best.plan
        return {
            "file": self.file,
            "question": self.question,
            "answer": self.answer,
            "page": self.page,
            "confidence": round_finite(self.confidence, CONFIDENCE_DIGITS),
            "box": list(self.best.box) if self.best.box is not None else None,
            "pages": [p.to_json() for p in self.pages] if self.all_pages else None,
            "tokens": self.tokens.to_json(),
            "timings": {k: round(v, TIMING_DIGITS) for k, v in self.timings.items()},
            "model": self.model,
            "max_tiles": best.max_tiles,
            "scale": best.scale,
            "budget": self.budget,
            "limited_by": self.limited_by,
            "shortlist": self.shortlist.to_json() if self.shortlist is not None else None,
        }


@dataclass(frozen=True)
class FailedRequest:
    """A question that could not be answered, and why (one line)."""

    file: str
    question: str
    id: Any
    error: str
    exit_code: int = 1
    cause: Exception | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "question": self.question, "id": self.id, "error": self.error}


def ranked_pages(pages: Sequence[PageAnswer]) -> list[PageAnswer]:
    """Pages best first: those that found an answer before those that say "not found",
    then by confidence; ties keep the order asked (the sort is stable)."""
    return sorted(pages, key=lambda p: (p.answer != NOT_FOUND, p.confidence), reverse=True)


def best_page(pages: tuple[PageAnswer, ...]) -> PageAnswer:
    """The most confident page that found an answer (a page that says "not found" only
    wins when every page does); ties go to the earlier page asked."""
    return ranked_pages(pages)[0]


def round_finite(value: float | None, digits: int) -> float | None:
    """``value`` rounded for JSON, which has no infinities or NaN: those (an answer
    without tokens has no confidence) and ``None`` become ``None``."""
    return round(value, digits) if value is not None and math.isfinite(value) else None
