"""Task tokens verify only for the task and secret they were minted with."""

from __future__ import annotations

from cca_core.access.task_tokens import mint, verify

TASK = "0b7f3e1c-8a4d-4c2e-9f00-1234567890ab"


def test_a_token_names_its_task():
    assert verify("s3cret", mint("s3cret", TASK)) == TASK


def test_forged_or_foreign_tokens_do_not_verify():
    token = mint("s3cret", TASK)
    assert verify("other", token) is None
    assert verify("s3cret", token.replace(TASK, "0b7f3e1c-8a4d-4c2e-9f00-1234567890ac")) is None
    assert verify("s3cret", token[:-2] + "xx") is None
    assert verify("", token) is None
    assert verify("s3cret", "cca_abc_def") is None


def test_tokens_verify_whatever_characters_the_mac_has():
    tasks = [f"0b7f3e1c-8a4d-4c2e-9f00-{n:012d}" for n in range(200)]
    tokens = [mint("s3cret", task) for task in tasks]
    assert any("_" in token[len("ccat_") + 36 + 1:] for token in tokens)
    assert [verify("s3cret", token) for token in tokens] == tasks
