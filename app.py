"""SENet Explorer in a checkout: ``streamlit run app.py``. The dashboard itself is ``senet_dashboard``;
an installed package starts it with ``senet dashboard``."""
from senet_dashboard.app import main

main()
