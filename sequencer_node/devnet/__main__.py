"""``python -m sequencer_node.devnet``: the devnet commands without the rest of ``seqctl``
(the devnet starts its built-in load generator this way)."""

from sequencer_node.cli.devnet import devnet

if __name__ == "__main__":
    devnet(prog_name="python -m sequencer_node.devnet")
