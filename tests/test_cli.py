"""``python -m senet``: one-line usage errors with exit 2 and nothing written; evaluate, info, excite, export."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

import senet
from conftest import make_folder_dataset, senet_cli
from senet.cli import main
from senet.training.runs import write_status

SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def call(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> set[str]:
    """Every path under ``root``, except the decoded-data cache (checking a valid dataset may fill it)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".senet-cache" not in p.parts
            and not (p.name == "data" and (p / ".senet-cache").is_dir())}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory (so default runs/ and data/ would show up here) and a tiny dataset beside it."""
    work = tmp_path / "work"
    work.mkdir()
    make_folder_dataset(tmp_path / "tiny", per_class=6)
    monkeypatch.chdir(work)
    return work


def _one_class_folder(tmp_path: Path) -> str:
    make_folder_dataset(tmp_path / "one", classes=("only",), per_class=4)
    return f"folder:{tmp_path / 'one'}"


def _empty_class_folder(tmp_path: Path) -> str:
    make_folder_dataset(tmp_path / "holes", per_class=4)
    (tmp_path / "holes" / "train" / "empty").mkdir()
    return f"folder:{tmp_path / 'holes'}"


BAD_TRAIN_ARGS = [
    (["--model", "resnet21"], "unknown model 'resnet21'"),
    (["--data", "imagenet"], "unknown dataset 'imagenet'"),
    (["--data", "folder:/no/such/place"], "no such directory"),
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--epochs", "-3"], "epochs must be a positive integer"),
    (["--epochs", "nan"], "argument --epochs: invalid int value"),
    (["--lr", "nan"], "lr must be a positive number"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--lr", "-1"], "lr must be a positive number"),
    (["--batch-size", "0"], "batch_size must be a positive integer"),
    (["--batch-size", "-8"], "batch_size must be a positive integer"),
    (["--batch-size", "1000"], "larger than the"),
    (["--model", "se_resnet20", "--reduction", "0"], "reduction must be a positive integer"),
    (["--model", "se_resnet20", "--reduction", "17"], "larger than the narrowest SE stage (16 channels)"),
    (["--model", "se_airnet", "--reduction", "65"], "larger than the narrowest SE stage (64 channels)"),
    (["--recipe", "turbo"], "unknown recipe 'turbo'"),
    (["--schedule", "exponential"], "schedule must be one of"),
    (["--val-size", "0"], "val_size 0 trains on every training image and scores the run on the test split, but"),
    (["--val-size", "-1"], "val_size"),
    (["--val-size", "2.5"], "val_size"),
    (["--train-limit", "-1"], "train_limit"),
    (["--seed", "-1"], "seed must be a non-negative integer"),
    (["--cutout", "20"], "cutout must be an integer in 0..16"),
    (["--crop-pad", "-2"], "crop_pad must be an integer in 0..16"),
]


@pytest.mark.parametrize("extra, message", BAD_TRAIN_ARGS, ids=[" ".join(a) for a, _ in BAD_TRAIN_ARGS])
def test_invalid_train_arguments_give_one_line_exit_2_and_write_nothing(workdir: Path, capsys, extra, message) -> None:
    before = snapshot(workdir.parent)
    args = ["train", "--model", "resnet20", "--data", f"folder:{workdir.parent / 'tiny'}", "--epochs", "1",
            "--batch-size", "4", "--val-size", "3", "--run-dir", str(workdir / "run"), *extra]
    code, out, err = call(capsys, *args)
    assert code == 2, f"expected exit 2, got {code}: {err}"
    assert len(err.strip().splitlines()) == 1, f"expected one line on stderr, got:\n{err}"
    assert message in err and "error" in err, f"expected {message!r} in {err!r}"
    assert snapshot(workdir.parent) == before, "an invalid command must not write anything"


@pytest.mark.parametrize("make_spec, message", [(_one_class_folder, "only one class"),
                                                (_empty_class_folder, "class folder 'empty' has no readable images")])
def test_unusable_folders_are_usage_errors_before_a_run_directory_exists(workdir: Path, capsys, make_spec,
                                                                        message) -> None:
    spec = make_spec(workdir.parent)
    code, _, err = call(capsys, "train", "--model", "resnet20", "--data", spec, "--data-dir", str(workdir.parent / "c"),
                        "--run-dir", str(workdir / "run"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (workdir / "run").exists()


def test_existing_run_directory_without_resume_is_refused_untouched(workdir: Path, capsys) -> None:
    run_dir = workdir / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    code, _, err = call(capsys, "train", "--model", "resnet20", "--data", f"folder:{workdir.parent / 'tiny'}",
                        "--run-dir", str(run_dir))
    assert code == 2 and "already exists; use --resume" in err
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.jsonl"]
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert not (workdir / "data").exists(), "the dataset is not even loaded"


def test_resume_refuses_a_missing_run_a_changed_setting_and_a_live_run(workdir: Path, capsys) -> None:
    code, _, err = call(capsys, "train", "--resume", str(workdir / "nope"))
    assert code == 2 and "no readable config.json" in err
    run_dir = workdir / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"model": "resnet20", "recipe": "fast", "lr": 0.05}))
    (run_dir / "last.pt").write_bytes(b"x")
    code, _, err = call(capsys, "train", "--resume", str(run_dir), "--lr", "0.1")
    assert code == 2 and "only --epochs can change on resume" in err
    write_status(run_dir, state="running", pid=os.getpid())
    code, _, err = call(capsys, "train", "--resume", str(run_dir))
    assert code == 2 and "still running" in err and len(err.strip().splitlines()) == 1


def test_unknown_subcommand_and_option_are_one_line_errors(capsys) -> None:
    for argv in (["fly"], ["train", "--speed", "9"], ["evaluate"]):
        code, _, err = call(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, f"{argv}: {err}"


# --------------------------------------------------------------------------- evaluate, info, excite
@pytest.fixture
def folder_checkpoint(tmp_path: Path) -> Path:
    """An untrained se_resnet20 whose classes are make_folder_dataset's, in folder (sorted) order."""
    import torch

    from senet import create_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "folder.pt"
    save_checkpoint(path, create_model("se_resnet20", num_classes=3), model_name="se_resnet20",
                    model_options={"num_classes": 3, "reduction": 16}, classes=("blue", "green", "red"), val_acc=0.5)
    return path


def test_evaluate_json_reports_accuracy_confusion_classes_and_n(tmp_path: Path, folder_checkpoint: Path, capsys) -> None:
    make_folder_dataset(tmp_path / "ds", per_class=10)
    code, out, err = call(capsys, "evaluate", "--checkpoint", str(folder_checkpoint), "--data", f"folder:{tmp_path / 'ds'}",
                          "--data-dir", str(tmp_path), "--split", "train", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {"accuracy", "confusion_matrix", "classes", "n"} <= result.keys()
    cm = result["confusion_matrix"]
    assert result["n"] == 27 and sum(map(sum, cm)) == 27, "train split: 30 images minus the 3 held out"
    assert result["classes"] == ["blue", "green", "red"] and len(cm) == 3
    assert sum(cm[i][i] for i in range(3)) / 27 == pytest.approx(result["accuracy"])
    assert [sum(row) for row in cm] == [9, 9, 9], "rows are the true classes (9 of each)"


def test_evaluate_prints_accuracy_and_per_class_table(tmp_path: Path, folder_checkpoint: Path, capsys) -> None:
    make_folder_dataset(tmp_path / "ds", per_class=10)
    code, out, _ = call(capsys, "evaluate", "--checkpoint", str(folder_checkpoint), "--data", f"folder:{tmp_path / 'ds'}",
                        "--data-dir", str(tmp_path))
    assert code == 0 and "accuracy" in out and "over 3 images" in out
    assert all(name in out for name in ("blue", "green", "red", "macro avg"))


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "missing.pt"], "no such checkpoint file"),
    (["--split", "test"], "has no test split"),
])
def test_evaluate_errors_are_one_line_exit_2(tmp_path: Path, folder_checkpoint: Path, capsys, argv, message) -> None:
    make_folder_dataset(tmp_path / "ds", per_class=4)
    base = ["evaluate", "--checkpoint", str(folder_checkpoint), "--data", f"folder:{tmp_path / 'ds'}",
            "--data-dir", str(tmp_path)]
    code, _, err = call(capsys, *base, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_evaluate_json_stdout_is_pure_json_from_a_real_process(tmp_path: Path, folder_checkpoint: Path) -> None:
    make_folder_dataset(tmp_path / "ds", per_class=4)
    proc = senet_cli("evaluate", "--checkpoint", str(folder_checkpoint), "--data", f"folder:{tmp_path / 'ds'}",
                     "--data-dir", str(tmp_path), "--split", "train", "--json", cwd=tmp_path, env=SINGLE_THREAD,
                     timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 11


def test_ablate_reports_every_block_and_all_blocks_as_json_and_as_a_table(tmp_path: Path, folder_checkpoint: Path,
                                                                          capsys) -> None:
    from senet.analysis.ablation import gate_ablation
    from senet.checkpoint import open_checkpoint
    from senet.data import load_split

    make_folder_dataset(tmp_path / "ds", per_class=10)
    base = ["ablate", "--checkpoint", str(folder_checkpoint), "--data", f"folder:{tmp_path / 'ds'}",
            "--data-dir", str(tmp_path), "--split", "train"]
    code, out, err = call(capsys, *base, "--json")
    assert code == 0, err
    result = json.loads(out)
    expected = gate_ablation(open_checkpoint(folder_checkpoint), load_split(f"folder:{tmp_path / 'ds'}", "train",
                                                                            tmp_path))
    assert result["n"] == 27 and result["baseline"] == pytest.approx(expected.baseline)
    assert result["rows"] == expected.rows
    assert [r["blocks"] for r in result["rows"]][-2:] == ["all", "all"] and len(result["rows"]) == 2 * 10
    code, out, _ = call(capsys, *base, "--per-class", "2")
    assert code == 0 and "6 images" in out and "stage3.block3" in out and "SE off (gate = 1)" in out
    assert out.strip().splitlines()[-1].split()[0] == "all"


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "missing.pt"], "no such checkpoint file"),
    (["--per-class", "0"], "--per-class 0: must be 1 or more"),
    (["--plain"], "no SE blocks"),
])
def test_ablate_errors_are_one_line_exit_2(tmp_path: Path, folder_checkpoint: Path, capsys, argv, message) -> None:
    import torch

    from senet import create_model, save_checkpoint

    make_folder_dataset(tmp_path / "ds", per_class=4)
    if argv == ["--plain"]:
        plain = tmp_path / "plain.pt"
        torch.manual_seed(0)
        save_checkpoint(plain, create_model("resnet20", num_classes=3), model_name="resnet20",
                        model_options={"num_classes": 3}, classes=("blue", "green", "red"))
        argv = ["--checkpoint", str(plain)]
    base = ["ablate", "--checkpoint", str(folder_checkpoint), "--data", f"folder:{tmp_path / 'ds'}",
            "--data-dir", str(tmp_path), "--split", "train"]
    code, _, err = call(capsys, *base, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_info_prints_the_model_card_of_a_model_and_a_checkpoint(tiny_checkpoint: Path, capsys) -> None:
    code, out, _ = call(capsys, "info", "--model", "se_resnet20")
    assert code == 0 and "SE parameters    2,016" in out and "= 2,016" in out, out
    code, out, _ = call(capsys, "info", "--checkpoint", str(tiny_checkpoint), "--json")
    card = json.loads(out)
    assert code == 0 and card["model"] == "se_resnet20" and card["se_params"] == 2016 and card["val_acc"] == 0.5
    code, out, _ = call(capsys, "info", "--list")
    assert "se_airnet" in out.split() and "seed_senet" in out.split()
    code, _, err = call(capsys, "info")
    assert code == 2 and "exactly one of" in err


def test_excite_prints_prediction_and_channel_extremes_per_se_block(tmp_path: Path, tiny_checkpoint: Path,
                                                                   capsys) -> None:
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (220, 10, 10)).save(image)
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    code, out, err = call(capsys, "excite", "--checkpoint", str(tiny_checkpoint), str(image), str(junk), "--top", "2")
    assert code == 1, "one of the two images failed"
    lines = out.splitlines()
    assert lines[0].startswith(f"{image}: ") and lines[0].split(": ")[1].split()[0] in ("red", "green", "blue")
    block_lines = [line for line in lines[1:] if "most:" in line and "least:" in line]
    assert len(block_lines) == 9, "se_resnet20 has nine SE blocks"
    assert all(line.split("most:")[1].count("#") == 4 for line in block_lines), "two most and two least excited"
    assert "junk.png" in err and "not an image" in err


def test_export_writes_a_half_precision_copy_and_reports_it(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "shipped" / "se_resnet20.pt"
    code, stdout, _ = call(capsys, "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--half")
    assert code == 0 and str(out) in stdout and "float16" in stdout
    _, meta = senet.load_checkpoint(out)
    assert meta["weights_dtype"] == "float16" and meta["val_acc"] == 0.5


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "{missing}", "--out", "{out}"], "no such checkpoint file"),
    (["--checkpoint", "{good}", "--out", "{existing}"], "already exists"),
    (["--checkpoint", "{good}", "--out", "{good}", "--force"], "source checkpoint itself"),
])
def test_export_errors_are_one_line_exit_2_and_keep_what_exists(tmp_path: Path, tiny_checkpoint: Path, capsys,
                                                                argv, message) -> None:
    existing = tmp_path / "existing.pt"
    existing.write_bytes(b"keep")
    before = tiny_checkpoint.read_bytes()
    paths = dict(missing=tmp_path / "nope.pt", out=tmp_path / "out.pt", good=tiny_checkpoint, existing=existing)
    code, _, err = call(capsys, "export", *[a.format(**paths) for a in argv])
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert existing.read_bytes() == b"keep" and tiny_checkpoint.read_bytes() == before
    assert not (tmp_path / "out.pt").exists()


def test_export_measures_the_flip_tta_accuracy_the_trainer_did_not_record(tmp_path: Path, tiny_checkpoint: Path,
                                                                           capsys) -> None:
    data = f"folder:{make_folder_dataset(tmp_path / 'tiny', per_class=20)}"
    out = tmp_path / "ship.pt"
    code, stdout, err = call(capsys, "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--half",
                             "--tta-data", data, "--data-dir", str(tmp_path / "cache"))
    assert code == 0, err
    _, meta = senet.load_checkpoint(out)
    expected = senet.evaluate_checkpoint(out, data, "val", tmp_path / "cache", tta=True).accuracy
    assert meta["val_acc_tta"] == expected, "the recorded figure is the exported weights' flip-TTA accuracy"
    assert "measured after training" in meta["val_acc_tta_source"] and "float16" in meta["val_acc_tta_source"]
    assert "measured now" in stdout and meta["val_acc"] == 0.5, "the trainer's own figure is kept"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no temporary file left behind"

    # a checkpoint that records the figure keeps the trainer's
    again = tmp_path / "again.pt"
    code, stdout, _ = call(capsys, "export", "--checkpoint", str(out), "--out", str(again), "--tta-data", data,
                           "--data-dir", str(tmp_path / "cache"))
    assert code == 0 and "keeps the trainer's" in stdout
    assert senet.load_checkpoint(again)[1]["val_acc_tta"] == meta["val_acc_tta"]
    code, stdout, _ = call(capsys, "info", "--checkpoint", str(out))
    assert code == 0 and "(val_acc_tta measured after training" in stdout and "weights_dtype    float16" in stdout


def test_export_with_unusable_tta_data_is_one_line_and_keeps_the_old_copy(tmp_path: Path, tiny_checkpoint: Path,
                                                                          capsys) -> None:
    out = tmp_path / "ship.pt"
    call(capsys, "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out))
    before = out.read_bytes()
    code, _, err = call(capsys, "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--half",
                        "--force", "--tta-data", f"folder:{tmp_path / 'nowhere'}")
    assert code == 2 and "nowhere" in err and "no such directory" in err and err.count("\n") == 1, err
    assert out.read_bytes() == before, "the existing copy is untouched when the measurement fails"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ship.pt", "tiny.pt"], "no temporary file left behind"


def test_every_train_option_reaches_the_config(workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import senet.cli as cli
    from senet.training import TrainConfig

    seen = {}
    monkeypatch.setattr(cli, "_check_data", lambda config: None)
    monkeypatch.setattr(cli, "_run", lambda config, run_dir, resume, progress, **_: seen.update(config=config) or 0)
    values = {"epochs": 3, "lr": 0.05, "batch_size": 64, "momentum": 0.8, "weight_decay": 0.001,
              "se_weight_decay": 0.0, "label_smoothing": 0.05, "schedule": "cosine", "warmup_epochs": 0.5,
              "crop_pad": 3, "cutout": 8, "reduction": 8, "width": 2, "seed": 7, "val_size": 500, "split_seed": 3,
              "train_limit": 1000, "log_every": 5, "micro_batch": 32, "device": "cpu", "data_dir": "elsewhere",
              "dataset_name": "my copy"}
    argv = ["train", "--model", "se_airnet", "--data", "folder:x", "--run-dir", "r", "--no-amp", "--compile",
            "--sync-bn"]
    for key, value in values.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    code, _, err = call(capsys, *argv)
    assert code == 0, err
    config = seen["config"]
    assert {k: getattr(config, k) for k in values} == values
    assert (config.amp, config.compile, config.sync_bn, config.data) == (False, True, True, "folder:x")

    train_parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    not_config = {"help", "progress", "resume", "run_dir", "runs_root", "config"}
    options = {a.dest for a in train_parser._actions} - not_config
    assert options <= set(TrainConfig.__dataclass_fields__), "a train option that is not a config field is ignored"
    assert set(values) <= options, "every setting tested above is an option"
    assert options == set(TrainConfig.__dataclass_fields__) - {"world_size"}, "every setting is an option"


@pytest.mark.parametrize("extra, note", [
    (["--batch-size", "128"], "note: --batch-size 128 keeps the fast recipe's lr 0.4, tuned for batch 512; "
                              "linear scaling would give --lr 0.1"),
    (["--batch-size", "128", "--lr", "0.1"], None),   # the user chose the lr: nothing to say
    (["--batch-size", "512"], None),                  # the recipe's own batch size
    ([], None),
])
def test_a_changed_batch_size_with_the_recipe_lr_is_noted(workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch,
                                                          extra, note) -> None:
    import senet.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "_check_data", lambda config: None)
    monkeypatch.setattr(cli, "_run", lambda config, run_dir, resume, progress, **_: seen.update(config=config) or 0)
    code, _, err = call(capsys, "train", "--model", "se_resnet20", "--data", "folder:x", "--run-dir", "r", *extra)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert notes == ([note] if note else []), err
    assert seen["config"].lr == (0.1 if "--lr" in extra else 0.4), "the note changes nothing"


@pytest.mark.parametrize("extra, warmup, note", [
    (["--epochs", "20"], 20 * 2.3 / 10, "note: --epochs 20 keeps the airbench94 recipe's warm-up share: 4.6 warm-up "
                                        "epochs (23% of training); --warmup-epochs sets it"),
    (["--epochs", "5"], 2.3, "note: --epochs 5 keeps the airbench94 recipe's 2.3 warm-up epochs (46% of training); "
                             "--warmup-epochs sets it"),
    (["--epochs", "2"], 1.2, "note: --epochs 2 caps the airbench94 recipe's 2.3 warm-up epochs at 60% of training: "
                             "1.2 warm-up epochs; --warmup-epochs sets it"),
    (["--epochs", "10"], 2.3, None),                           # the recipe's own length: nothing changed
    (["--epochs", "20", "--warmup-epochs", "1"], 1.0, None),  # the user chose the warm-up
    ([], 2.3, None),                                           # the recipe's own length
])
def test_another_length_sets_the_warmup_and_says_so(workdir: Path, capsys, monkeypatch: pytest.MonkeyPatch,
                                                      extra, warmup, note) -> None:
    import senet.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "_check_data", lambda config: None)
    monkeypatch.setattr(cli, "_run", lambda config, run_dir, resume, progress, **_: seen.update(config=config) or 0)
    code, _, err = call(capsys, "train", "--model", "airnet", "--recipe", "airbench94", "--data", "folder:x",
                        "--run-dir", "r", *extra)
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("note:")] == ([note] if note else []), err
    assert seen["config"].warmup_epochs == pytest.approx(warmup)


def test_the_installed_senet_command_runs_from_any_directory(tmp_path: Path) -> None:
    """``pip install -e .`` (the README's set-up) puts a ``senet`` command in the venv that needs no PYTHONPATH."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("senet")
    if not script.is_file():
        pytest.skip(f"no {script}: the checkout is not installed in this environment (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(script), "info", "--list"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == senet.list_models()
    bad = subprocess.run([str(script), "train", "--epochs", "0"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("senet train: error: epochs must be a positive integer")
    assert not any(tmp_path.iterdir()), "nothing written"


def test_evaluate_and_ablate_work_on_the_bundled_sample_and_refuse_its_missing_splits(tmp_path: Path, capsys) -> None:
    from conftest import ROOT

    checkpoint = str(ROOT / "checkpoints" / "se_resnet20.pt")
    code, out, err = call(capsys, "evaluate", "--checkpoint", checkpoint, "--data", "sample", "--data-dir",
                          str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 500
    code, out, err = call(capsys, "ablate", "--checkpoint", checkpoint, "--data", "sample", "--data-dir", str(tmp_path),
                          "--per-class", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 30
    for command in ("evaluate", "ablate"):
        code, _, err = call(capsys, command, "--checkpoint", checkpoint, "--data", "sample", "--data-dir", str(tmp_path),
                            "--split", "train")
        assert code == 2 and "only held-out validation images" in err and len(err.strip().splitlines()) == 1, err
