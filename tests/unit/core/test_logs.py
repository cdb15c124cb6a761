"""JSON logs are one parseable object per line."""

from __future__ import annotations

import json
import logging

from cca_core.infra.logs import JsonFormatter


def test_json_records_carry_level_logger_and_message():
    record = logging.LogRecord("cca.worker", logging.WARNING, __file__, 1, "task %s lost", ("t1",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["logger"] == "cca.worker"
    assert entry["message"] == "task t1 lost" and entry["time"].endswith("+00:00")


def test_exceptions_stay_on_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]
