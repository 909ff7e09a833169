"""The mock L1 node: a pure chain/ledger (``l1_mock.chain``) and a thin Trio HTTP server."""
