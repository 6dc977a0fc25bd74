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
language model, page 1 of ``samples/report.pdf``). Each variant trains into
``OUT/<variant>/`` with the stage-2 training code and is skipped when already finished,
so a long run resumes.

    python -m benchmarks.ablation --out checkpoints/ablation --steps 300 [--json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.common import ROOT, emit
from benchmarks.prefill import measure
from tpdoc.registry import load_config, resolve_model

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
    if (folder / "model.safetensors").is_file():
        return folder, None
    return None, TOWER


def train_variant(name: str, out: Path, steps: int, seed: int, eval_pages: int,
                  init_model: Path | None, tower: Path | None) -> dict:  # fmt: skip
    from tpdoc.train.run_qa import train_qa

    kind, scale = VARIANTS[name]
    folder = out / name
    log = folder / "log.jsonl"
    if log.is_file():
        last = json.loads(log.read_text().splitlines()[-1])
        if last["step"] >= steps:
            return last
    base = load_config()
    projector = replace(base.projector, kind=kind, scale=scale)
    return train_qa(
        folder,
        steps=steps,
        tower=tower,
        init_model=init_model,
        projector=projector,
        seed=seed,
        eval_every=steps,
        freeze_vision=True,
        eval_pages=eval_pages,
        resume=(folder / "progress.json").is_file(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "ablation")
    parser.add_argument("--steps", type=int, default=300, help="training pages per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-pages", type=int, default=24)
    parser.add_argument("--init-model", type=Path)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    init_model, tower = start_point(args.init_model)
    rows = []
    for name in args.variants.split(","):
        metrics = train_variant(name, args.out, args.steps, args.seed, args.eval_pages,
                                init_model, tower)  # fmt: skip
        kind, scale = VARIANTS[name]
        variant = "mlp" if kind == "mlp2x_gelu" else f"s{scale}"
        cost = measure("embedded", variant, 0, "fp32", 3, 4, ROOT / "samples" / "report.pdf")
        rows.append([
            name, cost["visual_tokens"], round(cost["prefill_s"], 4),
            metrics.get("heldout_packed_glyph_acc", 0.0), metrics["heldout_em"],
            metrics["heldout_anls"],
            metrics.get("heldout_tile_em", 0.0), metrics["heldout_cer"],
            metrics.get("qa_loss"), metrics.get("read_loss"), metrics.get("packed_glyph_loss"),
        ])  # fmt: skip
    start = init_model or f"tower only ({tower})"
    notes = [
        f"every variant: {args.steps} training pages (seed {args.seed}), tower frozen, "
        f"projector re-initialised, from {start}; held-out: {args.eval_pages} pages in "
        "fonts never trained on",
        "visual tokens and prefill: page 1 of samples/report.pdf through the embedded "
        "language model (fp32, median of 3); losses are means over the training run (the "
        "glyph loss is the packed-token read-out's)",
    ]
    columns = ["variant", "visual tokens", "prefill s", "glyphs kept", "exact match", "ANLS",
               "tile EM",
               "CER", "QA loss", "read loss", "glyph loss"]  # fmt: skip
    emit("Projector ablation", columns, rows, as_json=args.json, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
