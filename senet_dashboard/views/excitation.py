"""Excitation explorer: one image through every SE block, one view at a time.

The page chooses the image and the block (the network diagram); the chosen view (``?view=``) computes and draws
only what it shows, inside a fragment, so an interaction within a view reruns only that view; its long work runs
outside the fragment, where a Stop can end it."""
from __future__ import annotations

import streamlit as st

from senet.analysis.explanation import Explanation, gate_description
from senet.models import se_blocks
from senet_dashboard.svg_figures import topk_svg
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._channel import channel_view
from senet_dashboard.views._context import PageContext, page_context
from senet_dashboard.views._explorer_cache import PROFILES_STOPPED, explanation, profiles, responses
from senet_dashboard.views._explorer_state import (VIEWS, ChosenImage, Keys, apply_pending_view,
                                                   current_view, read_address, write_address)
from senet_dashboard.views._gate_space import map_view, spread_view
from senet_dashboard.views._image_picker import choose_image
from senet_dashboard.views._inside import FEATURE_MAPS, inside_view
from senet_dashboard.views._network import network_section
from senet_dashboard.views._view_classes import classes_view, versus_view
from senet_dashboard.views._view_image import image_view
from senet_dashboard.views._view_corruption import corruption_view
from senet_dashboard.views._view_importance import importance_view
from senet_dashboard.views._view_split import split_view

# widgets drawn in one view only: their values are kept while another view is shown
KEPT = (Keys.CHANNEL, Keys.ORDER, Keys.PER_CLASS, Keys.SPREAD_CLASS, Keys.SPLIT_PER_CLASS, Keys.OFF,
        Keys.MEAN_BLOCKS, Keys.MEAN_CLASS, Keys.PROFILE_DRAWING, Keys.PROFILE_CLASSES, Keys.BLOCK_ABLATION,
        Keys.IMP_PER_CLASS)


def main() -> None:
    st.title("Excitation explorer")
    st.caption("Pick an image and see how every SE block re-weights its channels (gate 0 = channel suppressed, "
               "1 = passed through), one view at a time; the block and channel you pick carry across the views.")
    ctx = page_context()
    if ctx is None:
        return
    for key in KEPT:  # Streamlit forgets a widget's value when it is not drawn; a view shows only its own
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    blocks = list(se_blocks(ctx.checkpoint.model))
    read_address(blocks)
    apply_pending_view()
    image = choose_image(ctx)
    if image is None:
        return
    result = explanation(ctx, image)
    _answer(ctx, image, result)
    if not blocks:
        st.warning("This checkpoint has no SE blocks (a plain twin): there are no gates to show. Choose an SE "
                   "checkpoint in the sidebar to see excitations.", icon=":material/info:")
        return
    network_section(ctx, result)
    st.session_state.setdefault(Keys.VIEW, VIEWS["image"])  # set, not a widget default: views set it too
    st.segmented_control("View", list(VIEWS.values()), key=Keys.VIEW, required=True,
                         label_visibility="collapsed")
    write_address()
    _view(current_view(), ctx, image, result)


def _answer(ctx: PageContext, image: ChosenImage, result: Explanation) -> None:
    """The image as the model sees it, and the prediction."""
    classes, pred = ctx.classes, result.predicted
    left, right = st.columns([1, 3], gap="medium", vertical_alignment="center")
    left.image(fmt.enlarge(image.pixels, max(1, 128 // image.pixels.shape[-1])), width=128)
    verdict = ":green-badge[:material/check: correct]" if image.true_class == pred else (
        ":red-badge[:material/close: wrong]" if image.true_class is not None else "")
    right.markdown(image.caption)
    right.markdown(f"Predicted **{fmt.plain(classes[pred])}** ({result.probs[pred]:.1%}) {verdict}")
    top = result.top(5)
    right.image(topk_svg(top), width="content",
                caption="Top 5, softmax probability: " + " · ".join(f"{fmt.plain(name)} {p:.1%}" for name, p in top)
                + (f". {note}." if (note := fmt.subset_note(ctx.checkpoint.card)) else ""))


def _view(view: str, ctx: PageContext, image: ChosenImage, result: Explanation) -> None:
    """Draw one view: only what it shows is computed. The long work (class profiles, channel responses) runs here,
    outside the views' fragments, where its Stop button can end it (a click inside a fragment waits for the run)."""
    if view == "split":
        split_view(ctx)
        return
    if view == "importance":  # its own computations, not the class profiles
        importance_view(ctx, image, result)
        return
    if view == "corruption":  # two forward passes of this image, not the class profiles
        corruption_view(ctx, image, result)
        return
    has_data = ui.split_data_reason(ctx.meta, ctx.spec) is None
    profile_data, error = profiles(ctx) if has_data else (None, None)
    if view == "image":
        if note := gate_description(ctx.checkpoint.model):
            st.warning(note, icon=":material/info:")
        image_view(ctx, image, result)
        return
    if error and error != PROFILES_STOPPED:  # a stop is said by a line with a button to run them again
        st.error(error)
    if view == "block":  # works on an upload too; the profiles add the images a channel responds to
        if profile_data is not None and st.session_state.get(Keys.INSIDE_SHOW) == FEATURE_MAPS:
            responses(ctx, profile_data)
        inside_view(ctx, image, result, profile_data)
    elif profile_data is not None and profile_data.gates:
        PROFILE_VIEWS[view](ctx, image, result, profile_data)
    elif not error:
        ui.no_split_data_message(ctx.meta, "This view needs images of each class; *This image* and *Inside a "
                                           "block* work on an upload.")


# the views over the class profiles' sample, each (context, image, its explanation, the profiles) -> None
PROFILE_VIEWS = {"versus": versus_view, "classes": classes_view, "channel": channel_view, "map": map_view,
               "spread": spread_view}


main()
