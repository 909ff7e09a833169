"""The pure protocol core: election, BFT agreement, mempool, execution, evidence (no I/O)."""
