from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cca_core.infra import embedded
from cca_core.infra.embedded import free_port

EPHEMERAL_FROM = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_port_is_bindable_and_outside_the_ephemeral_range() -> None:
    ports = {free_port() for _ in range(20)}

    assert all(20000 <= port < EPHEMERAL_FROM for port in ports)
    assert len(ports) > 1  # chosen at random, not the same port every time
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        in_use = taken.getsockname()[1]
        other = free_port()
        draws = iter([in_use, in_use, other])
        monkeypatch.setattr(embedded.random, "randrange", lambda *_: next(draws))

        assert free_port() == other
