"""``HOST:PORT`` as written on command lines, in environment variables and on L1.

One parser for listen addresses (``--p2p-listen``, ``--rpc-listen``), peer addresses
(``--peers``, the addresses sequencers register on L1) and ``seqctl stake register
--p2p-address``. IPv6 hosts are written in brackets: ``[::1]:9000``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, any_port: bool = False) -> HostPort:
        """Parse ``host:port``; ``any_port`` also accepts port 0 (listen on any free port).

        Raises ValueError with what to write instead.
        """
        host, sep, port = text.strip().rpartition(":")
        low = 0 if any_port else 1
        if not sep or not host.strip("[]") or not port.isdigit() or not low <= int(port) < 65536:
            example = "e.g. 127.0.0.1:9000; port 0 = any" if any_port else "e.g. 127.0.0.1:9000"
            raise ValueError(f"{text!r} is not HOST:PORT ({example})")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
