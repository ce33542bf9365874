"""Make sure every page runs inside app.py's navigation.

Streamlit keeps a legacy mode for apps with a ``pages/`` folder: on a freshly
started server, until some session has run ``app.py`` (which calls
``st.navigation``), a visit to ``/runs`` runs ``pages/runs.py`` *alone*, with no
page config and the folder's file names as navigation. Each page calls
:func:`ensure_app` first: in that situation it hands the session to ``app.py``
(remembering the page and its query parameters), and ``app.py`` switches to the
page the visitor asked for once its navigation is set up.

Still needed with Streamlit 1.67.0 (measured: a fresh server, headless Chromium,
``/runs`` and ``/explain?x=1`` as its very first visit). Without this module the page
got the legacy navigation (links "app, compare, explain, runs, sweep, train"), the
file name as the tab title ("runs") and the centered layout (a 736 px main column);
with it, the app's navigation (Train, Compare, Runs, Explain, Sweep), the title "RNN
Gradient Lab", the wide layout (1100 px), and the same URL with its query. The cause
is in Streamlit itself: ``PagesManager.uses_pages_directory`` is set when the first
session starts, from whether ``pages/`` exists, and until ``st.navigation`` clears it
``ScriptRunner`` runs the ``pages/`` folder (``_mpa_v1``) instead of ``app.py``. The
legacy links do show for the first visit's hand-over (~4-5 s on a fresh server: the
page's imports, then app.py's warm-up). Renaming ``pages/`` to a folder name
Streamlit does not treat specially would remove the legacy mode, and this module
with it. tests/e2e/test_e2e_01_startup.py opens such a deep link first.
"""

from __future__ import annotations

import streamlit as st

_VIA_APP = "_rnnlab_via_app"
_INTENDED = "_rnnlab_intended_page"


def mark_app_run() -> None:
    """Called by app.py on every run: pages below it are inside the navigation."""
    st.session_state[_VIA_APP] = True


def _legacy_pages_mode() -> bool:
    # Streamlit's own flag for "running the pages/ folder without st.navigation"
    # (internal, hence the defensive lookup; False when it cannot be read).
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return False
    return bool(getattr(PagesManager, "uses_pages_directory", False))


def ensure_app(page: str) -> None:
    """At the top of a page: if it runs on its own, go through app.py first."""
    if st.session_state.get(_VIA_APP) or not _legacy_pages_mode():
        return
    st.session_state[_INTENDED] = (page, dict(st.query_params.to_dict()))
    st.switch_page("app.py")


def resume_intended_page(pages: dict) -> None:
    """Called by app.py after st.navigation: go to the page a legacy-mode visit wanted."""
    intended = st.session_state.pop(_INTENDED, None)
    if intended and intended[0] in pages:
        name, params = intended
        st.switch_page(pages[name], query_params=params)
