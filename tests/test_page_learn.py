"""AppTest of pages/learn.py: the landing (the race) and every lesson link, with tiny
budgets in place of the real settings (core.lessons' own settings are tested in
tests/test_lessons.py; the browser test drives the real ones)."""

import dataclasses
import time

import pytest
from streamlit.testing.v1 import AppTest

from core import lessons
from pagetest import ROOT

# Through app.py, the entry point: the page's links (st.page_link) need its navigation.
ENTRY = str(ROOT / "app.py")

TINY = dict(steps=30, hidden_size=8, batch_size=16, probe_every=5, eval_every=10, eval_size=32)


def tiny(step: lessons.Step) -> lessons.Step:
    models = tuple(lessons.Model(m.label, {**m.settings, **TINY, "seq_len": 8})
                   for m in step.models)
    return dataclasses.replace(step, models=models)


@pytest.fixture
def tiny_lessons(runs_dir, monkeypatch):
    monkeypatch.setattr(lessons, "RACE", tiny(lessons.RACE))
    for n, step in list(lessons.STEPS.items()):
        monkeypatch.setitem(lessons.STEPS, n, tiny(step))
    return runs_dir


def app(**params) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=90)
    at.query_params.update({k: str(v) for k, v in params.items()})
    return at.run()


def text(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "title")
                     for e in getattr(at, kind))


def press(at, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def wait_finished(at, timeout=90.0) -> AppTest:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if "Status: finished" in text(at) or "Status: diverged, finished" in text(at):
            return at
        time.sleep(0.3)
    raise AssertionError("not finished: " + text(at)[-1500:])


def test_the_landing_asks_the_question_and_offers_one_button_and_the_lesson(tiny_lessons):
    at = app()
    assert not at.exception
    assert "How do LSTM and GRU keep the gradient alive" in text(at)
    assert [b.label for b in at.button] == [lessons.RACE.button, "Stop"]
    # Before the first result: the task's example input sequence, and no run's chart.
    assert len(at.get("vega_lite_chart")) == 1 and "example sequence" in at.expander[0].label
    assert "adding" in text(at)
    popover = at.get("popover")[0]                     # the settings, one click away
    assert popover.proto.popover.label == "Advanced"
    assert any("Compare" in p.proto.label for p in popover.get("page_link"))


def test_the_race_shows_heatmap_a_loss_and_one_caption_per_model_reading_its_numbers(tiny_lessons):
    at = press(app(), lessons.RACE.button)
    wait_finished(at)
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 2         # heatmap A (3 panels) and the loss
    captions = [c.value for c in at.caption if c.value.startswith("**")]
    for label in ("RNN tanh", "LSTM", "GRU"):
        line = next(c for c in captions if c.startswith(f"**{label}** — "))
        assert "t = 0 gets" in line or "vanishes entirely" in line, line
        assert "solved" in line, line
    assert "Showing runs" in text(at)                  # which settings produced them


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_each_lesson_link_shows_its_step_and_its_charts_after_its_button(tiny_lessons, n):
    step = lessons.STEPS[n]
    at = app(lesson=n)
    assert not at.exception
    assert step.title in text(at) and step.do in text(at) and step.means in text(at)
    assert not at.get("vega_lite_chart")
    press(at, step.button)
    wait_finished(at)
    charts = at.get("vega_lite_chart")
    expected = {1: 3, 2: 3, 3: 5, 4: 3, 5: 4}[n]
    assert len(charts) >= expected, (n, len(charts))
    assert f"Showing run{'s' if len(step.models) > 1 else ''} " in text(at)


def test_lesson_six_shows_the_three_verdicts_with_a_link_to_explain(tiny_lessons):
    step = lessons.STEPS[6]
    at = app(lesson=6)
    assert step.title in text(at)
    press(at, step.button)
    body = text(at)
    for answer in ("Answer 1", "Answer 2", "Answer 3"):
        assert f"**{answer}:**" in body
    assert "Verdict:" in body and "In short:" in body
    assert any("Explain" in p.proto.label for p in at.get("page_link"))


def test_previous_and_next_links_step_through_the_lesson(tiny_lessons):
    at = app(lesson=3)
    labels = [str(p.proto.label) for p in at.get("page_link")]
    assert "Step 2" in labels and "Step 4" in labels


def test_an_unknown_step_is_named_and_the_landing_shown(tiny_lessons):
    at = app(lesson="nine")
    assert not at.exception
    assert "There is no lesson step 'nine'" in text(at)
    assert lessons.RACE.button in [b.label for b in at.button]


def test_a_step_does_not_show_runs_trained_with_other_settings(tiny_lessons):
    at = press(app(lesson=1), lessons.STEPS[1].button)
    wait_finished(at)
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    other = AppTest.from_file(ENTRY, default_timeout=90)
    other.query_params.update({"lesson": "3", "run": run_id})
    other.run()
    assert not other.exception
    assert not other.get("vega_lite_chart")
    assert "trained with other settings than this step's" in text(other)
    same = AppTest.from_file(ENTRY, default_timeout=90)
    same.query_params.update({"lesson": "1", "run": run_id})
    same.run()
    assert len(same.get("vega_lite_chart")) >= 3
