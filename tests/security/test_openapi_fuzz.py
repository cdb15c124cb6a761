"""Schemathesis against the OpenAPI document of a real API process: generated requests,
valid and invalid, never cause a server error or a response the document does not allow."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from cca_api import routes
from cca_api.openapi import build_spec
from tests.conftest import start_api_process

pytestmark = [pytest.mark.integration, pytest.mark.attack]
KEY = "fuzz-admin-key-0123456789"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_server_error_or_schema_violation(config_data, tmp_path):
    fuzzed = {**config_data, "daemon": {**config_data["daemon"], "require_auth": True,
                                        "api_keys": [KEY]},
              "security": {"rate_limit_per_minute": 0, "ip_rate_limit_per_minute": 0}}
    url = start_api_process(tmp_path, fuzzed)
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(build_spec(routes())))
    binary = shutil.which("schemathesis", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert binary, "schemathesis is not installed (scripts/setup installs the test extras)"
    run = subprocess.run(
        [binary, "run", str(spec), "--url", url, "--header", f"X-API-Key: {KEY}",
         "--checks", CHECKS, "--max-examples", "25", "--seed", "7", "--generation-deterministic",
         "--request-timeout", "10", "--warnings", "off",
         # Live streams answer until their task ends (tests/integration/test_live.py checks
         # their errors: a bad cursor is a 422 naming it, an unknown task a 404).
         "--exclude-path-regex", "/stream$"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    # Long generated values (percent-encoded) are cut so the failing operation stays in view.
    report = re.sub(r"(%[0-9A-F]{2}){16,}", "%…", run.stdout + run.stderr)
    assert run.returncode == 0, report[-8000:]
