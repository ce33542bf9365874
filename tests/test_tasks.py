"""Tests for core.tasks: shapes, reproducibility, task semantics and baselines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tasks import TASK_NAMES, Task, make_task

SEQ_LENS = (10, 17, 64)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def oracle_outputs(task: Task, y: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """Outputs a perfect model would produce for targets y."""
    batch = y.shape[0]
    out = torch.zeros(batch, task.steps, task.output_size, dtype=dtype)
    if task.name == "adding":
        out[:, -1, 0] = y.to(dtype)
    elif task.name == "copy":
        out = 20.0 * F.one_hot(y, task.output_size).to(dtype)
    else:
        out[:, -1] = 20.0 * F.one_hot(y, task.output_size).to(dtype)
    return out


# --- shapes, dtypes, reproducibility ------------------------------------------------


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("seq_len", SEQ_LENS)
def test_sample_shapes_and_dtypes_are_batch_first_float32(name, seq_len):
    task = make_task(name, seq_len)
    x, y = task.sample(5, gen())
    assert x.shape == (5, task.steps, task.input_size)
    assert x.dtype == torch.float32
    assert task.steps == (seq_len + 20 if name == "copy" else seq_len)
    if name == "adding":
        assert y.shape == (5,) and y.dtype == torch.float32
    elif name == "copy":
        assert y.shape == (5, task.steps) and y.dtype == torch.long
    else:
        assert y.shape == (5,) and y.dtype == torch.long
        assert int(y.min()) >= 0 and int(y.max()) < task.output_size


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_metadata_is_consistent(name):
    task = make_task(name, 20)
    assert task.name == name and task.seq_len == 20
    assert task.metric_name in ("mse", "accuracy")
    assert task.higher_is_better == (task.metric_name == "accuracy")
    assert task.loss_at_last_step == (name != "copy")
    assert task.baseline_loss > 0 and isinstance(task.description, str) and task.description
    assert make_task(name, 20, **task.options()) == task


@pytest.mark.parametrize("name", TASK_NAMES[1:])
def test_one_hot_inputs_have_exactly_one_active_token_per_step(name):
    x, _ = make_task(name, 30).sample(16, gen())
    assert torch.equal(x.sum(-1), torch.ones(x.shape[:2]))


@pytest.mark.parametrize("name", TASK_NAMES)
def test_same_seed_gives_identical_batches_and_global_rng_is_untouched(name):
    task = make_task(name, 25)
    state = torch.random.get_rng_state()
    x1, y1 = task.sample(8, gen(123))
    x2, y2 = task.sample(8, gen(123))
    x3, _ = task.sample(8, gen(124))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


# --- task semantics -----------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seq_len=st.integers(2, 200), seed=st.integers(0, 2**31))
def test_adding_has_one_marker_in_each_half_and_target_is_their_sum(seq_len, seed):
    x, y = make_task("adding", seq_len).sample(16, gen(seed))
    values, marker = x[..., 0], x[..., 1]
    half = seq_len // 2
    assert torch.all((values >= 0) & (values <= 1))
    assert torch.equal(marker[:, :half].sum(1), torch.ones(16))
    assert torch.equal(marker[:, half:].sum(1), torch.ones(16))
    torch.testing.assert_close(y, (values * marker).sum(1))


def test_copy_input_layout_and_targets():
    task = make_task("copy", 5)
    x, y = task.sample(32, gen())
    tokens = x.argmax(-1)
    assert torch.all(tokens[:, :10] < 8)  # the 10 symbols
    assert torch.all(tokens[:, 10:14] == 8)  # T - 1 = 4 blanks
    assert torch.all(tokens[:, 14] == 9)  # delimiter
    assert torch.all(tokens[:, 15:] == 8)  # 10 blanks during recall
    assert torch.all(y[:, :-10] == 8)
    assert torch.equal(y[:, -10:], tokens[:, :10])


@settings(max_examples=30, deadline=None)
@given(seq_len=st.integers(10, 300), seed=st.integers(0, 2**31))
def test_temporal_order_places_two_relevant_symbols_and_labels_their_order(seq_len, seed):
    task = make_task("temporal_order", seq_len)
    (lo1, hi1), (lo2, hi2) = task.positions()
    assert 1 <= lo1 <= hi1 < lo2 <= hi2 <= seq_len - 2
    x, y = task.sample(32, gen(seed))
    tokens = x.argmax(-1)
    assert torch.all(tokens[:, 0] == 6) and torch.all(tokens[:, -1] == 7)  # E ... B
    middle = tokens[:, 1:-1]
    relevant = (middle == 4) | (middle == 5)
    assert torch.all(relevant.sum(1) == 2)
    for row in range(32):
        t1, t2 = (torch.nonzero(relevant[row]).flatten() + 1).tolist()
        assert lo1 <= t1 <= hi1 and lo2 <= t2 <= hi2
        first_is_y, second_is_y = int(tokens[row, t1] == 5), int(tokens[row, t2] == 5)
        assert int(y[row]) == 2 * first_is_y + second_is_y


def test_temporal_order_matches_the_paper_positions_at_length_100():
    assert make_task("temporal_order", 100).positions() == ((10, 20), (50, 60))


def test_recall_shows_the_target_at_step_zero_and_only_distractors_after():
    task = make_task("recall", 40, num_symbols=5, num_distractors=3)
    assert (task.input_size, task.output_size) == (8, 5)
    x, y = task.sample(64, gen())
    tokens = x.argmax(-1)
    assert torch.equal(tokens[:, 0], y)
    assert torch.all((tokens[:, 1:] >= 5) & (tokens[:, 1:] < 8))


# --- baselines ----------------------------------------------------------------------


def test_adding_baseline_matches_loss_of_predicting_the_mean():
    task = make_task("adding", 50)
    _, y = task.sample(20_000, gen(1))
    const = torch.ones(20_000, task.steps, 1)  # E[U1 + U2] = 1
    assert task.baseline_loss == pytest.approx(1 / 6)
    assert task.loss(const, y).mean().item() == pytest.approx(task.baseline_loss, abs=0.01)


@pytest.mark.parametrize(
    "name,options", [("temporal_order", {}), ("recall", {}), ("recall", {"num_symbols": 3})]
)
def test_classification_baseline_matches_best_constant_logits(name, options):
    task = make_task(name, 30, **options)
    _, y = task.sample(20_000, gen(2))
    # Best constant logits = log of the empirical class frequencies.
    freq = torch.bincount(y, minlength=task.output_size).float() / len(y)
    const = freq.log().expand(len(y), task.steps, -1)
    assert task.loss(const, y).mean().item() == pytest.approx(task.baseline_loss, abs=0.01)


@pytest.mark.parametrize("seq_len", (1, 30))
def test_copy_baseline_matches_best_constant_logits_per_position(seq_len):
    task = make_task("copy", seq_len)
    assert task.baseline_loss == pytest.approx(10 * math.log(8) / (seq_len + 20))
    _, y = task.sample(5_000, gen(3))
    freq = F.one_hot(y, 10).float().mean(0)  # (steps, 10) per-position frequencies
    const = freq.clamp_min(1e-9).log().expand(len(y), -1, -1)
    assert task.loss(const, y).mean().item() == pytest.approx(task.baseline_loss, abs=0.01)


# --- loss and metric ----------------------------------------------------------------


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_oracle_output_is_solved_and_constant_output_is_not(name, dtype):
    task = make_task(name, 20)
    _, y = task.sample(256, gen())
    perfect = task.metric(oracle_outputs(task, y, dtype), y)
    assert task.is_solved(perfect)
    assert perfect == (1.0 if task.higher_is_better else 0.0)
    constant = task.metric(torch.zeros(256, task.steps, task.output_size, dtype=dtype), y)
    assert not task.is_solved(constant)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_is_solved_respects_threshold_direction_and_rejects_nan(name):
    task = make_task(name, 20)
    better = task.success + (0.001 if task.higher_is_better else -0.001)
    worse = task.success - (0.001 if task.higher_is_better else -0.001)
    assert task.is_solved(better) and not task.is_solved(worse)
    assert not task.is_solved(float("nan"))


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_loss_is_per_sequence_differentiable_and_independent_across_batch(name, dtype):
    task = make_task(name, 15)
    _, y = task.sample(4, gen())
    outputs = torch.randn(4, task.steps, task.output_size, dtype=dtype, generator=gen(5))
    outputs.requires_grad_(True)
    loss = task.loss(outputs, y)
    assert loss.shape == (4,) and loss.dtype == dtype
    loss[0].backward()
    assert outputs.grad[0].abs().sum() > 0
    assert torch.all(outputs.grad[1:] == 0)  # sequence 0's loss ignores the others
    changed = outputs.detach().clone()
    changed[1, :, 0] += 3.0  # one logit only: a shift of all logits is invisible to softmax
    assert task.loss(changed, y)[0] == loss[0].detach()
    assert task.loss(changed, y)[1] != loss[1].detach()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_last_step_tasks_only_use_the_last_output(name):
    task = make_task(name, 15)
    _, y = task.sample(4, gen())
    outputs = torch.randn(4, task.steps, task.output_size, generator=gen(6), requires_grad=True)
    task.loss(outputs, y).sum().backward()
    earlier_grad = outputs.grad[:, :-1].abs().sum().item()
    assert (earlier_grad == 0) == task.loss_at_last_step


def test_loss_rejects_outputs_of_the_wrong_shape():
    task = make_task("copy", 5)
    _, y = task.sample(2, gen())
    with pytest.raises(ValueError, match="steps"):
        task.loss(torch.zeros(2, 10, 10), y)
    with pytest.raises(ValueError, match="outputs"):
        make_task("recall", 5).loss(torch.zeros(2, 5, 3), torch.zeros(2, dtype=torch.long))


# --- validation ---------------------------------------------------------------------


def test_unknown_task_name_lists_the_allowed_names():
    with pytest.raises(ValueError, match="allowed: adding, copy, temporal_order, recall"):
        make_task("parity", 10)


@pytest.mark.parametrize(
    "name,seq_len", [("adding", 1), ("copy", 0), ("temporal_order", 9), ("recall", 1), ("adding", 2.5),
                     ("recall", True)]
)
def test_too_short_or_non_integer_seq_len_is_rejected(name, seq_len):
    with pytest.raises(ValueError, match="seq_len"):
        make_task(name, seq_len)


@pytest.mark.parametrize(
    "options,field",
    [({"num_symbols": 1}, "num_symbols"), ({"num_symbols": 65}, "num_symbols"),
     ({"num_distractors": 0}, "num_distractors"), ({"num_symbols": "8"}, "num_symbols")],
)
def test_recall_options_out_of_range_are_rejected(options, field):
    with pytest.raises(ValueError, match=field):
        make_task("recall", 10, **options)


def test_unknown_options_are_rejected_with_the_allowed_ones():
    with pytest.raises(ValueError, match="num_symbols.*allowed: none"):
        make_task("copy", 10, num_symbols=4)
    with pytest.raises(ValueError, match="allowed: num_symbols, num_distractors"):
        make_task("recall", 10, lag=3)


def test_recall_options_round_trip():
    task = make_task("recall", 12, num_symbols=16, num_distractors=2)
    assert task.options() == {"num_symbols": 16, "num_distractors": 2}
    assert make_task("recall", 12, **task.options()) == task


def test_bad_batch_size_is_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        make_task("adding", 10).sample(0, gen())


@pytest.mark.parametrize("name", TASK_NAMES)
def test_example_is_one_sample_of_the_task_as_a_tidy_frame(name):
    from core.tasks import example

    task = make_task(name, 12)
    frame, target = example(task, seed=3)
    x, y = task.sample(1, torch.Generator().manual_seed(3))
    assert list(frame.columns) == ["t", "channel", "value"]
    assert len(frame) == task.steps * task.input_size
    grid = frame.pivot(index="t", columns="channel", values="value")
    grid = grid[[f"x{c}" for c in range(task.input_size)]].to_numpy()
    assert (grid == x[0].numpy()).all()
    assert target and example(task, seed=3)[1] == target
