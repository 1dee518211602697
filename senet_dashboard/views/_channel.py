"""The Excitation explorer's channel sections: this image against its class's mean gates, and one channel
(which images open it, this image's most unusual channels, which classes a block's channels tell apart)."""
from __future__ import annotations

import streamlit as st

from senet_dashboard.views import _loaders as ui
from senet_dashboard.views import _format as fmt
from senet_dashboard.figures import channel_classes_figure, class_splits_figure, gate_difference_figure
from senet.analysis.profiles import CLASS_SPLIT_GAP, ClassProfiles, ExtremeGroup
from senet.analysis.explanation import Explanation
from senet_dashboard.views._context import PageContext
from senet_dashboard.views._explorer_state import VIEWS, ChosenImage, Keys
from senet_dashboard.views._view_image import channel_ordering
from senet_dashboard.views._explorer_state import pick as follow_pick

SPLIT_ROWS = 8  # class groups listed
DEPARTURES = 5  # largest departures from the class mean marked and listed, per block


def _shown() -> tuple[str | None, int | None]:
    return st.session_state.get(Keys.BLOCK), st.session_state.get(Keys.CHANNEL)


def table_key(base: str, context: object) -> str:
    """The widget key of a table of channels (``base``) for this run. A ticked row is only kept while it still
    says what is shown: once the table's ``context`` changes (another image, another block) or the channel
    shown is no longer the one its row picked, the table gets a new key, so it comes back with no row ticked
    (Streamlit offers no other way to clear a table's selection)."""
    state = st.session_state
    generation = state.get(f"{base}_gen", 0)
    picked = state.get(f"{base}_picked")
    if state.get(f"{base}_context", context) != context or (picked is not None and picked != _shown()):
        generation += 1
        state[f"{base}_picked"], state[f"{base}_last_rows"] = None, []  # the new table starts with no row ticked
    state[f"{base}_gen"], state[f"{base}_context"] = generation, context
    state[f"{base}_key"] = key = base if generation == 0 else f"{base}_{generation}"
    return key


def _channel_from_rows(base: str, channels_key: str) -> bool:
    """A row newly picked in a table of channels (as drawn last run, its channels, or (block, channel) pairs,
    under ``channels_key``) picks that channel, once."""
    key = st.session_state.get(f"{base}_key", base)
    rows = ((st.session_state.get(key) or {}).get("selection") or {}).get("rows") or []
    shown = st.session_state.get(channels_key, [])
    if rows and rows != st.session_state.get(f"{base}_last_rows") and rows[0] < len(shown):
        pick = shown[rows[0]]
        block, channel = pick if isinstance(pick, (tuple, list)) else (st.session_state.get(Keys.BLOCK), pick)
        st.session_state[f"{base}_picked"] = (block, int(channel))
        st.session_state[f"{base}_last_rows"] = rows
        if base == Keys.DEPARTURES:  # picked in vs. its class: that channel is shown in One channel
            st.session_state[Keys.PENDING_VIEW] = VIEWS["channel"]
        follow_pick(block, int(channel))
        return True
    st.session_state[f"{base}_last_rows"] = rows
    return False


def _most_specific(profiles: ClassProfiles) -> None:
    """The channel of the chosen block whose mean gate differs most between classes."""
    st.session_state[Keys.CHANNEL] = profiles.most_specific_channel(st.session_state[Keys.BLOCK])


def choose_channel(profiles: ClassProfiles, blocks: list[str]) -> bool:
    """Settle the block and channel shown from last run's inputs (a picked table row, the diagram's block, the
    channel input): call before drawing any table of channels. A block switched to keeps the channel number if
    it has it, else shows its most class-specific channel; never one out of range. True if a row was picked."""
    picked = False
    for base, channels_key in ((Keys.DEPARTURES, Keys.DEPARTURE_CHANNELS), (Keys.UNUSUAL, Keys.UNUSUAL_CHANNELS),
                               (Keys.SPLITS, Keys.SPLIT_CHANNELS)):
        picked = _channel_from_rows(base, channels_key) or picked
    block, channel = _shown()
    if block not in blocks or block not in profiles.gates:
        block = next((b for b in reversed(blocks) if b in profiles.gates))
        follow_pick(block)
    if not isinstance(channel, int) or not 0 <= channel < profiles.gates[block].shape[1]:
        st.session_state[Keys.CHANNEL] = profiles.most_specific_channel(block)
    return picked


GATE_DECIMALS = 2  # gates under the images and in the sentences about them


def _tie_value(value: float, highest: bool) -> str:
    """'1.00 to two decimals', saying what a rounded 1.00 or 0.00 means: a sigmoid gate lies strictly between 0 and
    1, so a gate shown as 1.00 is one of 0.995 or more."""
    text = f"{value:.{GATE_DECIMALS}f} to {GATE_DECIMALS} decimals"
    if highest and round(value, GATE_DECIMALS) >= 1:
        return f"{text} (0.995 or more)"
    if not highest and round(value, GATE_DECIMALS) <= 0:
        return f"{text} (below 0.005)"
    return text


def extremes_sentence(group: ExtremeGroup, of: str, classes: list[str]) -> str:
    """'Classes of these 12: truck 5 · ship 4 · ...'; when more images than are shown reach the k-th gate (a tie
    at the cut, at the shown precision), how many and their range, calling it a tie only when all of them show
    the same gate."""
    spread = " · ".join(f"{classes[i]} {c}" for i, c in sorted(enumerate(group.counts.tolist()),
                                                               key=lambda t: -t[1]) if c)
    if group.n <= group.k:
        return f"Classes of these {group.n}: {spread}"
    if f"{group.value:.{GATE_DECIMALS}f}" == f"{group.far:.{GATE_DECIMALS}f}":
        return (f"{group.n} of the {of} tie at a gate of {_tie_value(group.value, group.highest)}: {spread}. "
                f"The {group.k} shown hold each class in proportion.")
    low, high = sorted((group.value, group.far))
    rank = "highest" if group.highest else "lowest"
    shown_at = group.k - (group.n - group.at_value)
    return (f"{group.n} of the {of} have a gate from {low:.{GATE_DECIMALS}f} to {high:.{GATE_DECIMALS}f}: {spread}. "
            f"{group.at_value} of them share the {ordinal(group.k)} {rank} gate, {group.value:.{GATE_DECIMALS}f} "
            f"to {GATE_DECIMALS} decimals; the {shown_at} of them shown {'is' if shown_at == 1 else 'are'} drawn "
            "from their classes in proportion.")


def ordinal(n: int) -> str:
    """1 -> '1st', 12 -> '12th', 22 -> '22nd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _class_spread(profiles: ClassProfiles, block: str, channel: int, classes: list[str], k: int,
                  highest: bool) -> str:
    """The classes of a channel's k most extreme images, and of any tie at the cut (:func:`extremes_sentence`)."""
    group = profiles.extreme_group(block, channel, k=k, highest=highest, decimals=GATE_DECIMALS)
    if not group.n:
        return ""
    return extremes_sentence(group, f"{len(profiles.positions):,} sampled images", [fmt.plain(c) for c in classes])


def difference_section(ctx: PageContext, image: ChosenImage, result: Explanation, profiles: ClassProfiles) -> None:
    """This image's gates minus its true class's and its predicted class's mean gates (one class when they are
    the same, only the predicted one for an upload): a chart per block and class, and the largest departures."""
    classes, blocks, true_class, split = ctx.classes, list(result.gates), image.true_class, ctx.split
    order, order_label = channel_ordering(result, profiles)
    pred = result.predicted
    references: dict[str, int] = {}
    if true_class is not None:
        references[f"{classes[true_class]} (true{' = predicted' if pred == true_class else ''})"] = true_class
    if pred != true_class:
        references[f"{classes[pred]} (predicted)"] = pred
    differences = {f"{label} mean": {b: profiles.gate_difference(b, result.gates[b], k) for b in blocks}
                   for label, k in references.items()}
    st.plotly_chart(gate_difference_figure(differences, order=order, order_label=order_label, highlight=DEPARTURES),
                    key=Keys.DIFFERENCE)
    counts = "/".join(map(str, sorted({int(profiles.counts[k]) for k in references.values()})))
    st.caption(f"Gate difference: this image's gate minus the class's mean gate over {counts} sampled images of "
               f"the **{split}** split, per channel; gates lie in 0–1, so a difference lies in −1…+1. Red: this "
               "image opens the channel more than the class does; blue: less. The "
               f"{DEPARTURES} largest departures of each chart are marked with their channel."
               + (" Channels that depart from the true class but not from the predicted one are where this image "
                  "looks like the class it was taken for." if len(references) > 1 else ""))
    rows = profiles.departures(result.gates, list(references.values()), k=DEPARTURES)
    st.session_state[Keys.DEPARTURE_CHANNELS] = [(r["block"], r["channel"]) for r in rows]
    names = [fmt.plain(classes[k]) for k in references.values()]
    st.markdown(f"**Largest departures from the {names[0]} mean**, {DEPARTURES} per block (pick a row to see "
                "which images open that channel)")
    table = [{"block": r["block"], "channel": r["channel"], "gate": r["gate"],
              **{f"mean {i}": m for i, m in enumerate(r["means"])},
              **{f"diff {i}": d for i, d in enumerate(r["differences"])}} for r in rows]
    config = {"gate": st.column_config.NumberColumn("gate here", format="%.3f")}
    for i, name in enumerate(names):
        config[f"mean {i}"] = st.column_config.NumberColumn(f"{name} mean gate", format="%.3f")
        config[f"diff {i}"] = st.column_config.NumberColumn(f"here − {name}", format="%+.3f",
                                                            help=f"this image's gate minus the {name} mean gate")
    st.dataframe(table, key=table_key(Keys.DEPARTURES, result.probs.tobytes()), on_select="rerun",
                 selection_mode="single-row", hide_index=True, width="stretch", column_config=config,
                 height=35 * (len(table) + 1) + 3)


def _show_image(position: int) -> None:
    """Open one of the sampled images in the explorer: the page's image picker reads the address."""
    st.query_params["image"] = str(position)
    st.rerun()  # the whole page: the image changes every view


@st.fragment
def channel_view(ctx: PageContext, image: ChosenImage, result: Explanation, profiles: ClassProfiles) -> None:
    """One channel of the diagram's block (picked by a heatmap click, a table row or the channel input): the
    images that open it, this image's most unusual channels, and which classes the block's channels split."""
    classes, blocks, split, meta = ctx.classes, list(result.gates), ctx.split, ctx.meta
    choose_channel(profiles, blocks)
    k2, k3, _ = st.columns([1.2, 1.2, 2], vertical_alignment="bottom")
    ch_block = st.session_state[Keys.BLOCK]
    width = profiles.gates[ch_block].shape[1]
    ch = int(k2.number_input(f"Channel of {ch_block} (0–{width - 1})", 0, width - 1, key=Keys.CHANNEL))
    k3.button("Most class-specific", on_click=_most_specific, args=(profiles,), key=Keys.CH_SPECIFIC, width="stretch",
              help="The channel of this block whose mean gate differs most between classes (std across the "
                   "class profiles).")
    left, right = st.columns([2, 3], gap="large")
    left.plotly_chart(channel_classes_figure(profiles.profiles[ch_block][:, ch], profiles.overall[ch_block][ch],
                                             classes, f"{ch_block}, channel {ch}: mean gate per class",
                                             image_gate=float(result.gates[ch_block][ch])),
                      key=Keys.CHANNEL_CLASSES)
    unusual = profiles.unusual_channels(ch_block, result.gates[ch_block], k=6)
    st.session_state[Keys.UNUSUAL_CHANNELS] = [r["channel"] for r in unusual]
    left.markdown(f"**This image's most unusual channels in {ch_block}** (pick a row to see one)")
    left.dataframe(unusual, key=table_key(Keys.UNUSUAL, (result.probs.tobytes(), ch_block)), on_select="rerun",
                   selection_mode="single-row", hide_index=True,
                   width="stretch", column_config={
                       "gate": st.column_config.NumberColumn("gate here", format="%.3f"),
                       "mean": st.column_config.NumberColumn("mean gate", format="%.3f"),
                       "z": st.column_config.NumberColumn("z", format="%+.1f", help="How far this image's gate is "
                                                          "from the mean, in standard deviations across the "
                                                          "sampled images.")})
    high, high_gate, low, low_gate = profiles.channel_extremes(ch_block, ch, k=12, decimals=GATE_DECIMALS)
    try:
        sample = ui.load_data(split, meta)
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        right.error(f"Cannot show the images: {exc}")
    else:
        sample_labels = sample.labels.numpy()
        with right:
            for title, positions, values, highest in (("Opens it most", high, high_gate, True),
                                                      ("Opens it least", low, low_gate, False)):
                st.markdown(f"**{title}** (of the {len(profiles.positions):,} sampled images)")
                spread = _class_spread(profiles, ch_block, ch, classes, len(positions), highest)
                if spread:
                    st.caption(spread)
                st.image(fmt.strip([sample.images[int(i)] for i in positions], 2), width="content")
                st.caption("Left to right: " + " · ".join(
                    f"{v:.{GATE_DECIMALS}f} {fmt.plain(classes[sample_labels[int(i)]])}" for i, v in zip(positions, values)))
            choices = [int(i) for i in high] + [int(i) for i in low]
            o1, o2 = st.columns([3, 1], vertical_alignment="bottom")
            chosen_image = o1.selectbox("Look at one of them above", choices, key=Keys.CH_PICK,
                                        format_func=lambda i: f"#{i} · {classes[sample_labels[i]]}")
            if o2.button("Show", icon=":material/arrow_upward:", key=Keys.CH_SHOW, width="stretch"):
                _show_image(chosen_image)
    st.caption("Bars: the channel's mean gate for each class over the sampled images; dashed: over all of them; "
               "dotted: this image. "
               "A channel that one class opens and the others close is class-specific, as the paper finds for "
               "late blocks.")
    splits = profiles.class_splits(ch_block)
    shown_splits = splits[:SPLIT_ROWS]
    st.session_state[Keys.SPLIT_CHANNELS] = [r["channels"][0] for r in shown_splits]
    st.markdown(f"**Which classes {ch_block}'s channels tell apart** (pick a row to see its strongest channel)")
    if shown_splits:
        st.dataframe([{"group": i + 1, "open for": ", ".join(r["open"]), "closed for": ", ".join(r["closed"]),
                       "channels": len(r["channels"]), "strongest": ", ".join(map(str, r["channels"][:6])),
                       "jump": r["jump"]} for i, r in enumerate(shown_splits)],
                     key=table_key(Keys.SPLITS, ch_block), on_select="rerun", selection_mode="single-row",
                     hide_index=True,
                     width="stretch", column_config={
                         "jump": st.column_config.NumberColumn("mean jump", format="%.2f", help=(
                             "The gap between the lowest class mean gate of the open classes and the highest of "
                             "the closed ones, averaged over the group's channels."))})
        st.plotly_chart(class_splits_figure(profiles.profiles[ch_block], classes, shown_splits,
                                            f"{ch_block}: mean gate per class of the channels in these groups"),
                        key=Keys.SPLITS_MAP)
    n_split = sum(len(r["channels"]) for r in splits)
    st.caption(f"{n_split} of {width} channels split the classes cleanly in two: sorted by class mean gate, they "
               f"jump by {CLASS_SPLIT_GAP} or more between two neighbouring classes. Grouped by the classes "
               f"above the jump" + (f"; {len(splits) - SPLIT_ROWS} smaller groups not shown." if len(splits) >
                                   SPLIT_ROWS else "."))
