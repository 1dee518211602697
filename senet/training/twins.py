"""Whether two checkpoints are an SE model and its plain twin, trained alike: the condition for comparing them."""
from __future__ import annotations

from dataclasses import MISSING

from ..data.fingerprint import match_cards
from ..models import model_spec
from .settings import config_settings

__all__ = ["like_for_like", "EXECUTION_SETTINGS", "DATA_SETTINGS"]

# settings that change how a run executes, not what it learns from: two runs may differ in them and still be twins
EXECUTION_SETTINGS = frozenset({"device", "amp", "compile", "log_every", "data_dir", "dataset_name", "world_size",
                                "sync_bn"})
# settings that choose the images: when both runs record data fingerprints, the fingerprints decide instead
DATA_SETTINGS = frozenset({"data", "val_size", "split_seed", "train_limit"})


def like_for_like(se_card: dict, plain_card: dict) -> str | None:
    """Why two checkpoints are not an SE model and its plain twin trained alike (None when they are).

    Twins are the same architecture with and without SE, trained and scored on the same images (by their data
    fingerprints, whatever path the images were read from; by the data source's path for checkpoints that record
    none: :func:`senet.data.match_cards`), with the same recipe except the model and how it executed
    (:data:`EXECUTION_SETTINGS`). ``*_card``: the checkpoints' recorded metadata (``load_checkpoint``'s meta).
    """
    try:
        se_spec, plain_spec = model_spec(se_card.get("model")), model_spec(plain_card.get("model"))
    except ValueError as exc:
        return str(exc)
    if se_spec.architecture != plain_spec.architecture or se_spec.has_se == plain_spec.has_se:
        return f"{se_spec.name} and {plain_spec.name} are not one architecture with and without SE"
    se_config, plain_config = se_card.get("config"), plain_card.get("config")
    if not isinstance(se_config, dict) or not isinstance(plain_config, dict):
        return "a checkpoint records no training configuration to compare"
    data = match_cards(se_card, plain_card)
    if data.different:
        return data.note
    ignored = EXECUTION_SETTINGS | {"model"} | (DATA_SETTINGS if data.by == "fingerprint" else {"data"})
    defaults = {f.name: f.default for f in config_settings() if f.default is not MISSING}
    known = set(defaults) | {f.name for f in config_settings()}
    differ = []
    for key in sorted((set(se_config) | set(plain_config)) & known - ignored):
        a, b = (c.get(key, defaults.get(key)) for c in (se_config, plain_config))  # missing: added since, default
        if a != b:
            differ.append(f"{key} {a!r} vs {b!r}")
    if differ:
        return "trained differently: " + ", ".join(differ[:4]) + (" …" if len(differ) > 4 else "")
    return None
