"""``seqctl``: the operator's command line (keys, staking, status, devnet)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqnet")
def main() -> None:
    """Operate seqnet sequencers: keys, stake, status, evidence, batches, devnet.

    Options also read SEQ_* environment variables (e.g. --node-url from SEQ_NODE_URL).
    """
