"""The Excitation explorer's one-channel section: which images open a channel, this image's most unusual
channels, and which classes a block's channels tell apart."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from views import _shared as ui
from dashboard.figures import channel_classes_figure, class_splits_figure
from senet.analysis.profiles import CLASS_SPLIT_GAP, ClassProfiles, Explanation

SPLIT_ROWS = 8  # class groups listed


def _channel_from_click(bars: go.Figure) -> None:
    """A click on a bar of the gate chart picks that block and channel (once per click)."""
    points = ((st.session_state.get("exc_bars") or {}).get("selection") or {}).get("points") or []
    if not points or points[0] == st.session_state.get("exc_last_bar"):
        return
    point = st.session_state["exc_last_bar"] = points[0]
    number, channel = point.get("curve_number"), point.get("customdata")
    if isinstance(number, int) and 0 <= number < len(bars.data) and bars.data[number].type == "bar" \
            and isinstance(channel, (int, float)):
        st.session_state["exc_ch_block"], st.session_state["exc_ch"] = bars.data[number].name, int(channel)


def _channel_from_rows(table_key: str, channels_key: str) -> None:
    """A row newly picked in a table of channels (as drawn last run, its channels under ``channels_key``) picks
    that channel, once."""
    rows = ((st.session_state.get(table_key) or {}).get("selection") or {}).get("rows") or []
    shown = st.session_state.get(channels_key, [])
    if rows and rows != st.session_state.get(f"{table_key}_last_rows") and rows[0] < len(shown):
        st.session_state["exc_ch"] = shown[rows[0]]
    st.session_state[f"{table_key}_last_rows"] = rows


def _most_specific(profiles: ClassProfiles) -> None:
    """The channel of the chosen block whose mean gate differs most between classes."""
    block = st.session_state["exc_ch_block"]
    st.session_state["exc_ch"] = int(profiles.profiles[block].std(axis=0).argmax())


def _show_image(position: int) -> None:
    st.query_params["image"] = str(position)  # the link logic at the top of the page picks it up


def one_channel_section(profiles: ClassProfiles, result: Explanation, classes: list[str], blocks: list[str],
                        bars: go.Figure, split: str, meta: dict) -> None:
    """Draw the section for the block and channel in session state (picked by a bar click, a table row or the
    inputs); ``bars`` is the gate chart as drawn, to map a click to its channel."""
    st.subheader("One channel: which images open it")
    _channel_from_click(bars)
    if st.session_state.get("exc_ch_block") not in blocks:
        st.session_state["exc_ch_block"] = blocks[-1]
    if "exc_ch" not in st.session_state:
        _most_specific(profiles)
    k1, k2, k3, _ = st.columns([2, 1, 1.2, 0.8], vertical_alignment="bottom")
    ch_block = k1.selectbox("Block", blocks, key="exc_ch_block")
    _channel_from_rows("exc_unusual", "exc_unusual_channels")
    _channel_from_rows("exc_splits", "exc_split_channels")
    width = profiles.gates[ch_block].shape[1]
    if not 0 <= st.session_state.get("exc_ch", 0) < width:
        st.session_state["exc_ch"] = 0
    ch = int(k2.number_input(f"Channel (0–{width - 1})", 0, width - 1, key="exc_ch"))
    k3.button("Most class-specific", on_click=_most_specific, args=(profiles,), key="exc_ch_specific", width="stretch",
              help="The channel of this block whose mean gate differs most between classes (std across the "
                   "class profiles).")
    left, right = st.columns([2, 3], gap="large")
    left.plotly_chart(channel_classes_figure(profiles.profiles[ch_block][:, ch], profiles.overall[ch_block][ch],
                                             classes, f"{ch_block}, channel {ch}: mean gate per class",
                                             image_gate=float(result.gates[ch_block][ch])),
                      key="exc_channel_classes")
    unusual = profiles.unusual_channels(ch_block, result.gates[ch_block], k=6)
    st.session_state["exc_unusual_channels"] = [r["channel"] for r in unusual]
    left.markdown(f"**This image's most unusual channels in {ch_block}** (pick a row to see one)")
    left.dataframe(unusual, key="exc_unusual", on_select="rerun", selection_mode="single-row", hide_index=True,
                   width="stretch", column_config={
                       "gate": st.column_config.NumberColumn("gate here", format="%.3f"),
                       "mean": st.column_config.NumberColumn("mean gate", format="%.3f"),
                       "z": st.column_config.NumberColumn("z", format="%+.1f", help="How far this image's gate is "
                                                          "from the mean, in standard deviations across the "
                                                          "sampled images.")})
    high, high_gate, low, low_gate = profiles.channel_extremes(ch_block, ch, k=12)
    try:
        sample = ui.load_data(split, meta)
    except Exception as exc:  # noqa: BLE001 -- DataError and friends: one line
        right.error(f"Cannot show the images: {exc}")
    else:
        sample_labels = sample.labels.numpy()
        with right:
            for title, positions, values in (("Opens it most", high, high_gate), ("Opens it least", low, low_gate)):
                st.markdown(f"**{title}** (of the {len(profiles.positions):,} sampled images)")
                st.image([ui.enlarge(sample.images[int(i)], 3) for i in positions], width=84,
                         caption=[f"{v:.2f} · {classes[sample_labels[int(i)]]}" for i, v in zip(positions, values)])
            choices = [int(i) for i in high] + [int(i) for i in low]
            o1, o2 = st.columns([3, 1], vertical_alignment="bottom")
            chosen_image = o1.selectbox("Look at one of them above", choices, key="exc_ch_pick",
                                        format_func=lambda i: f"#{i} · {classes[sample_labels[i]]}")
            o2.button("Show", icon=":material/arrow_upward:", on_click=_show_image, args=(chosen_image,),
                      key="exc_ch_show", width="stretch")
    st.caption("Bars: the channel's mean gate for each class over the sampled images; dashed: over all of them; "
               "dotted: this image. "
               "A channel that one class opens and the others close is class-specific, as the paper finds for "
               "late blocks.")
    splits = profiles.class_splits(ch_block)
    shown_splits = splits[:SPLIT_ROWS]
    st.session_state["exc_split_channels"] = [r["channels"][0] for r in shown_splits]
    st.markdown(f"**Which classes {ch_block}'s channels tell apart** (pick a row to see its strongest channel)")
    if shown_splits:
        st.dataframe([{"group": i + 1, "open for": ", ".join(r["open"]), "closed for": ", ".join(r["closed"]),
                       "channels": len(r["channels"]), "strongest": ", ".join(map(str, r["channels"][:6])),
                       "jump": r["jump"]} for i, r in enumerate(shown_splits)],
                     key="exc_splits", on_select="rerun", selection_mode="single-row", hide_index=True,
                     width="stretch", column_config={
                         "jump": st.column_config.NumberColumn("mean jump", format="%.2f", help=(
                             "The gap between the lowest class mean gate of the open classes and the highest of "
                             "the closed ones, averaged over the group's channels."))})
        st.plotly_chart(class_splits_figure(profiles.profiles[ch_block], classes, shown_splits,
                                            f"{ch_block}: mean gate per class of the channels in these groups"),
                        key="exc_splits_map")
    n_split = sum(len(r["channels"]) for r in splits)
    st.caption(f"{n_split} of {width} channels split the classes cleanly in two: sorted by class mean gate, they "
               f"jump by {CLASS_SPLIT_GAP} or more between two neighbouring classes. Grouped by the classes "
               f"above the jump" + (f"; {len(splits) - SPLIT_ROWS} smaller groups not shown." if len(splits) >
                                   SPLIT_ROWS else "."))
