#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md that fits one device call (about 9 minutes on an H100/H200).
# Here, first (the shared data and the package registries do not reach the GPU machine):
#   AUTODATA_DATA=../shared/data python experiments/make_device_subset.py --n-train 9000 --n-test 2000
#   wheels of what its image lacks, into .whl (git-ignored): kornia, kornia_rs, optuna, alembic,
#   sqlalchemy, mako, colorlog (see the device README for the pip download line, Python 3.12)
# Then run this script there with carry [".devdata", ".whl"]; everything lands in $OUT: one log
# (gpu_log.txt, each line timed) and the files the searches write. Each step has its own time box,
# most important first, so that a slow step costs only itself.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu}; mkdir -p "$OUT"
LOG="$OUT/gpu_log.txt"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PWD:/tmp/site"
else
    python3 -m pip install -q -e . 2>&1 | tail -1
fi
stamp() { while IFS= read -r line; do printf '%6ds %s\n' "$SECONDS" "$line"; done; }
run() { local t=$1; shift; echo "== [$t s box] $*" | stamp | tee -a "$LOG"; timeout -k 5 "$t" "$@" 2>&1 | stamp | tee -a "$LOG"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee -a "$LOG"
D=".devdata/cifar10.npz"
# 1. ResNet-32 epoch on CIFAR-10-sized data, bf16 + channels-last (goal: 2.5 s on an H200)
run 75 python3 experiments/bench_epoch.py --device cuda --epochs 3
# 2. DADA search, the anchors' setting (goal: 2 minutes on an H200)
run 150 python3 experiments/search_policy.py --dataset npz --data-root "$D" --n-train 4000 --meta-per-class 200 \
    --model wrn_40_2 --epochs 20 --device cuda --out "$OUT/dada_reduced_cifar10_gpu.json"
# 3. PBA population throughput, WRN-40-2, 16 members
run 80 python3 experiments/pba_throughput.py --device cuda --model wrn_40_2 --population 16 --steps 10 --rounds 2 \
    --engines loop,grouped,vmap
# 4. PBA search, the paper's setting (200 epochs, population 16), time-boxed: its per-epoch lines give the cost
run 90 python3 -m autodata.cli search schedule --dataset npz --data-root "$D" --n-train 9000 --val-per-class 500 \
    --model wrn_40_2 --epochs 200 --lr 0.1 --weight-decay 5e-4 --batch-size 128 --population 16 --interval 3 \
    --engine auto --device cuda --out "$OUT/pba_searched_rcifar10_wrn40_2.json"
# 5. Meta-step cost, ResNet-32 batch 100, bf16 autocast and fp32
for p in bf16 fp32; do
run 60 python3 experiments/bench_meta_cost.py --device cuda --model resnet32 --batch-size 100 --steps 10 --rounds 3 \
    --every 3 --precision $p --only plain,original,jvp,jvp-online,exact,fd,online,last,jvp-online/3
done
# 6. Batched augmentation throughput (goal: 500,000 images/s on an H200)
run 40 python3 experiments/bench_augment_speed.py --device cuda --n 1000000 --batch-size 65536 --workers 0
echo "== done at ${SECONDS}s" | tee -a "$LOG"
