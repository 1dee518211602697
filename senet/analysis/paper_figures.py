"""The SENet paper's Fig. 6 and Fig. 7 (Hu et al., arXiv 1709.01507, section 7.2) for any SE model and photos.

Fig. 6 draws, at six SE blocks of SE-ResNet-50 (:data:`FIG6_BLOCKS`), the mean gate of each channel over images of
four ImageNet classes (:data:`FIG6_CLASSES`: goldfish, pug, plane, cliff) beside the mean over all classes. Fig. 7
draws, at the last two of those blocks (:data:`FIG7_BLOCKS`), each channel's mean gate and its standard deviation
over the images of one class (goldfish and plane, :data:`FIG7_CLASSES`). :func:`paper_figure_numbers` gives those
numbers for any model whose blocks carry the paper's names (:func:`senet.models.gates.paper_names`) or any blocks
asked for, on the classes of a photo folder, from :func:`senet.analysis.profiles.class_profiles`.

The paper's weights are the authors' own: timm's ``legacy_seresnet50`` serves their Caffe release as converted to
PyTorch by Cadene's pretrained-models (:data:`AUTHORS_WEIGHTS`); timm's ``seresnet50`` was retrained by timm.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .profiles import ClassProfiles
from .saturation import class_mean_std, class_quantiles

__all__ = ["AUTHORS_WEIGHTS", "FIG6_BLOCKS", "FIG7_BLOCKS", "PaperClass", "FIG6_CLASSES", "FIG7_CLASSES",
           "paper_classes", "resolve_blocks", "resolve_classes", "paper_figure_numbers", "weights_words",
           "paper_weights"]

AUTHORS_WEIGHTS = "timm:legacy_seresnet50"  # the SENet authors' SE-ResNet-50 weights, as timm serves them
FIG6_BLOCKS = ("SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3")
FIG7_BLOCKS = ("SE_5_2", "SE_5_3")


@dataclass(frozen=True)
class PaperClass:
    """A class the paper draws: its word in the paper, the ImageNet class it is, and that class's WordNet id."""

    paper: str
    imagenet: str
    wnid: str

    def matches(self, folder_class: str) -> bool:
        """Whether a class (named readably, by WordNet id, or as ``goldfish n01443537``) is this one."""
        text = _plain(folder_class)
        return self.wnid in re.findall(r"n\d{8}", text) or text in (self.imagenet, self.paper) \
            or text.startswith(f"{self.imagenet} n")


def _plain(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


# The paper says "plane"; ImageNet-1k's classes include airliner and warplane: airliner is taken (its commonest sense)
FIG6_CLASSES = (PaperClass("goldfish", "goldfish", "n01443537"), PaperClass("pug", "pug", "n02110958"),
                PaperClass("plane", "airliner", "n02690373"), PaperClass("cliff", "cliff", "n09246464"))
FIG7_CLASSES = (FIG6_CLASSES[0], FIG6_CLASSES[2])


def paper_classes(folder_classes: list[str], wanted: tuple[PaperClass, ...] = FIG6_CLASSES) -> list[int]:
    """The positions of the paper's classes among ``folder_classes`` (each a class's name, its folder's, or both
    as ``"goldfish n01443537"``), in the paper's order (those present)."""
    found = []
    for paper_class in wanted:
        hits = [k for k, c in enumerate(folder_classes) if paper_class.matches(c)]
        found += hits[:1]
    return found


def resolve_blocks(asked: list[str] | None, blocks: list[str], default: tuple[str, ...] = FIG6_BLOCKS) -> list[str]:
    """The blocks to draw: ``asked`` (each a block's name, any case), or the paper's ``default`` when the model has
    them all, or every block. ValueError (one line) naming a block the model lacks and the names it has."""
    if not asked:
        return list(default) if set(default) <= set(blocks) else list(blocks)
    by_key = {b.lower(): b for b in blocks}
    unknown = [b for b in asked if b.strip().lower() not in by_key]
    if unknown:
        shown = ", ".join(blocks[:8]) + (f", ... ({len(blocks)} in all)" if len(blocks) > 8 else "")
        raise ValueError(f"block(s) {', '.join(map(repr, unknown))}: not an SE block of this model (its blocks: "
                         f"{shown})")
    return list(dict.fromkeys(by_key[b.strip().lower()] for b in asked))


def resolve_classes(asked: list[str] | None, classes: list[str], default: tuple[PaperClass, ...] = FIG6_CLASSES,
                    most: int = 10, folders: list[str] | None = None) -> list[int]:
    """The classes to draw, as positions in ``classes``: ``asked`` (a class's name as the data names it, its
    class folder's name in ``folders`` such as a WordNet id, or the paper's word), or the paper's ``default``
    classes the data holds, or its first ``most`` classes. ValueError (one line) naming a class the data lacks."""
    named = [*zip(classes, folders or classes)]
    both = [c if c == f else f"{c} {f}" for c, f in named]
    if not asked:
        return paper_classes(both, default) or list(range(min(most, len(classes))))
    chosen = []
    for word in asked:
        key = _plain(word)
        hits = [k for k, (c, f) in enumerate(named) if key in (_plain(c), _plain(f))]
        hits = hits or paper_classes(both, tuple(p for p in FIG6_CLASSES if key in (p.paper, p.imagenet, p.wnid)))
        if not hits:
            raise ValueError(f"class {word!r}: not among the data's {len(classes)} classes "
                             f"({', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''})")
        chosen.append(hits[0])
    return list(dict.fromkeys(chosen))


def paper_figure_numbers(profiles: ClassProfiles, blocks: list[str], classes: list[int]) -> dict:
    """The numbers of Fig. 6 and Fig. 7 for ``blocks`` and ``classes`` (positions) of ``profiles``: per block,
    each class's mean gate per channel with the standard deviation, median and quartiles over its images, and
    the mean over every sampled image of every class (the figure's "all"). JSON-ready (lists of floats)."""
    labels = np.asarray(profiles.labels)
    out = {"classes": [profiles.classes[k] for k in classes],
           "images_per_class": {profiles.classes[k]: int(profiles.counts[k]) for k in classes},
           "all_images": int(len(profiles.positions)), "all_classes": list(profiles.classes), "blocks": {}}
    for block in blocks:
        gates = profiles._gates_of(block).astype(np.float64)
        per_class = {}
        for k in classes:
            if not (labels == k).any():
                continue
            mean, std = class_mean_std(profiles, block, k)
            q25, median, q75 = class_quantiles(profiles, block, k)
            per_class[profiles.classes[k]] = {"mean": mean.tolist(), "std": std.tolist(), "median": median.tolist(),
                                              "q25": q25.tolist(), "q75": q75.tolist()}
        out["blocks"][block] = {"channels": int(gates.shape[1]), "all": gates.mean(0).tolist(), "classes": per_class}
    return out


def weights_words(name: str, card: dict) -> str:
    """Which weights model ``name`` (its ``card``: a checkpoint's metadata) has, in words: the authors' for
    ``legacy_seresnet50``."""
    if card.get("weights_state") == "random" or name.endswith("@random"):
        return f"{name}: random weights (no pretrained weights loaded): the gates mean nothing"
    own = "the checkpoint's own trained weights"
    return f"{name}: {paper_weights(card) or card.get('weights_note') or own}"


def paper_weights(card: dict) -> str | None:
    """Whose SE-ResNet-50 weights a pretrained timm model has, said plainly (the authors' for
    ``legacy_seresnet50``, timm's own for ``seresnet50``); None for any other model or random weights."""
    if card.get("source") != "timm" or card.get("weights_state") != "pretrained":
        return None
    if card.get("architecture") == "legacy_seresnet50":
        return ("the SENet authors' own SE-ResNet-50 weights (their Caffe release converted to PyTorch by Cadene's "
                f"pretrained-models, served by timm as {card.get('weights') or 'legacy_seresnet50.in1k'})")
    if card.get("architecture") == "seresnet50":
        return f"timm's retrained SE-ResNet-50 weights ({card.get('weights')}), not the authors'"
    return None
