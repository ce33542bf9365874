"""Make sure every page runs inside app.py's navigation.

Streamlit keeps a legacy mode for apps with a ``pages/`` folder: on a freshly
started server, until some session has run ``app.py`` (which calls
``st.navigation``), a visit to ``/runs`` runs ``pages/runs.py`` *alone*, with no
page config and the folder's file names as navigation. Each page calls
:func:`ensure_app` first: in that situation it hands the session to ``app.py``
(remembering the page and its query parameters), and ``app.py`` switches to the
page the visitor asked for once its navigation is set up.
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
