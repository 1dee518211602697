"""The explorer's *Corruption* view (issue 30, part 2): this image under one CIFAR-10-C corruption at one severity,
beside the original; the prediction before and after, each SE block's gate shift, and the followed block's
channels whose gates move most (choosing one follows it). One image's shift is two forward passes, kept by the
server per checkpoint, data, image, corruption and severity."""
from __future__ import annotations

import streamlit as st

from senet.analysis.explanation import Explanation
from senet.analysis.profiles import ClassProfiles
from senet.analysis.robustness import ImageShift, image_shift
from senet.data.corruptions import CORRUPTIONS, SEVERITIES
from senet_dashboard.corruption_figures import block_shift_figure
from senet_dashboard.views import _format as fmt
from senet_dashboard.views import _progress as progress
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import ChosenImage, Keys, pick

STORE = "gates under corruption, one image"  # the server's store
MOVED = 8  # channels listed as moving most
SEED = 0  # of the corruptions' random draws (as `senet robustness` uses by default)


def corrupted(ctx: PageContext, image: ChosenImage, corruption: str, severity: int) -> ImageShift:
    """:func:`image_shift` of this image, kept by the server (two forward passes: no progress shown)."""
    key = (*ctx.key, image.key, corruption, severity, SEED)
    store = progress.server_store(STORE)
    if key not in store:
        shift = image_shift(ctx.checkpoint, image.pixels, corruption, severity, SEED, image.position or 0)
        progress.keep(STORE, key, shift, max_entries=128)
    return store[key]


def corruption_view(ctx: PageContext, image: ChosenImage, result: Explanation,
                    profiles: ClassProfiles | None = None) -> None:
    """Pick a corruption and severity; the two images, both predictions, each block's shift, the channels that
    move most in the followed block."""
    st.session_state.setdefault(Keys.CORR_NAME, "gaussian_noise")
    st.session_state.setdefault(Keys.CORR_SEVERITY, 3)
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    name = c1.selectbox("Corruption", list(CORRUPTIONS), key=Keys.CORR_NAME,
                        format_func=lambda n: CORRUPTIONS[n].label)
    severity = c2.segmented_control("Severity (CIFAR-10-C, 1 = mildest)", list(SEVERITIES), key=Keys.CORR_SEVERITY,
                                    required=True)
    try:
        shift = corrupted(ctx, image, name, int(severity))
    except Exception as exc:  # noqa: BLE001 -- a bad image or checkpoint: one line
        st.error(f"Cannot corrupt this image: {exc}")
        return
    c = CORRUPTIONS[name]
    st.caption(f"{c.label} at severity {severity}: {c.meaning} = {c.params[int(severity) - 1]}, as CIFAR-10-C "
               f"defines it (random draws seeded by seed {SEED} and the image's position"
               + (", 0 for an upload)." if image.position is None else f" #{image.position}, as `senet robustness` "
                  "corrupts it)."))
    _images(ctx, image, shift)
    blocks = [b.block for b in shift.blocks]
    block = st.session_state.get(Keys.BLOCK) if st.session_state.get(Keys.BLOCK) in blocks else blocks[-1]
    st.subheader("How far each block's gates move")
    st.plotly_chart(block_shift_figure(blocks, [b.mean_abs_change for b in shift.blocks],
                                       [b.cosine_distance for b in shift.blocks], block),
                    config={"displayModeBar": False}, key=Keys.CORR_CHART)
    st.caption("Each bar: the block's **mean absolute gate change**, the mean over its channels of |gate after − "
               "gate before| (gates run 0 to 1, so 0.05 is five hundredths of the gate's range, not percent); "
               f"hover for the **cosine distance** 1 − cos(before, after) of the two gate vectors. {block}, the "
               "block the diagram follows, is marked.")
    _moved(shift, block)


def _prediction(column, label: str, e: Explanation, ctx: PageContext) -> None:
    pred = e.predicted
    column.markdown(f"{label}: predicted **{fmt.plain(ctx.classes[pred])}** ({e.probs[pred]:.1%})")
    column.caption("Top 3, softmax probability: " + " · ".join(f"{fmt.plain(n)} {p:.1%}" for n, p in e.top(3)))


def _images(ctx: PageContext, image: ChosenImage, shift: ImageShift) -> None:
    """The original and the corrupted image (uint8 (3, H, W), shown (H, W, 3)), each with its prediction, and the change in the clean prediction's
    probability, in percentage points."""
    scale = max(1, 128 // shift.clean_image.shape[-1])
    left, right = st.columns(2, gap="medium")
    left.image(fmt.enlarge(shift.clean_image.transpose(1, 2, 0), scale), width=128)
    _prediction(left, "Original", shift.clean, ctx)
    right.image(fmt.enlarge(shift.corrupted_image.transpose(1, 2, 0), scale), width=128)
    _prediction(right, "Corrupted", shift.corrupted, ctx)
    top = shift.clean.predicted
    before, after = float(shift.clean.probs[top]), float(shift.corrupted.probs[top])
    kept = "keeps" if shift.corrupted.predicted == top else "changes"
    st.caption(f"{image.caption}. The corruption {kept} the prediction; p({fmt.plain(ctx.classes[top])}), the "
               f"original's predicted class, goes from {before:.1%} to {after:.1%}, "
               f"{100 * (after - before):+.1f} percentage points.")


def _moved(shift: ImageShift, block: str) -> None:
    """The followed block's channels whose gate moves most; choosing a row follows that channel."""
    rows = next(b for b in shift.blocks if b.block == block).moved(MOVED)
    chosen = ((st.session_state.get(Keys.CORR_MOVED) or {}).get("selection") or {}).get("rows") or []
    if chosen and chosen[0] < len(rows):
        picked = (shift.corruption, shift.severity, block, rows[chosen[0]]["channel"])
        if picked != st.session_state.get(Keys.CORR_LAST_ROW):
            st.session_state[Keys.CORR_LAST_ROW] = picked
            pick(block, picked[-1])
            st.rerun()  # the address and the page's other parts follow the channel
    st.markdown(f"**The {len(rows)} channels of {block} whose gates move most**")
    number = st.column_config.NumberColumn
    st.dataframe([{"channel": r["channel"], "before": r["before"], "after": r["after"], "change": r["change"]}
                  for r in rows], hide_index=True, key=Keys.CORR_MOVED, on_select="rerun",
                 selection_mode="single-row", column_config={
                     "channel": number("channel", format="%d"),
                     "before": number("gate before", format="%.3f", help="On the original image (0 to 1)"),
                     "after": number("gate after", format="%.3f", help="On the corrupted image (0 to 1)"),
                     "change": number("change", format="%+.3f", help="Gate after − gate before, in gate units")})
    st.caption("Gates are per channel, 0 (suppressed) to 1 (passed through); a spatial gate by its mean over the "
               "positions. Select a row to follow its channel in the other views.")
