"""Progress of long computations: every one reports increasing counts up to its total, the time left is estimated
from the work's own pace, and a stop between batches leaves no cache entry half-written and the model as it was."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_folder_dataset
from senet import create_model
from senet.analysis.ablation import gate_ablation
from senet.analysis.compare import interleaved_latency
from senet.analysis.evaluate import evaluate_checkpoint, has_cached_evaluation, stream_evaluation
from senet.analysis.inside import channel_responses
from senet.analysis.profiles import class_profiles
from senet.checkpoint import Checkpoint
from senet.data import TensorDataset, load_split
from senet.models import se_blocks
from senet.progress import Pace, Stopped, within

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pace_estimates_the_time_left_from_the_work_done_so_far() -> None:
    clock = Clock()
    pace = Pace(clock)
    assert pace.seconds_left is None, "no estimate before any report"
    clock.now += 0.2
    pace.update(10, 100)
    assert pace.seconds_left is None, "no estimate in the first moments"
    clock.now += 1.8  # 20 of 100 in 2 s: 80 more take 8 s
    pace.update(20, 100)
    assert pace.seconds_left == pytest.approx(8.0)
    assert (pace.done, pace.total) == (20, 100)
    clock.now += 8.0
    pace.update(100, 100)
    assert pace.seconds_left == 0


def test_pace_leaves_out_reports_read_from_a_cache() -> None:
    """Chunks read back from disk arrive at once: the pace of the rest is that of the work done after them."""
    clock = Clock()
    pace = Pace(clock)
    for done in (1000, 2000, 3000):  # three cached chunks, read in a millisecond each
        clock.now += 0.001
        pace.update(done, 5000)
    clock.now += 2.0  # then 500 images computed in 2 s: 1,500 more take 6 s
    pace.update(3500, 5000)
    assert pace.seconds_left == pytest.approx(6.0)


def test_within_reports_a_part_as_a_share_of_the_whole() -> None:
    calls = []
    part = within(lambda d, n: calls.append((d, n)), 30, 100)
    part(5, 20)
    part(20, 20)
    assert calls == [(35, 100), (50, 100)]
    assert within(None, 0, 10) is None


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 3-class folder of 30 images, its train split (27) and an untrained SE-ResNet-20 on it (one thread: tiny
    batches run fastest so, and do not fight other processes for the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("progress")
    root = make_folder_dataset(tmp / "data", per_class=10)
    data = load_split(f"folder:{root}", "train", tmp / "cache", val_size=0.1)
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3).eval()
    yield tmp, root, data, Checkpoint.of(model, mean=MEAN, std=STD)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ablated(setup):
    """The gate ablation of the first 12 images, run once, and its reports."""
    _, _, data, ck = setup
    first = TensorDataset(data.images[:12], data.labels[:12], list(data.classes))
    calls: list[tuple[int, int]] = []
    return first, gate_ablation(ck, first, batch_size=8, progress=lambda d, n: calls.append((d, n))), calls


COMPUTATIONS = {
    "class profiles": lambda ck, data, report: class_profiles(ck, data, per_class=9, batch_size=4, progress=report),
    "channel responses": lambda ck, data, report: channel_responses(ck, data, np.arange(len(data)), batch_size=5,
                                                                    progress=report),
    "paired latency": lambda ck, data, report: interleaved_latency(ck.model, ck.model, rounds=2, repeats=1,
                                                                   progress=report),
}


def _increasing_to_the_total(name: str, calls: list[tuple[int, int]]) -> None:
    assert len(calls) >= 2, f"{name}: one report per batch, got {calls}"
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[0] > 0, f"{name}: counts strictly increasing, got {done}"
    assert len({n for _, n in calls}) == 1 and calls[-1][0] == calls[-1][1], f"{name}: ends at its total: {calls}"


@pytest.mark.parametrize("name", COMPUTATIONS)
def test_a_long_computation_reports_increasing_counts_up_to_its_total(setup, name: str) -> None:
    _, _, data, ck = setup
    calls: list[tuple[int, int]] = []
    COMPUTATIONS[name](ck, data, lambda d, n: calls.append((d, n)))
    _increasing_to_the_total(name, calls)


def test_the_gate_ablation_reports_the_images_of_every_pass(setup, ablated) -> None:
    _, _, _, ck = setup
    images, _, calls = ablated
    passes = 1 + 2 * (len(se_blocks(ck.model)) + 1)
    _increasing_to_the_total("gate ablation", calls)
    assert calls[-1][1] == passes * len(images.labels) and len(calls) == 2 * passes, "2 batches of 8 per pass"


def test_a_streamed_evaluation_reports_every_image_across_its_chunks(setup, tiny_checkpoint: Path) -> None:
    tmp, root, _, _ = setup
    calls: list[tuple[int, int]] = []
    final = None
    for final in stream_evaluation(tiny_checkpoint, f"folder:{root}", "train", tmp, cache_dir=tmp / "counted",
                                   chunk=8, progress=lambda d, n: calls.append((d, n))):
        pass
    assert calls == [(8, 27), (16, 27), (24, 27), (27, 27)] and final.n == 27


def _stop_at(call: int):
    """A progress callback that stops the work at its ``call``-th report."""
    seen = []

    def report(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == call:
            raise Stopped
    return report


def test_a_stopped_evaluation_caches_no_whole_split_and_no_half_chunk_and_resumes_to_the_same_predictions(
        setup, tiny_checkpoint: Path) -> None:
    tmp, root, data, _ = setup
    spec, cache = f"folder:{root}", tmp / "stopped"
    with pytest.raises(Stopped):
        evaluate_checkpoint(tiny_checkpoint, spec, "train", tmp, cache_dir=cache, progress=_stop_at(1))
    assert not cache.exists() or not list(cache.glob("*.npz")), "stopped in the first chunk: nothing cached"
    with pytest.raises(Stopped):  # stopped in the third chunk of 8: the two finished ones stay, whole
        list(stream_evaluation(tiny_checkpoint, spec, "train", tmp, cache_dir=cache, chunk=8, progress=_stop_at(3)))
    parts = sorted(cache.glob("*.part*.npz"))
    assert [p.name.split(".part")[1] for p in parts] == ["00000000-00000008.npz", "00000008-00000016.npz"]
    assert all(np.load(p)["probs"].shape == (8, 3) for p in parts), "each kept chunk is complete"
    assert not has_cached_evaluation(tiny_checkpoint, spec, "train", data, tmp, cache_dir=cache)
    resumed = evaluate_checkpoint(tiny_checkpoint, spec, "train", tmp, cache_dir=cache)
    fresh = evaluate_checkpoint(tiny_checkpoint, spec, "train", tmp, cache_dir=tmp / "fresh")
    assert np.allclose(resumed.probs, fresh.probs) and resumed.n == 27


def test_a_stopped_ablation_leaves_the_model_without_hooks_in_its_mode_and_changes_no_result(setup, ablated) -> None:
    _, _, _, ck = setup
    images, before, _ = ablated
    ck.model.train()
    with pytest.raises(Stopped):  # in the middle of a pass that switches a gate off
        gate_ablation(ck, images, batch_size=8, progress=_stop_at(5))
    hooks = [m for m in ck.model.modules() if m._forward_hooks or m._forward_pre_hooks]
    assert not hooks and ck.model.training, "the overrides are removed and the mode restored"
    ck.model.eval()
    again = gate_ablation(ck, images, batch_size=8)
    assert again.rows == before.rows and again.baseline == before.baseline


def _page() -> None:
    """A page with one long work: it counts its runs in the session, and shows its result."""
    import streamlit as st

    from senet_dashboard.views import _progress as progress

    def compute(report):
        st.session_state["runs"] = st.session_state.get("runs", 0) + 1
        for i in range(1, 4):
            report(i, 3)
        return "result"

    found = progress.run_with_progress("work", ("a", 1), "Counting", compute, unit="steps")
    st.markdown(f"found {found}")


def test_a_stopped_work_says_where_it_stopped_and_runs_again_only_when_asked() -> None:
    from streamlit.testing.v1 import AppTest

    from senet_dashboard.views._progress import Keys, progress_text

    at = AppTest.from_function(_page)
    at.session_state[Keys.STOPPED] = {"work": (("a", 1), 2, 3, "Counting", "steps", "")}  # what Stop records
    at.run()
    assert not at.exception
    assert "runs" not in at.session_state, "a stopped work does not start again by itself"
    assert any("Counting: stopped after 2 of 3 steps; nothing of it was kept." in c.value for c in at.caption)
    assert [m.value for m in at.markdown] == ["found None"]
    at.button(key=f"{Keys.AGAIN}_work").click().run()
    assert at.session_state["runs"] == 1 and [m.value for m in at.markdown] == ["found result"]
    assert not any("stopped after" in c.value for c in at.caption)
    assert progress_text("Evaluating val", 1000, 5000, "images", 42) == \
        "Evaluating val: 1,000 of 5,000 images · about 42s left"
    assert progress_text("Evaluating val", 0, 5000, "images", None).endswith("estimating the time left")


def test_another_work_under_the_same_name_is_not_held_by_a_stop() -> None:
    from streamlit.testing.v1 import AppTest

    from senet_dashboard.views._progress import Keys

    at = AppTest.from_function(_page)
    at.session_state[Keys.STOPPED] = {"work": (("another checkpoint", 1), 2, 3, "Counting", "steps", "")}
    at.run()
    assert at.session_state["runs"] == 1 and [m.value for m in at.markdown] == ["found result"]


def _page_with_a_fragment() -> None:
    """The same long work outside and inside a fragment, each ended by st.stop() after a first report, so that
    the bars stay on the page."""
    import streamlit as st

    from senet_dashboard.views import _progress as progress

    def compute(report):
        report(1, 3)
        if st.session_state.get("end"):
            st.stop()
        return "done"

    @st.fragment
    def inside() -> None:
        progress.run_with_progress("inside", 1, "Inside a fragment", compute)

    progress.run_with_progress("outside", 1, "Outside", compute)
    st.session_state["end"] = True
    inside()


def test_the_stop_button_is_only_where_a_click_can_end_the_work() -> None:
    """A click inside a fragment waits for the running script instead of ending it: no Stop button there."""
    from streamlit.testing.v1 import AppTest

    from senet_dashboard.views._progress import Keys

    at = AppTest.from_function(_page_with_a_fragment)
    at.run()
    assert not at.exception
    texts = [p.proto.text for p in at.get("progress")]  # the finished one left nothing; the one ended inside did
    assert texts == ["Inside a fragment: 1 of 3 images · estimating the time left"], texts
    assert not at.button, "no Stop button inside the fragment"
    at = AppTest.from_function(_page_with_a_fragment)
    at.session_state["end"] = True  # now the work outside ends after its first report
    at.run()
    assert [p.proto.text for p in at.get("progress")] == ["Outside: 1 of 3 images · estimating the time left"]
    assert [b.key for b in at.button] == [f"{Keys.STOP}_outside"], "outside a fragment the work has its Stop"
