"""The security tier: every test marked ``attack`` tries one attack on the trust boundary
(docs/security.md) and passes only if the attack fails. The run ends with a count of them."""

from __future__ import annotations

import pytest

ATTACK = "attack"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    attacks = {"passed": 0, "failed": 0}
    for outcome in attacks:
        for report in terminalreporter.stats.get(outcome, []):
            if report.when == "call" and ATTACK in report.keywords:
                attacks[outcome] += 1
    tried = attacks["passed"] + attacks["failed"]
    if tried:
        terminalreporter.write_line(
            f"security: {tried} attacks tried, {attacks['passed']} refused, "
            f"{attacks['failed']} got through")
