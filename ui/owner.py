"""Who this browser is, across reloads, and who the presenter is (issue 18, §5).

* :func:`resolve_owner`: the owner id (core.owners.owner_id) of a session's runs, decided
  once per session and kept on its ``ui.state.SessionJobs``: the user signed in through
  ``st.login`` if any; else the token the browser sent in its ``rnnlab_owner`` cookie;
  else a new token, which the session uses at once (a run started before the cookie
  exists is not lost: the cookie is then set to that very token).
* :func:`keep_owner_cookie` (app.py, every run): asks the browser to keep that new token.
  Streamlit reads cookies (``st.context.cookies``: those of the page's first request) but
  has no call to set one, and the server's HTTP responses are not the app's to change;
  so one line of JavaScript sets ``document.cookie``, through ``st.html`` with
  ``unsafe_allow_javascript`` (not iframed, so the cookie is the app's own origin's; a
  ``components.html`` iframe is a ``srcdoc`` frame whose cookie access depends on its
  sandbox). No rerun is needed: this session already has its owner, and the next
  connection (a reload, a new tab) sends the cookie. The token is made here
  (``secrets.token_urlsafe``), never a visitor's text. Checked in headless Chromium
  (tests/e2e/test_e2e_09_ownership.py). A browser that refuses cookies gets a new owner
  per session: it still uses the app, and deletes its runs until it reloads.
* :func:`presenter_key` / :func:`presenter_login` / :func:`is_presenter`: the
  presenter's key comes from the deployment's secrets (``presenter_key`` in
  ``.streamlit/secrets.toml``, or Community Cloud's secrets) or $RNNLAB_PRESENTER_KEY;
  without one nobody is presenter. A session that types it (compared in constant
  time) sees every run with its owner and may delete any.
"""

from __future__ import annotations

import hmac
import re
import secrets

import streamlit as st

from core import settings
from core.owners import owner_id

OWNER_COOKIE = "rnnlab_owner"
COOKIE_DAYS = 365
PRESENTER_FLAG = "_rnnlab_presenter"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
# The container holding the script takes no room on the page: it and its layout wrapper,
# a flex item of the page (which, shown, adds the page's 1rem gap), are not displayed.
_HIDE = ("<style>.st-key-rnnlab_owner_cookie, [data-testid='stLayoutWrapper']"
         ":has(> .st-key-rnnlab_owner_cookie) { display: none; }</style>")
_SET_COOKIE = """<script>
(function () {{
  var secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "{name}={token}; path=/; max-age={age}; SameSite=Lax" + secure;
}})();
</script>"""


def browser_token() -> str | None:
    """The owner token the browser sent in its ``rnnlab_owner`` cookie when this session
    connected, if it is one this app could have made; None otherwise (no cookie yet,
    AppTest, a value of another shape)."""
    try:
        token = st.context.cookies.get(OWNER_COOKIE)
    except Exception:  # noqa: BLE001 - no browser behind this session
        return None
    return token if isinstance(token, str) and _TOKEN.fullmatch(token) else None


def signed_in_user() -> str | None:
    """Who is signed in through ``st.login`` (their e-mail, else the provider's subject),
    or None: no login configured, or nobody signed in."""
    try:
        if not st.user.is_logged_in:
            return None
        who = st.user.get("email") or st.user.get("sub")
    except Exception:  # noqa: BLE001 - auth not configured: nobody is signed in
        return None
    return str(who) if who else None


def resolve_owner(jobs) -> str:
    """The owner id of the session whose ``SessionJobs`` is ``jobs`` (set on first call)."""
    if jobs.owner is None:
        user = signed_in_user()
        if user is not None:
            jobs.owner = owner_id(f"user:{user}")
        else:
            token = browser_token()
            if token is None:
                token = jobs.cookie_to_set = secrets.token_urlsafe(24)
            jobs.owner = owner_id(token)
    return jobs.owner


def keep_owner_cookie(jobs) -> None:
    """Ask the browser to keep the session's new owner token, if it made one."""
    resolve_owner(jobs)
    token = jobs.cookie_to_set
    if not token:
        return
    st.html(_HIDE)
    with st.container(key="rnnlab_owner_cookie"):
        st.html(_SET_COOKIE.format(name=OWNER_COOKIE, token=token, age=COOKIE_DAYS * 86_400),
                unsafe_allow_javascript=True)


def presenter_key() -> str | None:
    """The presenter's key: the secret ``presenter_key``, else $RNNLAB_PRESENTER_KEY;
    None when neither is set (then nobody is presenter)."""
    try:
        key = st.secrets.get("presenter_key")
    except Exception:  # noqa: BLE001 - no secrets file: st.secrets raises on access
        key = None
    if not (isinstance(key, str) and key.strip()):
        key = settings.get("RNNLAB_PRESENTER_KEY")
    return key.strip() if isinstance(key, str) and key.strip() else None


def presenter_login(typed: str) -> bool:
    """Make this session the presenter's if ``typed`` is the key (compared in constant
    time); returns whether it is."""
    key = presenter_key()
    ok = key is not None and hmac.compare_digest(typed.strip().encode(), key.encode())
    st.session_state[PRESENTER_FLAG] = ok
    return ok


def presenter_logout() -> None:
    st.session_state[PRESENTER_FLAG] = False


def is_presenter() -> bool:
    """Whether this session typed the presenter's key, and a key is still configured."""
    return bool(st.session_state.get(PRESENTER_FLAG)) and presenter_key() is not None
