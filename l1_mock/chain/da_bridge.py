"""The L1's Blobstream-style bridge to the external DA layer: attested data commitments.

A relayer posts what the DA committee signed (:class:`~sequencer_node.wire.l1calls.
SubmitDataCommitment`): a range of DA heights and the root of their data root tuples. The
bridge accepts it when it is the next one (nonce one above the last, its range starting where
the last ended: no gaps, overlaps or replays) and distinct members of the committee of the L1
genesis holding more than 2/3 of its stake signed it
(:func:`sequencer_node.wire.da.attest.verify_attestation`). Accepted commitments are kept for
good (60 bytes each); the inbox proves external-DA batch pointers against them.

Not covered: committee changes (Blobstream's ``updateValidatorSet``); the committee is fixed
by the genesis.
"""

from __future__ import annotations

import bisect

from l1_mock.chain.config import ChainConfig
from l1_mock.chain.errors import CallFailed
from sequencer_node.wire.da.attest import AttestationError, Committee, DataCommitment
from sequencer_node.wire.da.attest import verify_attestation as _verify
from sequencer_node.wire.da.shares import ShareError, check_user_namespace
from sequencer_node.wire.l1calls import SubmitDataCommitment


class DABridge:
    """The data commitments the L1 accepted, by nonce."""

    def __init__(self, config: ChainConfig) -> None:
        """Raises ValueError for a malformed committee or namespace in ``config``."""
        self.da_chain_id = config.da_chain_id
        self.committee = Committee(config.da_committee) if config.da_committee else None
        self.commitments: list[DataCommitment] = []
        if config.da_namespace:
            if self.committee is None:
                raise ValueError("a DA namespace needs a DA committee to attest its data")
            try:
                check_user_namespace(config.da_namespace)
            except ShareError as e:
                raise ValueError(f"da_namespace: {e}") from None

    @property
    def next_nonce(self) -> int:
        return len(self.commitments)

    @property
    def attested_end(self) -> int:
        """The first DA height no accepted commitment covers (1: none yet)."""
        return self.commitments[-1].end if self.commitments else 1

    def commitment(self, nonce: int) -> DataCommitment | None:
        return self.commitments[nonce] if 0 <= nonce < len(self.commitments) else None

    def covering(self, height: int) -> DataCommitment | None:
        """The accepted commitment whose range holds DA ``height``, if any."""
        i = bisect.bisect_right(self.commitments, height, key=lambda c: c.start) - 1
        if i >= 0 and height < self.commitments[i].end:
            return self.commitments[i]
        return None

    def check_submit(self, p: SubmitDataCommitment) -> DataCommitment:
        """Raise :class:`CallFailed` unless ``p`` is the next commitment, signed by > 2/3 of
        the committee's stake."""
        if self.committee is None:
            raise CallFailed("this L1 has no DA committee in its genesis: no external DA")
        if p.nonce != self.next_nonce:
            raise CallFailed(f"data commitment nonce {p.nonce}; expected {self.next_nonce}")
        if p.start != self.attested_end:
            raise CallFailed(
                f"data commitment starts at DA height {p.start}; expected {self.attested_end} "
                "(ranges follow each other without gaps or overlaps)"
            )
        att = p.attestation
        try:
            _verify(att, self.committee, self.da_chain_id)
        except AttestationError as e:
            raise CallFailed(f"bad data commitment: {e}") from None
        return att.commitment

    def apply_submit(self, c: DataCommitment) -> None:
        self.commitments.append(c)


__all__ = ["DABridge"]
