"""Excitation explorer: every SE block's channel gates for one image, class profiles, interventions."""
from __future__ import annotations


import numpy as np
import streamlit as st

from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _format as fmt
from senet_dashboard.views._channel import choose_channel, difference_section, one_channel_section
from senet_dashboard.views._gate_space import gate_space_section
from senet_dashboard.views._inside import inside_section
from senet.checkpoint import Checkpoint
from senet import ImageError, open_image, preprocess
from senet.models import se_blocks
from senet.models.gates import block_gate_range
from senet.analysis.ablation import gate_ablation
from senet.analysis.inside import channel_responses
from senet_dashboard.figures import (ablation_figure, gate_bars_figure, gate_heatmap_figure, intervention_figure,
                               profiles_figure, profiles_heatmap_figure, separation_figure, split_ablation_figure,
                               topk_figure)
from senet.data import input_pixels, normalize
from senet.analysis.profiles import (CONSTANT_GATE_SPREAD, block_ablation, channel_order, class_profiles, explain,
                            gate_description, intervene)

st.title("Excitation explorer")
st.caption("Pick an image and see how every SE block re-weights its channels (gate 0 = channel suppressed, "
           "1 = passed through), how that compares with whole classes, and what changes when you switch gates.")

loaded = ui.selected_model()
if loaded is None:
    st.stop()
model, meta = loaded
classes = list(meta["classes"])
blocks = list(se_blocks(model))
path = ui.selected_path()
mtime = ui.entry_mtime(path)
split = ui.split_choice()
if not blocks:
    st.warning("This checkpoint has no SE blocks (a plain twin): there are no gates to show. Its predictions are "
               "shown below; choose an SE checkpoint in the sidebar to see excitations.", icon=":material/info:")
gate_note = gate_description(model)
TINY_SIDE = 16  # an upload with a side under this many pixels is mostly upscaling


# --------------------------------------------------------------------------- choosing the image
def _pick(cls: int, idx: int) -> None:
    st.session_state["exc_class"] = cls
    st.session_state["exc_idx"] = idx


def _random(labels: np.ndarray) -> None:
    rng = np.random.default_rng()
    pos = int(rng.integers(len(labels)))
    cls = int(labels[pos])
    _pick(cls, int(np.nonzero(labels == cls)[0].tolist().index(pos)))


def _reset_index() -> None:
    st.session_state["exc_idx"] = 0


# A link (``/excitation?split=val&image=2561``, or the Confusion explorer's "Explain" button) names an image of the
# split by its index; the page then keeps the address bar pointing at the image shown, so it can be shared.
linked = st.query_params.get("image")
link_is_new = linked is not None and linked != st.session_state.get("exc_url_image")
if link_is_new and st.session_state.get("exc_mode") == "Upload":  # else the widget's default: no double setting
    st.session_state["exc_mode"] = "From the data"

mode = st.segmented_control("Image source", ["From the data", "Upload"], key="exc_mode", default="From the data",
                            required=True, label_visibility="collapsed")
x = pixels = position = None
caption = ""
true_class = None
if mode == "From the data":
    data = ui.get_data(split, meta, "**What still works:** *Upload* an image of your own above; the model card and "
                                    "Compare pages need no data.")
    if data is not None:
        labels = data.labels.numpy()
        if link_is_new:
            st.session_state["exc_url_image"] = linked
            if not linked.isdigit() or int(linked) >= len(labels):
                st.warning(f"image={linked} in the address: not an image index of the {split} split "
                           f"(0–{len(labels) - 1}); showing the image chosen below instead.", icon=":material/link_off:")
            else:
                k = int(labels[int(linked)])
                _pick(k, int(np.searchsorted(np.nonzero(labels == k)[0], int(linked))))
                st.session_state.pop("exc_profile_classes", None)  # profile this image's true and predicted class
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        if st.session_state.get("exc_class", 0) >= len(classes):
            st.session_state["exc_class"] = 0
        cls = c1.selectbox("Class", range(len(classes)), format_func=classes.__getitem__, key="exc_class",
                           on_change=_reset_index)
        members = np.nonzero(labels == cls)[0]
        if len(members) == 0:
            st.warning(f"No images of class {classes[cls]} in the {split} split.")
        else:
            if st.session_state.get("exc_idx", 0) >= len(members):
                st.session_state["exc_idx"] = 0
            idx = c2.number_input(f"Index within {classes[cls]} ({len(members)} images in {split})", 0,
                                  len(members) - 1, key="exc_idx")
            c3.button("Random", icon=":material/casino:", on_click=_random, args=(labels,), width="stretch")
            pos = position = int(members[idx])
            pixels = data.images[pos]
            x = normalize(pixels[None], meta["mean"], meta["std"])
            true_class = int(labels[pos])
            caption = f"{split} image #{pos} · true class **{classes[true_class]}**"
            st.query_params["split"], st.query_params["image"] = split, str(pos)
            st.session_state["exc_url_image"] = str(pos)
            with st.expander("Gallery: click an image", expanded=False, icon=":material/photo_library:"):
                rng = np.random.default_rng(st.session_state.get("gallery_seed", 0))
                shown = rng.choice(len(labels), size=min(12, len(labels)), replace=False)
                cols = st.columns(6)
                for i, p in enumerate(shown):
                    with cols[i % 6]:
                        st.image(fmt.enlarge(data.images[p], 3), width="stretch")
                        k = int(labels[p])
                        within = int(np.searchsorted(np.nonzero(labels == k)[0], p))
                        st.button(classes[k], key=f"gallery_{i}", on_click=_pick, args=(k, within), width="stretch")
                if st.button("More images", icon=":material/refresh:", key="gallery_more"):
                    st.session_state["gallery_seed"] = st.session_state.get("gallery_seed", 0) + 1
                    st.rerun()
else:
    for k in ("image", "split"):
        st.query_params.pop(k, None)
    st.session_state.pop("exc_url_image", None)
    upload = st.file_uploader("A PNG, JPEG, GIF, BMP or WebP image (any size; its centred square is resized to the "
                              "model's input, so it keeps its proportions)",
                              type=["png", "jpg", "jpeg", "gif", "bmp", "webp"], key="exc_upload")
    if upload is None:
        st.info("Upload an image to see its excitations. Works without any dataset.", icon=":material/upload:")
    elif refusal := ui.upload_refusal(upload):  # a public demo's caps in bytes and pixels
        st.error(refusal, icon=":material/block:")
    else:
        try:
            image = open_image(upload.getvalue(), upload.name)
            x = preprocess(image, meta)  # the centred square, resized: the same pixels as below
            _, h, w = meta.get("input_size", (3, 32, 32))
            pixels = input_pixels(image, meta)
            fit = ("" if image.size == (w, h) else f", resized to {w}×{h}" if image.width * h == image.height * w
                   else f", its centred {'square' if w == h else 'crop'} resized to {w}×{h}")
            caption = (f"uploaded **{upload.name}** ({image.width}×{image.height}, {image.mode}) as the model "
                       f"sees it{fit}")
            if min(image.width, image.height) < TINY_SIDE:
                st.warning(f"{upload.name} is only {image.width}×{image.height} pixels: the model sees it upscaled to "
                           f"{w}×{h}, so there is little picture in it and the result says little.",
                           icon=":material/photo_size_select_small:")
        except ImageError as exc:
            st.error(str(exc), icon=":material/broken_image:")
        except Exception as exc:  # noqa: BLE001 -- any other decoder fault: one line, the page keeps working
            st.error(f"{upload.name}: cannot use this image ({type(exc).__name__}: {str(exc)[:120]})",
                     icon=":material/broken_image:")

if x is None:
    st.stop()

# --------------------------------------------------------------------------- the answer for this image
result = explain(model, x, classes)
pred = result.predicted
left, right = st.columns([1, 2], gap="large")
with left:
    st.image(fmt.enlarge(pixels, max(1, 256 // pixels.shape[-1])), caption=None, width=256)
    st.markdown(caption)
with right:
    verdict = ":green-badge[:material/check: correct]" if true_class is not None and pred == true_class else (
        ":red-badge[:material/close: wrong]" if true_class is not None else "")
    st.markdown(f"Predicted **{classes[pred]}** ({result.probs[pred]:.1%}) {verdict}")
    st.plotly_chart(topk_figure(result.top(5)), key="exc_top5", config={"displayModeBar": False})

if not blocks:
    st.stop()

# --------------------------------------------------------------------------- class profiles (cached)
@st.cache_data(max_entries=8, show_spinner=False)
def _profiles(path: str, mtime: float, spec: str, split: str, per_class: int):
    model, meta = ui.load_entry(path)
    data = ui.load_data(split, meta, spec)
    if list(data.classes) != list(meta["classes"]):
        raise ValueError(f"the data's classes {fmt.class_list(data.classes)} differ from the checkpoint's "
                         f"{fmt.class_list(meta['classes'])}")
    return class_profiles(Checkpoint.from_meta(model, meta), data, per_class=per_class)


@st.cache_data(max_entries=8, show_spinner=False)
def _responses(path: str, mtime: float, spec: str, split: str, per_class: int):
    model, meta = ui.load_entry(path)
    profiles = _profiles(path, mtime, spec, split, per_class)
    return channel_responses(Checkpoint.from_meta(model, meta), ui.load_data(split, meta, spec), profiles.positions)


def _split_ablation(path: str, mtime: float, spec: str, split: str, per_class: int | None, progress=None):
    """The ablation of this checkpoint on this split, kept in the session (st.cache_data cannot hold a
    function that draws a progress bar)."""
    results = st.session_state.setdefault("exc_split_results", {})
    key = (path, mtime, spec, split, per_class)
    if key not in results:
        model, meta = ui.load_entry(path)
        data = ui.load_data(split, meta, spec)
        results[key] = gate_ablation(Checkpoint.from_meta(model, meta), data, per_class=per_class, progress=progress)
    return results[key]


def _request_ablation() -> None:
    """The spread view's button: run the split ablation below on 100 images per class."""
    st.session_state["exc_split_per_class"] = 100
    st.session_state["exc_split_requested"] = True


def _any_ablation():
    """An ablation of this checkpoint on this split computed in this session (the larger one if several)."""
    done = [(k[4] or 10**9, v) for k, v in st.session_state.get("exc_split_results", {}).items()
            if k[:4] == (path, mtime, ui.data_spec(), split)]
    return max(done, key=lambda t: t[0])[1] if done else None


profile_data = profile_error = None
have_data = ui.split_data_reason(meta) is None
per_class = st.session_state.get("exc_per_class", 50)
if have_data:
    try:
        with st.spinner(f"Averaging gates over {per_class} images per class (once per checkpoint)…"):
            profile_data = _profiles(path, mtime, ui.data_spec(), split, per_class)
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        profile_error = f"Cannot compute class profiles: {exc}"

st.subheader("Gates of this image")
if gate_note:
    st.warning(gate_note, icon=":material/info:")
reference = profile_data.overall if profile_data is not None else None
sort_channels = st.segmented_control(
    "Channel order", ["Channel index", "Sorted by gate"], key="exc_order", default="Sorted by gate", required=True,
    help="Channel index is the paper's layout. Sorted puts each block's channels in the order of the all-class "
         "mean gate (this image's gate when no data is loaded), highest first: with hundreds of channels the "
         "mean becomes one falling curve, and what this image or a class does differently stands out. "
         "Hover a point for its real channel.") == "Sorted by gate"
order = channel_order(reference if reference is not None else result.gates) if sort_channels else None
order_label = ("channels, highest mean gate first" if reference is not None
               else "channels, highest gate of this image first")
widest = max(len(g) for g in result.gates.values())
# hundreds of channels need the page's full width: one block per row; many narrow blocks: three per row
grid_columns = 3 if len(blocks) > 4 else 1 if widest > 128 else len(blocks)
tab_bars, tab_heat = st.tabs(["Per block", "Blocks × channels"])
with tab_bars:
    bars = gate_bars_figure(result.gates, columns=grid_columns, reference=reference, order=order,
                            order_label=order_label, row_height=150 if grid_columns == 1 else 170)
    st.plotly_chart(bars, key="exc_bars", on_select="rerun", selection_mode="points")
    st.caption("Bars: this image's gate per channel" + (" (spatial mean of the per-pixel gate)" if gate_note else "")
               + (". Red line: the all-class mean from the class profiles below." if reference else ".")
               + (" Click a bar to see below which images open that channel." if reference else ""))
with tab_heat:
    st.plotly_chart(gate_heatmap_figure(result.gates, order=order, order_label=order_label), key="exc_heatmap")

# --------------------------------------------------------------------------- inside one block
sample = ui.load_data(split, meta) if profile_data is not None else None
inside_section(model, x, blocks, classes, order, profile_data,
               (lambda: _responses(path, mtime, ui.data_spec(), split, per_class)) if profile_data else None, sample)

# --------------------------------------------------------------------------- this image against its class
st.subheader("This image against its class")
if profile_data is not None and profile_data.gates:
    choose_channel(profile_data, blocks, bars)  # before any table of channels is drawn
    difference_section(profile_data, result, classes, blocks, true_class, split, order, order_label)
elif have_data and profile_data is None:
    st.caption("Needs the class profiles below.")
else:
    st.caption("Needs a dataset for the class means (see below).")

# --------------------------------------------------------------------------- class profiles
st.subheader("Class profiles (the paper's Fig. 6, for this model)")
if not have_data:
    ui.no_split_data_message(meta, "Class profiles need images of each class; this image's gates are above.")
else:
    st.select_slider("Images per class", [10, 25, 50, 100, 200], value=50, key="exc_per_class")
    if profile_error:
        st.error(profile_error)
    if profile_data is not None:
        profiles, overall, counts = profile_data.profiles, profile_data.overall, profile_data.counts
        constant = profile_data.constant_blocks()
        if constant:
            st.warning(f"{', '.join(constant)}: the gate is the same for every image (std across images below "
                       f"{CONSTANT_GATE_SPREAD}), a fixed channel scale the next layer absorbs, so "
                       f"{'this block does' if len(constant) == 1 else 'these blocks do'} no squeeze-and-excitation.",
                       icon=":material/block:")
        # hundreds of channels tangle ten lines into a wall: a cell per class and channel keeps them apart
        tab_map, tab_lines = st.tabs(["Classes × channels", "Lines (the paper's layout)"])
        marks = {true_class: "true"} if true_class is not None else {}
        marks[pred] = "true = predicted" if pred == true_class else "predicted"
        with tab_map:
            st.plotly_chart(profiles_heatmap_figure(profiles, overall, classes, result.gates, marks=marks,
                                                    order=order, order_label=order_label), key="exc_profiles_map")
        with tab_lines:
            default_classes = list(dict.fromkeys([c for c in (true_class, pred) if c is not None]
                                                 + list(range(len(classes)))))
            chosen = st.multiselect("Classes", range(len(classes)), default=default_classes[:3],
                                    format_func=classes.__getitem__, key="exc_profile_classes")
            st.plotly_chart(profiles_figure(profiles, overall, classes, list(chosen), result.gates,
                                            columns=grid_columns, order=order, order_label=order_label,
                                            row_height=170 if grid_columns == 1 else 200), key="exc_profiles")
        s1, s2 = st.columns([2, 3], vertical_alignment="center")
        s1.plotly_chart(separation_figure(profile_data.separation(), profile_data.spread), key="exc_separation")
        lo, hi = int(counts.min()), int(counts.max())
        s2.markdown(
            f"Each row (or line) is a class's mean gate over {lo if lo == hi else f'{lo}–{hi}'} images of the "
            f"**{split}** split, beside the mean over all classes (dashed line) and this image (dots). In the "
            "paper, early blocks excite alike for every class and late blocks become class-specific. The bars at "
            "the left "
            "measure that for this model: the spread of the class profiles (std across classes, mean over "
            "channels) at each block, and beside it how much the gate varies from image to image (std across "
            "the same images).")

# --------------------------------------------------------------------------- one channel
if profile_data is not None and profile_data.gates:
    one_channel_section(profile_data, result, classes, blocks, bars, split, meta)

# --------------------------------------------------------------------------- images by their gates
if profile_data is not None and profile_data.gates:
    gate_space_section(profile_data, classes, blocks, split, sample, (path, mtime, ui.data_spec(), split, per_class),
                       {b: block_gate_range(m) for b, m in se_blocks(model).items()}, position, _any_ablation(),
                       _request_ablation, true_class if true_class is not None else pred)

# --------------------------------------------------------------------------- interventions
st.subheader("Interventions")
i1, i2, i3 = st.columns([2, 2, 1])
off = i1.multiselect("Switch SE off (gate = 1) in", blocks, key="exc_off")
mean_blocks = i2.multiselect("Replace the gate with a class mean in", blocks, key="exc_mean_blocks",
                             disabled=profile_data is None,
                             help="Needs the class profiles above.")
mean_class = i3.selectbox("Class mean of", range(len(classes)), format_func=classes.__getitem__,
                          key="exc_mean_class", disabled=profile_data is None)
overrides: dict = {}
if profile_data is not None:
    for b in mean_blocks:
        overrides[b] = profile_data.profiles[b][mean_class]
for b in off:
    overrides[b] = 1.0
if overrides:
    after = intervene(model, x, overrides)
    new = int(after.argmax())
    c1, c2, c3 = st.columns(3)
    c1.metric("Prediction", classes[new], delta="changed" if new != pred else "unchanged",
              delta_color="inverse" if new != pred else "off")
    c2.metric(f"p({classes[pred]})", f"{after[pred]:.1%}", delta=f"{after[pred] - result.probs[pred]:+.1%}")
    if true_class is not None:
        c3.metric(f"p(true: {classes[true_class]})", f"{after[true_class]:.1%}",
                  delta=f"{after[true_class] - result.probs[true_class]:+.1%}")
    st.plotly_chart(intervention_figure(classes, result.probs, after), key="exc_intervention")
else:
    st.caption("Choose blocks above to see how the prediction changes.")
with st.expander("SE off in one block at a time", icon=":material/science:", expanded=not overrides):
    st.plotly_chart(ablation_figure(block_ablation(model, x, pred), float(result.probs[pred]), classes[pred]),
                    key="exc_ablation")


# --------------------------------------------------------------------------- the whole split
st.subheader("Across the split: what each block's gate is worth")
if not have_data:
    ui.no_split_data_message(meta, "This needs the images of a split.")
else:
    a1, a2 = st.columns([1, 3], vertical_alignment="bottom")
    sizes = {100: "100 per class", 0: f"all of {split}"}
    per = a1.selectbox("Images", list(sizes), format_func=sizes.get, key="exc_split_per_class")
    key = (path, mtime, ui.data_spec(), split, per or None)
    computed = key in st.session_state.get("exc_split_results", {})
    over = None if computed else ui.split_work_refusal(  # a public demo's budget (None outside one)
        "The ablation over the split", ui.subset_size(ui.load_data(split, meta), per or None),
        2 + 2 * (len(blocks) + 1))
    clicked = a2.button("Done" if computed else "Run", icon=":material/check:" if computed else ":material/play_arrow:",
                        key="exc_split_run", disabled=computed or bool(over),
                        help=f"{2 + 2 * (len(blocks) + 1)} passes over the images; kept for this session.")
    requested = st.session_state.pop("exc_split_requested", False) and not computed and not over
    if over:
        st.caption(f":material/block: {over}")
    elif computed or clicked or requested:
        bar = st.empty()
        try:
            ablation = _split_ablation(*key, progress=lambda d, n: bar.progress(
                d / n, text=f"Ablating gates: pass {d} of {n}"))
        except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
            st.error(f"Cannot run the ablation: {exc}")
        else:
            bar.empty()
            if requested:
                st.rerun()  # the spread view above reads the result
            st.plotly_chart(split_ablation_figure(ablation.table(), ablation.baseline, ablation.n, split=split),
                            key="exc_split_chart")
            st.caption("Both panels share one scale, and each bar is labelled with its change in points. "
                       "Red: the block's gate set to 1, as if it had no SE block. Blue: the gate fixed to the "
                       "block's mean gate over the same images, which keeps the average channel re-weighting but "
                       "not its dependence on the image. Where blue costs little and red costs a lot, the block "
                       "mostly applies a fixed scale; where blue costs as much as red, what matters is that the "
                       "gate follows the image: squeeze-and-excitation proper.")
    else:
        st.caption("Accuracy with each block's gate switched off, or fixed to its mean, over the split; "
                   "the same as `python -m senet ablate`.")
