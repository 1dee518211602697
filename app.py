"""SENet Explorer: train Squeeze-and-Excitation networks and look inside them.

Run with ``streamlit run app.py``. Every computation is a call into the ``senet``
package. The page files live in ``views/``, not ``pages/``: Streamlit treats a
``pages/`` folder beside the main script as a v1 multipage app, and a deep link
(``/excitation``) to a freshly started server then runs the page file without
this script, so without the shared sidebar.
"""
import streamlit as st

from views import _shared

st.set_page_config(page_title="SENet Explorer", page_icon="🧠", layout="wide")

PAGES = [
    st.Page("views/home.py", title="Model card", icon=":material/home:", default=True),
    st.Page("views/train.py", title="Train", icon=":material/monitoring:", url_path="train"),
    st.Page("views/excitation.py", title="Excitation explorer", icon=":material/tune:", url_path="excitation"),
    st.Page("views/confusion.py", title="Confusion explorer", icon=":material/grid_view:", url_path="confusion"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
]

page = st.navigation(PAGES)
_shared.sidebar()
page.run()
