"""Prefill and decode cost of one page: TokenPacker at scale 2/3/4 vs uncompressed.

In: a page (default: page 1 of ``samples/report.pdf``) planned with each model's geometry,
and two language models with random weights (timings do not depend on the values): the
embedded default's and a published-shaped one (LLaMA of the Vicuna-7B width with
``--layers`` of its 32 decoder layers, as many as fit this machine's time and memory).
Each (model, projector) runs in a fresh subprocess so its peak RSS is its own. The page's
visual tokens are random embeddings of the right count; the towers are not run (prefill
is what is measured). Out: a table of prefill time, decode time per token, KV-cache
memory and peak RSS (and peak GPU memory on a GPU), with packed/uncompressed ratios.
``--nine-tiles`` uses a square page that the published geometry splits 3 x 3.

    python -m benchmarks.prefill [--layers 2] [--repeat 3] [--decode 16] [--json]
    python -m benchmarks.prefill --device cuda --layers 32 --nine-tiles   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.common import (
    LLAMA_7B_LAYERS,
    SAMPLES,
    created_on,
    emit,
    nine_tile_page,
    peak_gpu_mb,
    peak_rss_mb,
    published_shape,
    synchronize,
)
from tpdoc.answering.planning import plan_within
from tpdoc.documents.pages import open_document
from tpdoc.model.config import ModelConfig
from tpdoc.model.document_model import build_language_model, cache_argument, kv_bytes
from tpdoc.weights.registry import load_config

PROMPT_TOKENS = 48  # the question and template around the page
VARIANTS = ("mlp", "s2", "s3", "s4")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
# As each runs at answer time: the embedded model on a CPU in fp32, the published in bf16.
AUTO_DTYPE = {"embedded": "fp32", "published": "bf16"}


def model_config(name: str, layers: int) -> ModelConfig:
    return published_shape(layers) if name == "published" else load_config()


def page_tokens(config: ModelConfig, variant: str, page: Path) -> int:
    """Visual positions of ``page``'s first page under ``variant`` (separators included)."""
    with open_document(page) as doc:
        info = doc.info(1)
    scale = config.projector.scale if variant == "mlp" else int(variant[1:])
    plan = plan_within(1, info.height, info.width, config.geometry.with_options(scale=scale))
    return plan.visual_tokens_uncompressed if variant == "mlp" else plan.visual_tokens


@torch.inference_mode()
def measure(
    name: str,
    variant: str,
    layers: int,
    dtype: str,
    repeat: int,
    decode: int,
    page: Path,
    device: str = "cpu",
) -> dict:
    """One (model, projector) in this process: times, KV bytes, peak RSS (and GPU)."""
    torch.manual_seed(0)
    target = torch.device(device)
    config = model_config(name, layers)
    dtype = AUTO_DTYPE[name] if dtype == "auto" else dtype
    with created_on(target, DTYPES[dtype]):
        lm = build_language_model(config.text).to(DTYPES[dtype]).eval()
    width = config.text["hidden_size"]
    visual = page_tokens(config, variant, page)
    inputs = torch.randn(1, visual + PROMPT_TOKENS, width, dtype=DTYPES[dtype]) * 0.02
    inputs = inputs.to(target)
    prefill, per_token, kv = [], [], 0
    for i in range(repeat + 1):  # the first round warms kernels up and is not counted
        synchronize(target)
        t0 = time.perf_counter()
        out = lm(inputs_embeds=inputs, use_cache=True)
        cache_name = cache_argument(lm)
        synchronize(target)
        elapsed = time.perf_counter() - t0
        cache, token = out[cache_name], out.logits[:, -1].argmax(-1, keepdim=True)
        kv = kv_bytes(cache)
        t0 = time.perf_counter()
        for _ in range(decode):
            out = lm(input_ids=token, use_cache=True, **{cache_name: cache})
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        synchronize(target)
        if i:
            prefill.append(elapsed)
            per_token.append((time.perf_counter() - t0) / decode)
        del out, cache
    return {
        "model": name,
        "variant": variant,
        "visual_tokens": visual,
        "positions": inputs.shape[1],
        "prefill_s": statistics.median(prefill),
        "decode_ms": 1000 * statistics.median(per_token),
        "kv_mb": kv / 2**20,
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(target),
        "dtype": dtype,
        "device": device,
    }


def run_isolated(name: str, variant: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.prefill",
        "--worker",
        name,
        variant,
        "--layers",
        str(args.layers),
        "--dtype",
        args.dtype,
        "--repeat",
        str(args.repeat),
        "--decode",
        str(args.decode),
        "--page",
        str(args.page),
        "--device",
        args.device,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"prefill worker {name}/{variant} failed: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: Sequence[dict]) -> list[list]:
    rows = []
    for r in results:
        base = next(x for x in results if x["model"] == r["model"] and x["variant"] == "mlp")
        label = (
            "uncompressed (MLP)" if r["variant"] == "mlp" else f"TokenPacker s={r['variant'][1]}"
        )
        rows.append(
            [
                f"{r['model']} ({r['dtype']})",
                label,
                r["visual_tokens"],
                round(r["prefill_s"], 4),
                round(r["prefill_s"] / base["prefill_s"], 3),
                round(r["decode_ms"], 2),
                round(r["decode_ms"] / base["decode_ms"], 3),
                round(r["kv_mb"], 1),
                round(r["kv_mb"] / base["kv_mb"], 3),
                round(r["peak_rss_mb"]),
                None if r.get("peak_gpu_mb") is None else round(r["peak_gpu_mb"]),
            ]
        )
    return rows


COLUMNS = [
    "model",
    "projector",
    "visual tokens",
    "prefill s",
    "prefill ratio",
    "decode ms/token",
    "decode ratio",
    "KV cache MiB",
    "KV ratio",
    "peak RSS MiB",
    "peak GPU MiB",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prefill", description=__doc__)
    parser.add_argument(
        "--layers",
        type=int,
        default=2,
        help=f"decoder layers of the published shape (of {LLAMA_7B_LAYERS})",
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", *DTYPES],
        default="auto",
        help="auto: fp32 for the embedded model, bf16 for the published shape",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--decode", type=int, default=16, help="tokens decoded after prefill")
    parser.add_argument("--page", type=Path, default=SAMPLES / "report.pdf")
    parser.add_argument(
        "--nine-tiles", action="store_true", help="a square page: 3 x 3 tiles + global view"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--models", default="embedded,published")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, variant = args.worker
        result = measure(
            name, variant, args.layers, args.dtype, args.repeat, args.decode, args.page,
            args.device,
        )  # fmt: skip
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        if args.nine_tiles:
            args.page = nine_tile_page(Path(folder))
        results = [
            run_isolated(name, variant, args)
            for name in args.models.split(",")
            for variant in VARIANTS
        ]
    notes = [
        f"page: {'a square 9-tile page' if args.nine_tiles else f'{args.page} page 1'} + "
        f"{PROMPT_TOKENS} prompt tokens; {args.dtype} dtype on {args.device}; median of "
        f"{args.repeat}; decode = {args.decode} greedy tokens after the prefill",
        f"published = LLaMA hidden 4096, intermediate 11008, 32 heads, {args.layers} of "
        f"{LLAMA_7B_LAYERS} layers (CLIP-L/336 geometry, at most 9 tiles); embedded = tpdoc-tiny",
        "ratios are packed / uncompressed, measured side by side in this run",
    ]
    emit(
        "Prefill and decode: TokenPacker vs uncompressed",
        COLUMNS,
        table(results),
        as_json=args.json,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
