"""Home: what SENet is, and the model card of the selected checkpoint."""
import streamlit as st

from views import _shared as ui
from senet.analysis.compare import se_stage_terms
from dashboard.curves import curves_from_history, format_duration
from dashboard.figures import epoch_figure, lr_figure

st.title("SENet Explorer")
st.caption("Train Squeeze-and-Excitation networks on CIFAR-10, watch them learn, and see how every SE block "
           "re-weights its channels.")

with st.container(border=True):
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown(
            "**Squeeze-and-Excitation** (Hu, Shen, Sun, [arXiv 1709.01507](https://arxiv.org/abs/1709.01507)) "
            "lets a convolutional block re-weight its own channels. It *squeezes* each channel of the feature map "
            "**u** (C × H × W) to one number by global average pooling, *excites* through a small bottleneck "
            "(reduction ratio r) ending in a sigmoid, and *scales* every channel by its gate. The gate depends "
            "on the image, so the network can emphasise the features that matter for this input. "
            "W₁ is C/r × C and W₂ is C × C/r, so a block adds 2C²/r parameters.")
    with right:
        st.latex(r"z_c = \frac{1}{HW}\sum_{i,j} u_c(i,j)")
        st.latex(r"s = \sigma\!\left(W_2\,\mathrm{ReLU}(W_1 z)\right)")
        st.latex(r"\tilde{u}_c = s_c \cdot u_c")

loaded = ui.selected_model()
if loaded is None:
    st.stop()
model, meta = loaded
path = ui.selected_path()
info = ui.info_for(path)
history = meta.get("history") or []
config = meta.get("config") or {}

st.subheader(f"Model card · {meta.get('model')}")
badges = st.container(horizontal=True)
with badges:
    if info["se_blocks"]:
        st.badge(f"SE · {info['se_blocks']} blocks · r = {info['reduction']}", color="violet")
    else:
        st.badge("no SE blocks (plain twin)", color="gray")
    if meta.get("recipe"):
        st.badge(f"recipe: {meta['recipe']}", color="blue")
    if meta.get("dataset"):
        st.badge(str(meta["dataset"]), icon=":material/dataset:", color="green")
    st.badge(f"{len(meta.get('classes', []))} classes", color="gray")
trained = f" · trained in {format_duration(meta['wall_time_s'])}" if meta.get("wall_time_s") else ""
st.caption(f"`{path}`{trained}" + (f" on {meta['hardware']}" if trained and meta.get("hardware") else ""))

cols = st.columns(5)
cols[0].metric("Validation accuracy", ui.pct(meta.get("val_acc")),
               delta=(f"{meta['val_acc_tta'] - meta['val_acc']:+.2%} with flip TTA"
                      if meta.get("val_acc_tta") is not None and meta.get("val_acc") is not None else None),
               help="Accuracy on the held-out validation split, recorded by the trainer at this checkpoint's epoch."
                    + (f" The flip-TTA figure was {meta['val_acc_tta_source']}." if meta.get("val_acc_tta_source") else ""))
cols[1].metric("Parameters", f"{info['params']:,}")
cols[2].metric("SE parameters", f"{info['se_params']:,}",
               help="Parameters inside the SE blocks, next to the seed's formula (2/r)·Σ N_s·C_s².")
cols[3].metric("Multiply-adds / image", ui.human(info["macs"]))
epochs = meta.get("epochs") or len(history) or None
cols[4].metric("Epochs", epochs if epochs is not None else "–",
               help=f"Trained in {format_duration(meta.get('wall_time_s'))} on {meta.get('hardware') or 'unrecorded hardware'}")

terms = se_stage_terms(model)
if terms:
    r = terms[0][2]
    same_r = all(t[2] == r for t in terms)
    body = " + ".join(fr"{n}\cdot{c}^2" for n, c, _ in terms)
    formula = fr"\frac{{2}}{{{r}}}\left({body}\right) = {info['se_formula']:,.0f}" if same_r else \
        fr"\sum_s \frac{{2}}{{r_s}} N_s C_s^2 = {info['se_formula']:,.0f}"
    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    with c1:
        st.latex(r"\text{SE params} \approx " + formula.replace(",", "{,}"))
    with c2:
        diff = info["se_params"] - info["se_formula"]
        st.caption(f"Counted: **{info['se_params']:,}** "
                   f"({'exactly the formula' if abs(diff) < 0.5 else f'{diff:+,.0f} vs the formula'}; "
                   f"{info['se_params'] / info['params']:.2%} of all parameters). "
                   "The formula counts the two FC layers of each block (C·C/r each, no bias).")
gate_note = None
if meta.get("model") == "seed_senet":
    gate_note = ("This is the seed blog post's network: its SE block discards the pooled tensor, so the gate is "
                 "computed per pixel (the paper's 'NoSqueeze' ablation plus a bias), not per channel.")
    st.warning(gate_note, icon=":material/warning:")

st.markdown("##### Training curves")
if history:
    curves = curves_from_history(history)
    c1, c2, c3 = st.columns(3)
    c1.plotly_chart(epoch_figure(curves, "loss", height=280), key="home_loss")
    c2.plotly_chart(epoch_figure(curves, "acc", height=280), key="home_acc")
    c3.plotly_chart(lr_figure(curves, height=280), key="home_lr")
else:
    st.caption("This checkpoint carries no training history.")

with st.expander("Recipe and provenance", icon=":material/receipt_long:"):
    keys = ("recipe", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "label_smoothing",
            "schedule", "warmup_epochs", "crop_pad", "pad_mode", "flip", "seed", "val_size", "split_seed", "data")
    rows = [{"setting": k, "value": str(config[k])} for k in keys if k in config]
    rows += [{"setting": k, "value": str(meta[k])} for k in ("dataset", "hardware", "run_dir", "exported_from",
                                                               "weights_dtype", "val_acc_tta_source") if meta.get(k)]
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("No recipe recorded in this checkpoint.")
