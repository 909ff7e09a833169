"""``python -m sequencer_node``: runs the sequencer node's command line."""

from sequencer_node.cli.sequencer_node_command import main

if __name__ == "__main__":
    main()
