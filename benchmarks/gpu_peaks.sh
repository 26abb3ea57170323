#!/usr/bin/env bash
# Issue #10's GPU measurements in one command, for a session with an NVIDIA GPU (about 10 minutes on an H100/H200):
#   1. Hugging Face generate()'s peak, published widths (2 layers), 7 architectures x 4 shapes (3 prefills,
#      one where 1,024 decode steps decide the peak) x sdpa/eager (benchmarks/measure_peaks.py --scale real), into $1/peaks/<date>-<gpu>-hf/;
#   2. kvdash's own live decoder on the architectures it runs (dense GQA, MQA, sliding, hybrid sliding/full
#      with soft-capping), 3 shapes each, into $1/live/.
# Then commit $1/peaks/* under data/measurements/peaks/ and run benchmarks/score_peaks.py on it.
# Needs torch with CUDA and transformers (pip install -r requirements-dev.txt).
set -uo pipefail
out="${1:-data/measurements/new}"
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())" 2>/dev/null || echo gpu)
peaks="$out/peaks/$(date +%F)-$gpu-hf"
mkdir -p "$peaks" "$out/live"
export PYTHONUNBUFFERED=1
timeout 480 python3 benchmarks/measure_peaks.py "$peaks" --device cuda --scale real || echo "peaks: incomplete"
for preset in llama-3.1-8b falcon-7b mistral-7b-v0.1 gemma-2-9b; do
  for shape in "1 2048" "1 8192" "4 4096"; do
    set -- $shape
    name="$preset-b$1-p$2"
    timeout 60 python3 -m kvdash.live --preset "$preset" --layers 2 --batch "$1" --prompt "$2" --new 8 \
      --device cuda --json --no-store > "$out/live/$name.json" 2> "$out/live/$name.err" || echo "FAILED: $name"
  done
done
