"""The samples recipe: seeded sample documents whose questions are answered by text
printed on them, written into a folder.

In: an output folder and a seed. Out: ``report.pdf`` (a 3-page A4 business report with
headings, paragraphs, an order table and a key-value block), ``receipt.png`` (a narrow
till receipt drawn as a vector page, then rasterised, slightly rotated and noised like a
scan), ``questions.jsonl`` (one question per line with its answers exactly as printed
and the 1-based page they are on) and a ``README.md`` saying how to regenerate them.

The content comes from ``sample_content``, is drawn by ``sample_layouts`` with the
training generator's ``Pen`` and fonts, and the receipt gets its look from
``render.scan``. Everything follows from the seed: the same seed gives byte-identical
files. Only pymupdf (built-in Base-14 fonts, so nothing is embedded) and Pillow draw;
nothing is written outside the folder given.

Command line: ``python -m tpdoc.synth.samples OUT_DIR [--seed N]``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tpdoc.errors import TpdocError, UsageError
from tpdoc.io import atomic_write_bytes, atomic_write_text
from tpdoc.synth.render import scan
from tpdoc.synth.sample_content import (
    COMMAND,
    QA,
    RECEIPT_FILE,
    REPORT_FILE,
    build_receipt,
    build_report,
    report_questions,
)
from tpdoc.synth.sample_layouts import RECEIPT_SCAN, draw_report, receipt_pdf

QUESTIONS_FILE = "questions.jsonl"
README_FILE = "README.md"


def make_report_pdf(path: str | Path, seed: int) -> list[QA]:
    """Write the seeded 3-page report to ``path`` (a ``.pdf``); return its questions."""
    target = _target(path, ".pdf")
    report = build_report(seed)
    atomic_write_bytes(target, draw_report(report))
    return report_questions(report, target.name)


def make_receipt_image(path: str | Path, seed: int) -> list[QA]:
    """Write the seeded receipt as a greyscale PNG to ``path`` (a ``.png``)."""
    import pymupdf

    target = _target(path, ".png")
    receipt = build_receipt(seed, target.name)
    with pymupdf.open(stream=receipt_pdf(receipt), filetype="pdf") as doc:
        image = scan(doc[0], RECEIPT_SCAN, random.Random(f"scan:{seed}"))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True, dpi=(RECEIPT_SCAN.dpi,) * 2)
    atomic_write_bytes(target, buffer.getvalue())
    return list(receipt.qas)


def write_samples(out_dir: str | Path, seed: int = 0) -> Path:
    """Write report.pdf, receipt.png, questions.jsonl and README.md into ``out_dir``
    (created if missing) and nowhere else; return the folder."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder; give a folder for the samples")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{folder}: cannot create the folder: {exc.strerror or exc}") from exc
    qas = make_report_pdf(folder / REPORT_FILE, seed) + make_receipt_image(
        folder / RECEIPT_FILE, seed
    )
    records: list[str] = []
    per_file: Counter[str] = Counter()
    for qa in qas:
        per_file[qa.file] += 1
        record = {
            "id": f"{Path(qa.file).stem}-{per_file[qa.file]:02d}",
            "file": qa.file,
            "question": qa.question,
            "answers": [qa.answer],
            "page": qa.page,
        }
        records.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(folder / QUESTIONS_FILE, "\n".join(records) + "\n")
    atomic_write_text(folder / README_FILE, _readme(seed, len(qas)))
    return folder


def _readme(seed: int, questions: int) -> str:
    return f"""# Sample documents

Made by `tpdoc/synth/samples.py` with seed {seed}; regenerate them from the repository root
with (byte for byte given the same pymupdf and Pillow versions):

```bash
{COMMAND} samples --seed {seed}
```

- `{REPORT_FILE}`: a 3-page A4 business report (title, letterhead, key-value block,
  paragraphs, an order table) in pymupdf's built-in Helvetica, Times and Courier.
- `{RECEIPT_FILE}`: a narrow till receipt, drawn as a PDF page, rasterised at
  {RECEIPT_SCAN.dpi} dpi in grey, then slightly tilted, grained and blurred like a scan.
- `{QUESTIONS_FILE}`: {questions} questions, one JSON object per line
  (`id`, `file`, `question`, `answers`, `page`); every answer is printed verbatim on
  the 1-based `page` of `file` (checked by `tests/test_samples.py`).

All names, numbers and companies are invented.
"""


def _target(path: str | Path, suffix: str) -> Path:
    target = Path(path)
    if target.suffix.lower() != suffix:
        raise UsageError(f"{target}: expected a file name ending in {suffix}")
    if target.is_dir():
        raise UsageError(f"{target}: is a folder; give a file name ending in {suffix}")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Write seeded sample documents and questions into a folder."
    )
    parser.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    try:
        folder = write_samples(args.out_dir, args.seed)
    except TpdocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
