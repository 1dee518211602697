"""The shipped checkpoints in checkpoints/: they load, carry their model card, predict, and reproduce.

With the real data present, each checkpoint's validation accuracy recomputed by
``python -m senet evaluate`` must match the figure recorded in its metadata to
within 0.3 points: a guard against preprocessing drifting away from training.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import torch

import senet
from conftest import ROOT, senet_cli

CHECKPOINTS = sorted((ROOT / "checkpoints").glob("*.pt"))
REQUIRED_META = ("recipe", "config", "epochs", "wall_time_s", "hardware", "history", "val_acc", "val_acc_tta",
                 "params", "se_params", "macs", "dataset", "split_seed", "val_size")


TWINS = [("se_airnet", "airnet"), ("se_resnet20", "resnet20")]


def test_the_se_checkpoints_their_plain_twins_and_an_se_resnet20_are_shipped() -> None:
    names = {p.stem for p in CHECKPOINTS}
    expected = {name for pair in TWINS for name in pair}
    assert expected <= names, f"expected {sorted(expected)} in checkpoints/, found {sorted(names)}"


@pytest.mark.parametrize("se_name, plain_name", TWINS)
def test_each_twin_shares_its_se_checkpoints_recipe_and_seed(se_name: str, plain_name: str) -> None:
    from dataclasses import asdict

    from senet.training import make_config

    se_meta, plain_meta = (senet.load_checkpoint(ROOT / "checkpoints" / f"{n}.pt")[1] for n in (se_name, plain_name))
    assert plain_meta["se_params"] == 0 and se_meta["se_params"] > 0
    se, plain = se_meta["config"], plain_meta["config"]
    defaults = asdict(make_config())  # an option added after one of them was trained counts at its default
    differing = {k for k in set(se) | set(plain) if k not in ("model", "dataset_name", "device")
                 and se.get(k, defaults.get(k)) != plain.get(k, defaults.get(k))}
    assert not differing, f"{plain_name}'s configuration differs from {se_name}'s in {sorted(differing)}"
    assert se["model"] == f"se_{plain['model']}"


def card_train_commands() -> list[str]:
    """The full ``python -m senet train`` commands of checkpoints/README.md (continuation lines joined)."""
    text = (ROOT / "checkpoints" / "README.md").read_text()
    commands = [" ".join(m.replace("\\\n", " ").split())
                for m in re.findall(r"python -m senet train (?:[^\n]*\\\n)*[^\n]*", text)]
    return [c for c in commands if "..." not in c]


def test_the_cards_commands_give_the_configurations_the_checkpoints_record() -> None:
    """The model card's exact commands must reproduce the shipped runs' settings under today's defaults."""
    from dataclasses import asdict

    from senet.cli import build_parser
    from senet.training.settings import config_overrides, make_config

    commands = card_train_commands()
    assert len(commands) >= 2, "the card gives the SE-AirNet and SE-ResNet-20 commands in full"
    for command in commands:
        overrides = config_overrides(build_parser().parse_args(shlex.split(command)[3:]))
        model, recipe = overrides.pop("model"), overrides.pop("recipe")
        config = asdict(make_config(model, recipe, **overrides))
        recorded = senet.load_checkpoint(ROOT / "checkpoints" / f"{model}.pt")[1]["config"]
        differing = {k: (config[k], v) for k, v in recorded.items() if k in config and config[k] != v}
        assert not differing, f"{model}: the card's command gives (command, recorded) {differing}"


@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.name)
def test_checkpoint_loads_with_its_model_card_and_predicts(path: Path) -> None:
    assert path.stat().st_size < 20 * 2**20, f"{path.name} should stay well under 20 MB"
    model, meta = senet.load_checkpoint(path)
    missing = [k for k in REQUIRED_META if meta.get(k) is None]
    assert not missing, f"{path.name} lacks metadata {missing}"
    assert "JPEG q75" in meta["dataset"], "the development data must be named honestly"
    assert len(meta["history"]) == meta["epochs"], "one history row per trained epoch"
    info = senet.model_info(model)
    assert (info["params"], info["se_params"], info["macs"]) == (meta["params"], meta["se_params"], meta["macs"])
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=generator).numpy()
    from PIL import Image
    probs = senet.predict(model, senet.preprocess(Image.fromarray(image), meta))
    assert probs.shape == (1, len(meta["classes"])) and torch.allclose(probs.sum(), torch.tensor(1.0), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.name)
def test_recorded_val_accuracy_is_reproduced_by_the_cli(path: Path, real_data: Path, tmp_path: Path) -> None:
    _, meta = senet.load_checkpoint(path)
    data_dir = Path(os.environ.get("SENET_TEST_CACHE", "/tmp/senet-test-data")) / "senet-data-dir"
    for tta, recorded in ((False, meta["val_acc"]), (True, meta["val_acc_tta"])):
        args = ["evaluate", "--checkpoint", str(path), "--data", f"folder:{real_data}", "--data-dir", str(data_dir),
                "--split", "val", "--json", "--cache-dir", str(tmp_path / "predictions")] + (["--tta"] if tta else [])
        result = senet_cli(*args, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        measured = json.loads(result.stdout)
        assert measured["n"] == meta["val_size"]
        assert abs(measured["accuracy"] - recorded) <= 0.003, \
            f"{path.name} tta={tta}: recorded {recorded:.4f}, recomputed {measured['accuracy']:.4f}"
