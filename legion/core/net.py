"""Sockets shared by every Legion server: bound before the app starts, so ``--port 0`` works and is announced."""

from __future__ import annotations

import socket


def bind(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A socket on ``host:port`` in the SO_REUSEPORT group; ``listen=False`` only reserves the port (a socket
    that listens but never accepts would be handed its share of the connections and leave them hanging)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)  # connections queue from now on, even while the app is still importing
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
