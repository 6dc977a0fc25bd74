#!/usr/bin/env bash
# One batched training run of the embedded model on a lent GPU: stage R (tower + packer
# read densely) and stage P (the pointer on true read-outs) side by side, each stopping
# before SECONDS are spent, with their weights and logs written to OUT for a later
# session to continue from (--tower / --init on the CPU or the next GPU).
#
#   training/gpu.sh OUT [SECONDS] [DEVICE] [R_STEPS] [P_STEPS]
#
# Starts from the committed weights in training/pointer/ when they are there; they carry
# their tower (stage R: --stage-blocks) and question words (stage P) with them. More
# arguments for each stage go in R_ARGS and P_ARGS (default P_ARGS: --reword 0.3 when the
# committed pointer has question words). Question words need the wordllama package (the
# train extra): on a machine without the registries, carry its wheel (19 MB). The data
# workers render pages on the machine's CPU cores (R: 10, P: 4). DEVICE=cpu with a few
# steps is how this script is tried on a CPU before GPU minutes are spent on it.
set -uo pipefail
out=${1:?usage: training/gpu.sh OUT [SECONDS] [DEVICE] [R_STEPS] [P_STEPS]}
budget=${2:-500}
device=${3:-cuda}
r_steps=${4:-20000}
p_steps=${5:-20000}
r_workers=${R_WORKERS:-10}
p_workers=${P_WORKERS:-4}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

r_from=() p_from=()
[ -f training/pointer/read.safetensors ] && r_from=(--tower training/pointer/read.safetensors)
[ -f training/pointer/pointer.safetensors ] && p_from=(--init training/pointer/pointer.safetensors)
words=$(python3 -c "from pathlib import Path; from tpdoc.train.run_pointer import answer_parts
print(answer_parts(Path('training/pointer/pointer.safetensors'))['question_words'])" \
    2>/dev/null || echo 0)
[ "$words" != 0 ] && default_p_args="--reword 0.3" || default_p_args=""
read -r -a r_args <<<"${R_ARGS:-}"
read -r -a p_args <<<"${P_ARGS:-$default_p_args}"
left=$((budget - SECONDS - 20))
timeout "$left" python3 -m tpdoc.train read --out "$out/read" --steps "$r_steps" \
    --eval-every 500 --workers "$r_workers" --device "$device" --seed 2 "${r_from[@]}" \
    "${r_args[@]}" >"$out/read.log" 2>&1 &
timeout "$left" python3 -m tpdoc.train pointer --out "$out/pointer" --steps "$p_steps" \
    --batch 64 --eval-every 500 --workers "$p_workers" --device "$device" --seed 2 \
    "${p_from[@]}" "${p_args[@]}" >"$out/pointer.log" 2>&1 &
wait
# The last evaluated weights of each in float16 (files come back at 16 MiB at most),
# beside their logs.
for stage in read pointer; do
    python3 -m tpdoc.train half "$out/$stage/$stage.safetensors" "$out/$stage.safetensors"
    cp "$out/$stage/log.jsonl" "$out/$stage-log.jsonl" 2>/dev/null
    rm -rf "${out:?}/$stage"
    tail -n 3 "$out/$stage.log"
done
ls -l "$out"
