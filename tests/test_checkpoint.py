"""Checkpoints: bit-identical round trip, atomic writes, and a one-line CheckpointError for every bad file."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from senet import CheckpointError, create_model, load_checkpoint, save_checkpoint
from senet.checkpoint import FORMAT, VERSION, export_checkpoint

CLASSES = ("red", "green", "blue")


def make_model(name: str = "se_resnet20", seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, **options)
    for m in model.modules():  # non-default BatchNorm statistics, so buffers must round-trip too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def save(path: Path, model: nn.Module | None = None, **overrides) -> Path:
    model = model if model is not None else make_model(num_classes=3)
    options = dict(model_name="se_resnet20", model_options={"num_classes": 3}, classes=CLASSES)
    options.update(overrides)
    save_checkpoint(path, model, **options)
    return path


def valid_payload(tmp_path: Path) -> dict:
    return torch.load(save(tmp_path / "valid.pt"), weights_only=True)


def assert_one_line_error(path: Path, reason: str | None = None) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, f"the error should name the file: {message}"
    assert "\n" not in message, f"the error should be one line: {message!r}"
    if reason:
        assert reason in message, f"expected {reason!r} in {message!r}"
    return message


def test_round_trip_gives_bit_identical_outputs(tmp_path):
    model = make_model(num_classes=3)
    path = save(tmp_path / "m.pt", model, history=[{"epoch": 1, "val_acc": 0.5}], val_acc=0.5, recipe="fast")
    loaded, meta = load_checkpoint(path)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)), "a loaded checkpoint must reproduce the saved model exactly"
    assert not loaded.training, "load_checkpoint returns the model in eval mode"
    assert meta["model"] == "se_resnet20" and meta["model_options"] == {"num_classes": 3}
    assert meta["classes"] == list(CLASSES) and meta["input_size"] == [3, 32, 32]
    assert len(meta["mean"]) == len(meta["std"]) == 3
    assert meta["history"] == [{"epoch": 1, "val_acc": 0.5}] and meta["val_acc"] == 0.5 and meta["recipe"] == "fast"
    assert meta["path"] == str(path)


def test_conftest_tiny_checkpoint_loads(tiny_checkpoint):
    model, meta = load_checkpoint(tiny_checkpoint)
    assert meta["classes"] == ["blue", "green", "red"] and model.fc.out_features == 3


def test_missing_file(tmp_path):
    assert_one_line_error(tmp_path / "nope.pt", "no such checkpoint file")


def test_directory_instead_of_file(tmp_path):
    assert_one_line_error(tmp_path, "not a file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert_one_line_error(path, "empty")


def test_truncated_file(tmp_path):
    path = save(tmp_path / "cut.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_one_line_error(path, "not a readable PyTorch checkpoint")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(4096))
    assert_one_line_error(path, "not a readable PyTorch checkpoint")


def test_bare_state_dict_is_not_a_senet_checkpoint(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(make_model(num_classes=3).state_dict(), path)
    assert_one_line_error(path, "not a senet checkpoint")


def test_future_version_is_refused(tmp_path):
    payload = valid_payload(tmp_path)
    payload["version"] = VERSION + 1
    torch.save(payload, tmp_path / "future.pt")
    assert_one_line_error(tmp_path / "future.pt", f"unsupported checkpoint version {VERSION + 1}")


def test_weights_that_do_not_fit_the_named_model(tmp_path):
    path = save(tmp_path / "shapes.pt", make_model("se_resnet32", num_classes=3))  # labelled se_resnet20
    assert_one_line_error(path, "weights do not fit model 'se_resnet20'")
    path = save(tmp_path / "wide.pt", make_model(num_classes=3), model_options={"num_classes": 3, "width": 2})
    assert_one_line_error(path, "weights do not fit")


def test_wrong_number_of_classes(tmp_path):
    path = save(tmp_path / "k.pt", model_options={"num_classes": 10})  # weights have 3 outputs
    assert_one_line_error(path, "weights do not fit")
    path = save(tmp_path / "names.pt", classes=tuple("abcdefghij"))  # 3-class model, 10 names
    assert_one_line_error(path, "predicts 3 classes but the checkpoint names 10")


@pytest.mark.parametrize("key, value, reason", [("model", "resnet999", "unknown model 'resnet999'"),
                                                ("model_options", "num_classes=3", "bad 'model_options'"),
                                                ("classes", [], "bad 'classes'"),
                                                ("std", [0.2, 0.0, 0.2], "bad 'std'"),
                                                ("input_size", [3, 32], "bad 'input_size'")])
def test_bad_metadata_is_refused(tmp_path, key, value, reason):
    payload = valid_payload(tmp_path)
    payload[key] = value
    torch.save(payload, tmp_path / "bad.pt")
    assert_one_line_error(tmp_path / "bad.pt", reason)


class CreatesMarker:
    """Unpickling this object would create a file: the checkpoint loader must never let it run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = valid_payload(tmp_path)
    payload["meta"] = {"note": CreatesMarker(marker)}
    torch.save(payload, tmp_path / "evil.pt")  # zip format, as torch.save writes
    (tmp_path / "evil_legacy.pt").write_bytes(pickle.dumps({"format": FORMAT, "x": CreatesMarker(marker)}, protocol=2))
    for name in ("evil.pt", "evil_legacy.pt"):
        assert_one_line_error(tmp_path / name, "refused")
        assert not marker.exists(), f"loading {name} ran code from the pickle"
    # the payload really is armed: an unsafe load would have created the marker
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_atomic_save_keeps_previous_file_when_the_write_fails(tmp_path, monkeypatch):
    old_model = make_model(num_classes=3, seed=1)
    path = save(tmp_path / "m.pt", old_model)
    before = path.read_bytes()
    real_save = torch.save

    def crash_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save(path, make_model(num_classes=3, seed=2))
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before, "a failed save must leave the previous checkpoint untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"], "a failed save must leave no temporary file"
    loaded, _ = load_checkpoint(path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), old_model(x))


def test_save_leaves_no_temporary_files_and_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save(tmp_path / "m.pt")
        save(path)  # overwrite
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert path.stat().st_mode & 0o777 == 0o644, "the checkpoint should be readable like any other file"


# --------------------------------------------------------------------------- export for shipping
def save_with_training_state(path: Path) -> Path:
    model = make_model(num_classes=3)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimiser.step()
    return save(path, model.eval(), extra_state={"optimizer": optimiser.state_dict()}, val_acc=0.5)


def test_half_export_is_smaller_drops_training_state_and_predicts_alike(tmp_path):
    source = save_with_training_state(tmp_path / "best.pt")
    summary = export_checkpoint(source, tmp_path / "ship.pt", half=True)
    payload = torch.load(tmp_path / "ship.pt", weights_only=True)
    assert payload["extra_state"] == {}
    assert {t.dtype for t in payload["state_dict"].values() if t.is_floating_point()} == {torch.float16}
    assert summary["bytes"] < 0.4 * summary["source_bytes"], summary  # weights halved, optimiser state gone
    assert 0 < summary["max_abs_error"] < 1e-2
    original, _ = load_checkpoint(source)
    shipped, meta = load_checkpoint(tmp_path / "ship.pt")
    assert meta["weights_dtype"] == "float16" and meta["exported_from"] == str(source) and meta["val_acc"] == 0.5
    assert all(p.dtype == torch.float32 for p in shipped.parameters()), "loading casts back to float32"
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = original(x).softmax(1), shipped(x).softmax(1)
    assert not torch.equal(a, b), "float16 rounding should change the outputs a little"
    assert (a - b).abs().max() < 1e-2 and torch.equal(a.argmax(1), b.argmax(1))


def test_full_precision_export_keeps_the_weights_exactly(tmp_path):
    source = save_with_training_state(tmp_path / "best.pt")
    summary = export_checkpoint(source, tmp_path / "ship.pt")
    assert summary["weights_dtype"] == "float32" and summary["max_abs_error"] == 0.0
    a = torch.load(source, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "ship.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_export_of_an_export_keeps_its_first_source_and_its_float16_weights(tmp_path):
    source = save_with_training_state(tmp_path / "best.pt")
    export_checkpoint(source, tmp_path / "first.pt", half=True)
    summary = export_checkpoint(tmp_path / "first.pt", tmp_path / "second.pt")
    meta = torch.load(tmp_path / "second.pt", weights_only=True)["meta"]
    assert meta["exported_from"] == f"{source} (then {tmp_path / 'first.pt'})"
    assert summary["weights_dtype"] == "float16" and summary["max_abs_error"] == 0.0


def test_export_refuses_to_overwrite_without_being_asked_and_never_touches_the_source(tmp_path):
    source = save_with_training_state(tmp_path / "best.pt")
    before = source.read_bytes()
    existing = tmp_path / "ship.pt"
    existing.write_bytes(b"keep me")
    with pytest.raises(CheckpointError, match="already exists"):
        export_checkpoint(source, existing, half=True)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(CheckpointError, match="source checkpoint itself"):
        export_checkpoint(source, source, half=True, overwrite=True)
    assert source.read_bytes() == before
    export_checkpoint(source, existing, half=True, overwrite=True)
    assert load_checkpoint(existing)[1]["weights_dtype"] == "float16"


def test_export_refuses_weights_that_overflow_float16(tmp_path):
    model = make_model(num_classes=3)
    with torch.no_grad():
        model.fc.weight[0, 0] = 1e6
    source = save(tmp_path / "big.pt", model)
    with pytest.raises(CheckpointError, match=r"fc.weight.*overflows float16"):
        export_checkpoint(source, tmp_path / "ship.pt", half=True)
    assert not (tmp_path / "ship.pt").exists()


def test_export_of_a_bad_checkpoint_names_it_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        export_checkpoint(bad, tmp_path / "ship.pt", half=True)
    assert not (tmp_path / "ship.pt").exists()
