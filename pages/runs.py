"""Runs: this visitor's saved runs and the shared ones — open one, compare several,
download, delete (one's own), upload; the presenter sees and may delete every run."""

import functools
import json

import pandas as pd
import streamlit as st

from core import charts
from core.archive import MAX_UPLOAD_BYTES, ArchiveError, chart_files, export_run, import_run
from core.runs import RunError
from ui.live import cached_chart, data_key, live_view, run_charts, status_header
from ui.owner import presenter_key, presenter_login, presenter_logout
from ui.runtime import live_job
from ui.state import delete_refusal, is_presenter, load_run, run_store, session_owner
from ui.state import delete_run as delete_for_session
from ui.bootstrap import ensure_app

ensure_app("runs")

LIST_COLUMNS = ["task", "arch", "seq_len", "status", "step", "steps", "eval_loss", "solved",
                "created", "owner", "run_id"]
OPEN_KEY = "runs_open"
PRESENTER_NOTE = ("Presenter mode: you see every run of this server with its owner, and may "
                  "delete any.")
URL_SEEN_KEY = "runs_url_seen"

store = run_store()


def set_url_run(run_id) -> None:
    """Keep ``?run=`` in step with the open run (so the link can be shared or reloaded)."""
    if run_id:
        if st.query_params.get("run") != run_id:
            st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]
    st.session_state[URL_SEEN_KEY] = run_id or ""


def short_label(run_id, config) -> str:
    return f"{run_id.rsplit('-', 1)[-1][-6:]} · {config.label()}"


def delete_run(run_id):
    """Delete button callback (runs before the page, so it may reset the selection)."""
    if not st.session_state.get(f"runs_confirm_{run_id}"):
        st.session_state["runs_flash"] = ("warning", "Tick “Yes, delete this run” first.")
        return
    if live_job(run_id) is not None or store.read_status(run_id).get("status") in ("running",
                                                                                   "queued"):
        st.session_state["runs_flash"] = ("error", f"Run {run_id} is still training: stop it first.")
        return
    try:
        delete_for_session(run_id)
    except (RunError, OSError) as e:
        st.session_state["runs_flash"] = ("error", f"Could not delete the run: {e}")
        return
    st.session_state[OPEN_KEY] = None
    st.session_state.pop(f"runs_confirm_{run_id}", None)
    set_url_run(None)
    st.session_state["runs_flash"] = ("success", f"Deleted run {run_id}.")


def enter_presenter():
    """The presenter key's button: check the key typed, then forget it."""
    if presenter_login(st.session_state.get("runs_presenter_key", "")):
        st.session_state["runs_flash"] = ("success", PRESENTER_NOTE)
    else:
        st.session_state["runs_flash"] = ("error", "That is not the presenter key.")
    st.session_state["runs_presenter_key"] = ""


st.title("Runs")
presenter = is_presenter()
me = session_owner()
if presenter:
    st.caption("Presenter mode: every saved run of this server, with its owner. Open one to "
               "see its charts, compare a few, download or delete any.")
else:
    st.caption("Your saved runs and the shared ones (lesson runs, runs several visitors "
               "trained): open one to see its charts, compare a few, download them, delete "
               "your own, or upload a run someone else trained.")

flash = st.session_state.pop("runs_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])

# ---------------------------------------------------------------- presenter
if presenter_key() is not None:
    with st.expander("Presenter", expanded=False):
        if presenter:
            st.markdown("You are the presenter in this browser session.")
            st.button("Leave presenter mode", key="runs_presenter_leave",
                      on_click=presenter_logout)
        else:
            st.text_input("Presenter key", type="password", key="runs_presenter_key",
                          help="The key in this deployment's secrets (presenter_key): "
                               "shows every run with its owner and allows deleting any.")
            st.button("Enter presenter mode", key="runs_presenter_enter",
                      on_click=enter_presenter)

# ---------------------------------------------------------------- upload
with st.expander("Upload a run", expanded=False):
    # Any file is taken, so that a wrong one gets a message saying what is wrong with it
    # (core.archive checks everything before saving anything).
    uploaded = st.file_uploader("Upload a run (.zip)", key="runs_upload",
                                help="A .zip made with “Download run (.zip)”. Checked before "
                                     "anything is saved; pickle files are never loaded.")
if uploaded is not None:       # the outcome shows even with the expander closed
    results = st.session_state.setdefault("runs_imports", {})
    fid = getattr(uploaded, "file_id", None) or f"{uploaded.name}:{uploaded.size}"
    if fid not in results:   # the uploader keeps its file across reruns: import once
        try:
            if uploaded.size > MAX_UPLOAD_BYTES:
                raise ArchiveError(f"the file is {uploaded.size / 2**20:.1f} MiB, more than "
                                   f"the {MAX_UPLOAD_BYTES / 2**20:.0f} MiB allowed")
            refusal = store.room_refusal(1, me)
            if refusal:
                raise ArchiveError(refusal)
            new_id = import_run(store, uploaded.getvalue(), uploaded.name, owner=me)
            results[fid] = ("ok", new_id)
            st.session_state[OPEN_KEY] = new_id     # open it (the selectbox comes later)
            set_url_run(new_id)
        except ArchiveError as e:
            results[fid] = ("error", str(e))
    kind, text = results[fid]
    if kind == "ok":
        st.success(f"Imported {uploaded.name} as run {text}.")
    else:
        st.error(f"Could not import {uploaded.name}: {text}")

# ---------------------------------------------------------------- the list
try:
    listing = store.list(me, everything=presenter)
except OSError as e:
    st.error(f"Cannot read the run store {store.root}: {e}")
    listing = pd.DataFrame(columns=LIST_COLUMNS)
ids = list(listing["run_id"])   # newest first (ids start with their creation time)

if listing.empty:
    st.info("No saved runs yet: train one on the **Train** page, or upload a run (.zip) above.")
else:
    st.dataframe(
        listing[LIST_COLUMNS], hide_index=True, width="stretch",
        column_config={
            "eval_loss": st.column_config.NumberColumn("eval_loss", format="%.4g"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
            "owner": st.column_config.TextColumn(
                "owner", help="you; shared (handed to several visitors); lesson; no owner "
                              "(from before runs had owners, or the command line)"
                              + ("; visitor …: another visitor's" if presenter else "")),
        },
    )

# ---------------------------------------------------------------- open one run
url_run = st.query_params.get("run", "")
if url_run != st.session_state.get(URL_SEEN_KEY):
    # The link changed (a fresh visit, a shared link): it picks the run; afterwards the
    # selectbox leads and the URL follows it.
    st.session_state[URL_SEEN_KEY] = url_run
    url_ids = [i for i in url_run.split(",") if i]
    if url_ids and url_ids[0] in ids:
        st.session_state[OPEN_KEY] = url_ids[0]
    elif url_ids:
        st.warning(f"The link names run {url_ids[0]!r}, which is not in the run store "
                   "(or is another visitor's).")
if st.session_state.get(OPEN_KEY) not in ids:
    st.session_state[OPEN_KEY] = None
run_id = st.selectbox("Open run", ids, key=OPEN_KEY, placeholder="Choose a run",
                      disabled=not ids)
set_url_run(run_id)

if run_id:
    job = live_job(run_id)
    data = None
    if job is not None:
        data = next((r.data for r in job.runs if r.run_id == run_id), None)
    if data is None:
        try:
            data = load_run(run_id)
        except RunError as e:
            st.error(str(e))
    if data is not None:
        status = data.status_copy()
        st.caption(f"Run `{run_id}` · {data.config.label()} on {data.config.task}, "
                   f"T = {data.config.seq_len}")
        if status.get("incomplete") or status.get("problems"):
            problems = status.get("problems") or ["some records are missing"]
            st.warning("This run is incomplete or damaged; showing what could be read:\n\n"
                       + "\n".join(f"- {p}" for p in problems))

        def draw(ds):
            status_header(ds[0], job)
            run_charts(ds[0], key="runs")

        live_view(job, [data], "runs", draw)

        st.subheader("Download")
        model_path = store.model_path(run_id)
        c1, c2, c3, c4 = st.columns(4)
        c1.download_button(
            "Download run (.zip)", data=lambda rid=run_id: export_run(store, rid),
            file_name=f"{run_id}.zip", mime="application/zip", key="runs_dl_zip",
            on_click="ignore")
        c2.download_button(
            "Metrics CSV", data=lambda d=data: d.table("metrics").to_csv(index=False),
            file_name=f"{run_id}-metrics.csv", mime="text/csv", key="runs_dl_csv",
            on_click="ignore")
        c3.download_button(
            "Config JSON", data=json.dumps(data.config.to_dict(), indent=1),
            file_name=f"{run_id}-config.json", mime="application/json", key="runs_dl_cfg",
            on_click="ignore")
        if model_path.is_file():
            c4.download_button(
                "Weights (.safetensors)", data=lambda p=model_path: p.read_bytes(),
                file_name=f"{run_id}.safetensors", mime="application/octet-stream",
                key="runs_dl_weights", on_click="ignore")

        # PNG rendering costs ~0.5 s a chart: only on request, kept for the open run only.
        made_for, images = st.session_state.get("runs_images", (None, None))
        if made_for != run_id:
            images = None
            if st.button("Prepare chart images", key="runs_prepare",
                         help="Renders the loss chart and heatmap A as PNG and SVG (a few seconds)"):
                with st.spinner("Rendering the charts…"):
                    try:
                        images = chart_files(data)
                        st.session_state["runs_images"] = (run_id, images)
                    except Exception as e:  # noqa: BLE001 - rendering is optional
                        st.error(f"Could not render the chart images: {e}")
        if images:
            i1, i2, i3, i4 = st.columns(4)
            for col, (label, name, mime) in zip((i1, i2, i3, i4), (
                ("Loss chart PNG", "loss.png", "image/png"),
                ("Loss chart SVG", "loss.svg", "image/svg+xml"),
                ("Heatmap PNG", "heatmap_a.png", "image/png"),
                ("Heatmap SVG", "heatmap_a.svg", "image/svg+xml"),
            )):
                col.download_button(label, data=images[name], file_name=f"{run_id}-{name}",
                                    mime=mime, key=f"runs_dl_{name}", on_click="ignore")

        st.subheader("Delete")
        training = job is not None or status.get("status") in ("running", "queued")
        refusal = None if training else delete_refusal(run_id)
        if training:
            st.info("This run is still training: stop it on its page before deleting it.")
        elif refusal:
            st.info(f"You may not delete this run: {refusal}.")
        confirmed = st.checkbox("Yes, delete this run", key=f"runs_confirm_{run_id}",
                                disabled=training or bool(refusal))
        st.button("Delete run", key="runs_delete", type="primary",
                  disabled=training or bool(refusal) or not confirmed, on_click=delete_run,
                  args=(run_id,))

# ---------------------------------------------------------------- compare
st.divider()
st.subheader("Compare runs")
picked = st.multiselect("Compare runs", ids, max_selections=4, key="runs_compare",
                        placeholder="Choose 2 to 4 runs", disabled=len(ids) < 2,
                        help="Overlaid loss curves and side-by-side gradient heatmaps")
if len(picked) == 1:
    st.info("Choose at least one more run to compare.")
elif len(picked) >= 2:
    loaded, labels = [], []
    for rid in picked:
        try:
            d = load_run(rid)
        except RunError as e:
            st.error(str(e))
            continue
        label = short_label(rid, d.config)
        while label in labels:
            label += "′"
        loaded.append(d)
        labels.append(label)
    if len(loaded) >= 2:
        def tagged(name):
            return pd.concat([d.table(name).assign(run=lab) for d, lab in zip(loaded, labels)],
                             ignore_index=True)

        baselines = {d.status_copy().get("baseline_loss") for d in loaded}
        baseline = baselines.pop() if len(baselines) == 1 else None
        if baseline is None:
            st.caption("The runs are on different tasks or lengths: no common baseline is drawn.")
        key = (tuple(labels), baseline)
        cached_chart(("runs_cmp_loss",) + key + data_key(loaded, "metrics", "evals"),
                     "runs_cmp_loss", lambda: charts.loss_chart(
                         tagged("metrics"), tagged("evals"), baseline, by="run"))
        probes = functools.cache(lambda: tagged("probes"))
        if probes().empty:
            st.info("None of these runs has gradient probes to compare.")
        else:
            key += data_key(loaded, "probes", "summaries")
            st.markdown("**A · Gradient reaching each time step, over training** (‖∂ℓ/∂h_t‖)")
            cached_chart(("runs_cmp_heatA",) + key, "runs_cmp_heatA",
                         lambda: charts.grad_time_heatmap(probes(), "h", by="run"))
            st.markdown("**B · Gradient by time step and gate** (latest probe of each run)")
            cached_chart(("runs_cmp_heatB",) + key, "runs_cmp_heatB",
                         lambda: charts.gate_heatmap(probes(), by="run"))
            cached_chart(("runs_cmp_reach",) + key, "runs_cmp_reach",
                         lambda: charts.reach_chart(tagged("summaries"), by="run"))
