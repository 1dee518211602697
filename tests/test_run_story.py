"""Runs that tell their own story: the Train form's checks are the command line's, and a run resumed with more
epochs says so everywhere (status, runs table, config, curves) with its learning rate drawn per step."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from conftest import call_cli, make_folder_dataset
from senet.checkpoint import read_checkpoint
from senet.training import make_config, train
from senet.training.optim import planned_lrs
from senet.training.runs import read_json, read_metrics, write_json_atomic
from senet.training.settings import field_problems


# --------------------------------------------------------------------------- one validation for CLI and form
@pytest.mark.parametrize("flag, value, field", [("--reduction", "0", "reduction"), ("--epochs", "0", "epochs"),
                                                ("--weight-decay", "-1", "weight_decay"),
                                                ("--weight-decay", "2", "weight_decay"),
                                                ("--label-smoothing", "1", "label_smoothing"),
                                                ("--lr", "0", "lr")])
def test_the_forms_field_messages_are_the_command_lines(capsys, tmp_path, flag, value, field):
    number = float(value) if field in ("weight_decay", "label_smoothing", "lr") else int(value)
    message = field_problems({field: number})[field]
    code, _, err = call_cli(capsys, "train", "--model", "se_resnet20", flag, value, "--data", "cifar10",
                            "--run-dir", str(tmp_path / "run"))
    assert code == 2 and err.strip() == f"senet train: error: {message}", (message, err)
    assert not (tmp_path / "run").exists()
    assert field_problems({field: 16 if field == "reduction" else 1 if field == "epochs" else 0.1}) == {}


def test_everything_checkable_before_a_launch_is_checked_then_without_decoding_an_image(tmp_path, monkeypatch):
    """The batch against the training images (after the holdout and the limit), a holdout the folder cannot
    give, r against the narrowest SE stage: found by counting files, in the words the trainer uses after
    decoding them."""
    import senet.data.sources as sources
    from senet.training.loop import load_training_data
    from senet.training.preflight import check_settings

    data = make_folder_dataset(tmp_path / "data", per_class=10)
    base = dict(model="se_resnet20", recipe="fast", data=f"folder:{data}", data_dir=str(tmp_path / "cache"),
                val_size=6, epochs=1)
    decoded = make_config(**dict(base, batch_size=25))
    with pytest.raises(Exception) as trainer:
        load_training_data(decoded)  # decodes the images: the trainer's own refusal
    monkeypatch.setattr(sources, "_decode_folder", lambda root: pytest.fail("the form's checks decoded images"))
    config, problems = check_settings(dict(base, batch_size=25))
    assert config is None and problems == {"batch_size": str(trainer.value)} == {
        "batch_size": "batch_size 25 is larger than the 24 training images"}
    assert check_settings(dict(base, batch_size=16, train_limit=12))[1] == {
        "batch_size": "batch_size 16 is larger than the 12 training images"}
    assert "val_size 40" in check_settings(dict(base, val_size=40, batch_size=8))[1]["val_size"]
    assert "has no test split" in check_settings(dict(base, val_size=0, batch_size=8))[1]["val_size"]
    assert check_settings(dict(base, reduction=17, batch_size=8))[1] == {
        "reduction": "reduction 17 is larger than the narrowest SE stage (16 channels)"}
    assert check_settings(dict(base, data="sample", batch_size=8))[1]["data"].startswith("data 'sample'")
    assert check_settings(dict(base, data=f"folder:{tmp_path / 'none'}", batch_size=8))[1] == {
        "data": f"folder:{tmp_path / 'none'}: no such directory"}
    config, problems = check_settings(dict(base, batch_size=8))
    assert problems == {} and config.batch_size == 8


# --------------------------------------------------------------------------- a resume with more epochs
class StopAtStep:
    """Sends SIGTERM before the ``step``-th batch (1-based): the run stops after that step."""

    def __init__(self, step: int) -> None:
        self.step, self.seen = step, 0

    def on_batch(self, epoch: int, indices: torch.Tensor) -> None:
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> dict:
    """A fast-recipe run of 2 epochs (3 steps each, a record every 2 steps) stopped after step 5 (between two
    records), then resumed with 3 epochs in total."""
    tmp = tmp_path_factory.mktemp("resumed")
    data = make_folder_dataset(tmp / "data", per_class=10)
    options = dict(data=f"folder:{data}", data_dir=str(tmp / "cache"), batch_size=8, lr=0.05, val_size=6,
                   log_every=2, warmup_epochs=1.0, probe_per_class=0, tta_level=0)
    first = make_config("resnet20", "fast", epochs=2, **options)
    run = tmp / "run"
    run.mkdir()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stopped = train(first, run, progress=False, callbacks=(StopAtStep(5),))
        assert (stopped["state"], stopped["stopped_by"], stopped["step"]) == ("stopped", "SIGTERM", 5)
        longer = make_config("resnet20", "fast", epochs=3, **options)
        final = train(longer, run, resume=True, progress=False)
    finally:
        torch.set_num_threads(before)
    return {"run": run, "first": first, "longer": longer, "final": final}


def test_after_a_resume_with_more_epochs_status_config_and_table_say_the_new_total(resumed):
    from senet_dashboard.launcher import list_run_rows
    from senet_dashboard.runs_table import runs_table

    run = resumed["run"]
    status = read_json(run / "status.json")
    assert status["state"] == "finished" and "stopped_by" not in status, "no stale stop reason"
    assert (status["epoch"], status["epochs"]) == (3, 3)
    config = read_json(run / "config.json")
    assert config["epochs"] == 3, "the run's recorded total is the one it trained to"
    assert config["epochs_plan"] == [{"step": 0, "epoch": 0, "epochs": 2}, {"step": 5, "epoch": 1, "epochs": 3}]
    table, _ = runs_table(list_run_rows(run.parent))
    assert [r["epochs"] for r in table] == ["3/3"]
    meta = read_checkpoint(run / "last.pt")["meta"]
    assert meta["epochs_plan"] == config["epochs_plan"] and meta["config"]["epochs"] == 3


def test_an_old_run_whose_config_kept_the_first_total_shows_the_trainers(tmp_path):
    """Runs resumed before config.json recorded the new total: the table takes status.json's, never '4/3'."""
    from senet_dashboard.launcher import list_run_rows
    from senet_dashboard.runs_table import runs_table

    run = tmp_path / "runs" / "old"
    run.mkdir(parents=True)
    write_json_atomic(run / "config.json", {"model": "resnet20", "recipe": "fast", "epochs": 3})
    write_json_atomic(run / "status.json", {"state": "finished", "epoch": 4, "epochs": 4, "updated_at": 1.0})
    assert [r["epochs"] for r in runs_table(list_run_rows(tmp_path / "runs"))[0]] == ["4/4"]


def test_the_learning_rate_is_recorded_for_every_step_from_the_first_across_the_stop(resumed):
    records = read_metrics(resumed["run"] / "metrics.jsonl")[0]
    lrs = [lr for r in records if r["type"] == "step" for lr in r["lrs"]]
    plan = read_json(resumed["run"] / "config.json")["epochs_plan"]
    assert len(lrs) == 9 and lrs == planned_lrs(resumed["longer"], 3, plan), "every step once, as planned"
    assert lrs[0] == pytest.approx(resumed["first"].lr * resumed["first"].start_lr_frac), "the warm-up's start"
    resume = next(r for r in records if r["type"] == "resume")
    assert (resume["step"], resume["epochs_before"], resume["epochs"]) == (5, 2, 3)


def test_the_curves_mark_the_resume_and_say_the_schedule_was_re_stretched(resumed):
    from senet_dashboard.curves import curves_from_records, resume_notes
    from senet_dashboard.figures import lr_figure

    curves = curves_from_records(read_metrics(resumed["run"] / "metrics.jsonl")[0])
    assert curves.lr_step == list(range(9)), "the learning-rate chart starts at step 0"
    notes = resume_notes(curves)
    lrs = curves.lr_value
    shorter = planned_lrs(resumed["first"], 3)  # where the 2-epoch schedule would have gone on
    assert lrs[5] > shorter[5], "the longer decay stands higher"
    assert notes == [f"Resumed at step 5 (1 epoch done) with 3 epochs in total instead of 2: from there the "
                     f"learning-rate schedule is stretched over 3 epochs; at that step the learning rate is "
                     f"{lrs[5]:.4g} instead of the {shorter[5]:.4g} the 2-epoch schedule gives."]
    fig = lr_figure(curves)
    assert list(fig.data[0].x) == list(range(9)) and fig.data[0].y[0] == pytest.approx(lrs[0])
    marks = [a.text for a in fig.layout.annotations]
    assert marks == ["resumed: 2 → 3 epochs, schedule re-stretched"], marks
    assert [s.x0 for s in fig.layout.shapes] == [5]


def test_a_checkpoints_learning_rate_is_drawn_per_step_from_its_recipe_with_the_recorded_ends(resumed):
    from senet_dashboard.curves import curves_from_checkpoint
    from senet_dashboard.figures import lr_figure

    meta = read_checkpoint(resumed["run"] / "last.pt")["meta"]
    curves = curves_from_checkpoint(meta)
    assert curves.lr_computed and curves.steps_per_epoch == 3
    assert curves.lr_value == planned_lrs(resumed["longer"], 3, meta["epochs_plan"])
    recorded_ends = [row["lr"] for row in meta["history"]]
    assert recorded_ends == [curves.lr_value[3 * e - 1] for e in (1, 2, 3)], "the recipe gives what was recorded"
    fig = lr_figure(curves)
    assert fig.data[0].x[0] == 0 and fig.data[0].y[0] == pytest.approx(0.05 * resumed["first"].start_lr_frac)
    assert list(fig.data[1].x) == [1, 2, 3] and fig.layout.xaxis.dtick == 1


# --------------------------------------------------------------------------- words and axes
def test_epoch_axes_tick_whole_epochs_only():
    from senet_dashboard.curves import curves_from_history
    from senet_dashboard.figures import epoch_figure, overlay_figure

    two = curves_from_history([{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5, "train_acc": 0.5,
                                "lr": 0.1} for e in (1, 2)])
    for fig in (epoch_figure(two, "loss"), epoch_figure(two, "acc"), overlay_figure({"a": two}, "val_acc")):
        assert (fig.layout.xaxis.dtick, fig.layout.xaxis.tickformat) == (1, "d"), "no tick at 1.5"
    eighty = curves_from_history([{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "lr": 0.1} for e in range(1, 81)])
    assert epoch_figure(eighty, "loss").layout.xaxis.dtick == 10


def test_why_the_validation_loss_sits_below_is_said_only_when_it_does():
    from senet_dashboard.card import loss_gap_note

    recipe = {"label_smoothing": 0.1, "crop_pad": 4, "flip": "random"}
    twice = loss_gap_note(recipe, [{"epoch": 9, "train_loss": 0.40, "val_loss": 0.80}], 10)
    assert "below" not in twice and "Why" not in twice
    assert twice.startswith("The validation loss sits above the training loss (0.800 against 0.400 at the last "
                            "epoch, 9), 2.0× as high"), twice
    below = loss_gap_note(recipe, [{"epoch": 9, "train_loss": 0.90, "val_loss": 0.60}], 10)
    assert below.startswith("Why the validation loss sits below the training loss (0.600 against 0.900 at the last "
                            "epoch, 9): "), below
    assert loss_gap_note(recipe, [{"epoch": 1, "train_loss": 0.9}], 10) is None, "no held-out loss: no claim"


def test_the_train_page_shows_a_resumed_runs_new_total_and_why_its_rate_jumps(resumed, tmp_path):
    from conftest import app_environment, no_exceptions, open_app, texts

    (tmp_path / "checkpoints").mkdir()
    run = resumed["run"]
    with app_environment(tmp_path / "checkpoints", run.parent, resumed["longer"].data, tmp_path / "cache"):
        at = open_app("senet_dashboard/views/train.py")
        no_exceptions(at)
        assert next(n for n in at.number_input if n.label == "Epochs in total").value == 3, "the new total"
        assert any(t.startswith("3/3 epochs done") for t in texts(at, "markdown") + [
            str(p.proto.text) for p in at.get("progress")]), "the progress bar says the new total"
        assert any("with 3 epochs in total instead of 2" in c for c in texts(at, "caption"))
        assert list(at.dataframe[0].value["epochs"]) == ["3/3"]
