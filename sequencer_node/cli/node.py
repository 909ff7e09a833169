"""``sequencer-node`` / ``python -m sequencer_node``: the sequencer node's command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqnet")
def main() -> None:
    """A sequencer node of the seqnet decentralized sequencer network.

    Every option is also read from a SEQ_* environment variable (e.g. --l1-url from
    SEQ_L1_URL); flags win over the environment.
    """
