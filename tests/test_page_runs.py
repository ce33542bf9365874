"""pages/runs.py driven headless with streamlit.testing.v1.AppTest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.archive import export_run
from core.config import TrainConfig
from core.jobs import TrainingJob
from core.owners import owner_id
from core.runs import RunStore, write_json
from pagetest import page_path

PAGE = page_path("runs")
TIMEOUT = 60
TINY = TrainConfig(task="adding", seq_len=8, hidden_size=4, steps=20, batch_size=8,
                   eval_size=32, eval_every=5, probe_every=5)


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory) -> Path:
    """A store with one tiny finished run, trained once through core and copied per test."""
    root = tmp_path_factory.mktemp("trained")
    job = TrainingJob([TINY], store=RunStore(root), slots=None).start()
    assert job.join(timeout=120)
    return root


@pytest.fixture
def empty(runs_dir) -> RunStore:
    """An empty store (conftest's runs_dir: RNNLAB_RUNS_DIR set, cached store cleared)."""
    return RunStore(runs_dir)


@pytest.fixture
def one_run(runs_dir, trained_root) -> tuple[RunStore, str]:
    shutil.copytree(trained_root, runs_dir)
    store = RunStore(runs_dir)
    return store, store.ids()[0]


TOKEN = "alice-browser-token-0001"   # the owner cookie of "this browser" (see ``me``)
BOB = owner_id("bob-browser-token-0002")


@pytest.fixture
def me(monkeypatch) -> str:
    """This browser's owner id: its cookie token, as st.context.cookies would give it."""
    import ui.owner

    monkeypatch.setattr(ui.owner, "browser_token", lambda: TOKEN)
    return owner_id(TOKEN)


def own(store: RunStore, run_id: str, owner: str | None, **fields) -> None:
    """Make a stored run ``owner``'s (None: a run from before owners), with ``fields``."""
    path = store.path(run_id) / "status.json"
    status = json.loads(path.read_text())
    status.pop("owner", None)
    status.update(fields, **({"owner": owner} if owner else {}))
    write_json(path, status)


@pytest.fixture
def my_run(one_run, me) -> tuple[RunStore, str]:
    store, run_id = one_run
    own(store, run_id, me)
    return store, run_id


def app() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=TIMEOUT)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def charts(at) -> list:
    return at.get("vega_lite_chart")


def test_renders_with_no_runs(empty):
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    assert "No saved runs yet" in texts(at.info)
    assert not at.dataframe
    assert at.selectbox(key="runs_open").value is None


def test_lists_the_run(one_run):
    store, run_id = one_run
    at = app().run()
    assert not at.exception
    df = at.dataframe[0].value
    assert list(df.columns) == ["task", "arch", "seq_len", "status", "step", "steps",
                                "eval_loss", "solved", "created", "owner", "run_id"]
    assert list(df["run_id"]) == [run_id]
    assert df["owner"].iloc[0] == "no owner"       # trained outside the app: no one's
    assert df["status"].iloc[0] == "finished"
    box = at.selectbox(key="runs_open")
    assert box.label == "Open run" and box.options == [run_id] and box.value is None
    assert not charts(at)


def test_open_run_shows_charts_and_status(one_run):
    store, run_id = one_run
    at = app().run()
    at.selectbox(key="runs_open").select(run_id).run()
    assert not at.exception
    assert len(charts(at)) >= 3
    assert "Status: finished" in texts(at.markdown)
    assert at.query_params["run"] == [run_id] or at.query_params["run"] == run_id
    labels = [b.label for b in at.get("download_button")]
    for label in ("Download run (.zip)", "Metrics CSV", "Config JSON", "Weights (.safetensors)"):
        assert label in labels
    assert "Loss chart PNG" not in labels            # images are made on demand only


def test_run_preselected_from_url(one_run):
    store, run_id = one_run
    at = app()
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    assert at.selectbox(key="runs_open").value == run_id
    assert len(charts(at)) >= 3


def test_unknown_run_in_url_is_ignored(one_run):
    at = app()
    at.query_params["run"] = "no-such-run"
    at.run()
    assert not at.exception
    assert at.selectbox(key="runs_open").value is None
    assert "not in the run store" in texts(at.warning)


def test_switching_runs_follows_the_selectbox(one_run):
    store, run_id = one_run
    from core.archive import import_run
    other = import_run(store, export_run(store, run_id), "copy.zip")
    at = app().run()
    at.selectbox(key="runs_open").select(run_id).run()
    assert at.selectbox(key="runs_open").value == run_id
    at.selectbox(key="runs_open").select(other).run()      # the old ?run= must not win
    assert not at.exception
    assert at.selectbox(key="runs_open").value == other
    assert other in str(at.query_params["run"])
    at.run()
    assert at.selectbox(key="runs_open").value == other


def test_prepare_chart_images(one_run):
    store, run_id = one_run
    at = app().run()
    at.selectbox(key="runs_open").select(run_id).run()
    at.button(key="runs_prepare").click().run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert "Loss chart PNG" in labels and "Heatmap SVG" in labels


def test_delete_needs_confirmation(my_run):
    store, run_id = my_run
    at = app().run()
    at.selectbox(key="runs_open").select(run_id).run()
    assert at.button(key="runs_delete").disabled
    at.checkbox(key=f"runs_confirm_{run_id}").check().run()
    assert at.checkbox(key=f"runs_confirm_{run_id}").label == "Yes, delete this run"
    assert not at.button(key="runs_delete").disabled
    at.button(key="runs_delete").click().run()
    assert not at.exception
    assert store.ids() == []
    assert "Deleted run" in texts(at.success)
    assert "No saved runs yet" in texts(at.info)
    assert at.selectbox(key="runs_open").value is None


def test_damaged_run_warns_but_shows_what_loaded(one_run):
    store, run_id = one_run
    (store.path(run_id) / "probes.parquet").write_bytes(b"not parquet")
    at = app().run()
    at.selectbox(key="runs_open").select(run_id).run()
    assert not at.exception
    warning = texts(at.warning)
    assert "incomplete or damaged" in warning and "probes.parquet" in warning
    assert charts(at)                               # the loss curve still shows


def test_unloadable_run_shows_error(one_run):
    store, run_id = one_run
    (store.path(run_id) / "config.json").write_text("{broken")
    at = app()
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    assert "config.json" in texts(at.error)


def test_upload_refused_shows_error_not_exception(empty):
    at = app().run()
    at.file_uploader(key="runs_upload").set_value(("bad.zip", b"not a zip at all", "application/zip"))
    at.run()
    assert not at.exception
    assert "Could not import bad.zip" in texts(at.error)
    assert RunStore(empty.root).ids() == []


def test_upload_imports_a_run(one_run, tmp_path):
    store, run_id = one_run
    data = export_run(store, run_id)
    at = app().run()
    at.file_uploader(key="runs_upload").set_value(("run.zip", data, "application/zip"))
    at.run()
    assert not at.exception
    assert len(store.ids()) == 2
    new_id = next(i for i in store.ids() if i != run_id)
    assert new_id in texts(at.success)
    assert at.selectbox(key="runs_open").value == new_id       # and it is opened
    assert "Status: finished" in texts(at.markdown)
    at.run()                                        # a rerun does not import it again
    assert len(store.ids()) == 2


def test_compare_two_runs(one_run):
    store, run_id = one_run
    from core.archive import import_run
    other = import_run(store, export_run(store, run_id), "copy.zip")
    at = app().run()
    box = at.multiselect(key="runs_compare")
    assert box.label == "Compare runs"
    box.select(run_id).run()
    assert "at least one more" in texts(at.info)
    at.multiselect(key="runs_compare").select(other).run()
    assert not at.exception
    assert len(charts(at)) >= 3


def test_run_training_in_this_server_is_live_and_not_deletable(one_run, monkeypatch):
    from types import SimpleNamespace

    from core import jobs

    store, run_id = one_run
    data = store.load(run_id)
    data.set_status("running")
    fake = SimpleNamespace(alive=True, save_error=None, queue_position=None,
                           runs=[SimpleNamespace(run_id=run_id, data=data)])
    monkeypatch.setattr(jobs.GLOBAL_REGISTRY, "get", lambda rid: fake if rid == run_id else None)
    at = app()
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    assert "Status: running" in texts(at.markdown)        # drawn from the live job's data
    assert "still training" in texts(at.info)
    assert at.checkbox(key=f"runs_confirm_{run_id}").disabled
    assert at.button(key="runs_delete").disabled
    assert store.ids() == [run_id]


def test_upload_refused_when_the_store_is_full(one_run, monkeypatch):
    store, run_id = one_run
    monkeypatch.setenv("RNNLAB_MAX_STORED_RUNS", "1")
    at = app().run()
    at.file_uploader(key="runs_upload").set_value(
        ("run.zip", export_run(store, run_id), "application/zip"))
    at.run()
    assert not at.exception
    assert "run store is full" in texts(at.error)
    assert store.ids() == [run_id]


def test_upload_of_a_text_file_says_what_is_wrong_with_it(empty):
    """Any file is taken by the uploader (a type filter showed only a red icon), and the
    import says what is wrong with it."""
    at = app().run()
    at.file_uploader(key="runs_upload").set_value(("notes.txt", b"just some notes\n", "text/plain"))
    at.run()
    assert not at.exception
    error = texts(at.error)
    assert "Could not import notes.txt: notes.txt is not a .zip file (it is a text file)" in error


def test_upload_of_a_zip_of_random_files_says_it_is_not_a_run_archive(empty):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("holiday.jpg", b"\xff\xd8\xff")
        zf.writestr("data.bin", b"\x00\x01")
    at = app().run()
    at.file_uploader(key="runs_upload").set_value(("stuff.zip", buf.getvalue(), "application/zip"))
    at.run()
    error = texts(at.error)
    assert "this .zip is not a run archive: it holds 'holiday.jpg', 'data.bin'" in error
    assert "pickle files are never loaded" not in error


# ---------------------------------------------------------------- who may touch what


def test_another_visitors_run_is_neither_listed_nor_opened_by_its_link(one_run, me):
    store, run_id = one_run
    own(store, run_id, BOB)
    at = app().run()
    assert not at.exception
    assert "No saved runs yet" in texts(at.info)
    at = app()
    at.query_params["run"] = run_id
    at.run()
    assert at.selectbox(key="runs_open").value is None and not charts(at)
    assert "another visitor's" in texts(at.warning)
    assert store.ids() == [run_id]


def test_my_run_is_listed_as_mine_and_i_may_delete_it(my_run):
    store, run_id = my_run
    at = app().run()
    assert at.dataframe[0].value["owner"].iloc[0] == "you"
    at.selectbox(key="runs_open").select(run_id).run()
    assert not at.checkbox(key=f"runs_confirm_{run_id}").disabled
    assert "You may not delete" not in texts(at.info)


@pytest.mark.parametrize("fields,label,reason", [
    ({}, "no owner", "only the presenter may delete it"),
    ({"shared": True}, "shared", "it is shared"),
    ({"lesson": True}, "lesson", "it is a lesson run"),
])
def test_runs_of_no_one_are_listed_and_opened_but_not_deletable(one_run, me, fields, label,
                                                                 reason):
    store, run_id = one_run
    own(store, run_id, BOB if fields else None, **fields)
    at = app().run()
    assert at.dataframe[0].value["owner"].iloc[0] == label
    at.selectbox(key="runs_open").select(run_id).run()
    assert not at.exception and len(charts(at)) >= 3
    assert "Download run (.zip)" in [b.label for b in at.get("download_button")]
    assert reason in texts(at.info)
    assert at.checkbox(key=f"runs_confirm_{run_id}").disabled
    assert at.button(key="runs_delete").disabled


def test_the_presenter_key_shows_every_run_with_its_owner_and_allows_deleting_any(
        one_run, me, monkeypatch):
    store, run_id = one_run
    own(store, run_id, BOB)
    monkeypatch.setenv("RNNLAB_PRESENTER_KEY", "open sesame")
    at = app().run()
    assert "No saved runs yet" in texts(at.info)
    key = at.text_input(key="runs_presenter_key")
    assert key.label == "Presenter key"
    key.input("open says me").run()
    at.button(key="runs_presenter_enter").click().run()
    assert "not the presenter key" in texts(at.error)
    assert not at.dataframe
    at.text_input(key="runs_presenter_key").input("open sesame").run()
    at.button(key="runs_presenter_enter").click().run()
    assert not at.exception
    assert "Presenter mode" in texts(at.success)
    assert at.button(key="runs_presenter_leave").label == "Leave presenter mode"
    assert at.session_state["runs_presenter_key"] == ""   # the key typed is not kept
    assert at.dataframe[0].value["owner"].iloc[0] == f"visitor {BOB[2:8]}"
    at.selectbox(key="runs_open").select(run_id).run()
    at.checkbox(key=f"runs_confirm_{run_id}").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception and store.ids() == []
    assert "Deleted run" in texts(at.success)


def test_the_presenter_key_may_come_from_the_deployments_secrets(one_run, me):
    store, run_id = one_run
    at = app()
    at.run()
    assert not at.text_input      # no key configured: nobody is presenter, no field
    at = app()
    at.secrets["presenter_key"] = "from secrets"
    at.run()
    at.text_input(key="runs_presenter_key").input("from secrets").run()
    at.button(key="runs_presenter_enter").click().run()
    assert "Presenter mode" in texts(at.success)
    assert list(at.dataframe[0].value["run_id"]) == [run_id]


def test_an_upload_is_the_uploaders_and_counts_toward_their_cap(my_run, monkeypatch):
    store, run_id = my_run
    data = export_run(store, run_id)
    at = app().run()
    at.file_uploader(key="runs_upload").set_value(("run.zip", data, "application/zip"))
    at.run()
    new_id = next(i for i in store.ids() if i != run_id)
    assert store.read_status(new_id)["owner"] == owner_id(TOKEN)
    monkeypatch.setenv("RNNLAB_MAX_RUNS_PER_OWNER", "2")
    at = app().run()
    at.file_uploader(key="runs_upload").set_value(("again.zip", data, "application/zip"))
    at.run()
    assert not at.exception
    error = texts(at.error)
    assert "you have 2 runs of your own" in error and "delete one of your runs" in error
    assert len(store.ids()) == 2
