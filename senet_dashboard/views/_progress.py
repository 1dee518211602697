"""Long work on a page, one way everywhere: a bar with the counts done and the time left, and a Stop button.

Work in :mod:`senet` reports ``progress(done, total)`` between batches (:mod:`senet.progress`). Each report
updates the bar, which is also where the work can end: a click on Stop (like any click) makes Streamlit rerun the
script, and the running one ends at its next Streamlit call, the next report, with Streamlit's own exception,
which passes through the computation (nothing of it is stored: results are kept only once complete). The Stop
button's callback runs first in the new run and records the stop, so that the work is not started again by
itself: the page shows where it stopped and a button to run it again.
"""
from __future__ import annotations

from typing import Callable, Final, Hashable, TypeVar

import streamlit as st

from senet.progress import Pace, Progress
from senet_dashboard.curves import format_duration

T = TypeVar("T")
CHUNK = 1000  # an evaluation caches its images in chunks of this many (senet.analysis.evaluate.stream_evaluation)
# what several evaluations in a row keep when stopped
EVALUATIONS_KEPT = "its finished evaluations and chunks of 1,000 images are kept on disk for the next run"


def chunks_kept(done: int) -> str:
    """What a stopped evaluation of ``done`` images (across its splits or models) keeps: its finished chunks."""
    kept = done // CHUNK * CHUNK
    return (f"its first {kept:,} images are kept on disk, and the next run goes on from them" if kept
            else "nothing of it was kept")


class Keys:
    """Session keys: the stopped work by name, and the prefixes of the buttons' keys."""

    STOPPED: Final = "progress_stopped"  # {name: (work, done, total, label, unit, kept)}
    STOP: Final = "progress_stop"
    AGAIN: Final = "progress_again"


def progress_text(label: str, done: int, total: int, unit: str, seconds_left: float | None) -> str:
    """``'Evaluating val: 1,000 of 5,000 images · about 40s left'``."""
    left = "estimating the time left" if seconds_left is None else f"about {format_duration(seconds_left)} left"
    return f"{label}: {done:,} of {total:,} {unit} · {left}"


@st.cache_resource(show_spinner=False)
def server_store(kind: str) -> dict:
    """Results of long work of one ``kind``, kept by this server process for every session, newest last; a
    result goes in only once complete (:func:`keep`)."""
    return {}


def keep(kind: str, key: Hashable, value: T, max_entries: int = 64) -> T:
    """Keep a complete result in :func:`server_store`, dropping the oldest beyond ``max_entries``; the value."""
    store = server_store(kind)
    store[key] = value
    while len(store) > max_entries:
        store.pop(next(iter(store)))
    return value


def _stopped() -> dict:
    return st.session_state.setdefault(Keys.STOPPED, {})


def stopped_at(name: str, work: Hashable) -> tuple[int, int] | None:
    """``(done, total)`` where the user stopped this work (the same ``work``) under ``name``, else None."""
    found = _stopped().get(name)
    return found[1:3] if found and found[0] == work else None


def held(name: str) -> bool:
    """Whether the user stopped some work under ``name`` and has not run it again (related work waits too)."""
    return name in _stopped()


def forget_stop(name: str) -> None:
    """Forget a stop under ``name`` (for a button that starts the work again: its ``on_click``)."""
    _stopped().pop(name, None)


def _stop(name: str, work: Hashable, pace: Pace, words: tuple[str, str, str | Callable[[int], str]]) -> None:
    label, unit, kept = words
    _stopped()[name] = (work, pace.done, pace.total, label, unit, kept(pace.done) if callable(kept) else kept)


def show_stopped(name: str, work: Hashable, again: str | None = "Run again") -> bool:
    """If the user stopped this work: a line saying where, and what of it was kept, and unless ``again`` is None
    a button that runs it again. Whether it was stopped."""
    found = _stopped().get(name)
    if not found or found[0] != work:
        return False
    _, done, total, label, unit, kept = found
    row = st.container(horizontal=True, vertical_alignment="center", gap="small")
    row.caption(f":material/stop_circle: {label}: stopped after {done:,} of {total:,} {unit}; "
                + (f"{kept}." if kept else "nothing of it was kept."), width="content")
    if again:
        row.button(again, key=f"{Keys.AGAIN}_{name}", icon=":material/play_arrow:", on_click=forget_stop,
                   args=(name,))
    return True


def _in_fragment() -> bool:
    """Whether this runs inside an ``@st.fragment``, where a click waits for the running script instead of ending
    it (Streamlit's internals, read defensively: False where they differ)."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState
        return ThreadState.get().fragment_id is not None
    except (ImportError, AttributeError):
        return False


def run_with_progress(name: str, work: Hashable, label: str, compute: Callable[[Progress], T],
                      unit: str = "images", again: str | None = "Run again",
                      kept: str | Callable[[int], str] = "") -> T | None:
    """``compute(progress)`` with a bar (``label``, counts of ``unit``, time left) and a Stop button, shown from
    its first report (work read from a cache shows nothing); the bar goes when it is done. ``name``: the stop's
    key, one per kind of work on a page; ``work``: what exactly runs (the same name with another ``work`` runs
    anew); ``kept``: what a stop keeps, if anything (or a function of the count done). None, after
    :func:`show_stopped`, when the user stopped this work. Inside a fragment there is no Stop button, since it
    could not end the run: run long work outside fragments."""
    if show_stopped(name, work, again):
        return None
    slot, pace, shown, stoppable = st.empty(), Pace(), [], not _in_fragment()

    def report(done: int, total: int) -> None:
        pace.update(done, total)
        if not shown:  # the bar and the Stop button, once
            with slot.container():
                row = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
                shown.append(row.empty())  # the bar takes the row's width, the button its own
                if stoppable:
                    row.button("Stop", key=f"{Keys.STOP}_{name}", icon=":material/stop:",
                               on_click=_stop, args=(name, work, pace, (label, unit, kept)),
                               help="Stop this computation; the page then offers to run it again.")
        shown[0].progress(min(done / max(total, 1), 1.0),
                          text=progress_text(label, done, total, unit, pace.seconds_left))

    try:
        result = compute(report)
    except Exception:  # an error to show: no bar left behind (a rerun's exception is no Exception)
        slot.empty()
        raise
    slot.empty()
    forget_stop(name)  # a stop under this name (of other work) holds only until work under it completes
    return result
