"""The explorer's *Classes* view (the paper's Fig. 6 for this model: each class's mean gate per channel at every
block, and how class-specific each block is) and its *vs. its class* view (this image minus its class)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from senet.analysis.profiles import CONSTANT_GATE_SPREAD, ClassProfiles
from senet.analysis.explanation import Explanation
from senet.analysis.paper_figures import FIG6_BLOCKS, FIG6_CLASSES, paper_classes, resolve_blocks, resolve_classes, \
    weights_words
from senet_dashboard.figures import profiles_figure, profiles_heatmap_figure, separation_figure
from senet_dashboard.views._channel import choose_channel, difference_section
from senet_dashboard.views import _format as fmt
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_cache import PER_CLASS_CHOICES
from senet_dashboard.views._explorer_state import ChosenImage, Keys, switch_view
from senet_dashboard.views._view_image import channel_ordering


@st.fragment
def classes_view(ctx: PageContext, image: ChosenImage, result: Explanation, profile_data: ClassProfiles) -> None:
    """Class profiles (a fragment: its widgets rerun only this view)."""
    classes, pred, true_class = ctx.classes, result.predicted, image.true_class
    order, order_label = channel_ordering(result, profile_data)
    constant = profile_data.constant_blocks()
    if constant:
        st.warning(f"{', '.join(constant)}: the gate is the same for every image (std across images below "
                   f"{CONSTANT_GATE_SPREAD}), a fixed channel scale the next layer absorbs, so "
                   f"{'this block does' if len(constant) == 1 else 'these blocks do'} no squeeze-and-excitation.",
                   icon=":material/block:")
    st.session_state.setdefault(Keys.PROFILE_DRAWING, CLASSES_X_CHANNELS)  # kept across views
    c1, c2, c3 = st.columns([4, 2, 3], vertical_alignment="bottom")  # the first fits its two labels at 1280 px
    drawing = c1.segmented_control("Draw as", [CLASSES_X_CHANNELS, LINES], key=Keys.PROFILE_DRAWING, required=True)
    if drawing != LINES:
        st.session_state[Keys.PAPER_FIG6] = False
    paper = bool(st.session_state.get(Keys.PAPER_FIG6))
    if c2.select_slider("Images per class", PER_CLASS_CHOICES, key=Keys.PER_CLASS) != \
            st.session_state.get(Keys.PROFILED):
        st.rerun()  # other profiles: the whole page, which computes them
    st.button("Every block, channels as chosen" if paper else "The paper's Fig. 6", icon=":material/auto_stories:",
              key=Keys.FIG6_BUTTON, on_click=draw_paper_fig6,
              args=(not paper, ctx.classes, ctx.card_folders, image.key),
              help="Lines in channel order at the paper's six blocks of SE-ResNet-50 (SE_2_3, SE_3_4, SE_4_6, SE_5_1, "
                   "SE_5_2, SE_5_3) when the model has them, for its four classes (goldfish, pug, plane, cliff) when "
                   "the data holds them; otherwise every block and the data's first classes.")
    marks = {true_class: "true"} if true_class is not None else {}
    marks[pred] = "true = predicted" if pred == true_class else "predicted"
    if drawing == CLASSES_X_CHANNELS:
        st.plotly_chart(profiles_heatmap_figure(profile_data.profiles, profile_data.overall, classes, result.gates,
                                                marks=marks, order=order, order_label=order_label),
                        key=Keys.PROFILES_MAP, config={"displayModeBar": False})
    else:
        default, which = default_profile_classes(profile_data, list(result.gates)[-1], classes, true_class,
                                                 result.probs)
        if st.session_state.get(Keys.PROFILE_CLASSES_FOR) != image.key:  # another image: its own classes
            st.session_state[Keys.PROFILE_CLASSES_FOR] = image.key
            st.session_state[Keys.PROFILE_CLASSES] = default
        chosen = c3.multiselect("Classes", range(len(classes)), format_func=classes.__getitem__,
                                key=Keys.PROFILE_CLASSES, help=f"For this image, first: {fmt.plain(which)}.")
        blocks = list(result.gates)
        if paper:
            blocks, order, order_label = resolve_blocks(None, blocks, FIG6_BLOCKS), None, "channel"
            st.caption(paper_fig6_caption(ctx, blocks, profile_data))
        elif list(chosen) == default:
            st.caption(f"Lines: {fmt.plain(which)}.")
        columns = 3 if len(blocks) > 4 else 1
        st.plotly_chart(profiles_figure({b: profile_data.profiles[b] for b in blocks}, profile_data.overall, classes,
                                        list(chosen), None if paper else result.gates, columns=columns, order=order,
                                        order_label=order_label, row_height=170 if columns == 1 else 200),
                        key=Keys.PROFILES, config={"displayModeBar": False})
    s1, s2 = st.columns([2, 3], vertical_alignment="center")
    s1.plotly_chart(separation_figure(profile_data.separation(), profile_data.spread), key=Keys.SEPARATION,
                    config={"displayModeBar": False})
    lo, hi = int(profile_data.counts.min()), int(profile_data.counts.max())
    s2.markdown(f"Each row (or line) is a class's mean gate over {lo if lo == hi else f'{lo}–{hi}'} images of the "
                f"**{ctx.split}** split, beside the mean over all classes and this image. In the paper, early "
                "blocks excite alike for every class and late blocks become class-specific. The bars measure that "
                "for this model: the spread of the class profiles (std across classes, mean over channels) at each "
                "block, and beside it how much the gate varies from image to image (std across the same images).")


CLASSES_X_CHANNELS, LINES = "Classes × channels", "Lines (the paper's layout)"


def draw_paper_fig6(on: bool, classes: list[str], folders: list[str] | None, image_key: str) -> None:
    """The Fig. 6 button: lines in channel order, the paper's classes and blocks (those the data and model have);
    again: back to every block."""
    st.session_state[Keys.PAPER_FIG6] = on
    if not on:
        return
    st.session_state[Keys.PROFILE_DRAWING] = LINES
    st.session_state[Keys.PROFILE_CLASSES] = resolve_classes(None, classes, FIG6_CLASSES, folders=folders)
    st.session_state[Keys.PROFILE_CLASSES_FOR] = image_key  # not reset to this image's own classes


def paper_fig6_caption(ctx: PageContext, blocks: list[str], profile_data: ClassProfiles) -> str:
    """What the Fig. 6 preset shows: which of the paper's blocks and classes, which weights, what "all" is."""
    found = [ctx.classes[k] for k in paper_classes(paper_names_of(ctx), FIG6_CLASSES)]
    where = "its six blocks" if set(FIG6_BLOCKS) <= set(blocks) else \
        "every block (this model has not the paper's SE-ResNet-50 blocks)"
    if len(found) == len(FIG6_CLASSES):
        which = f"its four classes ({', '.join(found)}: the paper's plane is ImageNet's airliner)"
    elif found:
        which = f"the {len(found)} of its four classes the data holds ({', '.join(found)})"
    else:
        which = "the data's first classes (it holds none of the paper's goldfish, pug, plane and cliff)"
    return (f"**The paper's Fig. 6**, {fmt.plain(weights_words(ctx.checkpoint.name, ctx.checkpoint.card))}: "
            f"{where}, {fmt.plain(which)}, channels in index order. *All classes* is the mean over the "
            f"{len(profile_data.positions):,} sampled images of the data's {len(ctx.classes)} classes, not over "
            "ImageNet's 1,000 as in the paper.")


def paper_names_of(ctx: PageContext) -> list[str]:
    """The data's classes with their folders' names (WordNet ids), for matching the paper's classes."""
    folders = ctx.card_folders or ctx.classes
    return [c if c == f else f"{c} {f}" for c, f in zip(ctx.classes, folders)]


def default_profile_classes(profiles: ClassProfiles, block: str, classes: list[str], true_class: int | None,
                            probs: np.ndarray) -> tuple[list[int], str]:
    """The classes the paper's Fig. 6 lines start with for this image: its true class and its predicted class
    (when they are the same, the runner-up: the second most probable), and for contrast the class whose mean gates
    at ``block`` (the last) differ most from the first of them; and those words."""
    ranked = [int(k) for k in np.argsort(-np.asarray(probs), kind="stable")]
    predicted = ranked[0]
    first = true_class if true_class is not None else predicted
    chosen, words = [first], [f"{classes[first]} ({'true' if true_class is not None else 'predicted'}"
                              f"{' = predicted' if predicted == true_class else ''})"]
    second = predicted if predicted != first else ranked[1] if len(ranked) > 1 else None
    if second is not None:
        chosen.append(second)
        words.append(f"{classes[second]} ({'predicted' if second == predicted else 'second most probable'})")
    contrast = profiles.most_different_class(block, first, exclude=tuple(chosen))
    if contrast is not None:
        chosen.append(contrast)
        words.append(f"{classes[contrast]} (for contrast: the class whose mean gates at {block} differ most from "
                     f"{classes[first]}'s)")
    return chosen, ", ".join(words)


@st.fragment
def versus_view(ctx: PageContext, image: ChosenImage, result: Explanation, profile_data: ClassProfiles) -> None:
    """This image's gates minus its true and predicted class's mean gates, and the largest departures."""
    if choose_channel(profile_data, list(result.gates)):  # a departure row picked: show that channel
        switch_view("channel")
    st.subheader("This image against its class")
    difference_section(ctx, image, result, profile_data)
