"""The Excitation explorer's "Images by their gates" section: a 2-D map of the sampled images by their gate
vectors with a probe of how much class information each block's gates carry, and the gates' spread and
saturation per block (the paper's Fig. 7)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import streamlit as st

from senet_dashboard.views import _format as fmt
from senet_dashboard.gate_space_figures import gate_map_figure, probe_figure, quantiles_figure, saturation_figure
from senet.analysis.ablation import GateAblation
from senet.analysis.gate_space import ALL_BLOCKS, gate_map, probe_accuracy
from senet.analysis.profiles import ClassProfiles
from senet.analysis.saturation import IDENTITY_SHARE, NEAR, SATURATED_SHARE, class_quantiles, removal_verdicts, \
    saturation


@st.cache_data(max_entries=32, show_spinner=False)
def _map(key: tuple, block: str, _profiles: ClassProfiles):
    """The map of one block for the profile sample named by ``key`` (shared by every session)."""
    return gate_map(_profiles, block)


@st.cache_data(max_entries=8, show_spinner="Probing each block's gates for class information…")
def _probe(key: tuple, _profiles: ClassProfiles):
    return probe_accuracy(_profiles)


def _open(position: int) -> None:
    st.query_params["image"] = str(position)  # the link logic at the top of the page picks it up


def _picked_point() -> int | None:
    points = ((st.session_state.get("exc_map") or {}).get("selection") or {}).get("points") or []
    data = points[0].get("customdata") if points else None
    value = data[0] if isinstance(data, list) and data else data
    return int(value) if isinstance(value, (int, float)) else None


def _map_tab(profiles: ClassProfiles, classes: list[str], blocks: list[str], split: str, sample, key: tuple,
             current: int | None) -> None:
    c1, c2, _ = st.columns([2, 2, 3], vertical_alignment="bottom")
    choices = blocks + [ALL_BLOCKS]
    block = c1.selectbox("Gates of", choices, index=len(blocks) - 1, key="exc_map_block")
    thumbs = c2.toggle("Draw the images", key="exc_map_thumbs", help="Each point drawn as its image.")
    m = _map(key, block, profiles)
    pixels = sample.images[profiles.positions].permute(0, 2, 3, 1).numpy() if thumbs else None
    left, right = st.columns([3, 1], gap="medium")
    with left:
        st.plotly_chart(gate_map_figure(m, classes, thumbnails=pixels, highlight=current), key="exc_map",
                        on_select="rerun", selection_mode="points")
    with right:
        picked = _picked_point()
        if picked is None:
            st.caption("Click a point to see its image here and open it in the explorer.")
        else:
            label = classes[int(sample.labels[picked])]
            st.image(fmt.enlarge(sample.images[picked], 5), caption=f"{split} image #{picked} · {label}", width=160)
            st.button("Explain this image", icon=":material/arrow_upward:", on_click=_open, args=(picked,),
                      key="exc_map_open", width="stretch")
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
    p1.plotly_chart(probe_figure(scores), key="exc_probe")
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


def _spread_tab(profiles: ClassProfiles, classes: list[str], blocks: list[str], split: str,
                gate_ranges: dict[str, tuple[float, float]], ablation: GateAblation | None,
                run_ablation: Callable[[], None], default_class: int) -> None:
    c1, c2, _ = st.columns([2, 2, 3], vertical_alignment="bottom")
    block = c1.selectbox("Block", blocks, index=len(blocks) - 1, key="exc_spread_block")
    if st.session_state.get("exc_spread_class", default_class) >= len(classes):
        st.session_state["exc_spread_class"] = default_class
    cls = c2.selectbox("Class", range(len(classes)), index=default_class, format_func=classes.__getitem__,
                       key="exc_spread_class")
    quantiles = class_quantiles(profiles, block, cls)
    order = np.argsort(-quantiles[1], kind="stable")
    st.plotly_chart(quantiles_figure(quantiles, order, f"{block}: each channel's gate over the "
                                     f"{int(profiles.counts[cls])} sampled {classes[cls]} images",
                                     gate_ranges.get(block, (0.0, 1.0)), profiles.overall[block]),
                    key="exc_quantiles")
    st.caption("The paper's Fig. 7 for this model: per channel, the median gate over the class's images (line) and "
               "its interquartile range (band), channels by median. A narrow band means the class gets the same "
               "re-weighting in every image; grey dots: each channel's mean over all classes.")
    rows = saturation(profiles, gate_ranges)
    left, right = st.columns([3, 2], vertical_alignment="top")
    left.plotly_chart(saturation_figure(rows), key="exc_saturation")
    flagged = [f"- **{r.block}**: {', '.join(r.flags())}" for r in rows if r.flags()]
    right.markdown(f"A gate counts as at an end of its range within {NEAR} of it, over all "
                   f"{len(profiles.positions):,} sampled images and every channel. Flags: *close to identity* "
                   f"({IDENTITY_SHARE:.0%} or more of the gates near 1), *mostly saturated* ({SATURATED_SHARE:.0%} or "
                   "more at either end: the gate acts as an on/off switch), *nearly constant* (it hardly changes "
                   "from image to image).\n\n" + ("\n".join(flagged) if flagged else "No block is flagged."))
    lines = _verdict_lines(rows, ablation)
    if lines:
        right.markdown("**Removable?** Measured by the gate ablation (the section *Across the split* below):\n"
                       + "\n".join(lines))
    else:
        right.button("Measure what removing each block costs", icon=":material/science:", on_click=run_ablation,
                     key="exc_spread_ablate", help="Runs the gate ablation of *Across the split* below on 100 "
                                                   "images per class.")


def gate_space_section(profiles: ClassProfiles, classes: list[str], blocks: list[str], split: str, sample,
                       key: tuple, gate_ranges: dict[str, tuple[float, float]], current: int | None,
                       ablation: GateAblation | None, run_ablation: Callable[[], None], default_class: int) -> None:
    """Draw the section for the class profiles' sample (``key`` identifies it: checkpoint, data, split, size)."""
    st.subheader("Images by their gates")
    tab_map, tab_spread = st.tabs(["Map of images", "Spread and saturation"])
    with tab_map:
        _map_tab(profiles, classes, blocks, split, sample, key, current)
    with tab_spread:
        _spread_tab(profiles, classes, blocks, split, gate_ranges, ablation, run_ablation, default_class)
