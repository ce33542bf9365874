"""The one config type: strict validation, lenient parsing for links, and properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import FIELD_BY_NAME, FIELDS, ConfigError, TrainConfig, parse_config


def test_defaults_are_valid_and_match_the_cli_example():
    c = TrainConfig()
    assert (c.task, c.arch, c.seq_len, c.hidden_size, c.batch_size, c.lr, c.steps, c.seed,
            c.probe_every) == ("adding", "lstm", 100, 64, 64, 0.003, 3000, 0, 50)


@pytest.mark.parametrize("field,value,allowed", [
    ("seq_len", 1, "from 2 to 1000"),
    ("seq_len", 1001, "from 2 to 1000"),
    ("hidden_size", 0, "from 1 to 512"),
    ("batch_size", 2000, "from 1 to 1024"),
    ("steps", 0, "from 1 to 100000"),
    ("lr", -1.0, "float"),
    ("arch", "transformer", "one of rnn_tanh"),
    ("optimizer", "lbfgs", "one of adam"),
    ("seq_len", "abc", "int"),
    ("seq_len", 2.5, "int"),
    ("hidden_size", True, "int"),
    ("lr", float("nan"), "float"),
])
def test_out_of_range_or_wrong_type_is_refused_naming_the_field(field, value, allowed):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{field: value})
    assert field in e.value.errors
    assert allowed in str(e.value)


def test_strings_from_urls_and_flags_are_coerced():
    c = TrainConfig.from_dict({"seq_len": "20", "lr": "0.01", "clip": "1", "no_forget_gate": "true"})
    assert (c.seq_len, c.lr, c.clip, c.no_forget_gate) == (20, 0.01, 1.0, True)
    assert TrainConfig.from_dict({"clip": ""}).clip is None


def test_options_of_another_architecture_are_refused():
    with pytest.raises(ConfigError, match="forget_bias: applies to lstm only"):
        TrainConfig(arch="gru", forget_bias=1.0)
    with pytest.raises(ConfigError, match="coupled_gates"):
        TrainConfig(no_forget_gate=True, coupled_gates=True)


def test_task_constraints_surface_as_a_seq_len_error():
    with pytest.raises(ConfigError) as e:
        TrainConfig(task="temporal_order", seq_len=5)
    assert "seq_len" in e.value.errors


def test_unknown_fields_are_refused():
    with pytest.raises(ConfigError, match="not a configuration field"):
        TrainConfig.from_dict({"hiden_size": 3})


def test_lenient_parse_keeps_defaults_and_reports_each_bad_field():
    config, errors = parse_config({"seq_len": "99999", "hidden_size": "abc", "arch": "gru",
                                   "bogus": "1"})
    assert config.seq_len == 100 and config.hidden_size == 64 and config.arch == "gru"
    assert set(errors) == {"seq_len", "hidden_size", "bogus"}
    assert "from 2 to 1000" in errors["seq_len"]


def test_round_trip_through_dict():
    c = TrainConfig(arch="rnn_relu", init="identity", spectral_radius=1.5, clip=2.0)
    assert TrainConfig.from_dict(c.to_dict()) == c


_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in FIELDS] + ["junk"]), _values, max_size=6))
def test_lenient_parse_never_raises_and_always_returns_a_valid_config(d):
    config, errors = parse_config(d)
    assert isinstance(config, TrainConfig)
    TrainConfig.from_dict(config.to_dict())  # valid by construction
    for k in errors:
        assert k in d


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in FIELDS]), _values, max_size=4))
def test_strict_parse_raises_only_config_errors_naming_fields(d):
    try:
        TrainConfig.from_dict(d)
    except ConfigError as e:
        assert e.errors and all(k in FIELD_BY_NAME for k in e.errors)
