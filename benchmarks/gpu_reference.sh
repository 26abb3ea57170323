#!/usr/bin/env bash
# Reference live runs on a real GPU, written as JSON files into $1 (default: data/measurements/new).
# Each run is `python -m kvdash.live ... --json`: measured numbers only, never edited by hand.
# Usage: KVDASH_COMMIT=$(git rev-parse HEAD) benchmarks/gpu_reference.sh OUT_DIR
set -uo pipefail
out="${1:-data/measurements/new}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
echo "${KVDASH_COMMIT:-unknown}" > "$out/code_commit.txt"  # the kvdash commit these runs measured
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/nvidia-smi.csv" 2>&1
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)" > "$out/versions.txt"
run() {  # name, then kvdash.live arguments
  local name=$1; shift
  echo "== $name: $*"
  timeout 240 python3 -m kvdash.live "$@" --device cuda --json --no-store > "$out/$name.json" 2> "$out/$name.err" \
    && python3 -c "import json,sys; from kvdash.live.__main__ import summary; print(summary(json.load(open(sys.argv[1]))))" "$out/$name.json" \
    || { echo "FAILED: $name"; tail -5 "$out/$name.err"; }
}
run 1b-b1-ctx4096-eager --shape 1b --batch 1 --prompt 4032 --new 64
run 1b-b1-ctx4096-graph --shape 1b --batch 1 --prompt 4032 --new 64 --graph
run 1b-b1-ctx4096-compile-graph --shape 1b --batch 1 --prompt 4032 --new 64 --graph --compile
run 1b-b16-ctx2048-graph --shape 1b --batch 16 --prompt 1984 --new 64 --graph
run small-b8-ctx1152-eager --shape small --batch 8 --prompt 1024 --new 128
run gemma2-9b-4layers-window-graph --preset gemma-2-9b --layers 4 --batch 2 --prompt 6000 --new 32 --graph
run llama31-8b-8layers-b4-graph --preset llama-3.1-8b --layers 8 --batch 4 --prompt 8000 --new 32 --graph
# Eager (CPU-launch-bound) steps vary between sessions: the small shape's graph run separates its GPU time
# from launch time, and the 1B eager run repeated last shows the drift within one session.
run small-b8-ctx1152-graph --shape small --batch 8 --prompt 1024 --new 128 --graph
run 1b-b1-ctx4096-eager-repeat --shape 1b --batch 1 --prompt 4032 --new 64
