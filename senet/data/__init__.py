"""Data: images and normalisation, sources decoded into uint8 tensors, splits, batches, and fingerprints.

Depends only on :mod:`senet.files` (atomic cache writes).
"""
from .batches import Augment, augment_batch, cutout_masks, epoch_indices, eval_batches, steps_per_epoch, train_batches
from .images import (CIFAR10_CLASSES, CIFAR_MEAN, CIFAR_STD, IMAGE_SIZE, MAX_PIXELS, ImageError, check_size,
                     image_to_uint8, input_pixels, normalize, open_image, preprocess, to_rgb)
from .sources import (CIFAR_FILES, CIFAR_SOURCES, DEFAULT_DATA_DIR, SAMPLE_FILE, SAMPLE_NAME, SAMPLE_ONLY_VAL, DataError, TensorDataset, folder_root,
                      canonical_spec, cifar_complete, load_sample, load_source, parse_spec)
from .fingerprint import DataMatch, fingerprint, match_cards, match_split, recorded_fingerprints
from .splits import SPLITS, limit_split, load_split, parse_val_size, resolve_val_size, stratified_split, val_size_value

__all__ = ["Augment", "augment_batch", "cutout_masks", "epoch_indices", "eval_batches", "steps_per_epoch",
           "train_batches", "CIFAR10_CLASSES", "CIFAR_MEAN", "CIFAR_STD", "IMAGE_SIZE", "MAX_PIXELS", "ImageError",
           "check_size", "image_to_uint8", "input_pixels", "normalize", "open_image", "preprocess", "to_rgb", "CIFAR_SOURCES", "DEFAULT_DATA_DIR",
           "CIFAR_FILES", "canonical_spec", "cifar_complete",
           "DataError", "TensorDataset", "folder_root", "load_source", "parse_spec", "SAMPLE_FILE", "SAMPLE_NAME",
           "SAMPLE_ONLY_VAL", "load_sample", "SPLITS", "limit_split",
           "load_split", "parse_val_size", "resolve_val_size", "stratified_split", "val_size_value", "DataMatch",
           "fingerprint", "match_cards", "match_split", "recorded_fingerprints"]
