"""``python -m tpdoc.train STAGE``: run a training stage of the embedded model, or export a
trained model folder as shipped weights (float16)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def counts(text: str) -> tuple[int, ...]:
    """``"0,0,3"`` -> ``(0, 0, 3)``, for argparse."""
    try:
        return tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 0,0,3, got {text!r}") from None


def main(argv: list[str] | None = None, prog: str = "python -m tpdoc.train") -> int:
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="stage", required=True)
    glyphs = sub.add_parser("glyphs", help="reading pretraining of the vision tower")
    glyphs.add_argument("--out", type=Path, required=True)
    glyphs.add_argument("--steps", type=int, required=True)
    glyphs.add_argument("--batch", type=int, default=12)
    glyphs.add_argument("--lr", type=float, default=2e-3)
    glyphs.add_argument("--seed", type=int, default=0)
    glyphs.add_argument("--eval-every", type=int, default=100)
    glyphs.add_argument("--workers", type=int, default=1)
    glyphs.add_argument("--resume", action="store_true")
    glyphs.add_argument("--init", type=Path, help="start from these tower weights")
    glyphs.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    qa = sub.add_parser("qa", help="question answering with reading mixed in (whole model)")
    qa.add_argument("--out", type=Path, required=True)
    qa.add_argument("--steps", type=int, required=True)
    qa.add_argument("--tower", type=Path, help="stage-1 tower.safetensors to start from")
    qa.add_argument("--init-model", type=Path, help="a saved tpdoc model folder to continue")
    qa.add_argument("--lr", type=float, default=1e-3)
    qa.add_argument("--seed", type=int, default=0)
    qa.add_argument("--eval-every", type=int, default=200)
    qa.add_argument("--workers", type=int, default=1)
    qa.add_argument("--resume", action="store_true")
    qa.add_argument("--freeze-vision", action="store_true")
    qa.add_argument(
        "--no-guide", action="store_true",
        help="no guided attention on transcriptions (see tpdoc.train.alignment)",
    )  # fmt: skip
    qa.add_argument(
        "--read-only-steps", type=int, default=0,
        help="first steps transcribe only (lines and tiles), no questions",
    )  # fmt: skip
    qa.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    pointer = sub.add_parser("pointer", help="the answer pointer on true read-outs (stage P)")
    pointer.add_argument("--out", type=Path, required=True)
    pointer.add_argument("--steps", type=int, required=True)
    pointer.add_argument("--batch", type=int, default=16)
    pointer.add_argument("--lr", type=float, default=1e-3)
    pointer.add_argument("--seed", type=int, default=0)
    pointer.add_argument("--eval-every", type=int, default=250)
    pointer.add_argument("--workers", type=int, default=1)
    pointer.add_argument("--resume", action="store_true")
    pointer.add_argument("--init", type=Path, help="pointer.safetensors to start from")
    pointer.add_argument(
        "--read", type=Path,
        help="stage R's read.safetensors: learn on the tower's own read-out (stage J)",
    )  # fmt: skip
    pointer.add_argument("--threads", type=int, default=1, help="torch threads (1 on 2 cores)")
    pointer.add_argument(
        "--question-words", type=int, metavar="WIDTH",
        help="pretrained word vectors of this width beside the question's bytes (0: none; "
        "default: as the --init or resumed weights have them)",
    )  # fmt: skip
    pointer.add_argument(
        "--end-given-start", type=int, metavar="WIDTH",
        help="score the answer's end given its start, with vectors this wide per slot (0: "
        "apart; default: as the --init or resumed weights have them)",
    )  # fmt: skip
    pointer.add_argument(
        "--reword", type=float, default=0.0, metavar="RATE",
        help="swap this share of a training question's words for neighbours among the "
        "question words (teaches the model to answer by them)",
    )  # fmt: skip
    pointer.add_argument("--device", default="cpu", help="cpu or cuda")
    pointer.add_argument(
        "--single-tiles", action="store_true", help="questions on single tiles, not tile rows"
    )  # fmt: skip
    read = sub.add_parser("read", help="dense read-out of tower + packer (stage R)")
    read.add_argument("--out", type=Path, required=True)
    read.add_argument("--steps", type=int, required=True)
    read.add_argument("--lr", type=float, default=1e-3)
    read.add_argument("--seed", type=int, default=0)
    read.add_argument("--eval-every", type=int, default=200)
    read.add_argument("--workers", type=int, default=1)
    read.add_argument("--resume", action="store_true")
    read.add_argument("--init-model", type=Path, help="model folder (default: tpdoc-tiny)")
    read.add_argument(
        "--tower", type=Path,
        help="a read.safetensors to start from: its tower, packer and read-out if it fits",
    )  # fmt: skip
    read.add_argument("--threads", type=int, default=1, help="torch threads (1 on 2 cores)")
    read.add_argument("--device", default="cpu", help="cpu or cuda")
    read.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    read.add_argument(
        "--stage-blocks", type=counts, metavar="N,N,N",
        help="grow the tower: this many more blocks after each stem stage, e.g. 0,0,3",
    )  # fmt: skip
    read.add_argument(
        "--packer", type=counts, metavar="E,D",
        help="widen TokenPacker and read-out to attention E, packed tokens D (whole "
        "multiples of theirs; they start computing what they did), e.g. 384,512",
    )  # fmt: skip
    compose = sub.add_parser("compose", help="a pointer model from stages R and P")
    compose.add_argument("--read", type=Path, required=True, help="stage R's read.safetensors")
    compose.add_argument("--pointer", type=Path, required=True, help="stage P's weights")
    compose.add_argument("--out", type=Path, required=True)
    compose.add_argument("--fp16", action="store_true", help="store float16 (shipped weights)")
    half = sub.add_parser("half", help="a safetensors file with its floats in float16")
    half.add_argument("source", type=Path)
    half.add_argument("target", type=Path)
    export = sub.add_parser("export", help="write a trained model folder as shipped fp16 weights")
    export.add_argument("--model", type=Path, required=True, help="a saved model folder")
    export.add_argument("--out", type=Path, required=True, help="e.g. tpdoc/embedded/tpdoc-tiny")
    args = parser.parse_args(argv)
    from tpdoc.errors import TpdocError

    try:
        return run(args)
    except TpdocError as exc:  # a bad flag or file: one line, the error's exit code
        print(f"{prog} {args.stage}: error: {exc}", file=sys.stderr)
        return exc.exit_code


def run(args: argparse.Namespace) -> int:
    """The stage ``args`` names, with its arguments."""
    if args.stage == "export":
        import torch

        from tpdoc.weights.checkpoint import load_model, save_model

        # Other files in the folder (the model card) are kept.
        save_model(load_model(args.model), args.out, dtype=torch.float16)
        print(args.out)
    if args.stage == "pointer":
        import torch

        from tpdoc.train.run_pointer import train_pointer

        torch.set_num_threads(args.threads)
        metrics = train_pointer(
            args.out, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
            eval_every=args.eval_every, workers=args.workers, resume=args.resume, init=args.init,
            read=args.read, device=args.device, single_tiles=args.single_tiles,
            question_words=args.question_words, reword=args.reword,
            end_given_start=args.end_given_start,
        )  # fmt: skip
        print(metrics)
    if args.stage == "half":
        from tpdoc.train.compose import half_precision

        print(half_precision(args.source, args.target))
    if args.stage == "compose":
        import torch

        from tpdoc.train.compose import compose_model

        dtype = torch.float16 if args.fp16 else None
        print(compose_model(args.read, args.pointer, args.out, dtype=dtype))
    if args.stage == "read":
        import torch

        from tpdoc.train.run_read import train_read

        torch.set_num_threads(args.threads)
        metrics = train_read(
            args.out, steps=args.steps, lr=args.lr, seed=args.seed, eval_every=args.eval_every,
            workers=args.workers, resume=args.resume, init_model=args.init_model,
            tower=args.tower, bf16=not args.fp32, device=args.device,
            stage_blocks=args.stage_blocks, packer=args.packer,
        )  # fmt: skip
        print(metrics)
    if args.stage == "glyphs":
        from tpdoc.train.run_glyphs import train_glyphs

        metrics = train_glyphs(
            args.out, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
            resume=args.resume, eval_every=args.eval_every, workers=args.workers,
            bf16=not args.fp32, init=args.init,
        )  # fmt: skip
        print(metrics)
    if args.stage == "qa":
        from tpdoc.train.run_qa import train_qa

        metrics = train_qa(
            args.out, steps=args.steps, tower=args.tower, lr=args.lr, seed=args.seed,
            resume=args.resume, eval_every=args.eval_every, workers=args.workers,
            freeze_vision=args.freeze_vision, bf16=not args.fp32, init_model=args.init_model,
            read_only_steps=args.read_only_steps, guide=not args.no_guide,
        )  # fmt: skip
        print(metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
