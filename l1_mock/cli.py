"""``l1-mock`` / ``python -m l1_mock``: the mock L1 node's command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqnet")
def main() -> None:
    """A mock Ethereum L1 node for seqnet: EIP-4844 blob fee market with real KZG checks,
    blob retention, the sequencer staking contract and the batch inbox.

    Every option is also read from a SEQ_L1_* environment variable (e.g. --port from
    SEQ_L1_PORT).
    """
