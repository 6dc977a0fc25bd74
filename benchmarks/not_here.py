"""How the pointer's "not here" threshold trades answers for "not found" (issue 17).

In: a pointer model (``--model``, a composed folder, or stage P's ``--pointer`` with stage
R's ``--read``), validation pages (``--seed``, 7 by default: apart from the gates' 100 and
from the training runs' evaluation seeds) and the thresholds to try. Out: a table of
exact match on the answer's row and on the whole page (absent answers included), and
the share of row questions wrongly answered "not found", per threshold, all on the true
read-out. ``tpdoc.model.pointer.NOT_HERE_AT`` was chosen from this table.

    python -m benchmarks.not_here --read R.safetensors --pointer P.safetensors [--pages 20]
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.common import emit
from benchmarks.gates import load, model_arguments

SEED = 7
THRESHOLDS = "0.3,0.5,0.7,0.85,0.92,0.97"


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from tpdoc.model import pointer
    from tpdoc.train import run_pointer

    parser = model_arguments("python -m benchmarks.not_here", __doc__, pages=20, seed=SEED)
    parser.add_argument("--thresholds", default=THRESHOLDS, help="comma-separated shares")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load(args.read, args.pointer, args.model)
    pages = run_pointer.held_out_pages(model.config, args.seed, args.pages)
    chosen, rows = pointer.NOT_HERE_AT, []
    try:
        for threshold in (float(t) for t in args.thresholds.split(",")):
            pointer.NOT_HERE_AT = threshold
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                m = run_pointer.evaluate(model, pages)
            mark = " (shipped)" if threshold == chosen else ""
            scores = ("heldout_row_em", "heldout_page_em", "heldout_row_not_found")
            rows.append([f"{threshold}{mark}", *(round(m[k], 3) for k in scores)])
    finally:
        pointer.NOT_HERE_AT = chosen
    asked = int(m["heldout_questions"])
    notes = [f"{args.pages} validation pages (seed {args.seed}), {asked} questions, "
             "true read-out, bfloat16 autocast"]  # fmt: skip
    emit('Pointer "not here" threshold', ["threshold", "row EM", "page EM", 'row "not found"'],
         rows, as_json=args.json, notes=notes)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
