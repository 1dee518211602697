"""The explorer's *Classes* view (the paper's Fig. 6 for this model: each class's mean gate per channel at every
block, and how class-specific each block is) and its *vs. its class* view (this image minus its class)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from senet.analysis.profiles import CONSTANT_GATE_SPREAD, ClassProfiles
from senet.analysis.explanation import Explanation
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
    st.session_state.setdefault(Keys.PROFILE_DRAWING, "Classes × channels")  # kept across views
    c1, c2, c3 = st.columns([4, 2, 3], vertical_alignment="bottom")  # the first fits its two labels at 1280 px
    drawing = c1.segmented_control("Draw as", ["Classes × channels", "Lines (the paper's layout)"],
                                   key=Keys.PROFILE_DRAWING, required=True)
    if c2.select_slider("Images per class", PER_CLASS_CHOICES, key=Keys.PER_CLASS) != \
            st.session_state.get(Keys.PROFILED):
        st.rerun()  # other profiles: the whole page, which computes them
    marks = {true_class: "true"} if true_class is not None else {}
    marks[pred] = "true = predicted" if pred == true_class else "predicted"
    if drawing == "Classes × channels":
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
        if list(chosen) == default:
            st.caption(f"Lines: {fmt.plain(which)}.")
        columns = 3 if len(result.gates) > 4 else 1
        st.plotly_chart(profiles_figure(profile_data.profiles, profile_data.overall, classes, list(chosen),
                                        result.gates, columns=columns, order=order, order_label=order_label,
                                        row_height=170 if columns == 1 else 200), key=Keys.PROFILES,
                        config={"displayModeBar": False})
    s1, s2 = st.columns([2, 3], vertical_alignment="center")
    s1.plotly_chart(separation_figure(profile_data.separation(), profile_data.spread), key=Keys.SEPARATION,
                    config={"displayModeBar": False})
    lo, hi = int(profile_data.counts.min()), int(profile_data.counts.max())
    s2.markdown(f"Each row (or line) is a class's mean gate over {lo if lo == hi else f'{lo}–{hi}'} images of the "
                f"**{ctx.split}** split, beside the mean over all classes and this image. In the paper, early "
                "blocks excite alike for every class and late blocks become class-specific. The bars measure that "
                "for this model: the spread of the class profiles (std across classes, mean over channels) at each "
                "block, and beside it how much the gate varies from image to image (std across the same images).")


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
