"""tools/: the script that trained the shipped AirNet pair, run end to end on a tiny synthetic archive (CPU)."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import senet
from conftest import ROOT, make_folder_dataset


@pytest.mark.slow
def test_train_pair_script_trains_both_models_with_one_recipe_and_exports_them(tmp_path: Path) -> None:
    source = make_folder_dataset(tmp_path / "source" / "cifar10-jpeg", per_class=20)
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar10-jpeg")
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PY=sys.executable, OUT=str(out), ARCHIVE=str(archive),
               DATA_ROOT=str(tmp_path / "data"), RUNS=str(tmp_path / "runs"), LIMIT="400", CAP="10",
               OMP_NUM_THREADS="1", EXTRA="--width 1 --batch-size 16 --val-size 6 --device cpu")
    result = subprocess.run(["bash", str(ROOT / "tools" / "train_pair_on_gpu.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "epochs: 10" in result.stdout, "the probe leaves time for more, so CAP decides"

    (_, se), (_, plain) = (senet.load_checkpoint(out / f"{name}.pt") for name in ("se_airnet", "airnet"))
    differing = {k for k in se["config"] if k != "model" and se["config"][k] != plain["config"][k]}
    assert not differing, f"the twin must share the recipe; differs in {sorted(differing)}"
    assert se["config"]["epochs"] == 10 and se["config"]["cutout"] == 10 and se["config"]["se_weight_decay"] == 0
    assert se["weights_dtype"] == plain["weights_dtype"] == "float16"
    assert "JPEG q75" in se["dataset"] and se["val_acc_tta"] is not None and plain["val_acc_tta"] is not None
    with tarfile.open(out / "runs.tgz") as tar:
        names = set(tar.getnames())
    assert {"gpu-w2e10-se_airnet/metrics.jsonl", "gpu-w2e10-airnet/status.json", "run/status.json"} <= names
    assert not [n for n in names if n.endswith(".pt")], "the run archive leaves the checkpoints out"
