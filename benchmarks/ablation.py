"""Projector ablation at small scale: TokenPacker vs MLP, pooling and a resampler.

In: one starting point for every variant (``--init-model``: a trained tpdoc model folder,
default the embedded model when it has weights; else only the reading-pretrained tower,
``training/glyphs/tower.safetensors``), the same seeded data stream, the same number of
steps, with the vision tower frozen and the projector re-initialised. Variants:
TokenPacker s = 2, 3, 4; LLaVA's uncompressed MLP; average pooling to TokenPacker-s2's
token count; a learned-query resampler with as many queries. Out: a table of held-out
character read-out accuracy of the packed tokens ("glyphs kept": a linear probe per
token, trained alongside, on held-out pages), exact match, ANLS, single-tile exact match
and transcription CER against visual tokens per page and prefill time (the embedded
language model, page 1 of ``samples/report.pdf``), with the look gain (how much a held-out
line's own visual tokens lower its transcription loss against another line's) and the
CER of reading single held-out lines. Each variant trains into ``OUT/<variant>/`` with
the stage-2 training code and is skipped when already finished, so a long run resumes;
``--parallel N`` trains N variants at once in their own processes (a GPU machine's cores).

    python -m benchmarks.ablation --out checkpoints/ablation --steps 300 [--json]
    python -m benchmarks.ablation --steps 1000 --eval-every 500 --parallel 6 --workers 2 \
        --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from benchmarks.common import ROOT, emit
from benchmarks.prefill import measure
from tpdoc.weights.registry import load_config, resolve_model

VARIANTS = {
    "tokenpacker-s2": ("tokenpacker", 2),
    "tokenpacker-s3": ("tokenpacker", 3),
    "tokenpacker-s4": ("tokenpacker", 4),
    "mlp": ("mlp2x_gelu", 2),
    "avgpool-s2": ("avgpool", 2),
    "resampler-s2": ("resampler", 2),
}
TOWER = ROOT / "training" / "glyphs" / "tower.safetensors"


def start_point(init_model: Path | None) -> tuple[Path | None, Path | None]:
    """(model folder, tower file) every variant starts from."""
    if init_model is not None:
        return init_model, None
    folder = resolve_model(None)
    # A shipped generating model gives its reading-trained language model; a pointer one
    # (answers by pointing, not generating) only stage 1's tower.
    if (folder / "model.safetensors").is_file() and load_config(folder).answer.kind == "generate":
        return folder, None
    return None, TOWER


def finished(out: Path, name: str, steps: int) -> dict | None:
    """The variant's metrics at ``steps`` pages when it has trained that far already (the
    evaluation logged at that step, else its last one)."""
    log = out / name / "log.jsonl"
    if not log.is_file():
        return None
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    exact = [row for row in rows if row["step"] == steps]
    if exact:
        return exact[-1]
    return rows[-1] if rows and rows[-1]["step"] >= steps else None


def train_variant(name: str, out: Path, steps: int, seed: int, eval_pages: int,
                  init_model: Path | None, tower: Path | None,
                  workers: int = 1, eval_every: int | None = None) -> dict:  # fmt: skip
    from tpdoc.train.run_qa import train_qa

    kind, scale = VARIANTS[name]
    folder = out / name
    done = finished(out, name, steps)
    if done is not None:
        return done
    base = load_config()
    projector = replace(base.projector, kind=kind, scale=scale)
    return train_qa(
        folder,
        steps=steps,
        tower=tower,
        init_model=init_model,
        projector=projector,
        seed=seed,
        eval_every=eval_every or steps,
        freeze_vision=True,
        eval_pages=eval_pages,
        resume=(folder / "progress.json").is_file(),
        workers=workers,
    )


def train_in_parallel(names: list[str], args: argparse.Namespace) -> None:
    """Train the unfinished variants ``args.parallel`` at a time, each in its own process
    (log: ``OUT/<variant>.log``); the table is then read from their logs."""
    todo = [n for n in names if finished(args.out, n, args.steps) is None]
    running: list[tuple[str, subprocess.Popen, IO[str]]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, args.parallel)))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    while todo or running:
        while todo and len(running) < args.parallel:
            name = todo.pop(0)
            cmd = [sys.executable, "-m", "benchmarks.ablation", "--train-only",
                   "--variants", name, "--out", str(args.out), "--steps", str(args.steps),
                   "--seed", str(args.seed), "--eval-pages", str(args.eval_pages),
                   "--workers", str(args.workers)]  # fmt: skip
            if args.eval_every:
                cmd += ["--eval-every", str(args.eval_every)]
            if args.init_model is not None:
                cmd += ["--init-model", str(args.init_model)]
            log = (args.out / f"{name}.log").open("w")
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
            running.append((name, proc, log))
        time.sleep(2)
        for entry in list(running):
            name, proc, log = entry
            if proc.poll() is None:
                continue
            running.remove(entry)
            log.close()
            if proc.returncode:
                for _, other, other_log in running:  # no orphans training on
                    other.terminate()
                    other.wait()
                    other_log.close()
                raise SystemExit(f"variant {name} failed: see {args.out / (name + '.log')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "ablation")
    parser.add_argument("--steps", type=int, default=300, help="training pages per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-pages", type=int, default=24)
    parser.add_argument("--init-model", type=Path)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--parallel", type=int, default=1, help="variants trained at once")
    parser.add_argument("--workers", type=int, default=1, help="data workers per variant")
    parser.add_argument(
        "--eval-every", type=int, help="also evaluate every N pages (default: at the end)"
    )
    parser.add_argument("--device", default="cpu", help="where prefill is timed: cpu or cuda")
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    init_model, tower = start_point(args.init_model)
    names = args.variants.split(",")
    if args.parallel > 1:
        train_in_parallel(names, args)
    rows = []
    for name in names:
        metrics = train_variant(name, args.out, args.steps, args.seed, args.eval_pages,
                                init_model, tower, args.workers, args.eval_every)  # fmt: skip
        if args.train_only:
            continue
        kind, scale = VARIANTS[name]
        variant = "mlp" if kind == "mlp2x_gelu" else f"s{scale}"
        cost = measure("embedded", variant, 0, "fp32", 3, 4, ROOT / "samples" / "report.pdf",
                       args.device)  # fmt: skip
        rows.append([
            name, cost["visual_tokens"], round(cost["prefill_s"], 4),
            metrics.get("heldout_packed_glyph_acc", 0.0), metrics.get("heldout_look_gain"),
            metrics.get("heldout_line_cer"), metrics["heldout_cer"], metrics["heldout_em"],
            metrics["heldout_anls"], metrics.get("heldout_tile_em", 0.0),
            metrics.get("qa_loss"), metrics.get("read_loss"), metrics.get("lines_loss"),
            metrics.get("pages_per_s"),
        ])  # fmt: skip
    if args.train_only:
        return 0
    start = init_model or f"tower only ({tower})"
    notes = [
        f"every variant: {args.steps} training pages (seed {args.seed}), tower frozen, "
        f"projector re-initialised, from {start}; held-out: {args.eval_pages} pages in "
        "fonts never trained on",
        f"visual tokens and prefill: page 1 of samples/report.pdf through the embedded "
        f"language model (fp32 on {args.device}, median of 3); losses are means since the "
        "previous evaluation; look gain in nats per character",
    ]
    columns = ["variant", "visual tokens", "prefill s", "glyphs kept", "look gain",
               "line CER", "tile CER", "exact match", "ANLS", "tile EM", "QA loss",
               "read loss", "line loss", "train pages/s"]  # fmt: skip
    emit("Projector ablation", columns, rows, as_json=args.json, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
