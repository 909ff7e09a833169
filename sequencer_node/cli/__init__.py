"""Command-line entry points: ``sequencer-node`` (the node process) and ``seqctl`` (operators)."""
