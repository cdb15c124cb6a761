"""Bounded by design: NUL escaping, metric label caps, connection budgets (pure code)."""

from __future__ import annotations

from cca_core.fleet.metrics import MAX_LABEL_CHARS, MAX_SERIES, OTHER, bounded
from cca_core.infra.config import validate
from cca_core.infra.connections import connection_warning, host_connections
from cca_core.infra.pgsafe import escape_nul, nul_path


def test_nul_characters_are_escaped_in_strings_and_keys_and_nothing_else_changes():
    event = {"type": "user", "n": 1, "ok": True, "none": None,
             "content": [{"text": "a\x00b", "k\x00": "\x00"}], "plain": "x\\u0000"}
    assert escape_nul(event) == {"type": "user", "n": 1, "ok": True, "none": None,
                                 "content": [{"text": "a\\u0000b", "k\\u0000": "\\u0000"}],
                                 "plain": "x\\u0000"}


def test_metric_labels_keep_the_largest_values_and_sum_the_rest_as_other():
    values = {f"model-{n}": float(n) for n in range(MAX_SERIES + 30)}
    labelled = bounded(values)
    assert len(labelled) == MAX_SERIES + 1
    assert sum(labelled.values()) == sum(values.values())
    assert labelled[OTHER] == sum(range(30))
    assert labelled[f"model-{MAX_SERIES + 29}"] == MAX_SERIES + 29


def test_metric_label_values_are_cut():
    assert list(bounded({"m" * 500: 1.0})) == ["m" * MAX_LABEL_CHARS]


def test_default_pool_sizes_fit_a_default_postgres():
    settings = validate({})
    assert sum(host_connections(settings).values()) <= 100 - 3
    assert connection_warning(settings) is None


def test_pool_sizes_above_the_server_limit_are_named_by_config_check():
    settings = validate({"postgres": {"pool_size": 20, "max_connections": 50},
                         "daemon": {"max_agents": 20}})
    warning = connection_warning(settings)
    assert warning is not None and "postgres.server_max_connections = 100" in warning


def test_the_first_nul_of_an_input_is_located_by_its_field_path():
    assert nul_path({"prompt": "ok", "tools": ["a", {"k": "b\x00"}]}) == "tools[1].k"
    assert nul_path({"a\x00": 1}) == "a\x00"
    assert nul_path({"prompt": "ok", "n": 1, "tools": []}) is None
