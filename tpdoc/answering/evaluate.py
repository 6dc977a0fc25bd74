"""DocVQA-style evaluation: a dataset of questions with accepted answers -> ANLS and EM.

In: a dataset JSON in the DocVQA layout, ``{"data": [{"questionId", "question",
"image", "answers": [...]}, ...]}`` (an optional 1-based ``page`` per item; ``image``
may name a PDF), the folder the ``image`` paths are relative to, and a ``DocumentQA``.
Out: a ``QuestionScore`` per question (streamed as they are done), and an
``EvalSummary``: mean ANLS, exact match, how many were answered or failed. A question
whose document cannot be read scores 0 and is counted as failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.answering.anls import anls, exact_match
from tpdoc.answering.records import error_reason
from tpdoc.answering.results import (
    CONFIDENCE_DIGITS,
    AnswerResult,
    AskOptions,
    FailedRequest,
    Request,
    round_finite,
)
from tpdoc.errors import UsageError

if TYPE_CHECKING:
    from tpdoc.answering.qa import DocumentQA

SCORE_DIGITS = 4


@dataclass(frozen=True)
class EvalItem:
    question_id: Any
    question: str
    file: str  # the image path joined to the images folder
    answers: tuple[str, ...]
    page: int | None = None


@dataclass(frozen=True)
class QuestionScore:
    item: EvalItem
    prediction: str
    anls: float
    exact: bool
    page: int | None  # the page the answer came from
    confidence: float | None
    error: str | None = None
    pages_asked: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "questionId": self.item.question_id,
            "question": self.item.question,
            "file": self.item.file,
            "answers": list(self.item.answers),
            "prediction": self.prediction,
            "anls": round(self.anls, SCORE_DIGITS),
            "exact_match": self.exact,
            "page": self.page,
            "confidence": round_finite(self.confidence, CONFIDENCE_DIGITS),
            "error": self.error,
        }


@dataclass
class EvalSummary:
    dataset: str
    questions: int = 0
    failed: int = 0
    anls_total: float = 0.0
    exact_total: int = 0
    seconds: float = 0.0

    @property
    def anls(self) -> float:
        return self.anls_total / self.questions if self.questions else 0.0

    @property
    def exact_match(self) -> float:
        return self.exact_total / self.questions if self.questions else 0.0

    def add(self, score: QuestionScore) -> None:
        self.questions += 1
        self.failed += score.error is not None
        self.anls_total += score.anls
        self.exact_total += score.exact

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "questions": self.questions,
            "answered": self.questions - self.failed,
            "failed": self.failed,
            "anls": round(self.anls, SCORE_DIGITS),
            "exact_match": round(self.exact_match, SCORE_DIGITS),
            "seconds": round(self.seconds, 3),
        }


def load_dataset(path: str | Path, images: str | Path) -> list[EvalItem]:
    """The items of a DocVQA-layout JSON file; a malformed file or item is a
    ``UsageError`` naming the item's position."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the dataset: {error_reason(exc)}") from exc
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UsageError(f'{path}: expected a JSON object with a "data" list (DocVQA layout)')
    if not Path(images).is_dir():
        raise UsageError(f"--images {images}: not a folder")
    return [_item(entry, f"{path}: data[{i}]", Path(images)) for i, entry in enumerate(entries)]


def _item(entry: Any, where: str, images: Path) -> EvalItem:
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: expected an object")
    for name in ("question", "image"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise UsageError(f"{where}: {name!r} must be a non-empty string")
    answers = entry.get("answers")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise UsageError(f"{where}: 'answers' must be a non-empty list of strings")
    page = entry.get("page")
    if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
        raise UsageError(f"{where}: 'page' must be a page number from 1, got {page!r}")
    return EvalItem(
        question_id=entry.get("questionId"),
        question=entry["question"],
        file=str(images / entry["image"]),
        answers=tuple(answers),
        page=page,
    )


def score(item: EvalItem, outcome: AnswerResult | FailedRequest) -> QuestionScore:
    if isinstance(outcome, FailedRequest):
        return QuestionScore(item, "", 0.0, False, None, None, outcome.error)
    return QuestionScore(
        item,
        outcome.answer,
        anls(outcome.answer, item.answers),
        exact_match(outcome.answer, item.answers),
        outcome.page,
        outcome.confidence,
        pages_asked=len(outcome.pages),
    )


def evaluate(
    qa: DocumentQA,
    items: Sequence[EvalItem],
    options: AskOptions | None = None,
    *,
    on_score: Callable[[QuestionScore], None] | None = None,
    dataset: str = "",
) -> EvalSummary:
    """Ask every item (batched like ``tpdoc batch``) and score it."""
    import time

    start = time.perf_counter()
    options = options or AskOptions()
    summary = EvalSummary(dataset)
    requests = [
        Request(
            item.file,
            item.question,
            index,
            options if item.page is None else replace(options, pages=str(item.page)),
        )  # fmt: skip
        for index, item in enumerate(items)
    ]
    for outcome in qa.ask_many(requests):
        result = score(items[outcome.id], outcome)
        summary.add(result)
        if on_score is not None:
            on_score(result)
    summary.seconds = time.perf_counter() - start
    return summary
