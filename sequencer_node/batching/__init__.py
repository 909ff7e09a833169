"""Batches for L1: the payload codec, compression, and EIP-4844 blob packing (all pure)."""
