#!/bin/bash
# Issue 19's GPU figures in one device call, from the repo root of a machine with one GPU:
#   1. parity at full size: the reference airbench94 (PyPI airbench 0.1.8, as published: CUDA, half precision)
#      and the project's airbench94 and fast recipes, SEEDS (5 by default), EPOCHS (12, as on the CPU), on the
#      45,000 training images of the CIFAR-10 JPEG q75 copy, scored on its 5,000 held-out images
#      (benchmarks/reference_airbench.py; its rows give each side's images/s on this GPU);
#   2. the `long` recipe's pair (SE-AirNet and plain AirNet, width 2, 40 epochs, seed 0) side by side, stopped
#      with SIGTERM LIMIT seconds after the start if not done (a stopped run resumes with `senet train --resume`),
#      each best.pt exported --half into $OUT.
# The device has no internet: carry the archive (ARCHIVE) and airbench's wheel (.whl/airbench-0.1.8-*.whl,
# from `pip download --no-deps airbench==0.1.8 -d .whl`). Results land in $OUT: env.txt, parity-gpu.json,
# parity.log, train-*.log, status-*.json, *.pt (SKIP_PARITY=1: the pair only). Tested on the CPU at tiny size:
#   LIMIT=900 OUT=/tmp/out DATA_ROOT=/work/data SKIP_UNPACK=1 TRAIN_IMAGES=1024 EPOCHS=1 SEEDS=0 LONG_EPOCHS=1 \
#   LONG_LIMIT_IMAGES=1024 PY=.venv/bin/python bash tools/gpu_issue19.sh
set -u
T0=$(date +%s)
: "${OUT:?set OUT to a folder for the results}"
LIMIT=${LIMIT:-540}
PY=${PY:-python3}
ARCHIVE=${ARCHIVE:-.devrun/cifar10-jpeg-train.tar.gz}
DATA_ROOT=${DATA_ROOT:-/tmp/data}
RUNS=${RUNS:-runs/gpu19}
SEEDS=${SEEDS:-0 1 2 3 4}
EPOCHS=${EPOCHS:-12}
TRAIN_IMAGES=${TRAIN_IMAGES:-45000}
LONG_EPOCHS=${LONG_EPOCHS:-40}
LONG_LIMIT_IMAGES=${LONG_LIMIT_IMAGES:-0}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
el() { echo $(( $(date +%s) - T0 )); }
if ls .whl/airbench-*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/airbench-*.whl && export PYTHONPATH=/tmp/site || exit 1
fi
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc;
 $PY -c "import torch,torchvision,airbench;print('torch',torch.__version__,torchvision.__version__,'cuda',torch.cuda.is_available())") \
  | tee $OUT/env.txt || exit 1
if [ -z "${SKIP_UNPACK:-}" ]; then mkdir -p $DATA_ROOT && tar xzf "$ARCHIVE" -C $DATA_ROOT || exit 1; fi
FOLDER=$DATA_ROOT/cifar10-jpeg
NAME="CIFAR-10 (JPEG q75 copy), 45,000 train / 5,000 val"
echo "[$(el)s] parity"
[ -n "${SKIP_PARITY:-}" ] || timeout -k 30 $(( LIMIT * 45 / 100 )) $PY benchmarks/reference_airbench.py --folder $FOLDER --data-dir $DATA_ROOT/cache \
  --train-images $TRAIN_IMAGES --epochs $EPOCHS --seeds $SEEDS --recipes airbench94 fast \
  --results $OUT/parity-gpu.json --work $RUNS/parity > $OUT/parity.log 2>&1
rc=$?; echo "[$(el)s] parity ended (exit $rc; 124: its share of LIMIT ran out)"; tail -n 12 $OUT/parity.log
for m in se_airnet airnet; do
  rm -rf $RUNS/long-$m
  $PY -m senet train --model $m --recipe long --epochs $LONG_EPOCHS --train-limit $LONG_LIMIT_IMAGES \
    --data folder:$FOLDER --data-dir $DATA_ROOT/cache --dataset-name "$NAME" --seed 0 --no-progress \
    --run-dir $RUNS/long-$m > $OUT/train-$m.log 2>&1 &
done
while [ -n "$(jobs -rp)" ]; do
  if [ $(el) -gt $(( LIMIT - 40 )) ]; then echo "[$(el)s] out of time: SIGTERM"; kill -TERM $(jobs -rp); wait; break; fi
  sleep 5
done
echo "[$(el)s] long pair trained"
for m in se_airnet airnet; do
  cp $RUNS/long-$m/status.json $OUT/status-$m.json 2>/dev/null
  $PY -c "import json;s=json.load(open('$RUNS/long-$m/status.json'));print('$m',s['state'],s['epoch'],s['best_val_acc'],round(s['elapsed_s']),s.get('images_per_s'))"
  [ -f $RUNS/long-$m/best.pt ] && $PY -m senet export --checkpoint $RUNS/long-$m/best.pt --out $OUT/$m.pt --half --force
done
echo "[$(el)s] done"
