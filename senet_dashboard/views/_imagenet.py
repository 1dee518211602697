"""The sidebar's ImageNet-model picker: other libraries' SE models by name (``torchvision:...``, ``timm:...``)."""
from __future__ import annotations

import streamlit as st

from senet_dashboard.catalog import external_name
from senet import CheckpointError
from senet.analysis.paper_figures import paper_weights
from senet.models.external import SUGGESTED, is_external
from senet_dashboard.views import _loaders as ui
from senet_dashboard.views._loaders import SidebarKeys


def _open_external_model() -> None:
    """The popover's Open button. A callback runs before the script, so before the checkpoint selectbox exists:
    only then may the selection change. A model that cannot be used leaves the selection as it was and says why
    (offline: its weights could not be fetched)."""
    typed = str(st.session_state.get(SidebarKeys.IMAGENET_NAME) or "").strip()
    if not typed:
        st.session_state[SidebarKeys.IMAGENET_ERROR] = "Choose or type a model name first, e.g. torchvision:mobilenet_v3_large."
        return
    pretrained = ui.demo_on() or bool(st.session_state.get(SidebarKeys.IMAGENET_PRETRAINED, True))  # demo: as listed
    name = external_name(typed, pretrained)
    if not is_external(name):
        st.session_state[SidebarKeys.IMAGENET_ERROR] = (f"{typed}: not a model name of the form torchvision:NAME or "
                                              "timm:NAME (e.g. timm:seresnet50)")
        return
    try:
        ui.load_entry(name)
    except CheckpointError as exc:
        offline = "could not be fetched" in str(exc)
        st.session_state[SidebarKeys.IMAGENET_ERROR] = f"{exc}" + (" (here: switch Pretrained weights off)" if offline else "")
        return
    st.session_state[SidebarKeys.PENDING_CHECKPOINT] = name


def imagenet_picker() -> None:
    """A popover that opens any torchvision or timm model with SE modules, with or without pretrained weights; a
    public demo offers only the models it lists, exactly as listed."""
    with st.popover("ImageNet model…", width="stretch"):
        if ui.demo_on():
            st.selectbox("Model", ui.demo().models, key=SidebarKeys.IMAGENET_NAME,
                         help="The ImageNet models this public demo serves, exactly as its operator listed them.")
        else:
            st.selectbox("Model", SUGGESTED, key=SidebarKeys.IMAGENET_NAME, accept_new_options=True,
                         help="Any classification model of torchvision, or of timm (an optional extra: "
                              "`pip install 'senet-explorer[timm]'`), that has SE modules. Type another name, e.g. "
                              "`torchvision:efficientnet_b3` or `timm:seresnext26d_32x4d`.")
            st.toggle("Pretrained weights", value=True, key=SidebarKeys.IMAGENET_PRETRAINED,
                      help="The library's default ImageNet weights, downloaded once into its cache (torch hub or "
                           "the Hugging Face cache). Off: random weights, no download; the gates then mean nothing.")
        st.button("Open", key=SidebarKeys.IMAGENET_OPEN, on_click=_open_external_model)
        problem = st.session_state.pop(SidebarKeys.IMAGENET_ERROR, None)
        if problem:  # in the popover, which stays open after the click
            st.error(problem, icon=":material/error:")


def weights_caption(name: str) -> None:
    """Under the checkpoint picker: what weights the chosen ImageNet model has (random ones said plainly)."""
    try:
        _, meta = ui.load_entry(name)
    except CheckpointError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    pretrained = meta.get("weights_state") == "pretrained"
    whose = paper_weights(meta)
    st.caption(f"{':material/public:' if pretrained else ':material/warning:'} {meta.get('weights_note')}"
               f"{f': {whose}' if whose else ''}. "
               f"{len(meta['classes']):,} classes, {meta['input_size'][2]}×{meta['input_size'][1]} input.")
