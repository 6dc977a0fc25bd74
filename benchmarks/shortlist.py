"""Long documents: ranking pages by their overview first, against asking every page in full.

In: a model (default: the embedded one), the samples' multi-page report with its labelled
questions, and the Debian documentation PDFs found on this machine (17 and 36 pages)
with a few generic questions. Out: one table, a row per document and shortlist size K:
seconds to answer with every page read in full (``--shortlist 0``, the old default)
and with ranking (every page as one overview tile, the K best in full), their ratio,
how often both give the same answer, and for the labelled sample how often the page
holding the answer was among the K read. Caches are off so every question does the
whole work; both ways run in the same process, one after the other, question by question.

    python -m benchmarks.shortlist [--model DIR] [--shortlist 1 3] [--questions 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import DEBIAN_PDFS, SAMPLES, emit

GENERIC_QUESTIONS = (
    "What is the title of the document?",
    "What is the version number?",
    "Who is the author?",
    "What is the date?",
)


def labelled(file: str) -> list[tuple[str, int | None]]:
    rows = [json.loads(line) for line in (SAMPLES / "questions.jsonl").read_text().splitlines()]
    return [(r["question"], r.get("page")) for r in rows if r["file"] == file]


def documents(questions: int) -> list[tuple[Path, list[tuple[str, int | None]]]]:
    docs = [(SAMPLES / "report.pdf", labelled("report.pdf"))]
    for path in DEBIAN_PDFS:
        if path.is_file():
            docs.append((path, [(q, None) for q in GENERIC_QUESTIONS[:questions]]))
    return docs


def timed(qa, path: Path, question: str, shortlist: int):
    start = time.perf_counter()
    result = qa.ask(path, question, shortlist=shortlist)
    return time.perf_counter() - start, result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--shortlist", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--questions", type=int, default=2, help="per documentation PDF")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import pymupdf

    from tpdoc.answering.qa import DocumentQA

    qa = DocumentQA(args.model, cache=False)
    rows = []
    for path, questions in documents(args.questions):
        pages = pymupdf.open(path).page_count
        for k in args.shortlist:
            if pages <= k:
                continue
            full_s = ranked_s = 0.0
            same = hit = labelled_count = 0
            for question, page in questions:
                t_full, full = timed(qa, path, question, 0)
                t_ranked, ranked = timed(qa, path, question, k)
                full_s += t_full
                ranked_s += t_ranked
                same += ranked.answer == full.answer
                if page is not None:
                    labelled_count += 1
                    hit += page in ranked.shortlist.read
            n = len(questions)
            rows.append([
                f"{path.name} ({pages} p.)", k, n, round(full_s / n, 2), round(ranked_s / n, 2),
                round(full_s / ranked_s, 2), f"{same}/{n}",
                f"{hit}/{labelled_count}" if labelled_count else "-",
            ])  # fmt: skip
    emit(
        "Ranking pages by overview, then reading K in full",
        ["document", "K", "questions", "all pages s", "ranked s", "speed-up", "same answer",
         "answer page read"],
        rows,
        as_json=args.json,
        notes=[f"model: {qa.name}; caches off; seconds are means per question"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
