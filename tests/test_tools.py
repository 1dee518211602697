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


def _make_sample_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "tools" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_sample_draws_per_class_from_the_validation_split_names_each_file_and_is_reproducible(
        tmp_path: Path) -> None:
    import numpy as np

    from senet.data import image_to_uint8, load_sample, load_split, open_image

    make_sample = _make_sample_module()
    source = make_folder_dataset(tmp_path / "ds", per_class=20)
    spec = f"folder:{source}"
    outs = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for out in outs:
        assert make_sample.main(["--data", spec, "--data-dir", str(tmp_path / "cache"), "--per-class", "4",
                                 "--val-size", "0.5", "--split-seed", "1", "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes(), "the same draw gives the same bytes"
    val = load_split(spec, "val", tmp_path / "cache", val_size=0.5, split_seed=1)
    sample = load_sample(outs[0])
    with np.load(outs[0]) as z:
        files, val_index, source_index = list(z["files"]), z["val_index"], z["source_index"]
    assert sample.labels.bincount().tolist() == [4, 4, 4] and len(sample) == 12
    assert set(source_index.tolist()) <= set(val.indices.tolist()), "only held-out images are drawn"
    assert (sample.images.numpy() == val.images[val_index].numpy()).all()
    for i, name in enumerate(files):
        assert (image_to_uint8(open_image(source / name), (32, 32)) == sample.images[i]).all(), name
    assert make_sample.main(["--data", spec, "--data-dir", str(tmp_path / "cache"), "--per-class", "11",
                             "--val-size", "0.5", "--out", str(tmp_path / "c.npz")]) == 2, "only 10 per class held out"


@pytest.mark.slow
def test_make_sample_rebuilds_the_bundled_sample_byte_for_byte(real_data: Path, tmp_path: Path) -> None:
    from senet.data import SAMPLE_FILE

    make_sample = _make_sample_module()
    data_dir = Path(os.environ.get("SENET_TEST_CACHE", "/tmp/senet-test-data")) / "senet-data-dir"
    out = tmp_path / "sample.npz"
    assert make_sample.main(["--data", f"folder:{real_data}", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert out.read_bytes() == SAMPLE_FILE.read_bytes(), "tools/make_sample.py no longer gives the shipped sample"
