"""The shared ``HOST:PORT`` parser and the ``0x``-hex helpers."""

from __future__ import annotations

import pytest

from sequencer_node.system.hostport import HostPort
from sequencer_node.wire.hexstr import from_hex, opt_hex, to_hex


def test_host_port_parses_names_addresses_and_ipv6() -> None:
    assert HostPort.parse("127.0.0.1:9000") == HostPort("127.0.0.1", 9000)
    assert HostPort.parse("node-1:8600") == HostPort("node-1", 8600)
    assert HostPort.parse("[::1]:9000") == HostPort("::1", 9000)
    assert str(HostPort.parse("[::1]:9000")) == "[::1]:9000"
    assert str(HostPort("10.0.0.5", 9000)) == "10.0.0.5:9000"


@pytest.mark.parametrize("text", ["9000", ":9000", "host:", "host:x", "host:65536", "host:0"])
def test_host_port_refuses_what_is_not_host_port(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        HostPort.parse(text)


def test_port_zero_only_where_any_port_is_allowed() -> None:
    assert HostPort.parse("0.0.0.0:0", any_port=True).port == 0
    with pytest.raises(ValueError, match="port 0 = any"):
        HostPort.parse("0.0.0.0:x", any_port=True)


def test_hex_round_trip_and_errors() -> None:
    assert to_hex(b"\x01\xab") == "0x01ab"
    assert opt_hex(None) is None
    assert from_hex("0x01ab") == b"\x01\xab" == from_hex("01ab")
    assert from_hex("0x" + "00" * 20, 20) == bytes(20)
    with pytest.raises(ValueError, match="address '0x00' is not 20 bytes"):
        from_hex("0x00", 20, "address")
    with pytest.raises(ValueError, match="is not hex"):
        from_hex("0xzz")
