"""The staking contract: sequencer registrations, bonded and unbonding stake, rewards, jail,
slashing by evidence, jailing by downtime certificates, and the stake snapshot of each epoch.

Every call has a pure ``check_*`` (reads state, raises :class:`CallFailed` with the reason,
returns what the apply needs) and an ``apply_*`` that only changes state and cannot fail. A
dry run at submission is the check alone.

Stake snapshots: when a block opens L1 epoch E, the chain records the active sequencers' stake
as of that moment (the state at the start of E) with the seed ``hash of the last block before
E``. A snapshot is *finalized* once the head is two epochs past it (epoch 0, genesis, is final
from the start).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass, field

from l1_mock.chain.accounts import Accounts
from l1_mock.chain.config import ChainConfig, GenesisSequencer
from l1_mock.chain.errors import CallFailed
from sequencer_node.batching.inbox_rule import stake_epoch_refusal
from sequencer_node.wire.certificates import (
    CertificateError,
    verify_downtime_certificate,
    verify_evidence,
)
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import (
    GWEI,
    ClaimRewards,
    LockStake,
    RegisterSequencer,
    ReportDowntime,
    SubmitEvidence,
    Unjail,
    UnlockStake,
    UpdateSequencer,
    WithdrawStake,
)
from sequencer_node.wire.messages import DowntimeReport, EvidenceKind


class SequencerStatus(enum.StrEnum):
    """Where a registration stands; the values are what ``staking_getSequencers`` answers."""

    #: Bonded stake, not jailed: in the next snapshot.
    ACTIVE = "active"
    #: Jailed by a downtime certificate.
    JAILED = "jailed"
    #: Jailed (and cut) by evidence.
    SLASHED = "slashed"
    #: No bonded stake; unbonding entries left.
    UNBONDING = "unbonding"
    #: Nothing left.
    WITHDRAWN = "withdrawn"


@dataclass(slots=True)
class Sequencer:
    """One registration in the staking contract."""

    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int = 0
    #: (release epoch, amount), oldest first.
    unbonding: list[tuple[int, int]] = field(default_factory=list)
    rewards: int = 0
    jailed: bool = False
    slashed: bool = False
    jailed_until_epoch: int = 0

    @property
    def unbonding_total(self) -> int:
        return sum(a for _, a in self.unbonding)

    @property
    def status(self) -> SequencerStatus:
        if self.jailed:
            return SequencerStatus.SLASHED if self.slashed else SequencerStatus.JAILED
        if self.stake > 0:
            return SequencerStatus.ACTIVE
        return SequencerStatus.UNBONDING if self.unbonding else SequencerStatus.WITHDRAWN


@dataclass(frozen=True, slots=True)
class StakeEntry:
    """One active sequencer's bonded stake in an :class:`EpochStakeSnapshot`."""

    signing_key: bytes
    owner: bytes
    p2p_address: str
    rpc_address: str
    stake: int


@dataclass(frozen=True, slots=True)
class EpochStakeSnapshot:
    """The stake table the L1 recorded when ``epoch`` opened, and that epoch's election seed."""

    epoch: int
    seed: bytes
    entries: tuple[StakeEntry, ...]

    @property
    def stakes(self) -> dict[bytes, int]:
        return {e.signing_key: e.stake for e in self.entries}


@dataclass(frozen=True, slots=True)
class Offence:
    """One slashable equivocation: each is punished once."""

    offender: bytes
    kind: EvidenceKind
    round: int


def stake_epoch_problem(stake_epoch: int, current_epoch: int, max_age: int) -> str | None:
    """Why a certificate may not name the snapshot of ``stake_epoch`` at ``current_epoch``, or
    None. The batch inbox and downtime reports share this rule (one copy, with the co-signers:
    :func:`sequencer_node.batching.inbox_rule.stake_epoch_refusal`)."""
    refusal = stake_epoch_refusal(stake_epoch, current_epoch, max_age)
    return None if refusal is None else refusal.message


def downtime_report_id(r: DowntimeReport) -> bytes:
    """The identity of a report: its fields without the (per-signer) signer and signature."""
    return message_id(dataclasses.replace(r, signer=bytes(32), signature=bytes(64)))


class Staking:
    """The staking contract's state (see the module docstring)."""

    def __init__(self, config: ChainConfig) -> None:
        self.config = config
        self.sequencers: dict[bytes, Sequencer] = {}
        self.snapshots: dict[int, EpochStakeSnapshot] = {}
        self.offences: set[Offence] = set()
        self.downtime_reports: set[bytes] = set()

    def add_genesis(self, s: GenesisSequencer) -> None:
        if not self.config.min_stake <= s.stake <= self.config.max_stake:
            raise ValueError("genesis sequencer stake outside [min_stake, max_stake]")
        self.sequencers[s.signing_key] = Sequencer(
            s.signing_key, s.owner, s.p2p_address, s.rpc_address, s.stake
        )

    def total(self) -> int:
        """Stake, unbonding stake and unclaimed rewards held by the contract."""
        return sum(s.stake + s.unbonding_total + s.rewards for s in self.sequencers.values())

    def owned(self, sender: bytes, key: bytes) -> Sequencer:
        s = self.sequencers.get(key)
        if s is None:
            raise CallFailed(f"no sequencer is registered with signing key {key.hex()}")
        if s.owner != sender:
            raise CallFailed(
                f"sequencer {key.hex()[:16]} belongs to account {to_hex(s.owner)}, "
                f"not to the caller {to_hex(sender)}"
            )
        return s

    # --- snapshots -----------------------------------------------------------------------

    def take_snapshot(self, epoch: int, seed_block_hash: bytes) -> None:
        entries = tuple(
            StakeEntry(s.signing_key, s.owner, s.p2p_address, s.rpc_address, s.stake)
            for s in sorted(self.sequencers.values(), key=lambda s: s.signing_key)
            if s.status is SequencerStatus.ACTIVE
        )
        seed = hashlib.sha256(b"seqnet/election-seed" + seed_block_hash).digest()
        self.snapshots[epoch] = EpochStakeSnapshot(epoch, seed, entries)

    def prune_snapshots(self, current_epoch: int) -> None:
        """Drop snapshots that no certificate may name any more (the genesis one too)."""
        keep_from = current_epoch - self.config.unbonding_epochs - 2
        for e in [e for e in self.snapshots if e < keep_from]:
            del self.snapshots[e]

    # --- register, lock, unlock, withdraw ------------------------------------------------

    def check_register(self, sender: bytes, p: RegisterSequencer, balance: int) -> None:
        cfg = self.config
        stake = p.stake_gwei * GWEI
        if p.signing_key in self.sequencers:
            raise CallFailed(f"signing key {p.signing_key.hex()} is already registered")
        if not cfg.min_stake <= stake <= cfg.max_stake:
            raise CallFailed(f"stake {stake} is outside [{cfg.min_stake}, {cfg.max_stake}]")
        if stake > balance:
            raise CallFailed(f"stake {stake} exceeds the balance {balance}")

    def apply_register(self, accounts: Accounts, sender: bytes, p: RegisterSequencer) -> None:
        accounts.debit(sender, p.stake_gwei * GWEI)
        self.sequencers[p.signing_key] = Sequencer(
            p.signing_key, sender, p.p2p_address, p.rpc_address, p.stake_gwei * GWEI
        )

    def check_lock(self, sender: bytes, p: LockStake, balance: int) -> Sequencer:
        s = self.owned(sender, p.signing_key)
        amount = p.amount_gwei * GWEI
        total = s.stake + amount
        if amount == 0 or not self.config.min_stake <= total <= self.config.max_stake:
            raise CallFailed(
                f"stake would be {total}, outside [{self.config.min_stake}, "
                f"{self.config.max_stake}]"
            )
        if amount > balance:
            raise CallFailed(f"lock of {p.amount_gwei} gwei exceeds the balance {balance}")
        return s

    def apply_lock(self, accounts: Accounts, s: Sequencer, p: LockStake) -> None:
        accounts.debit(s.owner, p.amount_gwei * GWEI)
        s.stake += p.amount_gwei * GWEI

    def check_unlock(self, sender: bytes, p: UnlockStake) -> tuple[Sequencer, int]:
        """The sequencer and the amount to unlock (``amount_gwei`` 0 means all of it)."""
        s = self.owned(sender, p.signing_key)
        amount = p.amount_gwei * GWEI or s.stake
        if amount == 0 or amount > s.stake:
            raise CallFailed(f"cannot unlock {amount}; the bonded stake is {s.stake}")
        rest = s.stake - amount
        if 0 < rest < self.config.min_stake:
            raise CallFailed(
                f"the remaining stake {rest} would be below the minimum {self.config.min_stake}; "
                "unlock everything (amount 0) or less"
            )
        return s, amount

    def apply_unlock(self, s: Sequencer, amount: int, epoch: int) -> None:
        s.stake -= amount
        s.unbonding.append((epoch + self.config.unbonding_epochs, amount))

    def check_withdraw(self, sender: bytes, p: WithdrawStake, epoch: int) -> Sequencer:
        s = self.owned(sender, p.signing_key)
        if not any(release <= epoch for release, _ in s.unbonding):
            waits = [release for release, _ in s.unbonding]
            when = f"; the next release is at epoch {min(waits)}" if waits else ""
            raise CallFailed(f"nothing to withdraw at epoch {epoch}{when}")
        return s

    def apply_withdraw(self, accounts: Accounts, s: Sequencer, epoch: int) -> None:
        ready = sum(a for release, a in s.unbonding if release <= epoch)
        s.unbonding = [(r, a) for r, a in s.unbonding if r > epoch]
        accounts.credit(s.owner, ready)

    # --- rewards, unjail, addresses --------------------------------------------------------

    def check_claim(self, sender: bytes, p: ClaimRewards) -> Sequencer:
        s = self.owned(sender, p.signing_key)
        if s.rewards == 0:
            raise CallFailed("no rewards to claim")
        return s

    def apply_claim(self, accounts: Accounts, s: Sequencer) -> None:
        accounts.credit(s.owner, s.rewards)
        s.rewards = 0

    def check_unjail(self, sender: bytes, p: Unjail, epoch: int) -> Sequencer:
        s = self.owned(sender, p.signing_key)
        if not s.jailed:
            raise CallFailed("the sequencer is not jailed")
        if epoch < s.jailed_until_epoch:
            raise CallFailed(f"jailed until epoch {s.jailed_until_epoch}; it is epoch {epoch}")
        if s.stake < self.config.min_stake:
            raise CallFailed(
                f"stake {s.stake} is below the minimum {self.config.min_stake}; lock more first"
            )
        return s

    @staticmethod
    def apply_unjail(s: Sequencer) -> None:
        s.jailed = False
        s.slashed = False

    def check_update(self, sender: bytes, p: UpdateSequencer) -> Sequencer:
        return self.owned(sender, p.signing_key)

    @staticmethod
    def apply_update(s: Sequencer, p: UpdateSequencer) -> None:
        s.p2p_address, s.rpc_address = p.p2p_address, p.rpc_address

    def pay_rewards(self, signers: tuple[bytes, ...], stakes: dict[bytes, int], total: int) -> int:
        """Split ``total`` among ``signers`` pro rata to ``stakes``; return what was minted."""
        signed = sum(stakes[s] for s in signers)
        minted = 0
        for key in signers:
            share = total * stakes[key] // signed
            seq = self.sequencers.get(key)
            if seq is not None and share:
                seq.rewards += share
                minted += share
        return minted

    # --- punishment ------------------------------------------------------------------------

    def check_evidence(self, p: SubmitEvidence) -> Offence:
        try:
            offender = verify_evidence(p.evidence, self.config.l2_chain_id)
        except CertificateError as e:
            raise CallFailed(f"invalid evidence: {e}") from None
        ev = p.evidence
        offence = Offence(offender, ev.kind, ev.round)
        if offence in self.offences:
            raise CallFailed(
                f"this offence ({ev.kind.value} at round {ev.round}) was already slashed"
            )
        s = self.sequencers.get(offender)
        if s is None or s.stake + s.unbonding_total == 0:
            raise CallFailed("the offender has no bonded or unbonding stake")
        return offence

    def apply_evidence(
        self, accounts: Accounts, reporter: bytes, offence: Offence, epoch: int
    ) -> int:
        """Slash, reward the reporter, jail; return the amount burned."""
        s = self.sequencers[offence.offender]
        bps = self.config.slash_bps
        cut = s.stake * bps // 10_000
        s.stake -= cut
        unbonding = []
        for release, amount in s.unbonding:
            c = amount * bps // 10_000
            cut += c
            unbonding.append((release, amount - c))
        s.unbonding = unbonding
        share = cut * self.config.reporter_share_bps // 10_000
        accounts.credit(reporter, share)
        s.jailed = True
        s.slashed = True
        s.jailed_until_epoch = max(s.jailed_until_epoch, epoch + self.config.unjail_cooldown_epochs)
        self.offences.add(offence)
        return cut - share

    def check_downtime(self, p: ReportDowntime, epoch: int) -> bytes:
        """Check a downtime certificate at L1 ``epoch``; return the report's id.

        The report names a recent snapshot (the inbox's rule, :func:`stake_epoch_problem`),
        and the offender and every signer are in it: nobody is judged by a table that no
        longer has stake at risk, or that they were never part of."""
        cert = p.certificate
        r = cert.report
        problem = stake_epoch_problem(r.stake_epoch, epoch, self.config.unbonding_epochs)
        if problem:
            raise CallFailed(f"downtime report: {problem}")
        snap = self.snapshots.get(r.stake_epoch)
        if snap is None:
            raise CallFailed(f"no stake snapshot for epoch {r.stake_epoch} (too old or future)")
        if snap.stakes.get(r.offender, 0) <= 0:
            raise CallFailed(
                f"the reported sequencer {r.offender.hex()[:16]} is not in the stake snapshot of "
                f"epoch {r.stake_epoch}"
            )
        rid = downtime_report_id(r)
        if rid in self.downtime_reports:
            raise CallFailed("this downtime report was already applied")
        try:
            verify_downtime_certificate(cert, snap.stakes, self.config.l2_chain_id)
        except CertificateError as e:
            raise CallFailed(f"invalid downtime certificate: {e}") from None
        s = self.sequencers.get(r.offender)
        if s is None:
            raise CallFailed("the reported sequencer is not registered")
        if s.jailed:
            raise CallFailed("the reported sequencer is already jailed")
        return rid

    def apply_downtime(self, p: ReportDowntime, report_id: bytes, epoch: int) -> None:
        s = self.sequencers[p.certificate.report.offender]
        s.jailed = True
        s.jailed_until_epoch = epoch + self.config.unjail_cooldown_epochs
        self.downtime_reports.add(report_id)


__all__ = [
    "EpochStakeSnapshot",
    "Offence",
    "Sequencer",
    "SequencerStatus",
    "StakeEntry",
    "Staking",
    "downtime_report_id",
    "stake_epoch_problem",
]
