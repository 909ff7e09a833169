"""``seqctl``: the operator's command line (keys, staking, status, transactions, devnet)."""

from __future__ import annotations

import click

from sequencer_node.cli.devnet import devnet
from sequencer_node.cli.fees import fees
from sequencer_node.cli.keys import keys
from sequencer_node.cli.load import load
from sequencer_node.cli.network import batches, blob, evidence, leaders, status
from sequencer_node.cli.stake import sequencers, stake
from sequencer_node.cli.tx import account, tx


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="seqnet")
def main() -> None:
    """Operate seqnet sequencers: keys, stake, status, evidence, batches, transactions, accounts,
    devnet.

    Exit codes: 0 success, 1 failed request, 2 usage error, 3 node or L1 unreachable,
    4 keystore could not be opened (wrong password, damaged file).
    """


main.add_command(keys)
main.add_command(devnet)
main.add_command(stake)
main.add_command(sequencers)
main.add_command(tx)
main.add_command(fees)
main.add_command(account)
main.add_command(status)
main.add_command(leaders)
main.add_command(evidence)
main.add_command(batches)
main.add_command(blob)
main.add_command(load)
