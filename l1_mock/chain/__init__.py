"""The pure L1 chain: fee market, accounts, staking contract, batch inbox. No I/O, no clock:
slots and timestamps are inputs, so the same inputs always give the same chain."""
