"""Webhook signing (and the README's verification snippet, run as written) and which targets
count as public (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cca_core.errors import Invalid
from cca_core.webhooks import signing
from cca_core.webhooks.targets import check_target, check_url

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_verify():
    text = README.read_text()
    block = re.search(r"To verify:\n\n```python\n(.*?)```", text, re.S)
    assert block, "the README shows how to verify a delivery"
    namespace: dict = {}
    exec(block.group(1), namespace)  # noqa: S102 - the documented snippet, run as a user would
    return namespace["verify"]


def test_the_documented_snippet_verifies_what_cca_signs_and_nothing_else():
    verify = readme_verify()
    body = b'{"id":1,"event":"task.finished"}'
    headers = signing.headers("whsec_x", "task.finished", 1, body)
    assert verify("whsec_x", headers, body) and signing.verify("whsec_x", headers["X-CCA-Timestamp"],
                                                               headers["X-CCA-Signature"], body)
    assert not verify("whsec_y", headers, body)
    assert not verify("whsec_x", headers, body + b" ")
    old = signing.headers("whsec_x", "task.finished", 1, body, now=1_000_000)
    assert not verify("whsec_x", old, body)  # a replay from long ago


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://[::1]/", "http://10.0.0.1/", "http://172.16.5.4/",
                                 "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data",
                                 "http://100.64.1.1/", "http://0.0.0.0/", "http://224.0.0.1/",
                                 "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "http://240.0.0.1/"])
def test_addresses_of_the_fleets_own_networks_are_refused(url):
    with pytest.raises(Invalid, match="not a public address"):
        check_target(url, allow_private=False)
    check_target(url, allow_private=True)  # an admin's choice


def test_public_addresses_and_bad_urls():
    check_target("https://1.1.1.1/hook", allow_private=False)
    check_target("http://[2606:4700:4700::1111]:8443/x", allow_private=False)
    for url in ("ftp://1.1.1.1/", "https://", "https://u:p@1.1.1.1/", "https://1.1.1.1/" + "x" * 3000):
        with pytest.raises(Invalid) as refused:
            check_url(url)
        assert refused.value.field == "url"
