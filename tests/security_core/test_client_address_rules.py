"""The trusted-proxy setting and the address a request is counted against: blank entries in
the list are skipped (the rest still read), a network written with host bits set means its
network, and a request with no peer address is counted as "unknown"."""

from __future__ import annotations

import ipaddress

from keyrelease.client_address import client_address, parse_networks


def test_blank_entries_are_skipped_and_host_bits_name_their_network():
    assert parse_networks(" , 192.0.2.1, ,10.1.2.3/8,") == (
        ipaddress.ip_network("192.0.2.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )


def test_a_request_without_a_peer_address_is_counted_as_unknown():
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address(None, [], ()) == "unknown"
    assert client_address(None, ["198.51.100.7"], trusted) == "unknown"  # "unknown" is no trusted proxy
