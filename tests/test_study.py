"""``senet study``: a grid of variants x seeds, resumable, summarised with intervals."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_folder_dataset
from senet.cli import main
from senet.training import train
from senet.training.study import StudyError, parse_variant, pooled_disagreement, run_study, summarize, t_interval

VARIANTS = ["se_resnet20", "resnet20"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def shared(tmp_path: Path, data: Path) -> dict:
    return dict(data=f"folder:{data}", data_dir=str(tmp_path / "cache"), epochs=2, batch_size=8, lr=0.05,
                val_size=9, log_every=1)


def test_a_study_stops_resumes_without_redoing_finished_runs_and_summarises(tmp_path: Path) -> None:
    data = make_folder_dataset(tmp_path / "data", per_class=12)
    study = tmp_path / "study"
    calls = []

    def stop_in_the_third_run(config, run_dir, resume, progress):
        calls.append((run_dir.name, resume))
        on_log = None
        if len(calls) == 3:
            on_log = lambda r: os.kill(os.getpid(), signal.SIGTERM) if r["step"] == 2 else None  # noqa: E731
        return train(config, run_dir, resume=resume, progress=False, on_log=on_log)

    states = run_study(study, VARIANTS, [0, 1], "fast", shared(tmp_path, data), train_one=stop_in_the_third_run)
    assert states == {"se_resnet20-seed0": "finished", "se_resnet20-seed1": "finished", "resnet20-seed0": "stopped"}
    done = {n: (study / "runs" / n / "best.pt").stat().st_mtime_ns for n in ("se_resnet20-seed0", "se_resnet20-seed1")}
    calls.clear()
    states = run_study(study, VARIANTS, [0, 1], "fast", shared(tmp_path, data), train_one=stop_in_the_third_run)
    assert calls == [("resnet20-seed0", True), ("resnet20-seed1", False)], "only the unfinished runs, resumed"
    assert set(states.values()) == {"finished"}
    assert all((study / "runs" / n / "best.pt").stat().st_mtime_ns == t for n, t in done.items()), "not redone"
    config = json.loads((study / "runs" / "resnet20-seed1" / "config.json").read_text())
    assert (config["seed"], config["epochs"], config["model"]) == (1, 2, "resnet20")

    summary = summarize(study)
    rows = {v["variant"]: v for v in summary["variants"]}
    assert rows["se_resnet20"]["seeds"] == [0, 1] and rows["se_resnet20"]["params"] > rows["resnet20"]["params"]
    accs = [json.loads((study / "runs" / f"se_resnet20-seed{s}" / "status.json").read_text())["best_val_acc"]
            for s in (0, 1)]
    assert rows["se_resnet20"]["acc"]["mean"] == pytest.approx(sum(accs) / 2)
    pair = next(p for p in summary["pairs"] if p["metric"] == "acc")
    assert (pair["a"], pair["b"], pair["seeds"]) == ("se_resnet20", "resnet20", 2)
    pooled = pooled_disagreement(study, "se_resnet20", "resnet20")
    assert pooled.n == 2 * 9 and pooled.only_a + pooled.only_b + pooled.both_right + pooled.both_wrong == 18

    # STUDIES.md's table (tools/study_table.py): the difference is the variant minus the reference, in points
    table = subprocess.run([sys.executable, str(ROOT / "tools" / "study_table.py"), str(study), "--reference",
                            "resnet20"], capture_output=True, text=True, check=True).stdout
    row = next(line for line in table.splitlines() if line.startswith("| `se_resnet20` |"))
    assert f"{100 * pair['mean']:+.2f} pts [" in row and "(2 seeds)" in row
    assert f"{100 * rows['se_resnet20']['acc']['mean']:.2f}% [" in row


def test_a_study_directory_holds_one_plan(tmp_path: Path) -> None:
    data = make_folder_dataset(tmp_path / "data", per_class=12)
    study = tmp_path / "study"
    run_study(study, ["resnet20"], [0], "fast", dict(shared(tmp_path, data), epochs=1))
    with pytest.raises(StudyError, match="holds a different study"):
        run_study(study, ["resnet20"], [0, 1], "fast", dict(shared(tmp_path, data), epochs=1))


def test_variants_carry_model_settings_parsed_as_declared() -> None:
    v = parse_variant("se_resnet20:se_position=pre,reduction=8,lookahead=true")
    assert (v.model, v.settings, v.label) == ("se_resnet20", {"se_position": "pre", "reduction": 8,
                                                              "lookahead": True}, "se_resnet20-se_positionpre-reduction8-lookaheadtrue")
    with pytest.raises(StudyError, match="not SETTING=VALUE"):
        parse_variant("se_resnet20:speed=11")
    with pytest.raises(StudyError, match="is not a int"):
        parse_variant("se_resnet20:reduction=eight")


def test_the_t_interval_is_students() -> None:
    mean, low, high = t_interval([0.90, 0.92, 0.91])
    assert mean == pytest.approx(0.91)
    assert high - mean == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5), "t(0.975, 2) x s / sqrt(n)"
    assert math.isnan(t_interval([0.9])[1])


def test_the_command_line_runs_and_summarises_a_study(tmp_path: Path, capsys) -> None:
    data = make_folder_dataset(tmp_path / "data", per_class=12)
    argv = ["study", "--study-dir", str(tmp_path / "s"), "--variants", "se_resnet20", "resnet20", "--seeds", "2",
            "--data", f"folder:{data}", "--data-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "8",
            "--val-size", "9", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("finished") == 4
    assert main(["study", "--summary", str(tmp_path / "s"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [v["variant"] for v in summary["variants"]] == ["se_resnet20", "resnet20"]
    assert main(["study", "--summary", str(tmp_path / "s"), "--pooled"]) == 0
    text = capsys.readouterr().out
    assert "se_resnet20 - resnet20 (val_acc, 2 seeds)" in text and "McNemar p" in text
    assert main(argv[:-1] + ["--model", "airnet"]) == 2
    assert "--model is set per run by a study" in capsys.readouterr().err


def _fake_study(root: Path, splits: dict[str, str], seeds: tuple[int, ...] = (0, 1)) -> Path:
    """A study directory whose finished runs' best.pt record ``{split}_acc`` (variant -> split), for each seed."""
    from senet import create_model, save_checkpoint

    (root / "runs").mkdir(parents=True)
    (root / "study.json").write_text(json.dumps({"variants": list(splits), "seeds": list(seeds), "recipe": "fast",
                                                 "shared": {}}))
    for k, (variant, split) in enumerate(splits.items()):
        for seed in seeds:
            run_dir = root / "runs" / f"{variant}-seed{seed}"
            run_dir.mkdir()
            (run_dir / "status.json").write_text(json.dumps({"state": "finished"}))
            save_checkpoint(run_dir / "best.pt", create_model(variant, num_classes=3), model_name=variant,
                            model_options={"num_classes": 3}, classes=("a", "b", "c"), scored_on=split,
                            **{f"{split}_acc": 0.5 + 0.1 * k + 0.01 * seed})
    return root


def test_a_study_trained_on_every_image_summarises_its_test_figures_and_mixed_splits_are_refused(tmp_path):
    summary = summarize(_fake_study(tmp_path / "all", {"se_resnet20": "test", "resnet20": "test"}))
    assert summary["scored_on"] == "test"
    rows = {v["variant"]: v for v in summary["variants"]}
    assert rows["se_resnet20"]["acc"]["mean"] == pytest.approx(0.505) and rows["resnet20"]["acc"]["mean"] == \
        pytest.approx(0.605)
    pair = next(p for p in summary["pairs"] if p["metric"] == "acc")
    assert pair["mean"] == pytest.approx(-0.1)
    table = subprocess.run([sys.executable, str(ROOT / "tools" / "study_table.py"), str(tmp_path / "all")],
                           capture_output=True, text=True, check=True).stdout
    assert "| test acc [95% interval] |" in table
    with pytest.raises(StudyError, match="scored on different splits"):
        summarize(_fake_study(tmp_path / "mixed", {"se_resnet20": "test", "resnet20": "val"}))


def test_the_studies_table_says_one_seed_where_there_is_no_interval(tmp_path):
    study = _fake_study(tmp_path / "one", {"se_resnet20": "val", "resnet20": "val"}, seeds=(0,))
    table = subprocess.run([sys.executable, str(ROOT / "tools" / "study_table.py"), str(study), "--reference",
                            "resnet20"], capture_output=True, text=True, check=True).stdout
    assert "nan" not in table.lower(), table
    row = next(line for line in table.splitlines() if line.startswith("| `se_resnet20` |"))
    assert "50.00% (one seed)" in row and "-10.00 pts (one seed)" in row, row
