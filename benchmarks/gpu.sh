#!/usr/bin/env bash
# Issue 7's GPU tables in one run on one CUDA machine: prefill and the whole pipeline at the
# published shape (CLIP ViT-L/336 + a 32-layer LLaMA of the Vicuna-7B width, bf16, random
# weights, a square 9-tile page), then the projector ablation, larger than the CPU run.
#
#   benchmarks/gpu.sh OUT [ABLATION_STEPS] [SECONDS] [PARTS]
#
# PARTS: any of prefill,pipeline,ablation (default: all three).
# The ablation trains all six variants at once and stops when SECONDS (counted from the
# script's start) are nearly spent; its table is then given at the last step every variant
# reached and was evaluated at (every 500 pages), so a cut-off run still compares like
# with like. Tables go to OUT/*.txt, the variants' evaluations to OUT/ablation-logs.jsonl.
set -uo pipefail
out=${1:?usage: benchmarks/gpu.sh OUT [ABLATION_STEPS] [SECONDS] [PARTS]}
steps=${2:-1500}
budget=${3:-560}
parts=${4:-prefill,pipeline,ablation}
every=500
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if [[ $parts == *prefill* ]]; then
    python3 -m benchmarks.prefill --device cuda --layers 32 --nine-tiles --repeat 5 \
        --decode 32 2>&1 | tee "$out/prefill.txt"
fi
if [[ $parts == *pipeline* ]]; then
    python3 -m benchmarks.pipeline --shape published --device cuda --layers 32 --docs 32 \
        --repeat 3 2>&1 | tee "$out/pipeline.txt"
fi
[[ $parts == *ablation* ]] || exit 0

left=$((budget - SECONDS - 60))
echo "ablation: ${left}s for up to ${steps} pages per variant" | tee "$out/ablation.txt"
timeout "$left" python3 -m benchmarks.ablation --out "$work/ablation" --steps "$steps" \
    --eval-every "$every" --eval-pages 16 --parallel 6 --workers 2 --device cuda --train-only
# Every variant's evaluations in one file (a "variant" key added), and the last step that
# all of them reached.
reached=$(python3 - "$work/ablation" "$out/ablation-logs.jsonl" <<'PY'
import json, sys
from pathlib import Path

from benchmarks.ablation import VARIANTS

steps = []
with open(sys.argv[2], "w") as merged:
    for name in VARIANTS:
        log = Path(sys.argv[1]) / name / "log.jsonl"
        rows = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
        for row in rows:
            merged.write(json.dumps({"variant": name, **row}) + "\n")
        steps.append(max((r["step"] for r in rows), default=0))
print(min(steps))
PY
)
if [ "${reached:-0}" -gt 0 ]; then
    python3 -m benchmarks.ablation --out "$work/ablation" --steps "$reached" \
        --eval-pages 16 --device cuda 2>&1 | tee -a "$out/ablation.txt"
else
    echo "no variant reached its first evaluation" | tee -a "$out/ablation.txt"
fi
tail -n 4 "$work"/ablation/*.log >"$out/ablation-stderr.txt" 2>&1
