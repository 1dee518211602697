"""The Excitation explorer's image: one of the split (class and index, Random, a gallery, a link's ``image=``) or
an upload."""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from senet import ImageError, open_image, preprocess
from senet.data import TensorDataset, input_pixels, normalize
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import ChosenImage, Keys

TINY_SIDE = 16  # an upload with a side under this many pixels is mostly upscaling
GALLERY = 12  # images in the gallery


def _pick(cls: int, idx: int) -> None:
    st.session_state[Keys.CLASS] = cls
    st.session_state[Keys.INDEX] = idx


def _pick_position(labels: np.ndarray, position: int) -> None:
    k = int(labels[position])
    _pick(k, int(np.searchsorted(np.nonzero(labels == k)[0], position)))


def _random(labels: np.ndarray) -> None:
    _pick_position(labels, int(np.random.default_rng().integers(len(labels))))


def _reset_index() -> None:
    st.session_state[Keys.INDEX] = 0


def choose_image(ctx: PageContext) -> ChosenImage | None:
    """The image source switch and the chosen image, or None (after saying why) when there is none yet."""
    linked = st.query_params.get("image")
    link_is_new = linked is not None and linked != st.session_state.get(Keys.URL_IMAGE)
    if link_is_new and st.session_state.get(Keys.MODE) == "Upload":  # else the widget's default
        st.session_state[Keys.MODE] = "From the data"
    mode = st.segmented_control("Image source", ["From the data", "Upload"], key=Keys.MODE, default="From the data",
                                required=True, label_visibility="collapsed")
    if mode == "Upload":
        st.query_params.pop("image", None)  # the split stays: the sidebar owns it
        st.session_state.pop(Keys.URL_IMAGE, None)
        return _uploaded(ctx)
    data = ui.get_data(ctx.split, ctx.meta, "**What still works:** *Upload* an image of your own above; the model "
                                            "card and Compare pages need no data.")
    if data is None:
        return None
    labels = data.labels.numpy()
    if link_is_new:
        st.session_state[Keys.URL_IMAGE] = linked
        if not (linked.isascii() and linked.isdigit()) or int(linked) >= len(labels):
            st.warning(f"image={linked[:40]} in the address: not an image index of the {ctx.split} split "
                       f"(0–{len(labels) - 1}); showing the image chosen below instead.", icon=":material/link_off:")
        else:
            _pick_position(labels, int(linked))
            st.session_state.pop(Keys.PROFILE_CLASSES, None)  # profile this image's true and predicted class
    return _from_data(ctx, data, labels)


def _from_data(ctx: PageContext, data: TensorDataset, labels: np.ndarray) -> ChosenImage | None:
    classes = ctx.classes
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    if st.session_state.get(Keys.CLASS, 0) >= len(classes):
        st.session_state[Keys.CLASS] = 0
    cls = c1.selectbox("Class", range(len(classes)), format_func=classes.__getitem__, key=Keys.CLASS,
                       on_change=_reset_index)
    members = np.nonzero(labels == cls)[0]
    if len(members) == 0:
        st.warning(f"No images of class {fmt.plain(classes[cls])} in the {ctx.split} split.")
        return None
    if st.session_state.get(Keys.INDEX, 0) >= len(members):
        st.session_state[Keys.INDEX] = 0
    idx = c2.number_input(f"Index within {fmt.plain(classes[cls])} ({len(members)} images in {ctx.split})", 0,
                          len(members) - 1, key=Keys.INDEX)
    c3.button("Random", icon=":material/casino:", on_click=_random, args=(labels,), width="stretch")
    with c4.popover("Gallery", icon=":material/photo_library:", width="stretch"):
        _gallery(data, labels, classes)
    pos = int(members[idx])
    st.query_params["image"] = str(pos)  # the sidebar writes checkpoint, data and split
    st.session_state[Keys.URL_IMAGE] = str(pos)
    true_class = int(labels[pos])
    return ChosenImage(normalize(data.images[pos][None], ctx.checkpoint.mean, ctx.checkpoint.std),
                       data.images[pos], f"{ctx.split} image #{pos} · true class **{fmt.plain(classes[true_class])}**",
                       f"{ctx.split}:{pos}", pos, true_class)


def _gallery(data: TensorDataset, labels: np.ndarray, classes: list[str]) -> None:
    """A few images of the split, each a button that opens it."""
    rng = np.random.default_rng(st.session_state.get(Keys.GALLERY_SEED, 0))
    shown = rng.choice(len(labels), size=min(GALLERY, len(labels)), replace=False)
    cols = st.columns(6)
    for i, p in enumerate(shown):
        with cols[i % 6]:
            st.image(fmt.enlarge(data.images[p], 2), width="stretch")
            st.button(fmt.plain(classes[int(labels[p])]), key=f"gallery_{i}", on_click=_pick_position, args=(labels, int(p)),
                      width="stretch")
    if st.button("More images", icon=":material/refresh:", key=Keys.GALLERY_MORE):
        st.session_state[Keys.GALLERY_SEED] = st.session_state.get(Keys.GALLERY_SEED, 0) + 1
        st.rerun()


def _uploaded(ctx: PageContext) -> ChosenImage | None:
    upload = st.file_uploader("A PNG, JPEG, GIF, BMP or WebP image (any size; its centred square is resized to the "
                              "model's input, so it keeps its proportions)",
                              type=["png", "jpg", "jpeg", "gif", "bmp", "webp"], key=Keys.UPLOAD)
    if upload is None:
        st.info("Upload an image to see its excitations. Works without any dataset.", icon=":material/upload:")
        return None
    if refusal := ui.upload_refusal(upload):  # a public demo's caps in bytes and pixels
        st.error(refusal, icon=":material/block:")
        return None
    try:
        image = open_image(upload.getvalue(), upload.name)
        x = preprocess(image, ctx.meta)  # the centred square, resized: the same pixels as shown
        pixels = input_pixels(image, ctx.meta)
    except ImageError as exc:
        st.error(str(exc), icon=":material/broken_image:")
        return None
    except Exception as exc:  # noqa: BLE001 -- any other decoder fault: one line, the page keeps working
        st.error(f"{upload.name}: cannot use this image ({type(exc).__name__}: {str(exc)[:120]})",
                 icon=":material/broken_image:")
        return None
    _, h, w = ctx.checkpoint.input_size
    fit = ("" if image.size == (w, h) else f", resized to {w}×{h}" if image.width * h == image.height * w
           else f", its centred {'square' if w == h else 'crop'} resized to {w}×{h}")
    if min(image.width, image.height) < TINY_SIDE:
        st.warning(f"{upload.name} is only {image.width}×{image.height} pixels: the model sees it upscaled to "
                   f"{w}×{h}, so there is little picture in it and the result says little.",
                   icon=":material/photo_size_select_small:")
    digest = hashlib.sha256(upload.getvalue()).hexdigest()[:16]
    return ChosenImage(x, pixels, f"uploaded **{upload.name}** ({image.width}×{image.height}, {image.mode}) as the "
                                  f"model sees it{fit}", f"upload:{digest}")
