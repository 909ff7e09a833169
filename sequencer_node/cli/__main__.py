"""``python -m sequencer_node.cli``: ``seqctl`` where its console script is not installed."""

from sequencer_node.cli.seqctl import main

if __name__ == "__main__":
    main(prog_name="seqctl")
