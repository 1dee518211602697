"""SENet Explorer's dashboard: Streamlit pages over the ``senet`` package.

Start it with ``senet dashboard`` (an installed package) or ``streamlit run app.py`` (a checkout). Every
computation is a call into ``senet``; this package holds the pages (``views/``), figures and page plumbing.
"""
