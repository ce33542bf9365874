"""RNN Gradient Lab — entry point: `streamlit run app.py`.

Pages live in pages/; the engine (training, probes, run store) in core/.
"""

import streamlit as st

from core.train import warm_up

st.set_page_config(page_title="RNN Gradient Lab", page_icon="🧪", layout="wide")
# Once per server process, so that the first Train press does not wait for torch's imports.
st.cache_resource(show_spinner=False)(warm_up)()

PAGES = [
    st.Page("pages/train.py", title="Train", icon="🏋️", url_path="train", default=True),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    st.Page("pages/runs.py", title="Runs", icon="🗂️", url_path="runs"),
    st.Page("pages/explain.py", title="Explain", icon="📐", url_path="explain"),
    st.Page("pages/sweep.py", title="Sweep", icon="📈", url_path="sweep"),
]

st.navigation(PAGES).run()
