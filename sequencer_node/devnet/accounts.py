"""The devnet's well-known, funded accounts (public keys: never fund them on a real network).

* load accounts ``load_account_key(0 .. LOAD_ACCOUNTS-1)``: the senders of ``seqctl load``,
  funded on L1 and L2 by the devnet's genesis files;
* dev accounts ``dev_key(0 .. DEV_ACCOUNTS-1)``: the L1 mock's well-known dev accounts (the
  same seeds as ``l1_mock.genesis.dev_key``), funded on L1 and L2 as well; ``seqctl keys
  import --dev N`` writes one into a keystore for ``seqctl tx send``.
"""

from __future__ import annotations

from sequencer_node.wire.crypto import SigningKey

#: Load accounts the devnet funds.
LOAD_ACCOUNTS = 32
#: L1 mock dev accounts the devnet also funds on L2.
DEV_ACCOUNTS = 10
#: The dev account the devnet writes to ``keys/user.json`` for the user's own transfers.
USER_DEV_ACCOUNT = 0


def load_account_key(i: int) -> SigningKey:
    """The ``i``-th load account (deterministic, so any tool finds the devnet's funded keys)."""
    if i < 0:
        raise ValueError("account index must be >= 0")
    return SigningKey.deterministic(f"devnet-load-{i}")


def dev_key(i: int) -> SigningKey:
    """The L1 mock's ``i``-th well-known dev account."""
    if i < 0:
        raise ValueError("account index must be >= 0")
    return SigningKey.deterministic(f"dev-{i}")


def funded_user_keys() -> list[SigningKey]:
    """Every well-known account the devnet funds: the load accounts, then the dev accounts."""
    return [
        *(load_account_key(i) for i in range(LOAD_ACCOUNTS)),
        *(dev_key(i) for i in range(DEV_ACCOUNTS)),
    ]
