"""senet.data: dataset specs, the uint8 cache, stratified splits, bad folders, batched augmentation."""
from __future__ import annotations

import logging
import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_folder_dataset
from senet.data import (Augment, DataError, TensorDataset, augment_batch, cutout_masks, eval_batches, limit_split,
                        load_split, parse_spec, parse_val_size, stratified_split, train_batches)

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --------------------------------------------------------------------------- helpers
def write_fake_cifar10(root: Path, per_batch: int = 20, n_test: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny ``cifar-10-batches-py`` in torchvision's format: pickled dicts with ``data`` (N, 3072) uint8
    rows (channel-major, CHW flattened) and ``labels``, plus ``batches.meta`` with ``label_names``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.permutation(np.arange(n) % 10)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f)
        written[name] = (data, np.array(labels))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch}, f)
    return written


@pytest.fixture
def skip_cifar_md5(monkeypatch: pytest.MonkeyPatch) -> list:
    """torchvision verifies every CIFAR-10 file against its published md5, which a fake can never match.

    Only for these tests, ``check_integrity`` is replaced by "the file exists", and a download attempt is
    recorded (and refused) instead of reaching the network. Returns the list of attempted downloads.
    """
    import torchvision.datasets.cifar as tv_cifar

    attempts: list = []
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))

    def no_download(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("the loader tried to download although the files are present")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_download)
    return attempts


# --------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec", ["", "imagenet", "folder:", "cifar-100", "Folder:/x"])
def test_parse_spec_refuses_unknown_datasets(spec: str) -> None:
    with pytest.raises(DataError, match="expected 'cifar10', 'cifar100' or 'folder:PATH'"):
        parse_spec(spec)


def test_parse_spec_understands_cifar10_and_folders(tmp_path: Path) -> None:
    assert parse_spec("cifar10") == ("cifar10", None)
    assert parse_spec(f"folder:{tmp_path}") == ("folder", tmp_path)


# --------------------------------------------------------------------------- cifar10
def test_cifar10_loader_reads_torchvision_batches(tmp_path: Path, skip_cifar_md5: list) -> None:
    written = write_fake_cifar10(tmp_path)
    train = load_split("cifar10", "train", data_dir=tmp_path, val_size=20)
    val = load_split("cifar10", "val", data_dir=tmp_path, val_size=20)
    test = load_split("cifar10", "test", data_dir=tmp_path)
    assert skip_cifar_md5 == [], "no download expected when the batches are on disk"
    assert train.classes == CIFAR_NAMES
    assert (len(train), len(val), len(test)) == (80, 20, 30)
    assert train.images.shape == (80, 3, 32, 32) and train.images.dtype == torch.uint8
    data, labels = written["test_batch"]
    assert torch.equal(test.images[7], torch.from_numpy(data[7].reshape(3, 32, 32))), "row layout is CHW"
    assert test.labels.tolist() == labels.tolist()
    for k in (0, 5, 79):  # train images keep their position in the 50k-style source order
        batch, row = divmod(int(train.indices[k]), 20)
        expected = written[f"data_batch_{batch + 1}"][0][row].reshape(3, 32, 32)
        assert torch.equal(train.images[k], torch.from_numpy(expected)), f"train image {k} is not source row {row}"


def test_cifar10_second_load_comes_from_the_uint8_cache(tmp_path: Path, skip_cifar_md5: list,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_cifar10(tmp_path)
    first = load_split("cifar10", "test", data_dir=tmp_path)
    assert list((tmp_path / ".senet-cache").glob("cifar10-test-*.pt")), "expected a cache file"
    import torchvision

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", refuse)
    again = load_split("cifar10", "test", data_dir=tmp_path)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)


def test_cifar10_offline_fails_with_one_line_naming_the_way_out(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as err:
        load_split("cifar10", "train", data_dir=tmp_path / "empty")
    message = str(err.value)
    assert "\n" not in message, f"expected one line, got {message!r}"
    assert "could not download CIFAR-10" in message and "folder:PATH" in message, message


# --------------------------------------------------------------------------- folders
def test_folder_dataset_skips_a_non_image_file_and_counts_it(tmp_path: Path, caplog) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=6)
    (root / "train" / "red" / "notes.txt").write_text("not an image")
    (root / "train" / "green" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.new("RGB", (50, 40), (255, 0, 0)).save(root / "train" / "red" / "big.jpg")  # resized on caching
    with caplog.at_level(logging.WARNING, logger="senet.data"):
        train = load_split(f"folder:{root}", "train", data_dir=tmp_path, val_size=3)
    val = load_split(f"folder:{root}", "val", data_dir=tmp_path, val_size=3)
    assert len(train) + len(val) == 19, "18 pngs + 1 resized jpg; the text file and broken png are skipped"
    assert train.classes == ["blue", "green", "red"]
    assert train.images.shape[1:] == (3, 32, 32)
    assert any("skipped 2 file(s)" in r.getMessage() for r in caplog.records), caplog.text


def test_folder_test_split_is_read_from_the_test_folder(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=4, test_split=True)
    test = load_split(f"folder:{root}", "test", data_dir=tmp_path)
    assert len(test) == 12 and test.split == "test"


def test_folder_without_test_split_says_so(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=4)
    with pytest.raises(DataError, match="has no test split"):
        load_split(f"folder:{root}", "test", data_dir=tmp_path)


def test_folder_test_classes_must_match_train(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=4, test_split=True)
    (root / "test" / "blue").rename(root / "test" / "cyan")
    with pytest.raises(DataError, match="differ from train classes"):
        load_split(f"folder:{root}", "test", data_dir=tmp_path)


def _no_subfolders(root: Path) -> Path:
    (root / "train").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(root / "train" / "loose.png")
    return root


def _empty_class(root: Path) -> Path:
    make_folder_dataset(root, per_class=3)
    (root / "train" / "zebra").mkdir()
    (root / "train" / "zebra" / "readme.txt").write_text("no images here")
    return root


def _one_class(root: Path) -> Path:
    return make_folder_dataset(root, classes=("only",), per_class=5)


def _no_train(root: Path) -> Path:
    make_folder_dataset(root, per_class=2)
    (root / "train").rename(root / "training")
    return root


@pytest.mark.parametrize("build, expected", [
    (lambda root: root, "no such directory"),
    (_no_subfolders, "no class subfolders"),
    (_empty_class, "class folder 'zebra' has no readable images"),
    (_one_class, "only one class"),
    (_no_train, "no 'train' folder"),
])
def test_bad_folders_give_one_line_data_errors(tmp_path: Path, build, expected: str) -> None:
    root = build(tmp_path / "bad")
    with pytest.raises(DataError) as err:
        load_split(f"folder:{root}", "train", data_dir=tmp_path)
    assert expected in str(err.value) and "\n" not in str(err.value), f"expected one line with {expected!r}: {err.value}"


@pytest.mark.parametrize("val_size", [-5, 1.5, 60, 100, float("nan")])
def test_impossible_validation_sizes_are_refused(tmp_path: Path, val_size) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=20)
    with pytest.raises(DataError, match="val_size"):
        load_split(f"folder:{root}", "val", data_dir=tmp_path, val_size=val_size)


def test_val_size_zero_trains_on_every_image_and_has_no_val_split(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=20)
    train = load_split(f"folder:{root}", "train", data_dir=tmp_path, val_size=0)
    assert len(train) == 60 and train.indices.tolist() == list(range(60))
    with pytest.raises(DataError, match="val_size 0 holds out no validation images .*use the test split"):
        load_split(f"folder:{root}", "val", data_dir=tmp_path, val_size=0)
    assert parse_val_size("0") == 0


# --------------------------------------------------------------------------- splits
def test_validation_split_is_deterministic_stratified_and_disjoint() -> None:
    g = torch.Generator().manual_seed(3)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([500, 300, 120, 80])])[torch.randperm(1000, generator=g)]
    train_a, val_a = stratified_split(labels, 100, seed=5)
    train_b, val_b = stratified_split(labels, 100, seed=5)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b), "same seed, same split"
    assert not torch.equal(stratified_split(labels, 100, seed=6)[1], val_a), "another seed, another split"
    assert len(val_a) == 100 and len(train_a) == 900
    assert not set(val_a.tolist()) & set(train_a.tolist()), "train and val overlap"
    assert sorted(val_a.tolist() + train_a.tolist()) == list(range(1000)), "together they cover every image"
    per_class = torch.bincount(labels[val_a], minlength=4).tolist()
    assert per_class == [50, 30, 12, 8], f"expected the class proportions 50/30/12/8, got {per_class}"


def test_stratified_split_rounds_by_largest_remainder() -> None:
    labels = torch.tensor([0] * 7 + [1] * 7 + [2] * 6)
    _, val = stratified_split(labels, 5, seed=0)
    counts = torch.bincount(labels[val], minlength=3).tolist()
    assert sum(counts) == 5 and all(abs(c - q) < 1 for c, q in zip(counts, [1.75, 1.75, 1.5])), counts


def test_load_split_train_and_val_partition_the_folder(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "ds", per_class=10)
    spec = f"folder:{root}"
    train = load_split(spec, "train", data_dir=tmp_path, val_size=0.2, split_seed=1)
    val = load_split(spec, "val", data_dir=tmp_path, val_size=0.2, split_seed=1)
    assert len(val) == 6 and torch.bincount(val.labels).tolist() == [2, 2, 2]
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    assert sorted(train.indices.tolist() + val.indices.tolist()) == list(range(30))


def test_limit_split_takes_a_stratified_deterministic_subset() -> None:
    labels = torch.arange(100) % 4
    data = TensorDataset(torch.zeros(100, 3, 32, 32, dtype=torch.uint8), labels, list("abcd"), indices=torch.arange(100) + 1000)
    small = limit_split(data, 20, seed=0)
    assert len(small) == 20 and torch.bincount(small.labels).tolist() == [5, 5, 5, 5]
    assert torch.equal(small.indices, limit_split(data, 20, seed=0).indices)
    assert small.indices.min() >= 1000, "indices stay positions in the source"
    assert limit_split(data, 500) is data


# --------------------------------------------------------------------------- batches
def _toy(n: int = 64) -> TensorDataset:
    images = torch.arange(n * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(n, 3, 32, 32)
    return TensorDataset(images, torch.arange(n) % 4, list("abcd"))


def test_ranks_see_disjoint_shards_that_cover_each_global_batch() -> None:
    data, aug = _toy(64), Augment()
    single = [idx for _, _, idx in train_batches(data, 16, epoch=2, seed=7, aug=aug)]
    r0 = [idx for _, _, idx in train_batches(data, 16, epoch=2, seed=7, aug=aug, rank=0, world_size=2)]
    r1 = [idx for _, _, idx in train_batches(data, 16, epoch=2, seed=7, aug=aug, rank=1, world_size=2)]
    assert len(single) == len(r0) == len(r1) == 4
    for whole, a, b in zip(single, r0, r1):
        assert len(a) == len(b) == 8
        assert not set(a.tolist()) & set(b.tolist()), "ranks overlap within a step"
        assert sorted(a.tolist() + b.tolist()) == sorted(whole.tolist()), "ranks do not make up the global batch"
    assert sorted(torch.cat(r0 + r1).tolist()) == list(range(64)), "one epoch covers every image once"


def test_rank_shard_gets_the_same_augmentation_as_single_process() -> None:
    data, aug = _toy(32), Augment(pad_mode="reflect", flip="alternating")
    (x_all, y_all, idx_all), = list(train_batches(data, 32, epoch=1, seed=0, aug=aug))
    (x_r1, y_r1, idx_r1), = list(train_batches(data, 32, epoch=1, seed=0, aug=aug, rank=1, world_size=2))
    assert torch.equal(idx_r1, idx_all[1::2])
    assert torch.equal(x_r1, x_all[1::2]) and torch.equal(y_r1, y_all[1::2])


def test_resumed_epoch_continues_with_the_same_batches() -> None:
    data, aug = _toy(64), Augment()
    whole = list(train_batches(data, 16, epoch=0, seed=1, aug=aug))
    rest = list(train_batches(data, 16, epoch=0, seed=1, aug=aug, start_step=2))
    assert len(rest) == 2
    for (xa, _, ia), (xb, _, ib) in zip(whole[2:], rest):
        assert torch.equal(ia, ib) and torch.equal(xa, xb)


def test_augment_crop_offsets_and_flip_are_exact() -> None:
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    centre = torch.tensor([[4, 4], [0, 0], [8, 2]])
    out = augment_batch(x, Augment(crop_pad=4, pad_mode="zeros"), torch.tensor([False, False, True]), centre,
                        mean=(0, 0, 0), std=(1, 1, 1))
    ref = x.float() / 255
    assert torch.allclose(out[0], ref[0]), "shift (4, 4) with pad 4 is the identity"
    assert torch.allclose(out[1, :, 4:, 4:], ref[1, :, :28, :28]) and out[1, :, :4].abs().sum() == 0, \
        "shift (0, 0) moves the image down-right and fills zeros"
    expected = torch.zeros(3, 32, 32)
    expected[:, :28, 2:] = ref[2, :, 4:, :30]
    assert torch.allclose(out[2], expected.flip(-1)), "shift (8, 2), then a mirror"


def test_cutout_blanks_exactly_the_square_at_each_corner_and_nothing_else() -> None:
    x = torch.randint(1, 256, (2, 3, 32, 32), dtype=torch.uint8)  # no pixel is 0, so 0 marks the cutout
    corners = torch.tensor([[0, 0], [24, 19]])
    out = augment_batch(x, Augment(crop_pad=0, flip="none", cutout=8), torch.zeros(2, dtype=torch.bool),
                        torch.zeros(2, 2, dtype=torch.long), mean=(0, 0, 0), std=(1, 1, 1), corners=corners)
    blank = (out == 0).all(1)
    assert blank[0, :8, :8].all() and blank[0].sum() == 64
    assert blank[1, 24:, 19:27].all() and blank[1].sum() == 64
    assert torch.allclose(out[~blank[:, None].expand_as(out)], (x.float() / 255)[~blank[:, None].expand_as(out)])
    assert cutout_masks(torch.tensor([[30, 30]]), 4, 32, 32).sum() == 4, "a square past the edge is clipped"


def test_cutout_squares_lie_inside_the_image_are_reproducible_and_leave_other_draws_unchanged() -> None:
    data = _toy(64)
    plain = list(train_batches(data, 64, epoch=3, seed=5, aug=Augment(pad_mode="reflect")))
    cut = list(train_batches(data, 64, epoch=3, seed=5, aug=Augment(pad_mode="reflect", cutout=12)))
    again = list(train_batches(data, 64, epoch=3, seed=5, aug=Augment(pad_mode="reflect", cutout=12)))
    (xp, _, ip), (xc, _, ic), (xa, _, _) = plain[0], cut[0], again[0]
    assert torch.equal(ip, ic) and torch.equal(xc, xa)
    blank = (xc != xp).any(1)  # where the cutout changed the (otherwise identical) crop
    rows, cols = blank.any(2), blank.any(1)
    assert (rows.sum(1) <= 12).all() and (cols.sum(1) <= 12).all() and (blank.sum((1, 2)) > 0).all()
    assert torch.equal(torch.where(blank[:, None].expand_as(xp), xp, xc), xp), "only the square differs"
    small = TensorDataset(data.images[:4, :, :8, :8].contiguous(), data.labels[:4], data.classes)
    (xs, _, _), = list(train_batches(small, 4, epoch=0, seed=0, aug=Augment(crop_pad=0, flip="none", cutout=12)))
    assert (xs == 0).all(), "a cutout larger than the image blanks all of it"
    with pytest.raises(ValueError, match="corners"):
        augment_batch(data.images[:2], Augment(cutout=4), torch.zeros(2, dtype=torch.bool),
                      torch.zeros(2, 2, dtype=torch.long))


def test_eval_batches_cover_the_split_in_order_across_ranks() -> None:
    data = _toy(23)
    single = torch.cat([idx for _, _, idx in eval_batches(data, 5)])
    assert single.tolist() == list(range(23))
    shards = [torch.cat([idx for _, _, idx in eval_batches(data, 5, rank=r, world_size=2)]) for r in (0, 1)]
    assert sorted(torch.cat(shards).tolist()) == list(range(23)) and not set(shards[0].tolist()) & set(shards[1].tolist())


# --------------------------------------------------------------------------- the bundled sample
def test_sample_spec_loads_500_held_out_images_50_per_class_in_class_order() -> None:
    from senet.data import SAMPLE_FILE

    assert SAMPLE_FILE.is_file() and SAMPLE_FILE.stat().st_size < 4 * 2**20, "one compact file, a few MB at most"
    assert parse_spec("sample") == ("sample", None)
    data = load_split("sample", "val")
    assert data.images.shape == (500, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.classes == CIFAR_NAMES
    assert torch.bincount(data.labels, minlength=10).tolist() == [50] * 10
    assert data.labels.tolist() == sorted(data.labels.tolist()), "images come in class order"
    assert data.indices.tolist() == list(range(500)) and data.split == "val" and data.source == "sample"
    again = load_split("sample", "val", val_size=0.5, split_seed=3)
    assert torch.equal(again.images, data.images), "the sample is never split again: val_size does not apply"


@pytest.mark.parametrize("split", ["train", "test"])
def test_sample_has_no_train_or_test_split_and_says_so_in_one_line(split: str) -> None:
    from senet.data import load_source

    for load in (lambda: load_split("sample", split), lambda: load_source("sample", split)):
        with pytest.raises(DataError) as info:
            load()
        message = str(info.value)
        assert "only held-out validation images" in message and "\n" not in message, message


def test_sample_is_the_shipped_checkpoints_own_validation_images(real_data: Path) -> None:
    """Each sample image is, pixel for pixel, the image of the real validation split (val_size 0.1, split_seed 0)
    it records, and its recorded file decodes to it."""
    from senet.data import SAMPLE_FILE, image_to_uint8, open_image

    data_dir = Path(os.environ.get("SENET_TEST_CACHE", "/tmp/senet-test-data")) / "senet-data-dir"
    val = load_split(f"folder:{real_data}", "val", data_dir, val_size=0.1, split_seed=0)
    sample = load_split("sample", "val")
    with np.load(SAMPLE_FILE) as z:
        source_index, val_index, files = z["source_index"], z["val_index"], list(z["files"])
    assert sample.classes == val.classes
    assert val.indices[val_index].tolist() == source_index.tolist(), "val_index and source_index agree"
    assert torch.equal(sample.images, val.images[val_index]) and torch.equal(sample.labels, val.labels[val_index])
    for i in (0, 123, 499):
        assert torch.equal(image_to_uint8(open_image(real_data / files[i]), (32, 32)), sample.images[i]), files[i]


def test_no_class_gives_all_its_images_to_the_validation_split() -> None:
    """A class of one or two images keeps one for training (issue 29: classes seen only in validation)."""
    from senet.data.splits import stratified_split

    labels = torch.tensor([0] * 50 + [1] * 1 + [2] * 2 + [3] * 1)
    for val_size in (3, 10, 40):
        train, val = stratified_split(labels, val_size, seed=0)
        assert len(val) == val_size and set(labels[train].tolist()) == {0, 1, 2, 3}, (val_size, labels[val].tolist())
    even = torch.arange(10).repeat_interleave(500)
    _, val = stratified_split(even, 500, seed=0)
    assert torch.bincount(even[val]).tolist() == [50] * 10, "large classes are split as before"


def test_an_image_edited_in_place_is_decoded_again_not_served_from_the_cache(tmp_path: Path) -> None:
    """The decoded-data cache was keyed by folder times only: an image rewritten in place kept its old pixels."""
    from PIL import Image

    from senet.data import load_source

    root = tmp_path / "data"
    for k, cls in enumerate(("a", "b")):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 32), (40 * k, 10 * i, 0)).save(root / "train" / cls / f"{i}.png")
    first = load_source(f"folder:{root}", "train", tmp_path / "cache")
    target = root / "train" / "a" / "1.png"
    folder_time = (root / "train" / "a").stat().st_mtime_ns
    Image.new("RGB", (32, 32), (250, 250, 250)).save(target)  # rewritten in place: the folder's time stays
    os.utime(root / "train" / "a", ns=(folder_time, folder_time))
    second = load_source(f"folder:{root}", "train", tmp_path / "cache")
    position = second.names.index("train/a/1.png") if second.names else 1
    assert int(second.images[position].float().mean()) == 250, "the edited image is decoded again"
    assert not torch.equal(first.images, second.images)
