"""What a reader of the external DA layer checks, shared by the L1 mock, the DA mock and the
node: NMT and Merkle proofs, the share format, Blobstream-style attestations and DA pointers.
Pure; imports nothing but the wire package (docs/da.md)."""
