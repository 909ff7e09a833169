"""Wire formats shared by the sequencer nodes and the mock L1.

``codec``: the canonical, strict msgpack encoding and domain-separated signing bytes.
``crypto``: Ed25519 keys, signatures and addresses.
``messages``: every message both sides verify.
``certificates``: stake-weighted checks of certificates and evidence.

This package imports nothing from the rest of ``sequencer_node``; ``l1_mock`` may import it.
"""
