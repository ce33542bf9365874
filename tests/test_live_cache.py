"""Live pages reuse chart specs while the data they draw is unchanged (ui.live)."""

import altair as alt
import pandas as pd
import pytest

from core.config import TrainConfig
from core.train import Trainer
from core.runs import RunData
from ui import live

TINY = TrainConfig(seq_len=8, hidden_size=6, batch_size=8, steps=6, eval_every=3,
                   eval_size=32, probe_every=3)


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    monkeypatch.setattr(live, "_SPECS", live._Lru(live.MAX_SPEC_BYTES, size=lambda hit: hit[1]))
    drawn = []
    monkeypatch.setattr(live.st, "vega_lite_chart", lambda spec, key: drawn.append((key, spec)))
    return drawn


def _chart(n):
    return alt.Chart(pd.DataFrame({"x": range(n), "y": range(n)})).mark_line().encode(x="x", y="y")


def test_a_spec_is_built_once_per_key_and_sent_with_arrow_datasets(empty_cache):
    builds = []

    def build():
        builds.append(1)
        return _chart(50)

    for _ in range(3):
        live.cached_chart(("k", 1), "w", build)
    assert len(builds) == 1 and len(empty_cache) == 3
    spec = empty_cache[-1][1]
    (payload,) = spec["datasets"].values()
    assert isinstance(payload, bytes)  # Arrow IPC, as Streamlit sends it
    # Streamlit removes datasets from the spec it is handed: the cached one keeps them
    spec.pop("datasets")
    live.cached_chart(("k", 1), "w", build)
    assert "datasets" in empty_cache[-1][1] and len(builds) == 1
    live.cached_chart(("k", 2), "w", build)
    assert len(builds) == 2


def test_the_cache_is_bounded_in_bytes(monkeypatch):
    monkeypatch.setattr(live._SPECS, "max_size", 200_000)
    for i in range(40):
        live.cached_chart(("big", i), "w", lambda: _chart(5000))
    specs = live._SPECS._items
    total = sum(size for _, size in specs.values())
    assert total <= 200_000 and len(specs) >= 1
    assert ("big", 39) in specs and ("big", 0) not in specs


def test_data_key_changes_exactly_when_a_table_grows():
    data = RunData(TINY, status={"run_id": None})
    other = RunData(TINY, status={"run_id": None})
    assert live.data_key([data], "metrics") != live.data_key([other], "metrics")  # token
    changed = {"metrics": 0, "probes": 0}
    kinds = []
    for record in Trainer(TINY).run():
        before = {t: live.data_key([data], t) for t in changed}
        data.add(record)
        kinds.append(type(record).__name__)
        for t in changed:
            changed[t] += before[t] != live.data_key([data], t)
    assert changed == {"metrics": kinds.count("StepRecord"), "probes": kinds.count("ProbeRecord")}
    assert 0 < changed["probes"] < changed["metrics"]


def test_both_conversions_send_the_same_data(monkeypatch):
    """Streamlit's own Altair conversion (used when present) and the fallback through
    Altair's records give the same datasets."""
    import pyarrow as pa

    def frames(spec):
        return [pa.ipc.open_stream(b).read_all().to_pandas().reset_index(drop=True)
                for b in spec["datasets"].values()]

    chart = _chart(30)
    primary, _ = live._compact_spec(chart)
    monkeypatch.setattr(live, "_st_altair_to_spec", None)
    fallback, _ = live._compact_spec(_chart(30))
    (a,), (b,) = frames(primary), frames(fallback)
    pd.testing.assert_frame_equal(a[["x", "y"]], b[["x", "y"]], check_dtype=False)
    assert primary["mark"] == fallback["mark"] and primary["encoding"] == fallback["encoding"]


def test_the_page_reading_equals_the_probes_own_summary():
    """The sentence's numbers, read back from the run's tables, are those the probe
    computed from the tensors (whose gates tests/test_probe.py checks against torch.nn)."""
    from core.train import ProbeRecord

    cfg = TINY.replace(arch="lstm", steps=7, probe_every=3)
    data = RunData(cfg, status={"run_id": None})
    last = None
    for record in Trainer(cfg).run():
        data.add(record)
        if isinstance(record, ProbeRecord):
            last = record.summary
    reading = live._read_probe_tables(data)["reading"]
    for key in ("vanishing_ratio", "gradient_reach", "steps", "cell_ratio", "mean_f", "mean_f_max"):
        assert reading[key] == pytest.approx(last[key], rel=1e-12), key


def _metrics(n, seed=0, runs=None):
    import numpy as np

    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"step": range(n), "loss": rng.random(n) + 0.1})
    if runs:  # the Compare page's frames: one curve per run, by="run"
        d = pd.concat([d.assign(run=r) for r in runs], ignore_index=True)
    return d


def _evals(n, runs=None):
    d = pd.DataFrame({"step": range(0, 10 * n, 10), "loss": [0.5 / (1 + i) for i in range(n)]})
    if runs:
        d = pd.concat([d.assign(run=r) for r in runs], ignore_index=True)
    return d


@pytest.mark.parametrize("by", [None, "run"])
@pytest.mark.parametrize("log", [False, True])
def test_a_templated_loss_chart_equals_one_built_from_scratch(log, by, monkeypatch, empty_cache):
    """The loss chart is built with Altair once per structure and refilled with each
    version's data: the refilled spec must be exactly the spec Altair would give
    (Train and Runs: one run; Compare: one curve per run, other runs in other versions)."""
    from core import charts

    monkeypatch.setattr(live, "_TEMPLATES", live._Lru(64))
    builds = []

    a, b = (["LSTM", "tanh RNN"], ["GRU", "LSTM", "tanh RNN"]) if by else (None, None)
    versions = [(_metrics(0, runs=a), _evals(0, a), None), (_metrics(5, runs=a), _evals(1, a), 0.3),
                (_metrics(700, 1, b), _evals(7, b), 0.167), (_metrics(701, 2, b), _evals(7, b), 0.167)]
    for i, (m, e, base) in enumerate(versions):
        # The runs' colours (one per architecture) are part of the spec: like the Compare
        # page, the structure names the runs, in the order shown.
        order = a if i < 2 else b

        def build(frames, order=order):
            builds.append(1)
            return charts.loss_layers(frames, log_scale=log, by=by, order=order)

        def frames(m=m, e=e, base=base):
            return charts.loss_frames(m, e, base, log_scale=log, by=by)
        structure = ("loss", log) + ((tuple(order),) if by else ())
        live.templated_chart(("loss", i), "w", structure, frames, build)
        sent = empty_cache[-1][1]
        expected, _ = live._compact_spec(charts.loss_chart(m, e, base, log_scale=log, by=by,
                                                           order=order))
        assert sent == expected, f"version {i}"
    # one Altair build per set of runs; every later version only refilled
    assert len(builds) == (2 if by else 1)


def test_a_chart_whose_data_cannot_be_traced_is_always_built(monkeypatch, empty_cache):
    monkeypatch.setattr(live, "_TEMPLATES", live._Lru(64))
    builds = []

    def build(frames):  # draws a frame it was not given: no template possible
        builds.append(1)
        return alt.Chart(frames["d"].assign(y=1)).mark_point().encode(x="x:Q", y="y:Q")

    for i in range(3):
        live.templated_chart(("k", i), "w", ("s",), lambda i=i: {"d": pd.DataFrame({"x": [i]})},
                             build)
    assert len(builds) == 4  # one attempt at a template, then a build per version
    assert all(spec["datasets"] for _, spec in empty_cache)
