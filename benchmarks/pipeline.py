"""The whole pipeline on this machine: stages, cold and warm, batch, cache, and OCR beside it.

In: a model (default: the embedded one; ``--model DIR`` for any tpdoc model folder), the
samples' first question about ``samples/report.pdf`` page 1, and ``--docs`` synthetic
documents generated into a temporary folder (held-out fonts, seeded). Out: tables of
(1) seconds per stage of a one-page question, warm (model loaded, nothing cached);
(2) the whole cold command (``tpdoc ask`` in a fresh process) with its peak memory;
(3) a repeated question on a cached document against the first; (4) pages per second
over the generated documents, with exact match; (5) with ``--ocr``, RapidOCR
(PP-OCR in ONNX, CPU) on the same pages: seconds per page and whether the answer appears
in its text (the OCR-first alternative; a benchmark-only dependency).

``--shape published`` measures the published architecture instead, built from its config
with random weights (CLIP ViT-L/336, a LLaMA of the Vicuna-7B width with ``--layers``
decoder layers) once with TokenPacker (144 tokens per tile) and once with the
uncompressed MLP (576): the stages of a question about a square 9-tile page, and pages
per second in batch over ``--docs`` copies of it. Answers of random weights are
meaningless, so generation is capped at ``--max-new-tokens`` and no exact match is given.

    python -m benchmarks.pipeline [--model DIR] [--docs 50] [--repeat 5] [--ocr] [--json]
    python -m benchmarks.pipeline --shape published --device cuda --layers 32 --docs 32
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import (
    LLAMA_7B_LAYERS,
    SAMPLES,
    created_on,
    emit,
    nine_tile_page,
    peak_gpu_mb,
    peak_rss_mb,
    published_shape,
)
from tpdoc.answering.anls import exact_match
from tpdoc.answering.cache import VisualTokenCache
from tpdoc.answering.qa import DocumentQA
from tpdoc.answering.results import AskOptions, FailedRequest, Request

STAGES = ("render", "cache", "vision", "packer", "prefill", "decode")
LABELS = {"render": "render + tile"}  # tpdoc times rasterising and tiling a page as one stage
SEED = 0
# Imports every cold `tpdoc ask` pays, timed alone in a fresh interpreter.
IMPORT_FLOORS = {
    "python + import torch": "import torch",
    "python + torch + transformers' LLaMA": "from transformers import LlamaForCausalLM",
    "python + pymupdf": "import pymupdf",
}
# The published shape's projectors: TokenPacker s=2 (144 per tile) and LLaVA's MLP (576).
SHAPE_PROJECTORS = {"tokenpacker": ("tokenpacker", 2), "mlp": ("mlp2x_gelu", 2)}


def sample_question() -> tuple[Path, str, list[str]]:
    line = (SAMPLES / "questions.jsonl").read_text().splitlines()[0]
    item = json.loads(line)
    return SAMPLES / item["file"], item["question"], item["answers"]


def generated_documents(folder: Path, count: int, seed: int = SEED) -> list[tuple[Path, list]]:
    """``count`` held-out synthetic documents, saved as PDFs, with page-1 questions."""
    from tpdoc.synth.layouts import make_document
    from tpdoc.synth.questions import questions_for

    rng = random.Random(f"pipeline/{seed}")
    out = []
    for i in range(count):
        synth = make_document(rng, split="eval")
        qa = [(q, a) for q, a, _ in questions_for(synth, 1, rng, 1, absent_rate=0.0)]
        path = folder / f"doc-{i:03d}.pdf"
        synth.doc.save(str(path))
        synth.doc.close()
        out.append((path, qa))
    return out


def shape_model(projector: str, layers: int, device: str, dtype: str):
    """The published architecture with random weights, created directly on ``device``."""
    from dataclasses import replace

    import torch
    from transformers import PreTrainedTokenizerFast

    from tpdoc.model.document_model import DocumentModel
    from tpdoc.weights.registry import resolve_model

    kind, scale = SHAPE_PROJECTORS[projector]
    config = published_shape(layers, scale=scale)
    config = replace(config, projector=replace(config.projector, kind=kind, scale=scale))
    # Any tokenizer will do for timings; the shipped byte-level one needs no download.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(resolve_model(None)))
    torch.manual_seed(SEED)
    with created_on(device, getattr(torch, dtype)):
        model = DocumentModel.from_config(config, tokenizer)
    return model.to(getattr(torch, dtype)).eval()


def shape_rows(args: argparse.Namespace) -> tuple[list[str], list[list], list[str]]:
    """Stages and batch pages/s of the published shape: TokenPacker, the MLP, the ratio."""
    import torch

    columns = ["measurement"]
    measured: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as folder:
        page = nine_tile_page(Path(folder))
        copies = []
        for i in range(args.docs):  # distinct files, so nothing is shared between them
            copy = Path(folder) / f"page-{i:03d}.pdf"
            copy.write_bytes(page.read_bytes())
            copies.append(copy)
        options = AskOptions(pages="1", max_new_tokens=args.max_new_tokens)
        question = "What is the invoice number?"
        for name in SHAPE_PROJECTORS:
            model = shape_model(name, args.layers, args.device, args.dtype)
            columns.append(f"{name} ({model.config.projector.tokens_per_tile}/tile)")
            qa = DocumentQA(model, cache=False)
            for key, value in stages_table(qa, page, question, args.repeat, options):
                measured.setdefault(f"stage: {key} (s)", []).append(value)
            requests = [Request(str(p), question, options=options) for p in copies]
            t0 = time.perf_counter()
            results = list(qa.ask_many(requests))
            seconds = time.perf_counter() - t0
            failed = sum(isinstance(r, FailedRequest) for r in results)
            measured.setdefault("batch: pages per second", []).append(
                round(len(copies) / seconds, 3)
            )
            measured.setdefault("batch: failed", []).append(failed)
            gpu = peak_gpu_mb(torch.device(args.device))
            if gpu is not None:
                measured.setdefault("peak GPU MiB", []).append(round(gpu))
                torch.cuda.reset_peak_memory_stats()
            del qa, model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    rows = []
    for key, (packed, mlp) in measured.items():
        if key.startswith("stage: cache") and not (packed or mlp):
            continue  # the cache is off here
        ratio = round(packed / mlp, 3) if mlp else None
        rows.append([key, packed, mlp, ratio])
    notes = [
        f"published shape: CLIP ViT-L/336 + LLaMA hidden 4096 with {args.layers} of "
        f"{LLAMA_7B_LAYERS} layers, random weights, {args.dtype} on {args.device}",
        f"page: a square page split 3 x 3 + global view; stages: median of {args.repeat} "
        f"warm runs, cache off; batch: {args.docs} copies; answers capped at "
        f"{args.max_new_tokens} tokens; ratio = TokenPacker / MLP, in this run",
    ]
    return [*columns, "ratio"], rows, notes


def stages_table(
    qa: DocumentQA, path: Path, question: str, repeat: int, options: AskOptions | None = None
) -> list[list]:
    options = options or AskOptions(pages="1")
    qa.ask(path, question, options=options)  # warm-up: kernels, tokenizer, fonts
    runs, walls = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = qa.ask(path, question, options=options)
        walls.append(time.perf_counter() - t0)
        runs.append(result.timings)
    rows = [[LABELS.get(stage, stage), round(statistics.median(r.get(stage, 0.0) for r in runs), 4)]
            for stage in STAGES if any(stage in r for r in runs)]  # fmt: skip
    rows.append(["whole question (wall)", round(statistics.median(walls), 4)])
    return rows


def cold_command(model: str | None, path: Path, question: str, repeat: int) -> list[list]:
    tpdoc = Path(sys.executable).with_name("tpdoc")  # the installed command, as users run it
    cmd = [str(tpdoc), "ask", str(path), question, "--pages", "1",
           "--no-cache", "--plain"]  # fmt: skip
    if model:
        cmd += ["--model", model]
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - t0)
        if done.returncode:
            raise SystemExit(f"cold run failed: {done.stderr.strip()[-400:]}")
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows = [
        ["cold command, process start to answer (s)", round(statistics.median(walls), 3)],
        ["cold command peak RSS (MiB)", round(children_peak)],
    ]
    # The floor under any cold command: starting Python and importing what answers.
    for label, code in IMPORT_FLOORS.items():
        walls = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            walls.append(time.perf_counter() - t0)
        rows.append([f"of which {label} (s)", round(statistics.median(walls), 3)])
    return rows


def cache_table(model, path: Path, question: str, repeat: int) -> list[list]:
    """The same question asked ``repeat + 2`` times in one process: first with nothing
    cached; second with the page's visual tokens from the disk cache (the page is now
    prefilled and kept in memory); then from the kept prefix (``tpdoc.answering.prefixes``)."""
    from tpdoc.answering.prefixes import PrefixCache

    with tempfile.TemporaryDirectory() as root:
        qa = DocumentQA(model, cache=VisualTokenCache(root))
        options = AskOptions(pages="1")
        qa.ask(path, "warm-up", options=AskOptions(pages="1", max_new_tokens=1))
        qa.cache = VisualTokenCache(Path(root) / "fresh")
        qa.prefixes = PrefixCache(qa.prefixes.max_bytes)
        times = []
        for _ in range(repeat + 2):
            t0 = time.perf_counter()
            qa.ask(path, question, options=options)
            times.append(time.perf_counter() - t0)
    first, second, later = times[0], times[1], statistics.median(times[2:])
    return [
        ["first question (nothing cached) s", round(first, 4)],
        ["second: visual tokens from the disk cache s", round(second, 4)],
        ["later: page prefix kept in memory s", round(later, 4)],
        ["speed-up, disk cache alone", round(first / second, 2)],
        ["speed-up, repeated question", round(first / later, 2)],
    ]


def batch_table(qa: DocumentQA, docs: list[tuple[Path, list]]) -> tuple[list[list], dict]:
    requests = [Request(str(p), q, id=(i, a), options=AskOptions(pages="1"))
                for i, (p, items) in enumerate(docs) for q, a in items]  # fmt: skip
    t0 = time.perf_counter()
    results = list(qa.ask_many(requests))
    seconds = time.perf_counter() - t0
    answered = [r for r in results if not isinstance(r, FailedRequest)]
    em = [exact_match(r.answer, [r.id[1]]) for r in answered]
    by_doc = {r.id[0]: r for r in answered}
    stats = {"seconds_per_page": seconds / max(1, len(docs)), "answers": by_doc}
    rows = [
        ["documents (page 1 each)", len(docs)],
        ["pages per second", round(len(docs) / seconds, 3)],
        ["exact match", round(sum(em) / max(1, len(em)), 3)],
        ["failed", len(results) - len(answered)],
    ]
    return rows, stats


def ocr_table(docs: list[tuple[Path, list]], tpdoc_seconds: float) -> list[list]:
    """RapidOCR on the same pages, rendered at the DPI tpdoc plans pages at."""
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    from tpdoc.documents.pages import PLAN_DPI, open_document

    engine = RapidOCR()
    seconds, found = [], 0
    for path, items in docs:
        with open_document(path, dpi=PLAN_DPI) as doc:
            image = np.asarray(doc.render(1))
        t0 = time.perf_counter()
        result, _ = engine(image)
        seconds.append(time.perf_counter() - t0)
        text = " ".join(r[1] for r in result or ())
        squashed = "".join(text.split()).lower()
        found += all("".join(a.split()).lower() in squashed for _, a in items)
    per_page = statistics.mean(seconds)
    return [
        ["RapidOCR seconds per page (reading only)", round(per_page, 3)],
        ["tpdoc seconds per page (answering)", round(tpdoc_seconds, 3)],
        ["tpdoc / OCR time", round(tpdoc_seconds / per_page, 3)],
        ["answer string in the OCR text", round(found / max(1, len(docs)), 3)],
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__)
    parser.add_argument("--model", help="model folder or name (default: the embedded model)")
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ocr", action="store_true", help="also run RapidOCR (extra 'bench')")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--shape", choices=["model", "published"], default="model")
    parser.add_argument("--layers", type=int, default=2, help="published shape: LLaMA layers")
    parser.add_argument("--device", default="cpu", help="published shape: cpu or cuda")
    parser.add_argument("--dtype", default="bfloat16", help="published shape: torch dtype")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="published shape")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.shape == "published":
        columns, rows, notes = shape_rows(args)
        rows.append(["this process peak RSS (MiB)", round(peak_rss_mb()), None, None])
        emit("The whole pipeline, published shape", columns, rows, as_json=args.json,
             notes=notes)  # fmt: skip
        return 0
    path, question, _ = sample_question()
    qa = DocumentQA(args.model, cache=False)
    rows = [[f"stage: {name}", value] for name, value in stages_table(qa, path, question,
                                                                      args.repeat)]  # fmt: skip
    rows += cold_command(args.model, path, question, max(1, args.repeat // 2))
    rows += cache_table(args.model, path, question, args.repeat)
    with tempfile.TemporaryDirectory() as folder:
        docs = generated_documents(Path(folder), args.docs)
        batch_rows, stats = batch_table(qa, docs)
        rows += [[f"batch: {k}", v] for k, v in batch_rows]
        if args.ocr:
            rows += [[f"OCR: {k}", v] for k, v in ocr_table(docs, stats["seconds_per_page"])]
    rows.append(["this process peak RSS (MiB)", round(peak_rss_mb())])
    notes = [
        f"model: {args.model or 'embedded default'}; question: {question!r} on {path.name} page 1",
        f"stages: median of {args.repeat} warm runs, cache off; batch: {args.docs} generated "
        f"held-out documents (seed {SEED}), one question each",
    ]
    emit("The whole pipeline", ["measurement", "value"], rows, as_json=args.json, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
