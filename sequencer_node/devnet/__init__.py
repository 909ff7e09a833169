"""The local devnet: an L1 mock, N sequencer nodes and a load generator as local processes.

``seqctl devnet`` (``sequencer_node.cli.devnet``) is the command line; this package holds the
parts: :mod:`.config` (settings and the directory layout), :mod:`.setup` (keys, genesis files,
staking through the operator's L1 calls), :mod:`.procs` (starting and stopping the processes),
:mod:`.monitor` (status polling and rendering) and :mod:`.runner` (``up`` and ``down``). The
load is the operator's own generator, ``seqctl load``, on the accounts the genesis funds.
docs/devnet.md describes what ``up`` does step by step.
"""
