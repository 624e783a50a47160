"""Ports for the processes the tests and the demo start are taken below the ephemeral range."""

from __future__ import annotations

import socket

from airflow_stack.env import free_port
from sandbox.ports import HOST, ephemeral_start, free_run


def test_a_run_of_free_ports_lies_below_the_ephemeral_range_and_binds():
    base = free_run(8)
    assert base + 8 <= ephemeral_start()
    sockets = [socket.socket() for _ in range(8)]
    try:
        for offset, sock in enumerate(sockets):
            sock.bind((HOST, base + offset))
    finally:
        for sock in sockets:
            sock.close()


def test_the_stack_s_ports_come_from_the_same_place():
    assert all(free_port() < ephemeral_start() for _ in range(20))


def test_an_outgoing_connection_never_takes_a_chosen_port():
    """What failed: the API server's port, free when chosen, was an outgoing connection's source port."""
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            source_port = client.getsockname()[1]
    assert source_port >= ephemeral_start() > free_port()
