"""Derivation: rebuild the L2 chain from L1 alone (inbox headers, blobs or calldata)."""
