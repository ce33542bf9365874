"""RNN Gradient Lab — entry point: `streamlit run app.py`.

Pages live in pages/; the engine (training, probes, run store) in core/.
"""

import streamlit as st

from ui import runtime
from ui.bootstrap import mark_app_run, resume_intended_page
from ui.state import keep_owner_cookie

st.set_page_config(page_title="RNN Gradient Lab", page_icon=":material/science:", layout="wide")
runtime.start_once()  # warm-up, a spare training process, gc.freeze: once per server


PAGES = {
    # The address "/": the question, one button that races an RNN, an LSTM and a GRU, and
    # the guided lesson (?lesson=N). Streamlit serves the default page only at "/".
    "learn": st.Page("pages/learn.py", title="Learn", icon=":material/school:",
                     url_path="learn", default=True),
    "train": st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    "compare": st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    "runs": st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:", url_path="runs"),
    "explain": st.Page("pages/explain.py", title="Explain", icon=":material/functions:", url_path="explain"),
    "sweep": st.Page("pages/sweep.py", title="Sweep", icon=":material/stacked_line_chart:", url_path="sweep"),
}

mark_app_run()
page = st.navigation(list(PAGES.values()))
resume_intended_page(PAGES)
# The landing wants the whole width of a projector's screen: its sidebar starts closed
# (the navigation is one click away); the pages with a settings form open it.
st.set_page_config(initial_sidebar_state="collapsed" if page is PAGES["learn"] else "auto")
# Runs belong to the browser that made them (ui/owner.py): a new browser keeps its token.
keep_owner_cookie()
page.run()
