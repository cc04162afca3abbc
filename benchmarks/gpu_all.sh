#!/usr/bin/env bash
# Every GPU benchmark in one run, under 10 minutes on one H100 or H200. Results go to $OUT (default
# ./bench-results): one .txt (table) and .err (progress) per benchmark, all JSON lines in
# results.jsonl, and the GPU's description in nvidia-smi.txt.
#
#   OUT=/some/folder PYTHON=/path/to/python benchmarks/gpu_all.sh
#   GPU_ALL_ONLY="infer_resnet18_256 knn_cuda" benchmarks/gpu_all.sh   # only these steps (a rerun)
#
# Each step has its own time limit and runs only while the overall budget allows it, so a slow
# machine loses the last (least important) steps, never the whole run. A step that exits non-zero
# makes the whole run exit 1 at the end, naming it.
#
#   GPU_ALL_REHEARSE=1 benchmarks/gpu_all.sh   # dress rehearsal on this machine's CPU, before a lease
#
# A rehearsal runs every step's script with the step's own options followed by that step's entry in
# SMALL below (--device cpu, few steps, small images and cases; argparse keeps an option's last value),
# so option parsing, data preparation, timing loops, result files and the summary all run, in a few
# minutes on 2 cores; only the CUDA-specific paths do not (and nvidia-smi is not asked). Results go to
# bench-rehearsal unless $OUT is set. The real run's options, limits and budget are unchanged by it.
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS="train_resnet18_256 train_vit_b_32_256 infer_resnet18_256 infer_resnet18_256_2cpus knn_cuda membership_agreement membership_timing train_resnet18_256_compiled"
for name in ${GPU_ALL_ONLY:-}; do  # a misspelt step must not cost a lease: check before anything starts
  [[ " $STEPS " == *" $name "* ]] || { echo "gpu_all: GPU_ALL_ONLY names no step '$name' (steps: $STEPS)" >&2; exit 2; }
done
REHEARSE="${GPU_ALL_REHEARSE:-}"
OUT="${OUT:-$([[ -n "$REHEARSE" ]] && echo bench-rehearsal || echo bench-results)}"
PY="${PYTHON:-python3}"
BUDGET="${GPU_ALL_BUDGET:-540}"  # seconds for all steps together
if [[ -z "${GPU_ALL_ONLY:-}" && ( -e "$OUT/results.jsonl" || -e "$OUT/summary.txt" ) ]]; then
  # results.jsonl and summary.txt are appended to: a second full run there would mix two machines' numbers
  echo "gpu_all: $OUT holds an earlier run's results; set OUT to a new folder (a rerun of some steps: GPU_ALL_ONLY)" >&2
  exit 2
fi
mkdir -p "$OUT"
export BENCH_JSON="$OUT/results.jsonl"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # ganfp from this tree, installed or not
PNG="$(mktemp -d)"  # 256x256 PNG files, written once and shared by the 256px runs
trap 'rm -rf "$PNG"' EXIT

CHECK="import torch, torchvision, timm, sklearn, ganfp"
[[ -n "$REHEARSE" ]] || CHECK+="; assert torch.cuda.is_available(), 'no CUDA device'"
"$PY" -c "$CHECK" \
  || { echo "gpu_all: needs torch with CUDA, torchvision, timm and ganfp's dependencies for $PY" >&2; exit 1; }
[[ -n "$REHEARSE" ]] || nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

# a rehearsal's options, appended to each step's own (the later value of an option wins)
TINY="--device cpu --image-size 32 --source-size 32 --batch 4 --steps 2 --rounds 2 --warmup 1 --workers 1"
declare -A SMALL=(
  [train_resnet18_256]="$TINY --chunk 1" [train_vit_b_32_256]="$TINY --chunk 1" [train_resnet18_256_compiled]="$TINY --chunk 1"
  [infer_resnet18_256]="$TINY" [infer_resnet18_256_2cpus]="$TINY --cpus 1"
  [knn_cuda]="--device cpu --cases 2000x50x64,4000x400x32"
  [membership_agreement]="--device cpu --threads 1 --families pcagmm"
  [membership_timing]="--device cpu --threads 1 --timing-generated 300 --timing-size 64"
)

step() {  # step NAME LIMIT_SECONDS ARGS...: run one benchmark if the budget still allows it
  local name=$1 limit=$2; shift 2
  [[ " $STEPS " == *" $name "* ]] || { echo "gpu_all: step $name is missing from STEPS" >&2; exit 2; }
  [[ -z "${GPU_ALL_ONLY:-}" || " $GPU_ALL_ONLY " == *" $name "* ]] || return 0
  if [[ -n "$REHEARSE" ]]; then
    [[ -n "${SMALL[$name]:-}" ]] || { echo "gpu_all: step $name has no SMALL entry to rehearse with" >&2; exit 2; }
    set -- "$@" ${SMALL[$name]}
  fi
  if (( SECONDS + limit > BUDGET )); then
    echo "== $name: skipped (budget: ${SECONDS}s used of ${BUDGET}s)" | tee -a "$OUT/summary.txt"
    return
  fi
  echo "== $name (limit ${limit}s)"
  local started=$SECONDS
  timeout "$limit" "$PY" "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - started))s" | tee -a "$OUT/summary.txt"
  (( rc == 0 )) || FAILED+=" $name"
  cat "$OUT/$name.txt"
}
FAILED=""

# the issue's targets: trainer >= 90% of the bare loop for resnet18 and vit_b_32 at 256x256
step train_resnet18_256 100 benchmarks/train_throughput.py --device cuda --model resnet18 --image-size 256 --batch 256 \
  --steps 12 --rounds 5 --chunk 12 --warmup 2 --png-dir "$PNG"
step train_vit_b_32_256 100 benchmarks/train_throughput.py --device cuda --model vit_b_32 --image-size 256 --batch 256 \
  --steps 12 --rounds 5 --chunk 12 --warmup 2 --png-dir "$PNG"
step infer_resnet18_256 80 benchmarks/infer_throughput.py --device cuda --model resnet18 --image-size 256 --batch 256 \
  --steps 12 --rounds 5 --warmup 2 --png-dir "$PNG"
# the same on 2 of the machine's cores: does pinning each host batch become the limit on a small host?
step infer_resnet18_256_2cpus 100 benchmarks/infer_throughput.py --device cuda --model resnet18 --image-size 256 \
  --batch 256 --steps 12 --rounds 5 --warmup 2 --cpus 2 --png-dir "$PNG"
step knn_cuda 90 benchmarks/knn_scale.py --device cuda \
  --cases 10000x200x512,10000x200x4096,100000x10000x512,1000000x10000x512,100000x100000x512,1000000x100000x512
step membership_agreement 120 benchmarks/membership.py --agreement --device cuda
step membership_timing 150 benchmarks/membership.py --timing --device cuda
step train_resnet18_256_compiled 120 benchmarks/train_throughput.py --device cuda --model resnet18 --image-size 256 \
  --batch 256 --steps 12 --rounds 3 --chunk 12 --warmup 2 --compile --png-dir "$PNG"
echo "gpu_all: done in ${SECONDS}s; results in $OUT${FAILED:+; failed:$FAILED (see their .err)}" | tee -a "$OUT/summary.txt"
[[ -z "$FAILED" ]]  # a failed step fails the run, so a rehearsal cannot pass by scrolling past a traceback
