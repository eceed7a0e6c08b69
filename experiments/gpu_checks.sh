#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md, in time-boxed steps (STEPS below picks them; one call runs at most 10 minutes).
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
# STEPS picks the steps (all of them take more than one 10-minute call); the first GPU session
# (H100, 2026-11-27, experiments/results/gpu_h100_2026-11-27/) measured epoch, dada, pba_throughput,
# pba_search, meta_cost and augment; the next one should run the steps not yet measured, in two
# calls (boxes of 580 s and 420 s; about 360 s and 400 s expected, from the first session's timings, so
# both fit one session's 15 device minutes with their start-ups; give the first call timeout_s 600):
#   STEPS="epoch_graphs train_graphs pba_search_bf16 pba_throughput_bf16 meta_cost_compiled" bash experiments/gpu_checks.sh
#   STEPS="dada_quality" bash experiments/gpu_checks.sh
STEPS=${STEPS:-"epoch epoch_graphs train_graphs dada pba_throughput pba_throughput_bf16 pba_search pba_search_bf16 meta_cost meta_cost_compiled augment dada_quality"}
want() { [[ " $STEPS " == *" $1 "* ]]; }
# epoch: ResNet-32 epoch on CIFAR-10-sized data, bf16 + channels-last (goal: 2.5 s on an H200)
want epoch && run 75 python3 experiments/bench_epoch.py --device cuda --epochs 3
# epoch_graphs: the same with CUDA graphs (torch.compile reduce-overhead) and fused SGD: the eager step is
# bound by the host's kernel launches (probe: 12.8-16.5 ms a step, as long as the host takes to issue it)
want epoch_graphs && run 100 python3 experiments/bench_epoch.py --device cuda --epochs 3 --compile reduce-overhead --fused
# train_graphs: the library's own run (autodata train) eager and with --compile reduce-overhead, ResNet-32 on the
# 9,000-image subset, bf16: the per-epoch seconds side by side (the CUDA-graph path of TrainConfig.compile on a GPU)
if want train_graphs; then for c in none reduce-overhead; do
run 110 python3 -m autodata.cli train --dataset npz --data-root "$D" --model resnet32 --crop-padding 4 --flip --epochs 4 \
    --device cuda --precision bf16 --compile $c --out "$OUT/train_$c"
done; fi
# dada: DADA search, the anchors' setting (goal: 2 minutes on an H200)
want dada && run 150 python3 experiments/search_policy.py --dataset npz --data-root "$D" --n-train 4000 --meta-per-class 200 \
    --model wrn_40_2 --epochs 20 --device cuda --out "$OUT/dada_reduced_cifar10_gpu.json"
# pba_throughput: PBA population throughput, WRN-40-2, 16 members
want pba_throughput && run 80 python3 experiments/pba_throughput.py --device cuda --model wrn_40_2 --population 16 --steps 10 \
    --rounds 2 --engines loop,grouped,vmap
# pba_throughput_bf16: the loop and vmap engines in fp32 and bf16, interleaved (the bf16 gain per engine)
want pba_throughput_bf16 && run 100 python3 experiments/pba_throughput.py --device cuda --model wrn_40_2 --population 16 \
    --steps 10 --rounds 2 --engines loop,vmap --precision fp32,bf16
# pba_search: PBA search, the paper's setting (200 epochs, population 16), time-boxed: its per-epoch lines give the cost
want pba_search && run 90 python3 -m autodata.cli search schedule --dataset npz --data-root "$D" --n-train 9000 \
    --val-per-class 500 --model wrn_40_2 --epochs 200 --lr 0.1 --weight-decay 5e-4 --batch-size 128 --population 16 \
    --interval 3 --engine auto --device cuda --out "$OUT/pba_searched_rcifar10_wrn40_2.json"
# pba_search_bf16: the same search in bf16 (members' forwards under autocast, float32 state), time-boxed: its
# per-epoch lines against pba_search's give the bf16 gain (a "cannot be trained by the vmap engine" warning: it fell back)
want pba_search_bf16 && run 90 python3 -m autodata.cli search schedule --dataset npz --data-root "$D" --n-train 9000 \
    --val-per-class 500 --model wrn_40_2 --epochs 200 --lr 0.1 --weight-decay 5e-4 --batch-size 128 --population 16 \
    --interval 3 --engine auto --device cuda --precision bf16 --out "$OUT/pba_searched_rcifar10_wrn40_2_bf16.json"
# meta_cost: meta-step cost, ResNet-32 batch 100, bf16 autocast and fp32
if want meta_cost; then for p in bf16 fp32; do
run 60 python3 experiments/bench_meta_cost.py --device cuda --model resnet32 --batch-size 100 --steps 10 --rounds 3 \
    --every 3 --precision $p --only plain,original,jvp,jvp-online,exact,fd,online,last,jvp-online/3
done; fi
# meta_cost_compiled: the same with a torch.compile'd model, fp32 (exact and last take it since 2026-11-27: their
# differentiated forwards run the plain module; the first session saw them refuse)
want meta_cost_compiled && run 70 python3 experiments/bench_meta_cost.py --device cuda --model resnet32 --batch-size 100 \
    --steps 6 --rounds 2 --every 3 --precision fp32 --compile --only plain,online,jvp-online,last,exact,jvp
# augment: batched augmentation throughput (goal: 500,000 images/s on an H200)
want augment && run 60 python3 experiments/bench_augment_speed.py --device cuda --n 262144 --batch-size 65536 \
    --n-per-image 1000 --repeats 2 --workers 0
# dada_quality: the GPU-searched policy against crop/flip, TrivialAugment and RandAugment, WRN-40-2 retrained on
# reduced CIFAR-10 (4,000 images), 60 epochs, seed 0, the subset's 2,000 test images (issue #8's goal 2 on a GPU)
want dada_quality && run 420 python3 experiments/augment_quality.py --dataset npz --data-root "$D" --model wrn_40_2 \
    --n-train 4000 --n-test 2000 --epochs 60 --device cuda --eval-every 20 \
    --policies identity,dada_reduced_cifar10_wrn40_2,trivialaugment,randaugment --out "$OUT/dada_quality.json"
echo "== done at ${SECONDS}s" | tee -a "$LOG"
