"""Home: what SENet is, and the model card of the selected checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Final

import streamlit as st

from senet import DataError, evaluate_checkpoint
from senet.data import DataMatch, match_split
from senet.progress import Progress, within
from senet.analysis.compare import se_stage_terms
from senet.recorded import recorded, scored_split
from senet.training.runs import read_status
from senet_dashboard.card import (data_statement, epoch_summary, has_test_split, has_val_split, loss_gap_note,
                                  not_compared_note, pts, recompute_scope)
from senet_dashboard.curves import curves_from_checkpoint, format_duration
from senet_dashboard.figures import epoch_figure, lr_figure
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _progress as progress
from senet_dashboard.views._context import PageContext, page_context


class Keys:
    """The page's session-state and widget keys, declared once: a misspelt key is an AttributeError."""

    RECOMPUTE: Final = "card_recompute"  # the button
    RECOMPUTING: Final = "card_recomputing"  # the recomputation's Stop (see _progress)
    RECOMPUTED: Final = "card_recomputed"  # {(path, stamp, spec, data_dir): {split: (accuracy, images)}}
    LOSS: Final = "home_loss"
    ACC: Final = "home_acc"
    LR: Final = "home_lr"


RECIPE = ("recipe", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "label_smoothing",
          "schedule", "warmup_epochs", "crop_pad", "pad_mode", "flip", "cutout", "seed", "val_size", "split_seed",
          "data")
PROVENANCE = ("dataset", "hardware", "run_dir", "exported_from", "weights_dtype", "val_acc_tta_source",
              "test_acc_tta_source")


def main() -> None:
    st.title("SENet Explorer")
    st.caption("Train Squeeze-and-Excitation networks on CIFAR-10, watch them learn, and see how every SE block "
               "re-weights its channels.")
    _what_se_is()
    ctx = page_context()
    if ctx is None:
        return
    info = ui.info_for(ctx.path)
    _header(ctx, info)
    _accuracy(ctx)
    st.caption(data_statement(fmt.card_text(ctx.meta)))
    _size(ctx.meta, info)
    _se_formula(ctx, info)
    if ctx.meta.get("model") == "seed_senet":
        st.warning("This is the seed blog post's network: its SE block discards the pooled tensor, so the gate is "
                   "computed per pixel (the paper's 'NoSqueeze' ablation plus a bias), not per channel.",
                   icon=":material/warning:")
    _curves(ctx.meta)
    _recipe(ctx.meta)


def _what_se_is() -> None:
    with st.container(border=True):
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.markdown(
                "**Squeeze-and-Excitation** (Hu, Shen, Sun, [arXiv 1709.01507](https://arxiv.org/abs/1709.01507)) "
                "lets a convolutional block re-weight its own channels. It *squeezes* each channel of the feature "
                "map **u** (C × H × W) to one number by global average pooling, *excites* through a small "
                "bottleneck (reduction ratio r) ending in a sigmoid, and *scales* every channel by its gate. The "
                "gate depends on the image, so the network can emphasise the features that matter for this input. "
                "W₁ is C/r × C and W₂ is C × C/r, so a block adds 2C²/r parameters.")
        with right:
            st.latex(r"z_c = \frac{1}{HW}\sum_{i,j} u_c(i,j)")
            st.latex(r"s = \sigma\!\left(W_2\,\mathrm{ReLU}(W_1 z)\right)")
            st.latex(r"\tilde{u}_c = s_c \cdot u_c")


def _header(ctx: PageContext, info: dict) -> None:
    """The model's name, badges (SE blocks, recipe, dataset, classes) and where the file is."""
    meta = fmt.card_text(ctx.meta)  # recorded text shown as text
    st.subheader(f"Model card · {meta.get('model')}")
    with st.container(horizontal=True):
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
    st.caption(f"`{ctx.path}`{trained}" + (f" on {meta['hardware']}" if trained and meta.get("hardware") else ""))


def _held_out(meta: dict) -> str:
    """The images the recorded accuracy was measured on, in words."""
    config = meta.get("config") or {}
    n = meta.get("val_size")
    source = meta.get("data_spec") or config.get("data") or "its data source"
    seed = meta.get("split_seed", config.get("split_seed"))
    if scored_split(meta) == "test":
        count = meta.get("scored_images")
        return (f"the test split of {source}" + (f" ({count:,} images)" if isinstance(count, int) else "")
                + ": the model trained on every training image, with no validation holdout")
    limit = meta.get("train_images") if config.get("train_limit") else None
    return (f"the val split: {f'{n:,} images' if isinstance(n, int) else 'the images'} held out of the training "
            f"images of {source}" + (f" (split_seed {seed})" if seed is not None else "")
            + (f"; with its train limit the run trained on {limit:,} of the other images, never on these"
               if isinstance(limit, int) else ""))


def _accuracy(ctx: PageContext) -> None:
    """The recorded accuracy, the epoch it comes from, and the accuracy recomputed now (a button at first)."""
    meta, path = ctx.meta, ctx.path
    scored_on = scored_split(meta)  # val; test for a model trained on every training image
    status = read_status(Path(path).parent) if (Path(path).parent / "status.json").is_file() else None
    epochs_seen = epoch_summary(meta, status)
    a1, a2, a3 = st.columns([1.4, 1, 1.6])
    val, val_tta = recorded(meta, "acc"), recorded(meta, "acc_tta")
    at_epoch = f" at epoch {epochs_seen['epoch']}" if epochs_seen else ""
    a1.metric(f"{scored_on.capitalize()} accuracy · recorded in training", fmt.pct(val),
              delta=f"{pts(val_tta, val)} with flip TTA" if val_tta is not None and val is not None else None,
              delta_color="off", delta_arrow="off",
              help=f"Accuracy on {_held_out(fmt.card_text(meta))}, recorded by the trainer{at_epoch}, without test-time augmentation"
                   + (f"; with flip TTA {fmt.pct(val_tta)}, also recorded in training" if val_tta is not None else "")
                   + "." + (f" The flip-TTA figure was {fmt.plain(recorded(meta, 'acc_tta_source'))}."
                            if recorded(meta, "acc_tta_source") else ""))
    if scored_on == "test":
        a2.metric("Epoch kept", f"last ({fmt.card_text(meta).get('epochs', '?')})",
                  help="A model trained on every training image selects nothing on the test split: these are its "
                       "weights after the last epoch, and the figure beside is their test accuracy.")
    else:
        a2.metric("Best epoch (val accuracy)", epochs_seen["value"] if epochs_seen else "–",
                  help=epochs_seen["help"] if epochs_seen else "This checkpoint carries no training history.")
    data_dir = str(ui.settings().data_dir)
    done_key = (path, ctx.stamp, ctx.spec, data_dir)
    done = st.session_state.get(Keys.RECOMPUTED, {}).get(done_key)
    if done is None:
        with a3:
            _recompute_button(ctx, data_dir, done_key)
    else:
        _recomputed_metrics(ctx, done, val)


def _recompute(ctx: PageContext, splits: tuple[str, ...], data_dir: str,
               report: Progress) -> dict[str, tuple[float, int]]:
    """Accuracy (no TTA) and image count of the checkpoint on each split, now (senet's disk cache behind it);
    ``report`` counts the images of all the splits."""
    data = {s: ui.load_data(s, ctx.meta, spec=ctx.spec) for s in splits}
    total, done, out = sum(len(d) for d in data.values()), 0, {}
    for s, images in data.items():
        ev = evaluate_checkpoint(ctx.path, ctx.spec, s, data_dir, loaded=ctx.checkpoint, data=images,
                                 progress=within(report, done, total))
        out[s], done = (ev.accuracy, ev.n), done + len(images)
    return out


def _recomputed_metrics(ctx: PageContext, done: dict[str, tuple[float, int]], val: float | None) -> None:
    """One metric per recomputed split, the scored one (val, or test) beside the recorded figure in points."""
    spec, scored_on = ctx.spec, scored_split(ctx.meta)
    match = _data_match(ctx, scored_on)
    for col, (s, (acc, n)) in zip(st.columns(2), done.items()):
        compare = s == scored_on and val is not None and match is not None and match.same
        why = (". It can differ from the figure recorded in training by a few images: the trainer ran on its own "
               "hardware (bfloat16 on a GPU), this in float32, and an exported file may hold float16 weights."
               if compare else f"; {not_compared_note(match)}." if s == scored_on and match is not None else ".")
        col.metric(f"Recomputed now · {s} · {n:,} images", fmt.pct(acc),
                   delta=f"{pts(acc, val)} vs recorded" if compare else None, delta_color="off", delta_arrow="off",
                   help=f"Accuracy on the {s} split of {spec} ({n:,} images), computed now on this machine from the "
                        "checkpoint's weights, without TTA" + why)
    note = fmt.subset_note(ctx.checkpoint.card)
    if match is not None or note:
        st.caption(" ".join(([f"Data: {match.note}."] if match is not None else []) + ([f"{note}."] if note else [])))


def _data_match(ctx: PageContext, split: str) -> DataMatch | None:
    """Whether the sidebar's ``split`` holds the checkpoint's own images (by data fingerprint; by path for a
    checkpoint that records none); None when that data cannot be read."""
    try:
        data = ui.load_data(split, ctx.meta, spec=ctx.spec)
    except DataError:
        return None
    return match_split(ctx.meta, split, data, ctx.spec)


def _within_demo_budget(ctx: PageContext, splits: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """The splits a public demo may evaluate now (within its budget, or prepared beforehand), and why not the
    others (one line); outside demo mode all of them."""
    if not ui.demo_on():
        return splits, None
    kept, refused = [], []
    for s in splits:
        try:
            data = ui.load_data(s, ctx.meta, spec=ctx.spec)
        except DataError as exc:
            refused.append(str(exc))
            continue
        why = ui.split_work_refusal(f"Recomputing {s} accuracy", len(data),
                                    cached=ui.evaluation_cached(ctx.path, s, False, data, ctx.spec),
                                    way_out="the sample data source fits")
        (refused if why else kept).append(why or s)
    return tuple(kept), "; ".join(refused) or None


def _recompute_button(ctx: PageContext, data_dir: str, done_key: tuple) -> None:
    """The button that recomputes val (and test, where the source has one) accuracy into the session state; a
    model trained on every training image has no val split, only test."""
    reason = ui.data_available()
    if reason is not None:
        st.caption(f"To recompute accuracy now, choose a data source with images ({reason}).")
        return
    spec, scored_on = ctx.spec, scored_split(ctx.meta)
    has_test = has_test_split(spec, data_dir)
    splits = ("val", "test") if has_test else ("val",)
    if not has_val_split(spec):  # test photos alone
        splits = ("test",) if has_test else ()
    if scored_on == "test":
        splits = ("test",) if has_test else ()
        if not has_test:
            st.caption(f"This model trained on every training image: only a test split can score it, and {spec} "
                       "has none.")
    splits, over = _within_demo_budget(ctx, splits)
    if over:
        st.caption(f":material/block: {over}")
    if not splits:
        return
    both = " and ".join(splits)
    words = f"the {both} split" + ("s" if len(splits) > 1 else "")
    label, work = f"Evaluating {words} of {spec}", (done_key, splits)
    if st.button(f"Recompute {both} accuracy now", icon=":material/refresh:", key=Keys.RECOMPUTE,
                 on_click=progress.forget_stop, args=(Keys.RECOMPUTING,),
                 help=f"Evaluate this checkpoint on {words} of {spec} on this machine (cached on disk after the "
                      "first time)."):
        try:
            done = progress.run_with_progress(Keys.RECOMPUTING, work, label,
                                              lambda report: _recompute(ctx, splits, data_dir, report),
                                              kept=progress.chunks_kept if len(splits) == 1
                                              else progress.EVALUATIONS_KEPT)
        except DataError as exc:
            st.error(f"Cannot recompute accuracy: {exc}", icon=":material/error:")
        else:
            if done is not None:
                st.session_state.setdefault(Keys.RECOMPUTED, {})[done_key] = done
                st.rerun()  # draw the figures in place of the button
    else:
        progress.show_stopped(Keys.RECOMPUTING, work, again=None)
    held, check = recompute_scope(ctx.meta, spec)
    if scored_on == "test":
        st.caption(f"On {spec}: the test split (this model trained on every training image; it has no val split).")
    elif splits == ("test",):
        st.caption(f"On {spec}: the test split ({spec} holds test images only, no train/ folder to hold a val split "
                   "out of).")
    else:
        st.caption(f"On {spec}: {held}"
                   + (" and the test split. " if len(splits) == 2 else "; this data source has no test split. ") + check)


def _size(meta: dict, info: dict) -> None:
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{info['params']:,}")
    cols[1].metric("SE parameters", f"{info['se_params']:,}",
                   help="Parameters inside the SE blocks, next to the SENet paper's count of them, "
                        "(2/r)·Σ N_s·C_s² (its Sec. 4; N_s blocks of C_s channels in stage s, reduction r).")
    cols[2].metric("Multiply-adds / image", fmt.human(info["macs"]))
    cols[3].metric("Training time", format_duration(meta.get("wall_time_s")) if meta.get("wall_time_s") else "–",
                   help=f"On {fmt.card_text(meta).get('hardware') or 'unrecorded hardware'}.")


def _se_formula(ctx: PageContext, info: dict) -> None:
    """The SE parameters as the formula (2/r)·Σ N_s·C_s², beside the count."""
    terms = se_stage_terms(ctx.checkpoint.model)
    if not terms:
        return
    r = terms[0][2]
    same_r = all(t[2] == r for t in terms)
    body = " + ".join(fr"{n}\cdot{c}^2" for n, c, _ in terms)
    formula = fr"\frac{{2}}{{{r}}}\left({body}\right) = {info['se_formula']:,.0f}" if same_r else \
        fr"\sum_s \frac{{2}}{{r_s}} N_s C_s^2 = {info['se_formula']:,.0f}"
    # four stages' terms (SE-ResNet-50) do not fit beside the caption at 1280 px: the formula then takes the width
    c1, c2 = st.columns([3, 2], vertical_alignment="center") if len(terms) <= 3 else (st.container(), st.container())
    with c1:
        st.latex(r"\text{SE params} \approx " + formula.replace(",", "{,}"))
    with c2:
        diff = info["se_params"] - info["se_formula"]
        st.caption(f"Counted: **{info['se_params']:,}** "
                   f"({'exactly the formula' if abs(diff) < 0.5 else f'{diff:+,.0f} vs the formula'}; "
                   f"{info['se_params'] / info['params']:.2%} of all parameters). "
                   "The formula counts the two FC layers of each block (C·C/r each, no bias).")


def _curves(meta: dict) -> None:
    st.markdown("##### Training curves · recorded in training")
    history = meta.get("history") or []
    if not history:
        st.caption("This checkpoint carries no training history.")
        return
    note = loss_gap_note(meta.get("config") or {}, history, len(meta.get("classes") or []))
    if note:
        st.caption(note)
    curves = curves_from_checkpoint(meta)
    c1, c2, c3 = st.columns(3)
    c1.plotly_chart(epoch_figure(curves, "loss", height=280), key=Keys.LOSS)
    c2.plotly_chart(epoch_figure(curves, "acc", height=280), key=Keys.ACC)
    c3.plotly_chart(lr_figure(curves, height=280), key=Keys.LR)


def _recipe(meta: dict) -> None:
    config = meta.get("config") or {}
    with st.expander("Recipe and provenance", icon=":material/receipt_long:"):
        rows = [{"setting": k, "value": str(config[k])} for k in RECIPE if k in config]
        rows += [{"setting": k, "value": str(meta[k])} for k in PROVENANCE if meta.get(k)]
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch")
        else:
            st.caption("No recipe recorded in this checkpoint.")


main()
