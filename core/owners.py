"""Who may touch what: a run's owner, who sees it, who may delete it (issue 18, §5).

On a shared deployment every visitor used to see and delete every run. Now a run
started by the app records in its status.json the ``owner`` it was started for: a
plain string that the UI derives from the browser (ui/owner.py: a token the browser
keeps in a cookie, or the signed-in user of ``st.login``), hashed by :func:`owner_id`
so the status (which a download carries) never holds the token itself. Nothing here
knows about Streamlit or cookies: the owner comes in as a string.

The rules, on a run's status (dict, as :meth:`core.runs.RunStore.read_status` gives it):

* **its owner** (:func:`owner_of`): the ``owner`` recorded, unless the run belongs to
  no one: a run with no owner (trained before owners existed, or by the command line),
  a **shared** run (Train handed it to more than one owner: core.jobs.JobRegistry),
  and a **lesson run** that trained to its end (the Learn page's fixed settings: every
  visitor who presses the step's button gets that very run). A lesson run stopped
  before its end is still its starter's (nobody is handed it again);
* **who sees it** (:func:`visible`): its owner, and everyone for runs that belong to
  no one and for lesson runs;
* **who deletes it** (:func:`ownership_refusal`): its owner only; runs that belong to
  no one, only the presenter (a key from the deployment's secrets, checked by the UI);
* **caps** (core.runs.RunStore.room_refusal): runs whose owner is ``owner`` count toward
  $RNNLAB_MAX_RUNS_PER_OWNER; every run counts toward $RNNLAB_MAX_STORED_RUNS.
"""

from __future__ import annotations

import hashlib

#: Statuses of a run that trained to its end (core.runs.COMPLETE_STATUSES, repeated here
#: so this module imports nothing).
_COMPLETE = ("finished", "diverged")


def owner_id(token: str) -> str:
    """The owner string recorded in runs for a browser's (or user's) ``token``: a hash, so
    a downloaded status.json does not hand out the token that proves ownership."""
    return "o-" + hashlib.sha256(f"rnnlab-owner\0{token}".encode()).hexdigest()[:20]


def recorded_owner(status: dict) -> str | None:
    """The owner the run was started for, if any (whatever became of it since)."""
    owner = status.get("owner")
    return owner if isinstance(owner, str) and owner else None


def owner_of(status: dict) -> str | None:
    """The run's owner now, or None when it belongs to no one (no owner recorded, shared,
    or a lesson run that trained to its end)."""
    owner = recorded_owner(status)
    if owner is None or status.get("shared"):
        return None
    if status.get("lesson") and status.get("status") in _COMPLETE:
        return None
    return owner


def visible(status: dict, owner: str | None) -> bool:
    """Whether a visitor ``owner`` sees this run (lists, opens, downloads it)."""
    return status.get("lesson") is True or owner_of(status) in (None, owner)


def ownership_refusal(status: dict, owner: str | None) -> str | None:
    """Why ``owner`` (not the presenter) may not delete this run, or None if it may."""
    mine = owner_of(status)
    if mine is not None and mine == owner:
        return None
    if mine is not None:
        return "it belongs to another visitor"
    if status.get("shared"):
        return ("it is shared: Train handed it to more than one session, so it belongs to "
                "none of them (the presenter may delete it)")
    if status.get("lesson"):
        return ("it is a lesson run, which every visitor pressing the step's button is "
                "handed: only the presenter may delete it")
    return ("it has no owner (saved before runs had owners, or by the command line): only "
            "the presenter may delete it")


def owner_label(status: dict, owner: str | None) -> str:
    """Whose run this is, in a word or two, as the presenter's list shows it."""
    mine = owner_of(status)
    if mine is not None:
        return "you" if mine == owner else f"visitor {mine[2:8]}"
    if status.get("shared"):
        return "shared"
    if status.get("lesson"):
        return "lesson"
    return "no owner"
