#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md in one device call (about 8 minutes on an H100/H200).
# Here, first:  AUTODATA_DATA=../shared/data python experiments/make_device_subset.py
# Then run this script on the device machine with carry [".devdata"]; outputs land in $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu}; mkdir -p "$OUT"
python3 -m pip install -q -e . 2>&1 | tail -1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
run() { echo "== $*"; timeout 240 "$@"; }
run python3 experiments/bench_epoch.py --device cuda --epochs 3 2>&1 | tee "$OUT/epoch.txt"
run python3 experiments/bench_meta_cost.py --device cuda --steps 20 --rounds 5 2>&1 | tee "$OUT/meta_cost.txt"
run python3 experiments/bench_augment_speed.py --device cuda --n 1000000 --batch-size 65536 --workers 0 2>&1 | tee "$OUT/augment_speed.txt"
run python3 experiments/search_policy.py --dataset npz --data-root .devdata/cifar10.npz --n-train 4000 --meta-per-class 200 \
    --model wrn_40_2 --epochs 20 --device cuda --out "$OUT/dada_reduced_cifar10_gpu.json" 2>&1 | tee "$OUT/search.txt"
run autodata train --dataset npz --data-root .devdata/cifar10.npz --model resnet32 --crop-padding 4 --flip \
    --epochs 3 --device cuda --precision bf16 --quiet --out "$OUT/train_resnet32" 2>&1 | tee "$OUT/train.txt"
run python3 experiments/pba_throughput.py --device cuda --model wrn_40_2 --population 16 --steps 20 2>&1 | tee "$OUT/pba_throughput.txt"
