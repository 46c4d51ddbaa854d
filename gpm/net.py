"""Small network helpers every server part shares: what counts as loopback, listening sockets."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this machine only."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_sockets(host: str, ports: list[int], what: str) -> list[socket.socket]:
    """Bind listening sockets up front so a busy port is a clear error, not a log line later."""
    socks: list[socket.socket] = []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in dict.fromkeys(ports):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            for s in socks:
                s.close()
            raise OSError(
                f"{what}: cannot listen on {host}:{port}: {exc.strerror} "
                f"(is another program using the port? change it in the config)"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def bound_port(site: web.TCPSite) -> int:
    """The port an aiohttp site listens on (the one the OS chose when asked for port 0)."""
    server = site._server
    sockets = getattr(server, "sockets", None)
    if not sockets:
        raise RuntimeError("the site is not listening")
    port: int = sockets[0].getsockname()[1]
    return port
