"""The Excitation explorer's "Inside one SE block" section: the block's equations with this image's values, and
the feature maps behind the gates (before and after scaling, and the images a channel responds to most)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from senet_dashboard.views import _format as fmt
from senet_dashboard.inside_figures import block_steps_figure, feature_map_pairs
from senet.analysis.inside import BlockSteps, block_steps, ranked_channels
from senet.analysis.explanation import Explanation
from senet.analysis.profiles import ClassProfiles
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_cache import kept_responses
from senet_dashboard.views._explorer_state import ChosenImage, Keys, follow
from senet_dashboard.views._view_image import channel_ordering

EXTREMES = 3  # most and least excited channels shown as feature maps
RESPONDERS = 10  # images shown for the channel's strongest responses
FEATURE_MAPS = "Feature maps u_c and s_c · u_c"  # the second drawing of the block (the first: step by step)
TERMS = 3  # largest terms of a channel's FC2 output written out
# who "the seed" is, where its block is named
SEED_BLOCK = "The seed's block (seed_senet: the SE block of the blog post this project started from, kept as written)"


def fc2_terms(weights: np.ndarray, hidden: np.ndarray, total: float, shown: int = TERMS) -> str:
    """The largest terms W2[c, j] · h_j of one channel's FC2 output, each as weight × value = product, then what
    the rest add up to, how many h_j the ReLU set to 0, and any bias (``total`` minus the sum of the terms)."""
    weights, hidden = np.asarray(weights, dtype=np.float64), np.asarray(hidden, dtype=np.float64)
    terms = weights * hidden
    active = np.flatnonzero(hidden != 0)
    top = active[np.argsort(-np.abs(terms[active]), kind="stable")][:shown]
    words = [f"h{j}: {weights[j]:+.3f} × {hidden[j]:.3f} = {terms[j]:+.3f}" for j in top]
    if len(active) > len(top):
        words.append(f"the other {len(active) - len(top)} terms: {terms.sum() - terms[top].sum():+.3f} together")
    zeros = np.flatnonzero(hidden == 0)
    if 0 < len(zeros) <= shown:
        words.append(", ".join(f"h{j}" for j in zeros) + " = 0 (the ReLU)")
    elif len(zeros):
        words.append(f"{len(zeros)} of the {len(hidden)} h_j = 0 (the ReLU)")
    bias = total - float(terms.sum())
    if abs(bias) >= 5e-4:  # what the .3f figures can show
        words.append(f"FC2's bias {bias:+.3f}")
    return "; ".join(words) if words else "every h_j is 0"


def _channel_sentence(steps: BlockSteps, c: int) -> str:
    """The paper's equations for channel ``c`` of this image, with its numbers."""
    sigma = {"sigmoid": "σ", "tanh": "tanh", "relu": "ReLU"}.get(steps.excitation, steps.excitation)
    size = "×".join(map(str, steps.u.shape[1:]))
    mean = "mean" if steps.squeeze != "max" else "max"
    out_mean = float(steps.out[c].mean())
    parts = []
    if steps.per_pixel:
        parts.append(f"at each of the {size} pixels the FCs map the pixel's {steps.channels} values to a gate; "
                     f"averaged over the pixels: a_{c} = {steps.pre_gate[c]:.3f}, s_{c} = {steps.gate[c]:.3f}")
    else:
        parts.append(f"z_{c} = {mean} of u_{c} over its {size} map = **{steps.z[c]:.3f}**")
        if steps.w2 is not None:
            parts.append(f"a_{c} = Σ_j W2[{c}, j] · h_j = **{steps.pre_gate[c]:+.3f}** "
                         f"({fc2_terms(steps.w2[c], steps.hidden, float(steps.pre_gate[c]))})")
        parts.append(f"s_{c} = {sigma}(a_{c}) = **{steps.gate[c]:.3f}**")
    tail = f" + b_{c} (b_{c} = {steps.bias[c]:+.3f})" if steps.bias is not None else ""
    parts.append(f"x̃_{c} = {steps.gate[c]:.3f} · u_{c}{tail}, spatial mean **{out_mean:.3f}** "
                 f"(u_{c}'s mean {float(steps.u[c].mean()):.3f})")
    return " → ".join(parts)


def _steps_tab(steps: BlockSteps, order: np.ndarray | None, channel: int) -> None:
    st.markdown(f"**Channel {channel}, step by step:** " + _channel_sentence(steps, channel))
    st.plotly_chart(block_steps_figure(steps, order=order, highlight=channel), key=Keys.INSIDE_STEPS)
    seed = (f" {SEED_BLOCK} also adds a learned bias b (row 4b)." if steps.bias is not None else "")
    pixel = (" This block computes its gate at every pixel, so rows 1–4 show spatial means and the gate of one "
             "channel differs from pixel to pixel (see the feature maps)." if steps.per_pixel else "")
    how = ("is recomputed from the block's weights and agrees with the block's own output (largest difference "
           f"{steps.check_error:.1g})" if steps.recomputed else "is read from this library block's own submodules "
           "as it runs (its projections carry biases, and its squeeze is the mean)")
    st.caption(f"The paper's equations (Sec. 3) for this image, top to bottom: {steps.reduction_text}. Every row "
               f"{how}. Channels in the same order in rows 1, 3, 4 and 5; red: channel "
               f"{channel}.{seed}{pixel}")


def _responders_grid(strongest: dict[str, np.ndarray] | None, profiles: ClassProfiles, block: str, channel: int,
                     sample, classes: list[str]) -> None:
    if strongest is None or block not in strongest:
        st.caption("Load a dataset for the images this channel responds to most.")
        return
    column = strongest[block][:, channel].astype(np.float32)
    top = np.argsort(-column, kind="stable")[:RESPONDERS]
    positions = profiles.positions[top]
    labels = sample.labels.numpy()
    st.markdown(f"**The images channel {channel} responds to most** (largest value of u_{channel} anywhere in its "
                f"map, over the {len(profiles.positions):,} sampled images)")
    st.image(fmt.strip([sample.images[int(p)] for p in positions], 2), width="content")
    st.caption("Left to right: " + " · ".join(f"{column[i]:.2f} {fmt.plain(classes[labels[int(p)]])}"
                                              for i, p in zip(top, positions)))


@st.fragment
def inside_view(ctx: PageContext, image: ChosenImage, result: Explanation, profiles: ClassProfiles | None) -> None:
    """The diagram's block for this image, step by step or as feature maps; with class profiles (a data source),
    also the sampled images the followed channel responds to most."""
    block = st.session_state[Keys.BLOCK]
    order, _ = channel_ordering(result, profiles)
    try:
        steps = block_steps(ctx.checkpoint.model, image.x, block)
    except TypeError as exc:  # an attention layer of another library: its gates are shown in This image
        st.caption(f"Step by step is not available for this block: {exc}.")
        return
    most, least = ranked_channels(steps.gate, EXTREMES, strength=steps.z)
    follow(block, steps.channels, most[0])
    c1, c2, _ = st.columns([2, 3, 2], vertical_alignment="bottom")
    channel = int(c1.number_input(f"Channel of {block} to follow (0–{steps.channels - 1})", 0, steps.channels - 1,
                                  key=Keys.CHANNEL))
    shown = c2.segmented_control("Show", ["Step by step", FEATURE_MAPS], key=Keys.INSIDE_SHOW,
                                 default="Step by step", required=True, label_visibility="collapsed")
    if shown == "Step by step":
        _steps_tab(steps, order.get(block) if order else None, channel)
        return
    _maps_tab(steps, most, least, channel)
    found = kept_responses(ctx) if profiles is not None else None  # computed by the page, outside this fragment
    if found is not None:
        _responders_grid(found, profiles, block, channel, ui.load_data(ctx.split, ctx.meta, ctx.spec), ctx.classes)


def _maps_tab(steps: BlockSteps, most: list[int], least: list[int], channel: int) -> None:
    """The feature maps of the most and least excited channels and the followed one, before and after the gate."""
    shown = list(dict.fromkeys(most + least + [channel]))
    labels = ["most excited" if c in most else "least excited" if c in least else "followed" for c in shown]
    before, after, bounds = feature_map_pairs(steps, shown)
    scaled = "s_c·u_c" if steps.bias is None else "σ(w_c)·u_c + b_c"
    st.markdown("**u_c, entering the block**")
    st.image(before, width=96, caption=[f"{label} · ch {c}" for c, label in zip(shown, labels)])
    st.markdown(f"**{scaled}, after the gate**")
    st.image(after, width=96, caption=[f"gate {steps.gate[c]:.3f} · ±{b:.2g}" for c, b in zip(shown, bounds)])
    st.caption(f"Each column: a channel's feature map u_c entering the SE block (top; {steps.u.shape[1]}×"
               f"{steps.u.shape[2]} pixels, each drawn as a square) and the same map after the gate scales it "
               "(bottom), on one colour scale per channel: blue −b, white 0, red +b, with b (the ± under each "
               f"map) the larger absolute value of the two maps. The {EXTREMES} most and least excited channels "
               "of this image (equal gates: the strongest squeeze first), and the followed one. A gate near 1 "
               "leaves the map as it is; a gate near 0 blanks it."
               + (f" {SEED_BLOCK} adds its bias b_c after scaling." if steps.bias is not None else ""))
