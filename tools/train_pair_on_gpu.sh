#!/bin/bash
# How the shipped se_airnet.pt / airnet.pt pair was trained (checkpoints/README.md): on a machine with one GPU,
# from the repo root, train SE-AirNet (width 2) and its plain twin side by side with `python -m senet train`,
# for as many epochs (the same for both, a multiple of 10, at most CAP) as a one-epoch probe says fit in LIMIT
# seconds, then export both --half into $OUT. ARCHIVE is the development data (cifar10-jpeg-train.tar.gz),
# unpacked under DATA_ROOT; runs go under RUNS; EXTRA adds train options (e.g. "--seed 1"). Used 2026-11-28 through the project's
# device tool (an NVIDIA H200), with LIMIT=510 CAP=80 OMP_NUM_THREADS=4 and the archive carried in .devrun/.
set -u
T0=$(date +%s)
LIMIT=${LIMIT:-540}
CAP=${CAP:-80}
EXTRA=${EXTRA:-}
ARCHIVE=${ARCHIVE:-.devrun/cifar10-jpeg-train.tar.gz}
PY=${PY:-python3}
DATA_ROOT=${DATA_ROOT:-/work/data}
RUNS=${RUNS:-runs}
PROBE=$(mktemp -d)
trap 'rm -rf "$PROBE"' EXIT
: "${OUT:?set OUT to a folder for the exported checkpoints and logs}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
el() { echo $(( $(date +%s) - T0 )); }
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc;
 $PY -c "import torch,torchvision;print('torch',torch.__version__,torchvision.__version__,'cuda',torch.cuda.is_available())") | tee $OUT/env.txt
mkdir -p $DATA_ROOT && tar xzf "$ARCHIVE" -C $DATA_ROOT || exit 1
D=folder:$DATA_ROOT/cifar10-jpeg
COMMON=(--recipe fast --width 2 --crop-pad 4 --cutout 10 --se-weight-decay 0 --data $D
        --dataset-name "CIFAR-10 (JPEG q75 copy), 45,000 train / 5,000 val" --seed 0 --no-progress $EXTRA)
$PY -c "from senet.data import load_split; print(len(load_split('$D','train')))" || exit 1
echo "[$(el)s] decoded"
t=$(date +%s)
$PY -m senet train --model se_airnet "${COMMON[@]}" --epochs 1 --run-dir $PROBE/run > $OUT/probe.log 2>&1 || { tail -30 $OUT/probe.log; exit 1; }
probe_wall=$(( $(date +%s) - t ))
E=$($PY - "$PROBE/run/status.json" "$probe_wall" "$(el)" "$LIMIT" "$CAP" <<'PYEOF'
import json, sys
wall, now, limit, cap = (float(a) for a in sys.argv[2:])
s = json.load(open(sys.argv[1]))
epoch_s = s["elapsed_s"]; startup = max(wall - epoch_s, 5)
left = limit - now - 60 - startup  # 60 s for exports
e = int(left / (2.0 * 1.15 * epoch_s))  # two runs share the GPU: assume each runs at half speed
e = max(e - e % 10, 0) if e >= 20 else e
print(min(e, int(cap)))
print(f"probe: {epoch_s:.1f} s per epoch alone, {startup:.0f} s start-up, {s.get('images_per_s')} img/s, {left:.0f} s left -> {min(e, int(cap))} epochs", file=sys.stderr)
PYEOF
)
echo "[$(el)s] epochs: $E"
[ "$E" -ge 10 ] || { echo "too slow for a useful run"; exit 1; }
for m in se_airnet airnet; do
  rm -rf $RUNS/gpu-w2e$E-$m
  $PY -m senet train --model $m "${COMMON[@]}" --epochs $E --run-dir $RUNS/gpu-w2e$E-$m > $OUT/train-$m.log 2>&1 &
done
while [ -n "$(jobs -rp)" ]; do
  if [ $(el) -gt $(( LIMIT - 45 )) ]; then echo "[$(el)s] out of time: SIGTERM"; kill -TERM $(jobs -rp); wait; break; fi
  sleep 5
done
echo "[$(el)s] trained"
for m in se_airnet airnet; do
  tail -3 $OUT/train-$m.log
  $PY -c "import json;s=json.load(open('$RUNS/gpu-w2e$E-$m/status.json'));print('$m',s['state'],s['epoch'],s['best_val_acc'],round(s['elapsed_s']),s.get('images_per_s'))"
  [ -f $RUNS/gpu-w2e$E-$m/best.pt ] && $PY -m senet export --checkpoint $RUNS/gpu-w2e$E-$m/best.pt --out $OUT/$m.pt --half --force
done
tar czf $OUT/runs.tgz --exclude='*.pt' -C $RUNS gpu-w2e$E-se_airnet gpu-w2e$E-airnet -C $PROBE run/status.json run/metrics.jsonl

echo "[$(el)s] done"; ls -la $OUT
