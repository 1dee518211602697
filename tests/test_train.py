"""senet.training: recipes, configuration checks, learning, the run directory, resume and stop."""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_folder_dataset, senet_cli
from senet import create_model, load_checkpoint
from senet.checkpoint import read_checkpoint
from senet.training.runs import read_json, read_metrics
from senet.training.settings import (SHORT_RUN_MAX_WARMUP_SHARE, config_from_record, config_record,
                                    length_warmup)
from senet.training import (RECIPES, ConfigError, TrainConfig, lr_factor, make_config, make_optimizer, train)

SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_texture_dataset(root: Path, per_class: int = 40, seed: int = 0) -> Path:
    """Four classes that differ by texture, not by colour: horizontal stripes, vertical stripes,
    diagonal stripes, a checkerboard; random colours, phases and noise. Learnable, not trivial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    patterns = [lambda p: (yy + p) // 3 % 2, lambda p: (xx + p) // 3 % 2, lambda p: (xx + yy + p) // 3 % 2,
                lambda p: ((xx + p) // 4 + (yy + p) // 4) % 2]
    for k, pattern in enumerate(patterns):
        d = root / "train" / f"class{k}"
        d.mkdir(parents=True)
        for i in range(per_class):
            fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            mask = pattern(int(rng.integers(0, 6)))[..., None].astype(bool)
            img = np.where(mask, fg, bg) + rng.normal(0, 25, (32, 32, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"{i:03d}.png")
    return root


def tiny_config(data: Path, tmp_path: Path, model: str = "resnet20", recipe: str = "fast", **overrides) -> TrainConfig:
    options = dict(data=f"folder:{data}", data_dir=str(tmp_path / "cache"), epochs=2, batch_size=8, lr=0.05,
                   val_size=6, log_every=1, micro_batch=256)
    options.update(overrides)
    return make_config(model, recipe, **options)


def run(config: TrainConfig, run_dir: Path, **kwargs) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    return train(config, run_dir, progress=False, **kwargs)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "last.pt")["state_dict"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"expected identical weights, these differ: {different[:5]}"


# --------------------------------------------------------------------------- recipes and configuration
def test_seed_recipe_is_the_blog_posts_hyperparameters_exactly() -> None:
    config = make_config("seed_senet", "seed")
    assert (config.lr, config.momentum, config.nesterov, config.weight_decay) == (0.1, 0.9, True, 1e-4)
    assert (config.batch_size, config.epochs, config.schedule) == (128, 40, "constant")
    assert (config.label_smoothing, config.warmup_epochs) == (0.0, 0.0)
    assert (config.crop_pad, config.pad_mode, config.flip) == (4, "zeros", "random"), \
        "RandomCrop(32, padding=4) pads with zeros; RandomHorizontalFlip flips a coin per image"
    assert all(lr_factor(s, 40 * 390, 0, config.schedule, config.start_lr_frac) == 1.0 for s in (0, 100, 15599)), \
        "the seed's learning rate never changes"
    optimizer = make_optimizer(create_model("seed_senet"), config)
    assert len(optimizer.param_groups) == 1, "every parameter in one group, as optim.SGD(model.parameters(), ...)"
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.1, 0.9, True, 1e-4)


def test_seed_recipe_ignores_the_fast_family_overrides() -> None:
    assert make_config("se_airnet", "seed").lr == 0.1
    assert make_config("se_airnet", "fast").batch_size == 1024


def test_overrides_replace_recipe_values_and_none_keeps_them() -> None:
    config = make_config("se_resnet20", "fast", epochs=3, lr=None)
    assert config.epochs == 3 and config.lr == RECIPES["fast"]["lr"]


@pytest.mark.parametrize("recipe, model", [("airbench94", "airnet"), ("fast", "se_airnet"), ("fast", "se_resnet20")])
def test_a_longer_run_keeps_the_recipes_warmup_share(recipe: str, model: str) -> None:
    """airbench's triangle peaks at 23% of training at any longer length; `--epochs` alone must not squeeze it."""
    base = make_config(model, recipe)
    for epochs in (base.epochs + 1, 40, 200):
        config = make_config(model, recipe, epochs=epochs)
        assert config.warmup_epochs / epochs == pytest.approx(base.warmup_epochs / base.epochs)
    assert make_config(model, recipe, epochs=40, warmup_epochs=1.5).warmup_epochs == 1.5, "a given warm-up is kept"


@pytest.mark.parametrize("recipe, model", [("airbench94", "airnet"), ("fast", "se_airnet"), ("fast", "se_resnet20")])
def test_a_shorter_run_keeps_the_recipes_warmup_epochs_up_to_a_share(recipe: str, model: str) -> None:
    """Short runs measured better with the recipe's warm-up epochs than with its share; capped so the lr decays."""
    base = make_config(model, recipe)
    for epochs in range(1, base.epochs):
        warmup = make_config(model, recipe, epochs=epochs).warmup_epochs
        assert warmup == pytest.approx(min(base.warmup_epochs, SHORT_RUN_MAX_WARMUP_SHARE * epochs))
        assert warmup < epochs, "the learning rate decays in every run"
    assert make_config(model, recipe, epochs=2, warmup_epochs=1.9).warmup_epochs == 1.9, "a given warm-up is kept"


def test_length_warmup_is_continuous_at_the_recipes_length() -> None:
    assert length_warmup(2.4, 12, 12) == 2.4
    assert length_warmup(2.4, 12, 4) == pytest.approx(2.4)   # 60%: kept
    assert length_warmup(2.4, 12, 2) == pytest.approx(1.2)   # capped at 60% of 2 epochs
    assert length_warmup(2.4, 12, 24) == pytest.approx(4.8)  # the share
    assert length_warmup(0.0, 164, 10) == 0.0                # no warm-up stays none


def test_a_recorded_warmup_is_kept_when_a_resume_lengthens_the_run() -> None:
    """Resuming with more epochs continues the run's own schedule: its recorded warm-up, not a rescaled one."""
    short = make_config("airnet", "airbench94", epochs=4)
    longer = config_from_record(config_record(short), epochs=8)
    assert (longer.epochs, longer.warmup_epochs) == (8, short.warmup_epochs)


@pytest.mark.parametrize("overrides, message", [
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(epochs=2.5), "epochs must be a positive integer"),
    (dict(lr=float("nan")), "lr must be a positive number"),
    (dict(lr=-0.1), "lr must be a positive number"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(momentum=1.0), "momentum must be below 1"),
    (dict(reduction=0), "reduction"),
    (dict(reduction=17), "larger than the narrowest SE stage"),
    (dict(schedule="exponential"), "schedule must be one of"),
    (dict(val_size=-0.5), "val_size"),
    (dict(val_size=2.5), "val_size"),
    (dict(data="imagenet"), "unknown dataset"),
    (dict(device="tpu"), "device"),
    (dict(train_limit=-1), "train_limit"),
    (dict(cutout=-1), "cutout must be an integer in 0..16"),
    (dict(cutout=17), "cutout must be an integer in 0..16"),
    (dict(cutout=2.5), "cutout must be an integer in 0..16"),
    (dict(batch_size=100, world_size=3), "not divisible by the 3 processes"),
])
def test_invalid_configurations_are_refused_with_the_field_named(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config("se_resnet20", "fast", **overrides)


def test_unknown_model_recipe_and_field_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        make_config("resnet21")
    with pytest.raises(ConfigError, match="unknown recipe"):
        make_config("resnet20", "slow")
    with pytest.raises(ConfigError, match="unknown configuration field"):
        make_config("resnet20", learning_rate=0.1)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedules_warm_up_from_start_frac_and_decay_to_zero(schedule: str) -> None:
    total, warm = 100, 10
    assert lr_factor(0, total, warm, schedule, 0.2) == pytest.approx(0.2)
    assert lr_factor(warm, total, warm, schedule, 0.2) == pytest.approx(1.0)
    assert lr_factor(total, total, warm, schedule, 0.2) == pytest.approx(0.0)
    mid = lr_factor(55, total, warm, schedule, 0.2)
    assert mid == pytest.approx(0.5) if schedule == "onecycle" else mid == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    values = [lr_factor(s, total, warm, schedule, 0.2) for s in range(warm, total)]
    assert all(a >= b for a, b in zip(values, values[1:])), "decays monotonically after warm-up"


# --------------------------------------------------------------------------- learning
def test_a_few_hundred_steps_on_a_learnable_dataset_reduce_the_loss_and_beat_chance(tmp_path: Path) -> None:
    data = make_texture_dataset(tmp_path / "textures", per_class=40)
    config = tiny_config(data, tmp_path, epochs=25, batch_size=16, lr=0.05, val_size=32, log_every=4,
                         warmup_epochs=1.0)
    run_dir = tmp_path / "run"
    status = run(config, run_dir)
    assert status["state"] == "finished" and status["step"] == 25 * 8 == 200
    records, _ = read_metrics(run_dir / "metrics.jsonl")
    steps = [r for r in records if r["type"] == "step"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 25 and [r["epoch"] for r in epochs] == list(range(1, 26))
    assert {"loss", "lr", "images_per_s", "step", "epoch", "time"} <= steps[0].keys()
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "elapsed_s", "lr"} <= epochs[0].keys()
    first, last = epochs[0]["train_loss"], epochs[-1]["train_loss"]
    assert last < 0.5 * first, f"expected the training loss to halve at least: {first:.3f} -> {last:.3f}"
    assert epochs[-1]["val_acc"] >= 0.75, f"expected >= 75% on held-out images (chance 25%), got {epochs[-1]['val_acc']}"
    assert epochs[-1]["train_acc"] >= 0.75
    best = load_checkpoint(run_dir / "best.pt")[1]
    assert best["val_acc"] == max(r["val_acc"] for r in epochs)
    improved = [r for i, r in enumerate(epochs) if r["val_acc"] > max([-1.0] + [e["val_acc"] for e in epochs[:i]])]
    assert all(r.get("val_acc_tta") is not None for r in improved + [epochs[-1]]), \
        "each new best (and the last epoch) records the flip-TTA accuracy, so best.pt carries both figures"
    assert best["val_acc_tta"] is not None
    assert read_checkpoint(run_dir / "best.pt")["extra_state"] == {}, "best.pt carries no optimiser state"


def test_run_directory_has_config_status_metrics_and_checkpoints(tmp_path: Path) -> None:
    data = make_folder_dataset(tmp_path / "tiny", per_class=12)
    config = tiny_config(data, tmp_path, epochs=2, train_limit=24)
    run_dir = tmp_path / "run"
    handler_before = signal.getsignal(signal.SIGTERM)
    run(config, run_dir)
    assert signal.getsignal(signal.SIGTERM) is handler_before, "train() must restore the signal handlers"
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "best.pt", "config.json", "last.pt",
                                                         "metrics.jsonl", "status.json"]
    saved = read_json(run_dir / "config.json")
    rebuilt = make_config(saved["model"], saved["recipe"], **{k: v for k, v in saved.items()
                                                               if k in TrainConfig.__dataclass_fields__
                                                               and k not in ("model", "recipe")})
    assert rebuilt == config, "config.json reproduces the configuration"
    assert saved["world_size"] == 1 and saved["batch_size_per_process"] == 8 and "global" in saved["batch_semantics"]
    status = read_json(run_dir / "status.json")
    assert status["state"] == "finished" and status["pid"] == os.getpid() and status["epoch"] == 2
    assert status["steps_per_epoch"] == 3, "train_limit 24 at batch 8 is 3 steps per epoch"
    model, meta = load_checkpoint(run_dir / "last.pt")
    assert meta["val_size"] == 6 and meta["split_seed"] == 0 and len(meta["history"]) == 2
    assert meta["config"]["train_limit"] == 24


def test_training_is_deterministic_on_cpu(tmp_path: Path) -> None:
    data = make_folder_dataset(tmp_path / "tiny", per_class=12)
    config = tiny_config(data, tmp_path, epochs=1)
    run(config, tmp_path / "a")
    run(config, tmp_path / "b")
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


# --------------------------------------------------------------------------- resume
def test_two_epochs_equal_one_epoch_plus_resume_of_one(tmp_path: Path) -> None:
    """The seed's constant schedule: `--epochs 1`, then `--resume --epochs 2`, equals `--epochs 2`."""
    data = make_folder_dataset(tmp_path / "tiny", per_class=12)
    straight = tiny_config(data, tmp_path, recipe="seed", epochs=2, lr=0.02)
    run(straight, tmp_path / "straight")
    first = tiny_config(data, tmp_path, recipe="seed", epochs=1, lr=0.02)
    run(first, tmp_path / "resumed")
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["extra_state"]["train_state"]["epoch"] == 1
    status = run(tiny_config(data, tmp_path, recipe="seed", epochs=2, lr=0.02), tmp_path / "resumed", resume=True)
    assert status["state"] == "finished" and status["epoch"] == 2
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    records = read_metrics(tmp_path / "resumed" / "metrics.jsonl")[0]
    assert [r["type"] for r in records].count("resume") == 1
    straight_epochs = [r for r in read_metrics(tmp_path / "straight" / "metrics.jsonl")[0] if r["type"] == "epoch"]
    resumed_epochs = [r for r in records if r["type"] == "epoch"]
    for a, b in zip(straight_epochs, resumed_epochs, strict=True):
        assert (a["train_loss"], a["val_loss"], a["val_acc"]) == (b["train_loss"], b["val_loss"], b["val_acc"])


def test_a_stop_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """SIGTERM in the middle of the second epoch (warm-up + decay schedule), then resume: same weights."""
    data = make_folder_dataset(tmp_path / "tiny", per_class=12)
    config = tiny_config(data, tmp_path, epochs=3)
    run(config, tmp_path / "straight")

    def stop_at_step_5(record: dict) -> None:
        if record["step"] == 5:  # step 2 of 3 in epoch 2
            os.kill(os.getpid(), signal.SIGTERM)

    status = run(config, tmp_path / "resumed", on_log=stop_at_step_5)
    assert status["state"] == "stopped" and status["stopped_by"] == "SIGTERM" and status["step"] == 5
    saved = read_checkpoint(tmp_path / "resumed" / "last.pt")["extra_state"]["train_state"]
    assert (saved["epoch"], saved["step_in_epoch"], saved["global_step"]) == (1, 2, 5)
    run(config, tmp_path / "resumed", resume=True)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl")[0] if r["type"] == "step"]
    assert steps == list(range(1, 10)), f"every step logged exactly once across the stop: {steps}"


def test_cli_sigterm_leaves_a_loadable_last_checkpoint_and_status_stopped(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import ROOT

    data = make_folder_dataset(tmp_path / "tiny", per_class=12)
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), **SINGLE_THREAD)
    cmd = [sys.executable, "-m", "senet", "train", "--model", "resnet20", "--data", f"folder:{data}",
           "--data-dir", str(tmp_path / "cache"), "--epochs", "500", "--batch-size", "8", "--lr", "0.05",
           "--val-size", "6", "--log-every", "1", "--run-dir", str(run_dir), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600  # generous: a loaded machine can take minutes to import torch and start
        logged = 0
        while time.time() < deadline and proc.poll() is None and logged < 2:
            records, _ = read_metrics(run_dir / "metrics.jsonl")
            logged = sum(r["type"] == "step" for r in records)
            time.sleep(0.2)
        assert proc.poll() is None, f"training ended early: {proc.communicate()[1][-2000:]}"
        assert logged >= 2, "the run logged fewer than 2 steps in 10 minutes"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"expected exit 0 after SIGTERM, got {proc.returncode}: {err[-2000:]}"
    status = read_json(run_dir / "status.json")
    assert status["state"] == "stopped" and status["stopped_by"] == "SIGTERM", status
    payload = read_checkpoint(run_dir / "last.pt")
    assert payload["extra_state"]["train_state"]["global_step"] == status["step"] >= 2
    model, meta = load_checkpoint(run_dir / "last.pt")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    # the stopped run resumes from the CLI and finishes
    resumed = senet_cli("train", "--resume", str(run_dir), "--epochs", str(status["epoch"] + 1), "--no-progress",
                        cwd=tmp_path, env=SINGLE_THREAD, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_json(run_dir / "status.json")["state"] == "finished"


def test_a_failing_run_records_failed_with_the_reason(tmp_path: Path) -> None:
    data = make_folder_dataset(tmp_path / "tiny", per_class=12)
    # an lr past the settings' bound (100), set around make_config's check: the loss goes non-finite
    config = dataclasses.replace(tiny_config(data, tmp_path, epochs=2), lr=1e6)
    with pytest.raises(FloatingPointError):
        run(config, tmp_path / "run")
    status = read_json(tmp_path / "run" / "status.json")
    assert status["state"] == "failed" and "FloatingPointError" in status["error"] and "--lr" in status["error"]


def test_se_weight_decay_gives_the_se_blocks_their_own_decay_and_leaves_the_rest() -> None:
    from senet import create_model, se_blocks
    from senet.training import param_groups

    config = make_config("se_resnet20", "fast", se_weight_decay=0.0)
    model = create_model("se_resnet20")
    groups = param_groups(model, config)
    se_ids = {id(p) for b in se_blocks(model).values() for p in b.parameters()}
    se_group = [g for g in groups if {id(p) for p in g["params"]} == se_ids]
    assert len(se_group) == 1 and se_group[0]["weight_decay"] == 0.0, "one group holding exactly the SE parameters"
    others = [g for g in groups if g is not se_group[0]]
    assert all(g["weight_decay"] == config.weight_decay for g in others)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    default = param_groups(model, make_config("se_resnet20", "fast"))
    assert len(default) == 1, "without se_weight_decay the groups are unchanged (old runs resume as before)"


def test_negative_or_nan_se_weight_decay_is_refused() -> None:
    for bad in (-1e-4, float("nan"), "0"):
        with pytest.raises(ConfigError, match="se_weight_decay"):
            make_config("se_resnet20", "fast", se_weight_decay=bad)


def test_hardware_names_the_cpu_threads_in_good_english():
    from senet.training import hardware

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert hardware(torch.device("cpu"), 1).endswith(", 1 thread)")
        torch.set_num_threads(2)
        assert hardware(torch.device("cpu"), 1).endswith(", 2 threads)")
        assert hardware(torch.device("cpu"), 2).startswith("2 x CPU")
    finally:
        torch.set_num_threads(before)


def test_config_validation_checks_the_model_without_allocating_its_weights():
    """A wide model is checked on the meta device: no gigabytes allocated just to validate a config."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = make_config("se_airnet", "fast", width=48)  # 4.5 billion parameters, 17 GiB of float32, if built for real
    assert config.width == 48
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500, f"validating the config grew the process by {grown_mib:.0f} MiB"
    with pytest.raises(ConfigError, match="at most 64"):
        make_config("se_airnet", "fast", width=65)


def test_recorded_accuracies_equal_senet_evaluate_of_the_checkpoint_to_the_image(tmp_path: Path) -> None:
    """Training's validation and ``senet evaluate`` are one computation: on the CPU the recorded val_acc and
    val_acc_tta (and the loss) are what evaluating the saved checkpoint gives, image for image."""
    from senet import evaluate_checkpoint

    data = make_texture_dataset(tmp_path / "tex", per_class=30)
    config = tiny_config(data, tmp_path, model="se_resnet20", epochs=3, val_size=40, lr=0.1)
    run(config, tmp_path / "run")
    _, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    epoch = meta["history"][-1]  # best.pt is saved at its best epoch, with the history up to it
    spec = f"folder:{data}"
    plain = evaluate_checkpoint(tmp_path / "run" / "best.pt", spec, "val", tmp_path / "cache", cache_dir=tmp_path / "p")
    tta = evaluate_checkpoint(tmp_path / "run" / "best.pt", spec, "val", tmp_path / "cache", tta=True,
                              cache_dir=tmp_path / "p")
    assert plain.n == tta.n == 40
    assert int(round(meta["val_acc"] * 40)) == int((plain.preds == plain.labels).sum()), "same images right"
    assert meta["val_acc"] == plain.accuracy and meta["val_acc_tta"] == tta.accuracy
    assert epoch["val_acc"] == meta["val_acc"] and epoch["val_acc_tta"] == meta["val_acc_tta"]
    nll = float(-np.log(plain.probs[np.arange(40), plain.labels]).mean())  # and the loss is the same computation
    assert math.isclose(nll, epoch["val_loss"], rel_tol=1e-5), (nll, epoch["val_loss"])


def test_the_step_schedule_divides_by_ten_at_half_and_three_quarters() -> None:
    factors = [lr_factor(s, 100, 0, "step", 1.0) for s in range(100)]
    assert factors[:50] == [1.0] * 50 and factors[50:75] == [0.1] * 25 and factors[75:] == [0.01] * 25


def test_onecycle_ends_at_its_end_fraction_as_airbenchs_triangle() -> None:
    """airbench94: 0.2 of peak at step 0, the peak at 23% of the steps, 0.07 of it at the end, linear between."""
    total, warm = 1000, 230
    f = [lr_factor(s, total, warm, "onecycle", 0.2, 0.07) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.2) and f[warm] == pytest.approx(1.0) and f[total] == pytest.approx(0.07)
    assert f[115] == pytest.approx(0.6) and f[615] == pytest.approx(1 - 0.93 * 385 / 770)
    assert lr_factor(total, total, warm, "cosine", 0.2, 0.07) == pytest.approx(0.07)


def test_lookahead_moves_a_slow_copy_every_five_steps_and_ends_on_it() -> None:
    from senet.training.optim import Lookahead

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    la = Lookahead(model)
    total = 20
    slow = w_before = 0.0
    for step in range(1, total + 1):
        with torch.no_grad():
            model.weight.add_(1.0)  # an "optimiser step"
        la.after_step(model, step, total)
        w = float(model.weight[0, 0].detach())
        if step == total:
            assert w == pytest.approx(slow), "the last step ends on the slow weights"
        elif step % 5 == 0:
            decay = 0.95 ** 5 * (step / total) ** 3
            slow = slow + (1 - decay) * (w_before + 1 - slow)
            assert w == pytest.approx(slow), f"step {step}: reset to the slow copy"
        w_before = float(model.weight[0, 0].detach())


def test_a_frozen_whitening_bias_stops_moving_after_its_epochs(tmp_path: Path) -> None:
    data = make_texture_dataset(tmp_path / "tex", per_class=12)
    config = tiny_config(data, tmp_path, model="airnet", epochs=3, whiten_bias_epochs=1, batch_size=8,
                         weight_decay=0.01)
    history = []

    class Watch:
        def on_batch(self, epoch, indices):
            history.append((epoch, model_ref[0].whiten.bias.detach().clone()))

    import senet.training.loop as loop
    model_ref = []
    original = loop.build_model

    def build(*args, **kwargs):
        model_ref.append(original(*args, **kwargs))
        return model_ref[0]

    loop.build_model = build
    try:
        run(config, tmp_path / "run", callbacks=(Watch(),))
    finally:
        loop.build_model = original
    first = [b for e, b in history if e == 0]
    later = [b for e, b in history if e >= 1]
    assert not torch.equal(first[0], first[-1]), "trained in epoch 1"
    assert all(torch.equal(later[0], b) for b in later), "held still from epoch 2 on (no step, decay or momentum)"
    assert not torch.equal(first[0], later[0])


def test_bn_momentum_reaches_every_batchnorm_and_a_lookahead_run_resumes_exactly(tmp_path: Path) -> None:
    """Stop at step 7 (past a Lookahead update at step 5, before the next), resume: the same weights as an
    uninterrupted run, so last.pt carries the slow weights."""
    data = make_folder_dataset(tmp_path / "tiny", per_class=12)
    config = tiny_config(data, tmp_path, model="airnet", epochs=3, lookahead=True, bn_momentum=0.4)
    run(config, tmp_path / "straight")

    def stop_at_step_7(record: dict) -> None:
        if record["step"] == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    assert run(config, tmp_path / "resumed", on_log=stop_at_step_7)["state"] == "stopped"
    assert "lookahead" in read_checkpoint(tmp_path / "resumed" / "last.pt")["extra_state"]
    run(config, tmp_path / "resumed", resume=True)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    without = tiny_config(data, tmp_path, model="airnet", epochs=3, bn_momentum=0.4)
    run(without, tmp_path / "plain")
    assert weights(tmp_path / "plain")["fc.weight"].ne(weights(tmp_path / "straight")["fc.weight"]).any(), \
        "Lookahead changes the result"
    from senet.data import load_split
    from senet.training.loop import build_model

    built = build_model(config, load_split(f"folder:{data}", "train", tmp_path / "cache", 6), torch.device("cpu"),
                        fresh=True)
    assert {m.momentum for m in built.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.4}


def test_every_epoch_records_the_probe_images_gates_and_the_reader_returns_them_exactly(tmp_path: Path) -> None:
    from senet.analysis.runner import run_over_split
    from senet.data import CIFAR_MEAN, CIFAR_STD, load_split
    from senet.training.gate_history import read_gate_history

    data = make_texture_dataset(tmp_path / "tex", per_class=12)
    config = tiny_config(data, tmp_path, model="se_resnet20", epochs=3, val_size=16, probe_per_class=3)
    run(config, tmp_path / "run")
    history = read_gate_history(tmp_path / "run")
    assert history.epochs == [1, 2, 3] and len(history.blocks) == 9
    assert list(np.bincount(history.labels)) == [3, 3, 3, 3], "3 of each of the 4 classes"
    model, _ = load_checkpoint(tmp_path / "run" / "last.pt")
    val = load_split(f"folder:{data}", "val", tmp_path / "cache", 16, 0)
    probe = __import__("json").loads((tmp_path / "run" / "gates" / "probe.json").read_text())["positions"]
    final = run_over_split(model, val, CIFAR_MEAN, CIFAR_STD, positions=torch.tensor(probe), capture=True).gates
    for block, g in final.items():
        assert np.array_equal(history.gates[3][block], g.to(torch.float16).float().numpy()), block
    assert not np.array_equal(history.gates[1]["stage3.block3"], history.gates[3]["stage3.block3"]), "they change"
    means = history.class_means(3, "stage1.block1")
    assert means.shape == (4, 16) and set(history.specificity(3)) == set(history.blocks)
    assert read_gate_history(tmp_path / "nothing-here") is None
    plain = tiny_config(data, tmp_path, model="resnet20", epochs=1, val_size=16)
    run(plain, tmp_path / "plain")
    assert not (tmp_path / "plain" / "gates").exists(), "a model without SE records no gates"


def test_val_size_zero_trains_on_every_image_scores_on_test_and_selects_nothing(tmp_path: Path) -> None:
    """"Train on everything": no holdout, every training image trained on, each epoch scored on the test split
    under test_* keys (no val_* figure anywhere), best.pt the last epoch, and the figures equal `senet evaluate`."""
    from senet import evaluate_checkpoint
    from senet.data import DataError
    from senet.recorded import recorded, scored_split

    data = make_folder_dataset(tmp_path / "both", per_class=12, test_split=True)
    config = tiny_config(data, tmp_path, model="se_resnet20", epochs=3, val_size=0, batch_size=6, lr=0.1)
    status = run(config, tmp_path / "run")
    assert status["state"] == "finished" and status["test_acc"] is not None and status.get("best_val_acc") is None
    _, last = load_checkpoint(tmp_path / "run" / "last.pt")
    _, best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert last["train_images"] == 36 and last["val_size"] == 0 and last["scored_on"] == "test"
    assert best["epochs"] == last["epochs"] == 3, "nothing is selected on the test split: best.pt is the last epoch"
    assert_same_weights(read_checkpoint(tmp_path / "run" / "best.pt")["state_dict"], weights(tmp_path / "run"))
    assert all("test_acc" in row and "val_acc" not in row and "val_loss" not in row for row in last["history"])
    assert "val_acc" not in last and scored_split(last) == "test"
    epochs = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl")[0] if r["type"] == "epoch"]
    assert [r["test_acc"] for r in epochs] == [r["test_acc"] for r in last["history"]]
    spec = f"folder:{data}"
    now = evaluate_checkpoint(tmp_path / "run" / "best.pt", spec, "test", tmp_path / "cache", cache_dir=tmp_path / "p")
    assert now.n == 36 and recorded(best, "acc") == now.accuracy
    tta = evaluate_checkpoint(tmp_path / "run" / "best.pt", spec, "test", tmp_path / "cache", tta=True,
                              cache_dir=tmp_path / "p")
    assert recorded(best, "acc_tta") == tta.accuracy
    with pytest.raises(DataError, match="val_size 0 holds out no validation images"):
        evaluate_checkpoint(tmp_path / "run" / "best.pt", spec, "val", tmp_path / "cache", cache_dir=tmp_path / "p")


def test_val_size_zero_without_a_test_split_is_refused_before_training(tmp_path: Path) -> None:
    from senet.data import DataError

    data = make_folder_dataset(tmp_path / "train_only", per_class=6)
    with pytest.raises(DataError, match="val_size 0 .* has no test split"):
        run(tiny_config(data, tmp_path, val_size=0), tmp_path / "run")
