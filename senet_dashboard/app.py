"""The dashboard's entry script: page setup, navigation over the pages in ``views/``, the shared sidebar.

``streamlit run app.py`` in a checkout and ``senet dashboard`` (an installed package) both run :func:`main`.
The page files live in ``views/``, not ``pages/``: Streamlit treats a ``pages/`` folder beside the main script
as a v1 multipage app, and a deep link (``/excitation``) to a freshly started server then runs the page file
without this script, so without the shared sidebar.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"
# (file in views/, title, icon, url path); the first is the default page, at the address "/"
PAGES = (
    ("home.py", "Model card", ":material/home:", None),
    ("train.py", "Train", ":material/monitoring:", "train"),
    ("excitation.py", "Excitation explorer", ":material/tune:", "excitation"),
    ("confusion.py", "Confusion explorer", ":material/grid_view:", "confusion"),
    ("compare.py", "Compare", ":material/compare_arrows:", "compare"),
)


_CONFIGURED: dict[str, object] = {}  # client.showErrorDetails as configured, before a public demo turned it off


def error_details() -> str:
    """Set what an uncaught exception shows in the browser, for this run: in a public demo (or a misconfigured
    one) ``none``, Streamlit's one-line notice, never a traceback with the server's paths; otherwise as
    configured (``streamlit.toml``, flags). Returns the value set."""
    from senet_dashboard.demo import DemoConfigError
    from senet_dashboard.views._loaders import demo

    _CONFIGURED.setdefault("value", st.get_option("client.showErrorDetails"))
    try:
        public = demo().enabled
    except DemoConfigError:
        public = True  # fail closed; the sidebar then stops every page
    value = "none" if public else _CONFIGURED["value"]
    st.set_option("client.showErrorDetails", value)
    return str(value)


def main() -> None:
    from senet_dashboard.views._sidebar import sidebar

    error_details()
    st.set_page_config(page_title="SENet Explorer", page_icon="🧠", layout="wide")
    pages = [st.Page(VIEWS / file, title=title, icon=icon, default=i == 0, **({"url_path": url} if url else {}))
             for i, (file, title, icon, url) in enumerate(PAGES)]
    page = st.navigation(pages)
    sidebar()
    page.run()


if __name__ == "__main__":  # senet dashboard runs this file
    main()
