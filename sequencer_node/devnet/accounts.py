"""The devnet's well-known, funded accounts (public keys: never fund them on a real network).

* load accounts ``load_account_key(0 .. LOAD_ACCOUNTS-1)``: the senders of ``seqctl load``,
  funded on L1 and L2 by the devnet's genesis files;
* dev accounts ``dev_key(0 .. DEV_ACCOUNTS-1)``: the L1 mock's well-known dev accounts (the
  same seeds as ``l1_mock.genesis.dev_key``), funded on L1 and L2 as well; ``seqctl keys
  import --dev N`` writes one into a keystore for ``seqctl tx send``;
* Ethereum dev accounts :func:`eth_dev_accounts`: the ten accounts anvil and Hardhat fund,
  derived from the mnemonic ``test test ... junk`` along ``m/44'/60'/0'/0/i`` with
  eth-account's HD wallet, funded on L2 with :data:`ETH_DEV_FUNDING` each, for wallets and
  web3 libraries (the node's Ethereum JSON-RPC).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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


def load_keys() -> list[SigningKey]:
    """The load accounts the devnet funds."""
    return [load_account_key(i) for i in range(LOAD_ACCOUNTS)]


def funded_user_keys() -> list[SigningKey]:
    """Every well-known account the devnet funds: the load accounts, then the dev accounts."""
    return [
        *(load_account_key(i) for i in range(LOAD_ACCOUNTS)),
        *(dev_key(i) for i in range(DEV_ACCOUNTS)),
    ]


#: The mnemonic of anvil's and Hardhat's development accounts (public: test networks only).
ETH_DEV_MNEMONIC = "test test test test test test test test test test test junk"
#: Ethereum dev accounts the devnet funds on L2 (anvil and Hardhat fund ten).
ETH_DEV_ACCOUNTS = 10
#: What each gets on L2: 10,000 ether in wei, as anvil gives.
ETH_DEV_FUNDING = 10_000 * 10**18


@dataclass(frozen=True, slots=True)
class EthDevAccount:
    """One Ethereum dev account: its checksummed address and private key (both ``0x`` hex)."""

    index: int
    address: str
    private_key: str

    @property
    def address_bytes(self) -> bytes:
        return bytes.fromhex(self.address[2:])


def eth_load_private_key(native: SigningKey) -> bytes:
    """The secp256k1 key of the Ethereum twin of a load account (``seqctl load --kind eth``
    sends from it; the devnet funds the twins of the first :data:`LOAD_ACCOUNTS`)."""
    import hashlib

    return hashlib.sha256(b"seqnet/devnet-eth-load/" + native.public_key).digest()


def eth_load_address(native: SigningKey) -> bytes:
    """The address of :func:`eth_load_private_key`."""
    return _eth_address(eth_load_private_key(native))


@functools.cache
def _eth_address(private_key: bytes) -> bytes:
    from eth_keys.datatypes import PrivateKey

    return bytes(PrivateKey(private_key).public_key.to_canonical_address())


@functools.cache
def eth_dev_accounts(count: int = ETH_DEV_ACCOUNTS) -> tuple[EthDevAccount, ...]:
    """The first ``count`` accounts of :data:`ETH_DEV_MNEMONIC` (``m/44'/60'/0'/0/i``):
    0xf39F...2266, 0x7099...79C8, ... as anvil and Hardhat print them."""
    from eth_account import Account  # the HD wallet costs an import: only when asked

    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(count):
        acct = Account.from_mnemonic(ETH_DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append(EthDevAccount(i, acct.address, "0x" + bytes(acct.key).hex()))
    return tuple(out)


def eth_dev_account_lines(chain_id: int, rpc_url: str) -> list[str]:
    """The Ethereum dev accounts as anvil prints them at start-up, with how to connect."""
    accounts = eth_dev_accounts()
    ether = ETH_DEV_FUNDING // 10**18
    return [
        f"Available Ethereum dev accounts (funded on L2 with {ether:,} ETH each)",
        "==================",
        *(f"({a.index}) {a.address} ({ether} ETH)" for a in accounts),
        "",
        "Private Keys",
        "==================",
        *(f"({a.index}) {a.private_key}" for a in accounts),
        "",
        "Wallet",
        "==================",
        f"Mnemonic:          {ETH_DEV_MNEMONIC}",
        "Derivation path:   m/44'/60'/0'/0/",
        f"Ethereum JSON-RPC: {rpc_url} (chain id {chain_id})",
    ]
