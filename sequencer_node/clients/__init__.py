"""HTTP clients: of the L1 (JSON-RPC + Beacon API) and of a sequencer node's RPC."""
