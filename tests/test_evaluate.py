"""senet.analysis.evaluate: whole-split predictions, the confusion matrix's orientation, the report, the cache."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_folder_dataset
from senet.checkpoint import Checkpoint
from senet import save_checkpoint
from senet.data import CIFAR_MEAN, CIFAR_STD
from senet.data import DataError, load_split
from senet.analysis.evaluate import Evaluation, class_report, evaluate, evaluate_checkpoint

META = {"mean": list(CIFAR_MEAN), "std": list(CIFAR_STD)}


class ColourModel(nn.Module):
    """Predicts the class of make_folder_dataset's colour images from the channel means.

    Classes are sorted folder names: blue (channel 2), green (channel 1), red (channel 0).
    ``bias`` shifts the logits, to make it predict one class for everything.
    """

    def __init__(self, bias: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = x.mean(dim=(2, 3))
        return 10 * means[:, [2, 1, 0]] + self.bias


def test_confusion_rows_are_true_classes_and_columns_predictions() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2])
    probs = np.eye(3)[[1, 1, 0, 1, 2, 0]].astype(np.float32)  # predictions 1, 1, 0, 1, 2, 0
    ev = Evaluation(probs, labels, np.arange(6), ["a", "b", "c"])
    expected = np.array([[1, 2, 0],   # true a: once a, twice b
                         [0, 1, 0],   # true b: b
                         [1, 0, 1]])  # true c: once a, once c
    assert (ev.confusion == expected).all(), f"expected rows = true class:\n{expected}\ngot\n{ev.confusion}"
    assert ev.confusion.sum() == ev.n == 6
    assert np.trace(ev.confusion) / ev.n == pytest.approx(ev.accuracy) == pytest.approx(3 / 6)


def test_class_report_per_class_and_averages() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2])
    preds = np.array([1, 1, 0, 1, 2, 0])
    report = class_report(labels, preds, ["a", "b", "c"])
    a, b, c = report["per_class"]
    assert (a["support"], b["support"], c["support"]) == (3, 1, 2)
    assert a["recall"] == pytest.approx(1 / 3) and a["precision"] == pytest.approx(1 / 2)
    assert b["precision"] == pytest.approx(1 / 3) and b["recall"] == 1.0
    assert report["micro"]["f1"] == pytest.approx(0.5), "micro-averaged F1 equals accuracy for single-label data"
    assert report["macro"]["recall"] == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)


def test_evaluate_covers_the_whole_split_in_batches(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=15)
    data = load_split(f"folder:{root}", "val", data_dir=tmp_path, val_size=21)
    seen = []
    ev = evaluate(Checkpoint.of(ColourModel(), mean=META["mean"], std=META["std"]), data, batch_size=4, progress=lambda done, total: seen.append((done, total)))
    assert ev.n == 21 and ev.probs.shape == (21, 3), "every image of the split, not one batch"
    assert seen[-1] == (21, 21) and len(seen) == 6
    assert np.allclose(ev.probs.sum(1), 1.0)
    assert ev.accuracy == 1.0, "the colour rule classifies these images perfectly"
    assert ev.confusion.sum() == 21 and (np.diag(ev.confusion) == np.bincount(ev.labels)).all()


def test_confusion_of_a_constant_predictor_fills_one_column_with_the_class_supports(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=10)
    data = load_split(f"folder:{root}", "train", data_dir=tmp_path, val_size=3)
    ev = evaluate(Checkpoint.of(ColourModel(bias=(0.0, 0.0, 1e3)), mean=META["mean"], std=META["std"]), data, batch_size=7)  # always "red"
    cm = ev.confusion
    assert (cm[:, 2] == np.bincount(data.labels.numpy(), minlength=3)).all() and cm[:, :2].sum() == 0
    assert ev.accuracy == pytest.approx(np.trace(cm) / cm.sum()) == pytest.approx(9 / 27)


def test_flip_tta_averages_the_mirrored_prediction(tmp_path: Path) -> None:
    class LeftRight(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            left, right = x[..., :16].mean(dim=(1, 2, 3)), x[..., 16:].mean(dim=(1, 2, 3))
            return torch.stack([left - right, right - left, torch.zeros_like(left)], 1) * self.w

    root = make_folder_dataset(tmp_path / "ds", per_class=4)
    data = load_split(f"folder:{root}", "train", data_dir=tmp_path, val_size=3)
    plain = evaluate(Checkpoint.of(LeftRight(), mean=META["mean"], std=META["std"]), data)
    tta = evaluate(Checkpoint.of(LeftRight(), mean=META["mean"], std=META["std"]), data, tta=True)
    assert not np.allclose(plain.probs, tta.probs)
    assert np.allclose(tta.probs[:, 0], tta.probs[:, 1]), "a mirror-antisymmetric model averages to a tie"


def _save(model: nn.Module, path: Path, classes=("blue", "green", "red")) -> Path:
    save_checkpoint(path, model, model_name="se_resnet20", model_options={"num_classes": len(classes)},
                    classes=classes, config={"val_size": 6, "split_seed": 3}, split_seed=3)
    return path


def test_evaluate_checkpoint_uses_the_recorded_split_and_caches_predictions(tmp_path: Path, tiny_checkpoint: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from senet import load_checkpoint

    root = make_folder_dataset(tmp_path / "ds", classes=("blue", "green", "red"), per_class=10)
    model, _ = load_checkpoint(tiny_checkpoint)
    ckpt = _save(model, tmp_path / "m.pt")
    first = evaluate_checkpoint(ckpt, f"folder:{root}", "val", data_dir=tmp_path)
    expected = load_split(f"folder:{root}", "val", data_dir=tmp_path, val_size=6, split_seed=3)
    assert first.n == 6 and (first.labels == expected.labels.numpy()).all()
    assert list((tmp_path / ".senet-cache" / "predictions").glob("*.npz")), "expected a prediction cache file"

    ev_module = importlib.import_module("senet.analysis.evaluate")  # the package's `evaluate` attribute is the function
    monkeypatch.setattr(ev_module, "evaluate", lambda *a, **k: pytest.fail("predictions were computed again"))
    again = evaluate_checkpoint(ckpt, f"folder:{root}", "val", data_dir=tmp_path)
    assert np.array_equal(again.probs, first.probs)


def test_evaluating_on_data_with_other_classes_is_refused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", classes=("cat", "dog"), per_class=5)
    with pytest.raises(DataError, match="differ from the 3 classes"):
        evaluate_checkpoint(tiny_checkpoint, f"folder:{root}", "val", data_dir=tmp_path)


def test_tta_level_two_is_the_flip_pair_and_two_translated_flip_pairs_weighted_as_airbench() -> None:
    from senet.analysis.runner import view_probabilities

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)).eval()
    x = torch.randn(3, 3, 8, 8)
    p = lambda v: torch.softmax(model(v), 1)  # noqa: E731
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :8, :8], padded[..., 2:, 2:]
    by_hand = (0.25 * (p(x) + p(x.flip(-1))) + 0.125 * (p(up_left) + p(up_left.flip(-1)))
               + 0.125 * (p(down_right) + p(down_right.flip(-1))))
    with torch.no_grad():
        assert torch.allclose(view_probabilities(model, x, 2), by_hand, atol=1e-6)
        assert torch.allclose(view_probabilities(model, x, True), 0.5 * (p(x) + p(x.flip(-1))), atol=1e-6)
        assert torch.allclose(view_probabilities(model, x, 0), p(x), atol=1e-6)
    with pytest.raises(ValueError, match="tta level"):
        view_probabilities(model, x, 3)


def test_a_shipped_checkpoint_evaluates_on_the_bundled_sample(tmp_path: Path) -> None:
    from conftest import ROOT

    ev = evaluate_checkpoint(ROOT / "checkpoints" / "resnet20.pt", "sample", "val", tmp_path, cache_dir=tmp_path)
    assert ev.n == 500 and ev.split == "val" and ev.classes[0] == "airplane"
    assert ev.confusion.sum(axis=1).tolist() == [50] * 10, "50 images of each true class"
    assert ev.accuracy > 0.5, f"a trained model on its own held-out images should be far above chance: {ev.accuracy}"
    with pytest.raises(DataError, match="only held-out validation images"):
        evaluate_checkpoint(ROOT / "checkpoints" / "resnet20.pt", "sample", "test", tmp_path, cache_dir=tmp_path)


def test_a_streamed_evaluation_grows_chunk_by_chunk_and_resumes_from_its_cached_chunks(tmp_path: Path,
                                                                                        tiny_checkpoint: Path) -> None:
    from senet.analysis.evaluate import stream_evaluation

    root = make_folder_dataset(tmp_path / "ds", per_class=10)  # 30 images: 27 in the train split, 3 held out
    path = tiny_checkpoint
    spec, cache = f"folder:{root}", tmp_path / "pred"
    sizes = [ev.n for ev in stream_evaluation(path, spec, "train", tmp_path, cache_dir=cache, chunk=8)]
    whole = evaluate_checkpoint(path, spec, "train", tmp_path, cache_dir=tmp_path / "other")
    assert sizes == [8, 16, 24, 27] and sizes[-1] == whole.n
    final = list(stream_evaluation(path, spec, "train", tmp_path, cache_dir=cache, chunk=8))
    assert len(final) == 1 and np.allclose(final[0].probs, whole.probs), "the whole split is cached"
    assert not list(cache.glob("*.part*.npz")), "the chunks give way to the whole"
    # interrupted after two chunks: a new evaluation reads them back and computes only the rest
    interrupted = stream_evaluation(path, spec, "train", tmp_path, cache_dir=tmp_path / "cut", chunk=8)
    next(interrupted), next(interrupted)
    interrupted.close()
    assert len(list((tmp_path / "cut").glob("*.part*.npz"))) == 2
    calls = []
    resumed = list(stream_evaluation(path, spec, "train", tmp_path, cache_dir=tmp_path / "cut", chunk=8,
                                     progress=lambda d, n: calls.append(d)))
    assert np.allclose(resumed[-1].probs, whole.probs) and calls[:2] == [8, 16], "two chunks read, not recomputed"
