"""What the *Importance* view computes once and keeps (by the server, for every session): one image's exact
ablation of one block's channels, and the first-order estimate over a per-class sample of the split; each keyed
by checkpoint (path and stamp), data source, split, and the image and block or the sample's size. Both show their
progress and can be stopped (:mod:`._progress`)."""
from __future__ import annotations

import numpy as np
import torch

from senet.analysis.importance import (CHECK_IMAGES, GateImportance, ImageImportance, exact_importance,
                                       first_order_importance, gate_importance)
from senet.models import se_blocks
from senet.models.gates import block_channels
from senet.progress import Progress
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _progress as progress
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import ChosenImage, Keys

ONE_IMAGE, OVER_SPLIT = "gate importance, one image", "gate importance, over a split"  # the server's stores
CHUNK = 64  # channels ablated between two progress reports
CHECK_CHANNELS = 64  # channels per block exact ablation checks the estimate on (gate_importance's default)


def image_key(ctx: PageContext, image: ChosenImage, block: str, target: int) -> tuple:
    return (*ctx.key, image.key, block, target)


def _ablate(model: torch.nn.Module, x: torch.Tensor, target: int, block: str, report: Progress) -> ImageImportance:
    """:func:`senet.analysis.importance.image_importance`, its channels ablated :data:`CHUNK` at a time with a
    report after each (a Stop ends the work between chunks)."""
    width = block_channels(se_blocks(model)[block])
    drops, base = np.empty(width), 0.0
    for start in range(0, width, CHUNK):
        chosen = np.arange(start, min(start + CHUNK, width))
        base, drops[chosen] = exact_importance(model, x, target, block, chosen)
        report(int(chosen[-1]) + 1, width + 2)
    _, gates, est = first_order_importance(model, x, torch.tensor([target]), [block])
    report(width + 2, width + 2)
    return ImageImportance(block, int(target), base, gates[block][0].astype(float), drops, est[block][0])


def image_importance(ctx: PageContext, image: ChosenImage, block: str, target: int) -> ImageImportance | None:
    """This image's exact importance of every channel of ``block`` for class ``target``, with progress, kept by the
    server once complete; None when the user stopped it (a line and a button say so)."""
    key = image_key(ctx, image, block, target)
    store = progress.server_store(ONE_IMAGE)
    if key not in store:
        found = progress.run_with_progress(
            Keys.IMP_ABLATING, key, f"Ablating {block}'s channels one at a time on this image",
            lambda report: _ablate(ctx.checkpoint.model, image.x, target, block, report), unit="forward passes")
        if found is None:
            return None
        progress.keep(ONE_IMAGE, key, found, max_entries=128)
    return store[key]


def ablation_passes(ctx: PageContext, block: str) -> int:
    """Forward passes of one image that :func:`image_importance` takes: one per channel, and the estimate's two."""
    return block_channels(se_blocks(ctx.checkpoint.model)[block]) + 2


def split_key(ctx: PageContext, per_class: int) -> tuple:
    return (*ctx.key, per_class)


def kept_estimate(ctx: PageContext, per_class: int) -> GateImportance | None:
    """The estimate over the split this server computed for this context, if any."""
    return progress.server_store(OVER_SPLIT).get(split_key(ctx, per_class))


def estimate_passes(ctx: PageContext, images: int) -> int:
    """Image passes :func:`split_estimate` takes over ``images`` images, as its progress counts them: three per
    image (a backward pass counts two), and exact ablation of up to :data:`CHECK_CHANNELS` channels per block on
    :data:`CHECK_IMAGES` of them."""
    widths = [block_channels(b) for b in se_blocks(ctx.checkpoint.model).values()]
    return 3 * images + min(CHECK_IMAGES, images) * sum(min(w, CHECK_CHANNELS) for w in widths)


def split_estimate(ctx: PageContext, per_class: int) -> GateImportance | None:
    """Gate against importance over up to ``per_class`` images of each class of the split, every block, with
    progress, kept by the server once complete; None when the user stopped it."""
    found = kept_estimate(ctx, per_class)
    if found is not None:
        return found
    data = ui.load_data(ctx.split, ctx.meta, ctx.spec)
    if list(data.classes) != list(ctx.classes):
        raise ValueError(f"the data's classes {fmt.class_list(data.classes)} differ from the checkpoint's "
                         f"{fmt.class_list(ctx.classes)}")
    n = ui.subset_size(data, per_class)
    found = progress.run_with_progress(
        Keys.IMP_ESTIMATING, split_key(ctx, per_class),
        f"Gate against importance over {n:,} {ctx.split} images", unit="image passes",
        compute=lambda report: gate_importance(ctx.checkpoint, data, per_class=per_class,
                                               check_channels=CHECK_CHANNELS, progress=report))
    return None if found is None else progress.keep(OVER_SPLIT, split_key(ctx, per_class), found, max_entries=16)
