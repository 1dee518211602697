"""The Train page's New run form: one widget per declared setting, each checked on the page as ``senet train``
checks it (:func:`senet.training.preflight.check_settings`), before anything is launched.

A field's problem shows under it, in the command line's words, and *Start training* stays off while there is
one; what can only be known from the data (the batch against the training images, a holdout the source cannot
give) is checked here too, by counting the source's images without decoding them.
"""
from __future__ import annotations

import itertools
import zlib
from typing import Any, Callable, Final

import streamlit as st

from senet.models import architectures, model_spec
from senet.training import RECIPES, ConfigError, TrainConfig, form_fields, make_config
from senet.training.preflight import check_settings, train_images
from senet.training.settings import FormField, fields_by_name
from senet_dashboard.views import _loaders as ui


class FormKeys:
    """The form's session-state and widget keys, declared once (a field's widget is ``new_<name>_<tag>``)."""

    NEW_FAMILY: Final = "new_family"
    NEW_FROM: Final = "new_from"
    NEW_R: Final = "new_r"
    NEW_RECIPE: Final = "new_recipe"
    NEW_SE: Final = "new_se"
    START: Final = "start_training"
    LAUNCHES: Final = "launches"  # runs started in this session: a new count draws the form folded


ARCHITECTURES = architectures()  # e.g. "resnet20": [resnet20, se_resnet20]; "seed_senet": [seed_senet]
_default = model_spec(TrainConfig.__dataclass_fields__["model"].default).architecture  # offered first
ARCHITECTURES = {_default: ARCHITECTURES[_default], **ARCHITECTURES}
REDUCTION = fields_by_name()["reduction"].metadata["setting"]
RECIPE_NAMES = {"seed": "seed (blog post)", "fast": "fast (default)", "paper": "paper (He et al.)",
                "airbench94": "airbench94", "long": "long (airbench96-style)"}


def _source_config(key: str | None) -> dict:
    """The recorded training config of a checkpoint or run ({} if none or unreadable)."""
    if not key:
        return {}
    try:
        config = ui.load_entry(key)[1].get("config")
    except Exception:  # noqa: BLE001 -- a broken file: start from the recipe instead
        return {}
    return {k: v for k, v in (config or {}).items() if k in TrainConfig.__dataclass_fields__} if isinstance(
        config, dict) else {}


def _start_from() -> None:
    """Set model, SE, r and recipe from the chosen checkpoint's config; the fields below take the rest."""
    config = _source_config(st.session_state.get(FormKeys.NEW_FROM))
    try:
        spec = model_spec(config.get("model"))
    except ValueError:
        return
    st.session_state[FormKeys.NEW_FAMILY] = spec.architecture
    st.session_state[FormKeys.NEW_SE] = spec.has_se
    st.session_state[FormKeys.NEW_R] = int(config.get("reduction", 16))
    if config.get("recipe") in RECIPES:
        st.session_state[FormKeys.NEW_RECIPE] = config["recipe"]


def _widget(column, field: FormField, default, key: str, disabled: bool):
    """One widget drawn from a setting's declaration (type, help). Numbers take any value: the bounds are checked
    by :func:`check_settings`, which says what is wrong (a widget's own bounds only turn the box red)."""
    common = dict(key=key, help=field.help[:1].upper() + field.help[1:] + ".", disabled=disabled)
    if field.kind is bool:
        return column.toggle(field.label, value=bool(default), **common)
    if field.kind is str:
        if field.choices:
            return column.selectbox(field.label, field.choices, index=field.choices.index(default), **common)
        return column.text_input(field.label, value=default, **common)
    if field.kind is int:
        return int(column.number_input(field.label, value=int(default), step=1, **common))
    value = column.number_input(field.label, value=None if default is None else float(default), format="%.4g",
                                placeholder="default" if field.optional else None, **common)
    return None if value is None else float(value)


def _problem(column, problems: dict[str, str], name: str) -> None:
    """A field's problem, under it, in ``senet train``'s words."""
    if name in problems:
        column.caption(f":red[:material/error: {problems[name]}]")


def _model_row() -> tuple[str, str, int]:
    """Start from, model, SE, r and recipe: (model name, recipe, r as typed)."""
    sources = {"": "the recipe's defaults"} | {e.key: e.label for e in ui.entries() if not e.problem}
    if st.session_state.get(FormKeys.NEW_FROM) not in sources:
        st.session_state[FormKeys.NEW_FROM] = ""
    st.selectbox("Start from", list(sources), format_func=sources.get, key=FormKeys.NEW_FROM, on_change=_start_from,
                 help="Copy every setting of a checkpoint's or run's recorded recipe (e.g. to train the twin of a "
                      "shipped model, or the same recipe longer); then change what you like below.")
    c1, c2, c3, c4 = st.columns([3, 1.3, 0.8, 1.6], vertical_alignment="bottom")
    family = c1.selectbox("Model", list(ARCHITECTURES), key=FormKeys.NEW_FAMILY,
                          format_func=lambda a: ARCHITECTURES[a][0].description)
    variants = {m.has_se: m.name for m in ARCHITECTURES[family]}
    use_se = c2.toggle("SE blocks", value=True, key=FormKeys.NEW_SE, disabled=len(variants) == 1,
                       help="Off trains the plain twin (the same network without SE).")
    model_name = variants.get(use_se, next(iter(variants.values())))
    reduction = c3.number_input("r", value=16, step=1, key=FormKeys.NEW_R, disabled=not model_spec(model_name).has_se,
                                help=REDUCTION.help[:1].upper() + REDUCTION.help[1:] + ".")
    if st.session_state.get(FormKeys.NEW_RECIPE) not in RECIPES:
        st.session_state[FormKeys.NEW_RECIPE] = TrainConfig.__dataclass_fields__["recipe"].default
    recipe = c4.selectbox("Recipe", list(RECIPES), key=FormKeys.NEW_RECIPE, format_func=RECIPE_NAMES.get,
                          help="fast: the project's time-to-accuracy recipe; seed: the blog post's; paper: He et al.'s "
                               "ResNet recipe (164 epochs); airbench94 and long: airbench's AirNet recipes.")
    return model_name, recipe or "fast", int(reduction)


def _defaults(model_name: str, recipe: str, source_config: dict) -> tuple[dict, TrainConfig]:
    """The settings inherited from the chosen source (those this model can take) and the form's defaults."""
    inherited = {k: v for k, v in source_config.items()
                 if k not in ("model", "recipe", "data", "data_dir", "world_size", "reduction")}
    try:
        return inherited, make_config(model_name, recipe, **inherited)
    except ConfigError:  # a recorded config this model cannot take (e.g. another family's width)
        return {}, make_config(model_name, recipe)


def _settings(model_name: str, recipe: str, reduction: int) -> tuple[dict[str, Any], list, dict]:
    """Draw the fields; returns every setting as typed (what *Start training* launches), the drawn fields with
    their columns, and the source's recorded config."""
    source = st.session_state.get(FormKeys.NEW_FROM) or ""
    source_config = _source_config(source)
    inherited, defaults = _defaults(model_name, recipe, source_config)
    tag = f"{model_name}_{recipe}" + (f"_{zlib.crc32(source.encode())}" if source else "")  # new source: new fields
    spec = model_spec(model_name)
    values, drawn = {}, []
    for _, row in itertools.groupby(form_fields(), key=lambda f: f.row):
        row = list(row)
        for column, field in zip(st.columns(len(row)), row):
            off = (field.model_option and field.name not in spec.options) or (field.se_only and not spec.has_se)
            data = field.name == "data"
            value = _widget(column, field, ui.data_spec() if data else getattr(defaults, field.name),
                            f"new_{field.name}_{ui.data_spec() if data else tag}", off)
            if not off:
                values[field.name] = value
                drawn.append((column, field.name))
    config = dict(inherited, **values, model=model_name, recipe=recipe, data_dir=str(ui.settings().data_dir))
    config["data"] = str(config.get("data") or "").strip()
    if inherited.get("dataset_name") and source_config.get("data") != config["data"]:
        config.pop("dataset_name")  # the recorded name described another data source
    if spec.has_se:
        config["reduction"] = reduction
    return config, drawn, source_config


def form_problems(config: dict[str, Any]) -> tuple[TrainConfig | None, dict[str, str]]:
    """``senet train``'s checks of these settings, and the dashboard's own: a CIFAR download it cannot make on
    the page, or a data source the public demo refuses (both under ``data``)."""
    checked, problems = check_settings(config)
    if not problems:
        reason = ui.data_available(config["data"])
        if reason:
            return None, {"data": f"{reason}; choose a data source you have, e.g. folder:PATH"}
    return checked, problems


def new_run(has_runs: bool, request_start: Callable[[dict], None]) -> None:
    """The form that starts a run: folded once there are runs, and again after each start (the new run then
    shows right below it)."""
    launches = st.session_state.get(FormKeys.LAUNCHES, 0)
    with st.expander("New run", expanded=not has_runs, icon=":material/add_circle:", key=f"new_run_{launches}"):
        model_name, recipe, reduction = _model_row()
        r_column = st.container()
        config, drawn, _ = _settings(model_name, recipe, reduction)
        checked, problems = form_problems(config)
        _problem(r_column, problems, "reduction")
        for column, name in drawn:
            _problem(column, problems, name)
        shown = {name for _, name in drawn} | {"reduction"}
        for name, message in problems.items():
            if name not in shown:  # e.g. a model option this form does not draw
                st.error(message, icon=":material/error:")
        if checked is not None:
            st.caption(f"Trains on {train_images(checked):,} training images (after the validation holdout"
                       + (" and the train limit" if checked.train_limit else "") + "), "
                       f"{max(1, train_images(checked) // checked.batch_size):,} steps per epoch.")
        else:
            st.caption(":red[Not ready to start: see the message" + ("s" if len(problems) > 1 else "")
                       + " above.]")
        if st.button("Start training", type="primary", icon=":material/play_arrow:", key=FormKeys.START,
                     disabled=checked is None):
            checked, problems = form_problems(config)  # the data may have changed since the page was drawn
            if checked is None:
                st.error(f"Not started: {next(iter(problems.values()))}")
            else:
                request_start(config)
                st.rerun()


def launched() -> None:
    """Count a start, so that the form is drawn folded on the next run of the page."""
    st.session_state[FormKeys.LAUNCHES] = st.session_state.get(FormKeys.LAUNCHES, 0) + 1
