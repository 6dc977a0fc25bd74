"""The embedded pointer model's gates (issue 17), each on pages never trained on.

In: stage R's weights (``--read``, tower + packer + read-out) and stage P's (``--pointer``),
or a composed model folder (``--model``). Out: a table with

- **P**, the pointer on the true read-out: exact match on the row of tiles that holds the
  answer, and on the whole page (every row asked, "not found" when none answers);
- **R**, the read-out: the share of printed slots read right (and of blank slots read
  as print), as answers read them;
- **J**, pixels to answer: the pointer on the tower's own read-out of rendered pages.

    python -m benchmarks.gates --read R.safetensors --pointer P.safetensors [--pages 40]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import emit

SEED = 100  # held-out pages of their own, apart from the training runs' evaluation seeds


def load(read: Path | None, pointer: Path | None, model: Path | None):
    from tpdoc.train import run_pointer, run_read
    from tpdoc.weights.checkpoint import load_model

    if model is not None:
        return load_model(model)
    parts = run_pointer.answer_parts(pointer)  # question words, ends given starts
    built = run_pointer.new_model(run_pointer.with_parts(run_read.read_config(read), **parts))
    if read is not None:
        run_read.load_weights(built, read)
    if pointer is not None:
        run_pointer.load_weights(built, pointer)
    return built.eval()


def model_arguments(prog: str, doc: str | None, *, pages: int, seed: int
                    ) -> argparse.ArgumentParser:  # fmt: skip
    """The options of a script that measures a pointer model on held-out pages: the model
    (stage R's and P's weights, or a composed folder), how many pages, their seed, --json."""
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("--read", type=Path, help="stage R's read.safetensors")
    parser.add_argument("--pointer", type=Path, help="stage P's pointer.safetensors")
    parser.add_argument("--model", type=Path, help="a composed pointer model folder instead")
    parser.add_argument("--pages", type=int, default=pages)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from tpdoc.train import run_pointer, run_read

    parser = model_arguments("python -m benchmarks.gates", __doc__, pages=40, seed=SEED)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load(args.read, args.pointer, args.model)
    config = model.config
    rows = []
    has_pointer = args.pointer is not None or args.model is not None
    has_read = args.read is not None or args.model is not None
    with torch.no_grad():
        # One set of rendered pages for every gate: P reads their true read-out, J their pixels.
        rendered = run_pointer.held_out_pages(config, args.seed, args.pages, render=True)
        if has_pointer:
            p = run_pointer.evaluate(model, rendered)
            n = int(p["heldout_questions"])
            # The same held-out pages asked in training phrasings: wording vs reading.
            worded = run_pointer.held_out_pages(
                config, args.seed, args.pages, held_out_phrasings=False
            )
            known = run_pointer.evaluate(model, worded)
            rows += [
                ["P: true read-out, the answer's row", "exact match",
                 round(p["heldout_row_em"], 3)],
                [f"P: true read-out, whole page ({n} questions)", "exact match",
                 round(p["heldout_page_em"], 3)],
                ["P: the same, asked in training phrasings: the answer's row", "exact match",
                 round(known["heldout_row_em"], 3)],
            ]  # fmt: skip
            for kind, why in (("not_found", '"not found"'), ("overlap", "overlapping text"),
                              ("other", "other text")):  # fmt: skip
                rows.append([f"P: the answer's row, wrong as {why}", "share",
                             round(p[f"heldout_row_{kind}"], 3)])  # fmt: skip
        if has_read:
            r = run_read.evaluate(model, rendered, bf16=True)
            rows += [
                ["R: printed slots read right", "share", round(r["heldout_read_acc"], 4)],
                ["R: blank slots read as print", "share", round(r["heldout_false_alarm"], 4)],
                ["R: slot rows read back in reading order", "CER", round(r["heldout_read_cer"], 4)],
            ]
        if has_read and has_pointer:
            j = run_pointer.evaluate(model, rendered, real=True)
            rows += [
                ["J: pixels to answer, the answer's row", "exact match",
                 round(j["heldout_row_em"], 3)],
                ["J: pixels to answer, whole page", "exact match", round(j["heldout_page_em"], 3)],
                ["J: pixels to answer, whole page", "ANLS", round(j["heldout_page_anls"], 3)],
            ]  # fmt: skip
    notes = [
        f"{args.pages} held-out pages (seed {args.seed}): fonts, layouts and question "
        "phrasings never trained on; targets: P >= 0.98, R >= 0.99, J: see the accuracy "
        "benchmark (>= 0.95 exact match)",
        f"weights: read {args.read or args.model}, pointer {args.pointer or args.model}",
    ]
    emit("Pointer model gates", ["gate", "measure", "value"], rows, as_json=args.json,
         notes=notes)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
