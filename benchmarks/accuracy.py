"""The embedded model's accuracy on documents it never trained on, and on the samples.

In: a model (default: the embedded one; ``--model DIR`` for any tpdoc model folder) and
``--docs`` held-out synthetic documents (fonts and a field layout training never uses,
seeded), saved as PDFs and asked through the whole pipeline exactly as ``tpdoc ask``
does (every page; the most confident page answers). Out: exact match (case- and
space-insensitive) and ANLS overall, per field and per document kind; the transcription
character error rates on held-out tiles and lines; and the same for the samples
(``samples/questions.jsonl``).

    python -m benchmarks.accuracy [--model DIR] [--docs 100] [--tiles 40] [--json]

``--tiles`` held-out tiles and as many single lines (shown alone) are transcribed for the
character error rates: a generating model is asked to read them, a pointer model's
read-out is taken as it is (every printed slot in reading order). Every ``SCAN_EVERY``-th
document is asked as a scan instead: its first page rendered, damaged like a scan
(rotation, blur, noise, JPEG) and saved as a JPEG image.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import SAMPLES, emit
from tpdoc.answering.anls import anls, cer, exact_match
from tpdoc.answering.cache import VisualTokenCache
from tpdoc.answering.qa import DocumentQA
from tpdoc.answering.results import AskOptions, FailedRequest, Request

SEED = 0
QUESTIONS_PER_PAGE = 4
SCAN_EVERY = 3
SCAN_DPI = 150


def held_out_questions(folder: Path, docs: int, seed: int = SEED) -> list[dict]:
    """Questions about ``docs`` held-out documents saved in ``folder``."""
    from tpdoc.synth.layouts import make_document
    from tpdoc.synth.questions import questions_for

    rng = random.Random(f"accuracy/{seed}")
    items = []
    for i in range(docs):
        synth = make_document(rng, split="eval")
        scan = i % SCAN_EVERY == SCAN_EVERY - 1
        path = folder / f"{synth.kind}-{i:03d}.{'jpg' if scan else 'pdf'}"
        for page in range(1, 2 if scan else synth.doc.page_count + 1):
            for question, answer, key in questions_for(synth, page, rng, QUESTIONS_PER_PAGE):
                field = "absent" if answer == "not found" else key.partition(":")[0]
                items.append({"file": str(path), "question": question, "answers": [answer],
                              "field": field, "kind": synth.kind + " (scan)" * scan,
                              "lang": synth.lang})  # fmt: skip
        if scan:
            save_scan(synth.doc[0], path, rng)
        else:
            synth.doc.save(str(path))
        synth.doc.close()
    return items


def save_scan(page, path: Path, rng: random.Random) -> None:
    """The page rendered at ``SCAN_DPI`` and damaged like a scan, as a JPEG."""
    from tpdoc.documents.pdf import rasterise_pdf_page
    from tpdoc.synth.render import degrade

    scale = SCAN_DPI / 72
    size = (round(page.rect.width * scale), round(page.rect.height * scale))
    image, _ = degrade(rasterise_pdf_page(page, size), rng, [])
    image.save(path, format="JPEG", quality=rng.randint(50, 85))


def sample_questions() -> list[dict]:
    items = []
    for line in (SAMPLES / "questions.jsonl").read_text().splitlines():
        item = json.loads(line)
        items.append({**item, "file": str(SAMPLES / item["file"]), "field": "sample",
                      "kind": "sample"})  # fmt: skip
    return items


def ask_all(qa: DocumentQA, items: list[dict]) -> list[dict]:
    requests = [Request(item["file"], item["question"], id=i, options=AskOptions())
                for i, item in enumerate(items)]  # fmt: skip
    scored = []
    for outcome in qa.ask_many(requests):
        item = items[outcome.id]
        answer = "" if isinstance(outcome, FailedRequest) else outcome.answer
        scored.append({**item, "prediction": answer,
                       "em": exact_match(answer, item["answers"]),
                       "anls": anls(answer, item["answers"])})  # fmt: skip
    return scored


def group_rows(scored: list[dict], by: str) -> list[list]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in scored:
        groups[s[by]].append(s)
    rows = []
    for name in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        g = groups[name]
        rows.append([f"{by}: {name}", len(g), round(sum(s["em"] for s in g) / len(g), 3),
                     round(sum(s["anls"] for s in g) / len(g), 3)])  # fmt: skip
    return rows


def read_out(model, view) -> str:
    """A pointer model's read-out of one view: every printed slot, lines in reading order
    joined by spaces."""
    import torch

    from tpdoc.model.readout import span_text

    grid = model.config.slot_grid
    with torch.no_grad():
        classes = model.pointer.read(model.encode(view)).argmax(-1)[0]  # [Q, S]
    slots = grid.to_grid(classes)  # [R, C]
    return span_text(slots, (0, 0), (slots.shape[0] - 1, slots.shape[1] - 1), grid).text


def read_cer(model, count: int, seed: int = SEED, *, single_lines: bool = False
             ) -> tuple[float, int]:  # fmt: skip
    """Transcription CER of held-out tiles (the model asked to read one tile), or of single
    lines shown alone on a tile (``tpdoc.train.lines``); and the characters read. A pointer
    model's read-out is compared with the text's lines joined by spaces."""
    import torch

    from tpdoc.train.glyphs import GlyphGrid
    from tpdoc.train.lines import line_runs, white_value
    from tpdoc.train.qa import READ_QUESTION, make_sample
    from tpdoc.train.qa_losses import single_tile_plan

    rng = random.Random(f"accuracy-{'lines' if single_lines else 'tiles'}/{seed}")
    tiling = model.config.tiling
    grid = GlyphGrid(cell=tiling.tile_size // model.config.vision.patch_grid)
    white = white_value(tiling.image_mean, tiling.image_std)
    errors = chars = done = 0
    while done < count:
        sample = make_sample(rng, tiling, grid, "eval", 1)
        if sample is None or not sample.tile_texts:
            continue
        if single_lines:
            view, runs = line_runs(sample, rng, 1, 1, white)
            text = runs[0].text
        else:
            index, text = rng.choice(sample.tile_texts)
            view = sample.views[index : index + 1]
        if model.pointer is not None:
            text = " ".join(text.split())
            errors += cer(read_out(model, view), text) * len(text)
            chars += len(text)
            done += 1
            continue
        with torch.no_grad():
            page = model.page_embeddings(model.encode(view), single_tile_plan(tiling.tile_size))
            batch = model.build_batch([model.prompt_ids(READ_QUESTION)], [page])
            limit = 2 * len(text.encode("utf-8")) + 16  # room for a byte-level tokenizer
            read = model.generate(batch, max_new_tokens=limit)[0].text
        errors += cer(read, text) * len(text)
        chars += len(text)
        done += 1
    return errors / max(1, chars), chars


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__)
    parser.add_argument("--model", help="model folder or name (default: the embedded model)")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--tiles", type=int, default=40, help="held-out tiles for the CER")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--predictions", type=Path, help="write every prediction (JSON lines)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--dtype", default="auto", help="auto, float32, bfloat16 or float16 (as tpdoc ask)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        qa = DocumentQA(
            args.model, dtype=args.dtype, cache=VisualTokenCache(Path(folder) / "cache")
        )
        items = held_out_questions(Path(folder), args.docs, args.seed)
        scored = ask_all(qa, items)
        samples = ask_all(qa, sample_questions())
    rows = [["all held-out", *group_rows([{**s, "all": ""} for s in scored], "all")[0][1:]]]
    rows += group_rows(scored, "kind") + group_rows(scored, "lang") + group_rows(scored, "field")
    rows += [["samples/questions.jsonl", *group_rows([{**s, "all": ""} for s in samples],
                                                     "all")[0][1:]]]  # fmt: skip
    for what, single in (("tiles", False), ("single lines", True)):
        error_rate, chars = read_cer(qa.model, args.tiles, args.seed, single_lines=single)
        rows.append([f"transcription CER ({args.tiles} held-out {what}, {chars} chars)",
                     args.tiles, round(error_rate, 3), ""])  # fmt: skip
    if args.predictions:
        from tpdoc.io import atomic_write_text

        atomic_write_text(args.predictions,
                          "".join(json.dumps(s) + "\n" for s in [*scored, *samples]))  # fmt: skip
    notes = [
        f"model: {args.model or 'embedded default'}; {args.docs} held-out documents (seed "
        f"{args.seed}): fonts, the boxed field layout and question phrasings never trained "
        f"on; every {SCAN_EVERY}rd one a JPEG scan of its first page; every page asked",
        "exact match: case- and space-insensitive; ANLS as DocVQA (threshold 0.5); the "
        "CER row's third column is the character error rate",
    ]
    emit("Embedded model accuracy", ["set", "questions", "exact match", "ANLS"], rows,
         as_json=args.json, notes=notes)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
