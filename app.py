"""RNN Gradient Lab — entry point: `streamlit run app.py`.

Pages live in pages/; the engine (training, probes, run store) in core/.
"""

import streamlit as st

from ui import runtime
from ui.bootstrap import mark_app_run, resume_intended_page

st.set_page_config(page_title="RNN Gradient Lab", page_icon=":material/science:", layout="wide")
runtime.start_once()  # warm-up, a spare training process, gc.freeze: once per server


def _home() -> None:
    """The address "/" shows the Train page at its own address, /train (Streamlit serves a
    default page only at "/", so links to /train need Train to be a regular page)."""
    st.switch_page(PAGES["train"], query_params=st.query_params.to_dict())


PAGES = {
    "home": st.Page(_home, title="Home", url_path="home", default=True, visibility="hidden"),
    "train": st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    "compare": st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    "runs": st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:", url_path="runs"),
    "explain": st.Page("pages/explain.py", title="Explain", icon=":material/functions:", url_path="explain"),
    "sweep": st.Page("pages/sweep.py", title="Sweep", icon=":material/stacked_line_chart:", url_path="sweep"),
}

mark_app_run()
page = st.navigation(list(PAGES.values()))
resume_intended_page(PAGES)
page.run()
