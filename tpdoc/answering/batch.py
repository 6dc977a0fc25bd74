"""Batch runs: many (document, question) pairs, one JSON record each, resumable.

In: paths (files, folders searched recursively, or ``-`` for a newline-separated list on
stdin) with one or more questions, or a questions JSONL file (``file``, ``question``,
optional ``id`` and ``pages`` per line); a ``DocumentQA``. Out: one record per pair, the
``ask --json`` object plus ``id``, or ``{"file", "question", "id", "error"}`` for a pair
that failed; records go to a ``RecordWriter`` (``--out``) and/or a callback as soon as
they are done, and a ``BatchSummary``.

``--resume`` skips the pairs whose records are already in the output file: a pair is
its ``(file, question, id)``.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tpdoc.answering.records import RecordWriter, error_reason, read_records
from tpdoc.answering.results import AnswerResult, AskOptions, FailedRequest, Request, check_question
from tpdoc.documents.pages import IMAGE_SUFFIXES
from tpdoc.errors import UsageError

if TYPE_CHECKING:
    from tpdoc.answering.jobs import RequestProgress
    from tpdoc.answering.qa import DocumentQA

STDIN = "-"  # a path argument that means "read the paths (or the question) from stdin"
DOCUMENT_SUFFIXES = frozenset({".pdf", *IMAGE_SUFFIXES})
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # s3://bucket/key, file:///path, ...


@dataclass
class BatchSummary:
    answered: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output (--resume)
    pages: int = 0
    visual_tokens: int = 0
    visual_tokens_uncompressed: int = 0
    seconds: float = 0.0

    @property
    def tokens_saved(self) -> int:
        """Visual tokens TokenPacker saved over the uncompressed projector."""
        return self.visual_tokens_uncompressed - self.visual_tokens

    @property
    def exit_code(self) -> int:
        """0 when every pair was answered, 1 when some failed."""
        return 1 if self.failed else 0

    def add(self, outcome: AnswerResult | FailedRequest) -> None:
        self.add_record(record(outcome), len(getattr(outcome, "pages", ())))

    def add_record(self, line: dict[str, Any], pages: int) -> None:
        """Count one pair from its record (``record``'s JSON line) and its pages read."""
        if "error" in line:
            self.failed += 1
            return
        self.answered += 1
        self.pages += pages
        self.visual_tokens += line["tokens"]["visual"]
        self.visual_tokens_uncompressed += line["tokens"]["visual_uncompressed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "answered": self.answered,
            "failed": self.failed,
            "skipped": self.skipped,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
            "visual_tokens": self.visual_tokens,
            "visual_tokens_uncompressed": self.visual_tokens_uncompressed,
            "tokens_saved": self.tokens_saved,
        }


@dataclass(frozen=True)
class ModelSpec:
    """The model a batch loads (``--model``) and how it runs: what ``tpdoc batch`` hands
    ``DocumentQA``, in this process or in each Ray actor (``tpdoc.answering.distributed``)."""

    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    cache: bool = True  # the visual-token cache (of the machine that answers)
    batch_size: int | None = None  # pages per pass and sequences per batch (--batch-size)
    max_tiles: int | None = None

    def load(self) -> DocumentQA:
        from tpdoc.answering.qa import DocumentQA

        return DocumentQA(
            self.model, device=self.device, dtype=self.dtype, cache=self.cache,
            pages_per_step=self.batch_size, sequences_per_batch=self.batch_size,
            max_tiles=self.max_tiles,
        )  # fmt: skip


def record(outcome: AnswerResult | FailedRequest) -> dict[str, Any]:
    """The JSON line of one pair."""
    if isinstance(outcome, FailedRequest):
        return outcome.to_json()
    return {**outcome.to_json(), "id": outcome.id}


def pair_key(file: str, question: str, id: Any) -> str:
    return json.dumps([file, question, id], ensure_ascii=False)


def is_uri(path: str) -> bool:
    """Whether ``path`` is a URI (``s3://bucket/key``), which only ``--engine ray`` reads."""
    return _URI.match(path) is not None


# ------------------------------------------------------------------------------ inputs


def expand_paths(
    paths: Sequence[str], *, glob: str | None = None, stdin: IO[str] | None = None
) -> list[str]:
    """Files as given; folders searched recursively for ``glob`` (default: PDFs and the
    image types tpdoc reads), sorted; ``-`` replaced by the paths listed on ``stdin``.

    A listed path that does not exist is kept: it becomes a failed record, not an abort.
    """
    found: list[str] = []
    for raw in paths:
        if raw == STDIN:
            if stdin is None:
                raise UsageError("'-' reads paths from stdin, but there is no stdin")
            listed = [line.strip() for line in stdin]
            found += expand_paths([p for p in listed if p and p != STDIN], glob=glob)
            continue
        path = Path(raw)
        if path.is_dir():
            found += [
                str(p) for p in sorted(path.rglob("*")) if p.is_file() and wanted_file(p, glob)
            ]
        else:
            found.append(raw)
    return found


def wanted_file(path: Path, glob: str | None) -> bool:
    """Whether a file found in a folder is taken: ``glob`` matches its name, or without
    ``glob`` it has a document suffix."""
    if glob is None:
        return path.suffix.lower() in DOCUMENT_SUFFIXES
    return fnmatch.fnmatch(path.name, glob)


def requests_for(
    files: Iterable[str], questions: Sequence[str], options: AskOptions
) -> list[Request]:
    """Every file with every question, file by file."""
    checked = [check_question(q) for q in questions]
    return [Request(file, q, options=options) for file in files for q in checked]


def read_questions(path: str | Path, options: AskOptions) -> list[Request]:
    """Requests from a questions JSONL file; relative ``file``s are relative to its folder.

    A malformed line is a ``UsageError`` naming the file and the line number; fields
    other than ``file``, ``question``, ``id`` and ``pages`` (answers, notes) are ignored.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--questions {path}: cannot read: {error_reason(exc)}") from exc
    requests = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"--questions {path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON ({exc.msg})") from exc
        requests.append(_question_request(item, where, path.parent, options))
    if not requests:
        raise UsageError(f"--questions {path}: no questions in the file")
    return requests


def _question_request(item: Any, where: str, base: Path, options: AskOptions) -> Request:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(item).__name__}")
    for name in ("file", "question"):
        if not isinstance(item.get(name), str) or not item[name].strip():
            raise UsageError(f"{where}: {name!r} must be a non-empty string")
    pages = item.get("pages")
    if isinstance(pages, int) and not isinstance(pages, bool):
        pages = str(pages)
    if pages is not None and not isinstance(pages, str):
        raise UsageError(f"{where}: 'pages' must be a page spec like \"1,3-5\", got {pages!r}")
    file = item["file"]
    if not Path(file).is_absolute() and not is_uri(file):
        file = str(base / file)
    request_options = options if pages is None else replace(options, pages=pages)
    return Request(file, item["question"].strip(), item.get("id"), request_options)


def done_pairs(path: str | Path) -> set[str]:
    """Keys of the pairs whose records are already in ``path``."""
    return {
        pair_key(r.get("file"), r.get("question"), r.get("id"))
        for r in read_records(path)
        if "file" in r and "question" in r
    }


# -------------------------------------------------------------------------------- run


def run_batch(
    qa: DocumentQA | None,
    requests: Sequence[Request],
    *,
    writer: RecordWriter | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    on_record: Callable[[dict[str, Any], AnswerResult | FailedRequest], None] | None = None,
    on_progress: RequestProgress | None = None,
) -> BatchSummary:
    """Answer every request not in ``skip``; each record is written as soon as it is done,
    and ``on_progress(request, phase, done, total)`` hears of every page answered.

    ``qa`` may be ``None`` when every request is skipped (no model is needed then). A
    record ``writer`` cannot write stops the run (``RecordWriteError``).
    """
    summary = BatchSummary()
    todo = [r for r in requests if pair_key(r.file, r.question, r.id) not in skip]
    summary.skipped = len(requests) - len(todo)
    start = time.perf_counter()
    try:
        for outcome in qa.ask_many(todo, on_progress=on_progress) if todo else ():
            line = record(outcome)
            if writer is not None:
                writer.write(line)
            summary.add(outcome)
            if on_record is not None:
                on_record(line, outcome)
    finally:
        summary.seconds = time.perf_counter() - start
    return summary
