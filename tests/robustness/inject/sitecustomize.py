"""Fault injection for the robustness suite; not part of senet.

Python imports ``sitecustomize`` at start-up from the first folder on its path
that has one, so a test that puts this folder on ``PYTHONPATH`` and describes a
fault in ``$SENET_FAULT`` (JSON) gets a training process that misbehaves at an
exact point of the real code path. Without ``$SENET_FAULT`` it does nothing.

Faults (keys of the JSON object):
  ``hang_at_step``: N     -- after metrics.jsonl gets the step-N record, touch ``marker`` and wait
  ``hang_in_save``: NAME  -- in the ``nth`` (default 1) write of checkpoint NAME (e.g. "last.pt"), write
                             half of the bytes, flush them to disk, touch ``marker`` and wait
  ``fail_save``: NAME     -- in the ``nth`` write of NAME, write half of the bytes, then raise
                             ``OSError(errno)`` (default ENOSPC, the disk is full)
A waiting process continues when the file ``release`` appears (or after 10 minutes); tests usually
kill it first. ``marker`` and ``release`` may contain ``{pid}``.
"""
import json
import os

_plan = json.loads(os.environ["SENET_FAULT"]) if os.environ.get("SENET_FAULT") else None


def _path(key):
    return _plan[key].replace("{pid}", str(os.getpid())) if _plan.get(key) else None


def _wait():
    import time
    marker, release = _path("marker"), _path("release")
    if marker:
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
    deadline = time.time() + 600
    while time.time() < deadline and not (release and os.path.exists(release)):
        time.sleep(0.05)


def _install():
    import sys

    import torch

    if "hang_at_step" in _plan:
        import senet.training.runs

        original_write = senet.training.runs.MetricsWriter.write

        def write(self, record):
            original_write(self, record)
            if record.get("type") == "step" and record.get("step") == _plan["hang_at_step"]:
                _wait()

        senet.training.runs.MetricsWriter.write = write

    target = _plan.get("hang_in_save") or _plan.get("fail_save")
    if target:
        import errno
        import io

        original_save = torch.save
        calls = {"n": 0}

        def save(obj, f, *args, **kwargs):
            path = None  # the path atomic_write(path, ...) was given: a local of a caller a few frames up
            for depth in range(1, 5):
                path = sys._getframe(depth).f_locals.get("path")
                if path is not None:
                    break
            if path is None or os.path.basename(str(path)) != target or not hasattr(f, "write"):
                return original_save(obj, f, *args, **kwargs)
            calls["n"] += 1
            if calls["n"] != _plan.get("nth", 1):
                return original_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            original_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            if "fail_save" in _plan:
                code = _plan.get("errno", errno.ENOSPC)
                raise OSError(code, os.strerror(code))
            _wait()
            f.write(data[len(data) // 2:])

        torch.save = save


if _plan:
    _install()
