#!/usr/bin/env bash
# Every GPU figure of docs/performance.md, in one run (about 10 minutes on one H100):
# training throughput of both paper architectures at 384 px, batch 64, bf16,
# channels_last, compiled, with the projected paper grid; GPU peak memory at
# batch 64. Each script's JSON goes to ${OUT:-benchmarks/out}/<name>.json and
# is echoed, so a short-lived GPU machine only has to run this once.
#
#   bash benchmarks/gpu.sh            # after scripts/install
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(0))"

run() {  # name, then the module and its arguments
  local name=$1; shift
  echo "== $name" >&2
  "$PY" -m "$@" --json | tee "$OUT/$name.json"
}

run train_convnextv2 benchmarks.train_throughput --arch convnextv2 --img-size 384 --batch-size 64 \
  --device cuda --compile --steps 30 --warmup 10 --studies 64 --rounds 2
CNX=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['end_to_end_img_s'])" "$OUT/train_convnextv2.json")
run train_swin benchmarks.train_throughput --arch swin --img-size 384 --batch-size 64 \
  --device cuda --compile --steps 30 --warmup 10 --studies 64 --rounds 2 \
  --paper-grid --other-arch-img-s "$CNX"
run memory benchmarks.memory --parts cuda
