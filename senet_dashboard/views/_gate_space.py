"""The Excitation explorer's "Images by their gates" section: a 2-D map of the sampled images by their gate
vectors with a probe of how much class information each block's gates carry, and the gates' spread and
saturation per block (the paper's Fig. 7)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from senet_dashboard.views import _format as fmt
from senet_dashboard.gate_space_figures import gate_map_figure, probe_figure, quantiles_figure, saturation_figure
from senet.analysis.ablation import GateAblation
from senet.analysis.gate_space import ALL_BLOCKS, gate_map, probe_accuracy
from senet.analysis.profiles import ClassProfiles
from senet.analysis.explanation import Explanation
from senet.models import se_blocks
from senet.models.gates import block_gate_range
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_cache import any_ablation
from senet_dashboard.views._explorer_state import ChosenImage, Keys, switch_view
from senet_dashboard.views._view_split import GATE_OFF_CAVEAT, request_ablation
from senet.analysis.paper_figures import FIG7_BLOCKS, FIG7_CLASSES, paper_classes, resolve_blocks, weights_words
from senet.analysis.saturation import IDENTITY_SHARE, NEAR, SATURATED_SHARE, class_mean_std, class_quantiles, \
    removal_verdicts, saturation


@st.cache_data(max_entries=32, show_spinner=False)
def _map(key: tuple, block: str, _profiles: ClassProfiles):
    """The map of one block for the profile sample named by ``key`` (shared by every session)."""
    return gate_map(_profiles, block)


@st.cache_data(max_entries=8, show_spinner="Probing each block's gates for class information…")
def _probe(key: tuple, _profiles: ClassProfiles):
    return probe_accuracy(_profiles)


def _open(position: int) -> None:
    """Explain a map point: the page's image picker reads the address; the view switches to This image."""
    st.query_params["image"] = str(position)
    switch_view("image")


def _picked_point() -> int | None:
    points = ((st.session_state.get(Keys.MAP) or {}).get("selection") or {}).get("points") or []
    data = points[0].get("customdata") if points else None
    value = data[0] if isinstance(data, list) and data else data
    return int(value) if isinstance(value, (int, float)) else None


@st.fragment
def map_view(ctx: PageContext, image: ChosenImage, result: Explanation, profiles: ClassProfiles) -> None:
    """The sampled images placed by their gate vectors, and the probe of each block's class information."""
    classes, blocks, split, current = ctx.classes, list(result.gates), ctx.split, image.position
    sample = ui.load_data(ctx.split, ctx.meta, ctx.spec)
    key = (*ctx.key, st.session_state.get(Keys.PER_CLASS, 50))  # the profiles' sample: caches of the map and probe
    c1, c2, _ = st.columns([2, 2, 3], vertical_alignment="bottom")
    choices = blocks + [ALL_BLOCKS]
    if st.session_state.get(Keys.MAP_BLOCK) not in choices:
        st.session_state[Keys.MAP_BLOCK] = st.session_state.get(Keys.BLOCK, blocks[-1])
    block = c1.selectbox("Gates of", choices, key=Keys.MAP_BLOCK)
    thumbs = c2.toggle("Draw the images", key=Keys.MAP_THUMBS, help="Each point drawn as its image.")
    m = _map(key, block, profiles)
    pixels = sample.images[profiles.positions].permute(0, 2, 3, 1).numpy() if thumbs else None
    left, right = st.columns([3, 1], gap="medium")
    with left:
        st.plotly_chart(gate_map_figure(m, classes, thumbnails=pixels, highlight=current), key=Keys.MAP,
                        on_select="rerun", selection_mode="points")
    with right:
        picked = _picked_point()
        if picked is None:
            st.caption("Click a point to see its image here and open it in the explorer.")
        else:
            label = fmt.plain(classes[int(sample.labels[picked])])  # an image caption renders markdown
            st.image(fmt.enlarge(sample.images[picked], 5), caption=f"{split} image #{picked} · {label}", width=160)
            if st.button("Explain this image", icon=":material/arrow_upward:", key=Keys.MAP_OPEN, width="stretch"):
                _open(picked)
    st.caption(f"{len(m.positions):,} sampled images of the **{split}** split (the class profiles' sample), placed "
               f"by their gate vectors of **{block}** projected on the first two principal axes (PCA; together they "
               f"keep {m.explained.sum():.0%} of the vectors' variance). Colour: the true class. Classes that form "
               "separate clusters get different channel re-weightings from this block.")
    try:
        scores = _probe(key, profiles)
    except ValueError as exc:  # e.g. one sampled image per class: nothing to cross-validate
        st.caption(f"No probe of class information: {exc}.")
        return
    p1, p2 = st.columns([3, 2], vertical_alignment="center")
    p1.plotly_chart(probe_figure(scores), key=Keys.PROBE)
    s0 = scores[0]
    p2.markdown(f"How much class information a block's gates carry on their own: a linear probe (a ridge-"
                f"regression classifier on the standardised gates) predicts each image's class from its gate vector alone. "
                f"Accuracy is the mean over {s0.folds}-fold stratified cross-validation on the {s0.images:,} "
                f"sampled images (error bar: std over the folds); chance is {s0.chance:.0%}. The paper's claim "
                "that late blocks become class-specific reads as a rising bar from input to output.")


def _verdict_lines(rows, ablation: GateAblation | None) -> list[str]:
    if ablation is None:
        return []
    verdicts = removal_verdicts(rows, ablation)
    return [f"- **{b}**: {v}" for b, v in verdicts.items()]


MEDIAN_QUARTILES, MEAN_STD = "Median and quartiles", "Mean ± std (the paper's)"


def draw_paper_fig7(on: bool, classes: list[str], folders: list[str] | None) -> None:
    """The Fig. 7 button: the paper's two blocks, mean and std, and its class the data holds (else as chosen)."""
    st.session_state[Keys.PAPER_FIG7] = on
    if on:
        st.session_state[Keys.SPREAD_STATISTIC] = MEAN_STD
        found = paper_classes([c if c == f else f"{c} {f}" for c, f in zip(classes, folders or classes)],
                              FIG7_CLASSES)
        if found:
            st.session_state[Keys.SPREAD_CLASS] = found[0]


@st.fragment
def spread_view(ctx: PageContext, image: ChosenImage, result: Explanation, profiles: ClassProfiles) -> None:
    """The paper's Fig. 7 for the diagram's block and a class, and every block's saturation."""
    classes = ctx.classes
    gate_ranges = {b: block_gate_range(m) for b, m in se_blocks(ctx.checkpoint.model).items()}
    ablation = any_ablation(ctx)
    default_class = image.true_class if image.true_class is not None else result.predicted
    c1, c2, c3 = st.columns([2, 3, 2], vertical_alignment="bottom")
    if st.session_state.get(Keys.SPREAD_CLASS, default_class) >= len(classes):
        st.session_state[Keys.SPREAD_CLASS] = default_class
    cls = c1.selectbox("Class", range(len(classes)), index=default_class, format_func=classes.__getitem__,
                       key=Keys.SPREAD_CLASS)
    st.session_state.setdefault(Keys.SPREAD_STATISTIC, MEDIAN_QUARTILES)
    statistic = c2.segmented_control("Per channel", [MEDIAN_QUARTILES, MEAN_STD], key=Keys.SPREAD_STATISTIC,
                                     required=True)
    paper = bool(st.session_state.get(Keys.PAPER_FIG7))
    c3.button("Only the diagram's block" if paper else "The paper's Fig. 7", key=Keys.FIG7_BUTTON,
              icon=":material/auto_stories:", on_click=draw_paper_fig7,
              args=(not paper, classes, ctx.card_folders),
              help="The paper's Fig. 7: each channel's mean gate and its standard deviation over one class's images, "
                   "in channel order, at SE_5_2 and SE_5_3 (SE-ResNet-50's last two blocks, or this model's last two) "
                   "for goldfish (or plane) when the data holds it.")
    blocks = list(gate_ranges)
    drawn = resolve_blocks(None, blocks, FIG7_BLOCKS) if paper else [st.session_state[Keys.BLOCK]]
    if paper and set(FIG7_BLOCKS) - set(drawn):
        drawn = blocks[-2:]  # not the paper's SE-ResNet-50: this model's last two blocks
    n = int(profiles.counts[cls])
    if paper:
        st.caption(f"**The paper's Fig. 7**, {fmt.plain(weights_words(ctx.checkpoint.name, ctx.checkpoint.card))}: "
                   f"{', '.join(drawn)}, channels in index order, over the {n} sampled {fmt.plain(classes[cls])} "
                   "images; the paper draws goldfish and plane (ImageNet's airliner).")
    columns = st.columns(len(drawn)) if len(drawn) > 1 else [st.container()]
    for column, block in zip(columns, drawn):
        if statistic == MEAN_STD:
            mean, std = class_mean_std(profiles, block, cls)
            bands, labels = np.stack([mean - std, mean, mean + std]), ("mean", "mean ± 1 std")
        else:
            bands, labels = class_quantiles(profiles, block, cls), ("median", "25th–75th percentile")
        order = np.arange(bands.shape[1]) if paper else np.argsort(-bands[1], kind="stable")
        title = f"{block}: {classes[cls]}, {n} images" if len(drawn) > 1 else \
            f"{block}: each channel's gate over the {n} sampled {classes[cls]} images"
        column.plotly_chart(quantiles_figure(bands, order, title, gate_ranges.get(block, (0.0, 1.0)),
                                             None if paper else profiles.overall[block], labels=labels,
                                             sorted_by=None if paper
                                             else labels[0]),
                            key=f"{Keys.QUANTILES}_{block}")
    spread = ("mean gate over the class's images (line) and one standard deviation either side" if statistic == MEAN_STD
              else "median gate over the class's images (line) and its interquartile range")
    st.caption(f"Per channel, the {spread} (band), channels {'in index order' if paper else 'by ' + labels[0]}. A "
               "narrow band means the class gets the same re-weighting in every image"
               + ("." if paper else "; grey dots: each channel's mean over all classes."))
    rows = saturation(profiles, gate_ranges)
    left, right = st.columns([3, 2], vertical_alignment="top")
    left.plotly_chart(saturation_figure(rows), key=Keys.SATURATION)
    flagged = [f"- **{r.block}**: {', '.join(r.flags())}" for r in rows if r.flags()]
    right.markdown(f"A gate counts as at an end of its range within {NEAR} of it, over all "
                   f"{len(profiles.positions):,} sampled images and every channel. Flags: *close to identity* "
                   f"({IDENTITY_SHARE:.0%} or more of the gates near 1), *mostly saturated* ({SATURATED_SHARE:.0%} or "
                   "more at either end: the gate acts as an on/off switch), *nearly constant* (it hardly changes "
                   "from image to image).\n\n" + ("\n".join(flagged) if flagged else "No block is flagged."))
    lines = _verdict_lines(rows, ablation)
    if lines:
        right.markdown("**Removable?** Measured by the gate ablation (the view *Across the split*). "
                       f":material/warning: {GATE_OFF_CAVEAT} A large cost says the later layers expect the "
                       "re-weighting, not that SE is essential.\n" + "\n".join(lines))
    else:
        if right.button("Measure what removing each block costs", icon=":material/science:",
                        key=Keys.SPREAD_ABLATE, help="Runs the gate ablation of *Across the split* on 100 images "
                                                      "per class."):
            request_ablation()
