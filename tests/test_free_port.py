"""gateway.demo.stack.free_port: the ports the demo, the bench and the tests start servers on."""

from __future__ import annotations

import socket

from gateway.demo.stack import RECENT_PORTS, free_port


def test_a_port_is_free_when_handed_out() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # OSError if it were taken


def test_ports_handed_out_in_a_row_are_all_different() -> None:
    """Callers take several ports before binding any (an nginx's service and status ports, a
    stack's four servers): none may be handed the same port twice."""
    ports = [free_port() for _ in range(RECENT_PORTS)]
    assert len(set(ports)) == len(ports)
