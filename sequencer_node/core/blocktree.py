"""The block tree: every block this node knows above its committed head, and the committed tail.

What a node knows of the chain, kept in one place (as etcd raft keeps its log in ``raftLog``):
headers, bodies and post-state ledgers of the blocks it has checked, the QC of each block it
has seen certified, blocks waiting for their parent (orphans), and a window of recently
committed certified blocks to serve catch-up. Committing moves the head along a path of known
blocks and prunes every block that can no longer be committed.

The tree checks nothing about validity: :class:`~sequencer_node.core.sequencer.SequencerCore`
inserts only blocks it has checked. It is bounded: the caller stops inserting at
``max_blocks`` (see :meth:`full`), orphans are bounded per parent and in total, the committed
tail keeps ``recent`` blocks.
"""

from __future__ import annotations

from collections import OrderedDict

from sequencer_node.core.ledger import Ledger
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    CertifiedBlock,
    QuorumCertificate,
    block_hash,
)

#: Blocks waiting for one parent: a flood of siblings of one parent stays bounded.
_ORPHANS_PER_PARENT = 8


class BlockTree:
    """Known blocks above the committed head, their QCs, orphans and the committed tail."""

    def __init__(
        self, genesis: BlockHeader, ledger: Ledger, *, max_blocks: int, recent: int
    ) -> None:
        self.genesis_hash = block_hash(genesis)
        self.max_blocks = max_blocks
        self._recent_max = recent
        self._headers: dict[bytes, BlockHeader] = {self.genesis_hash: genesis}
        self._blocks: dict[bytes, Block] = {}
        self._ledgers: dict[bytes, Ledger] = {self.genesis_hash: ledger}
        self._qc_of: dict[bytes, QuorumCertificate] = {}
        self._orphans: dict[bytes, list[Block]] = {}
        #: Blocks that passed the proposal-time checks here (clock, L1 view, forced window):
        #: the only ones this node may vote for.
        self._vote_ready: set[bytes] = set()
        self._certified_told: set[bytes] = set()
        self.committed_height = 0
        self.committed_hash = self.genesis_hash
        self._recent: OrderedDict[int, CertifiedBlock] = OrderedDict()
        self._recent_heights: dict[bytes, int] = {}

    # --- reading --------------------------------------------------------------------------

    def __contains__(self, bh: object) -> bool:
        return bh in self._headers

    def known_headers(self) -> list[tuple[bytes, BlockHeader]]:
        """Every block in the tree (hash, header), the committed head and genesis included."""
        return list(self._headers.items())

    def header(self, bh: bytes) -> BlockHeader | None:
        return self._headers.get(bh)

    def block(self, bh: bytes) -> Block | None:
        return self._blocks.get(bh)

    def ledger(self, bh: bytes) -> Ledger | None:
        return self._ledgers.get(bh)

    def qc_of(self, bh: bytes) -> QuorumCertificate | None:
        return self._qc_of.get(bh)

    @property
    def committed_ledger(self) -> Ledger:
        return self._ledgers[self.committed_hash]

    def stale(self, header: BlockHeader) -> bool:
        """The block can no longer be committed, as its header alone tells: it is at or below
        the committed height, or a suffix block of an epoch before the committed block's (that
        epoch closed: the chain goes on from its last block through the next epoch's first
        block). A block above the head on a fork that left the chain below it cannot be
        committed either, but only its ancestry shows it: :meth:`prune` drops those, and a
        late copy waits as an orphan (bounded) until the chain passes its height."""
        if header.height <= self.committed_height:
            return True
        return header.epoch < self._headers[self.committed_hash].epoch

    def full(self) -> bool:
        """No room for another block until commits prune the tree."""
        return len(self._headers) >= self.max_blocks

    def vote_ready(self, bh: bytes) -> bool:
        return bh in self._vote_ready

    def height_of(self, bh: bytes) -> int | None:
        """Height of a known or recently committed block."""
        header = self._headers.get(bh)
        return header.height if header is not None else self._recent_heights.get(bh)

    def ancestor_at(self, via: bytes, height: int, max_steps: int) -> bytes | None:
        """Hash of the block at ``height`` on the chain through ``via`` (None if unknown)."""
        cur = via
        for _ in range(max_steps):
            header = self._headers.get(cur)
            if header is None or header.height < height:
                return None
            if header.height == height:
                return cur
            cur = header.parent_hash
        return None

    # --- growing --------------------------------------------------------------------------

    def insert(self, block: Block, ledger: Ledger) -> bytes:
        """Add a checked block whose parent is known; return its hash."""
        bh = block_hash(block.header)
        self._headers[bh] = block.header
        self._blocks[bh] = block
        self._ledgers[bh] = ledger
        if block.justify is not None:
            self._qc_of.setdefault(block.justify.block_hash, block.justify)
        return bh

    def mark_vote_ready(self, bh: bytes) -> None:
        self._vote_ready.add(bh)

    def add_qc(self, qc: QuorumCertificate) -> None:
        """Remember the (first) QC seen for a block, known or not yet."""
        self._qc_of.setdefault(qc.block_hash, qc)

    def newly_certified(self, bh: bytes) -> CertifiedBlock | None:
        """The certified block, the first time it has both its body and a QC here above the
        committed head; None otherwise."""
        if bh in self._certified_told or bh not in self._blocks or bh not in self._qc_of:
            return None
        if self._headers[bh].height <= self.committed_height:
            return None
        self._certified_told.add(bh)
        return CertifiedBlock(self._blocks[bh], self._qc_of[bh])

    def add_orphan(self, block: Block) -> None:
        """Keep a block whose parent is unknown yet (bounded)."""
        if self.stale(block.header) or len(self._orphans) >= self.max_blocks:
            return
        waiting = self._orphans.setdefault(block.header.parent_hash, [])
        # A repeat would take the place of a sibling; whole blocks are compared, since a copy
        # with the same signed header but other transactions must not shut out the real one.
        if len(waiting) < _ORPHANS_PER_PARENT and all(b != block for b in waiting):
            waiting.append(block)

    def take_orphans(self, parent: bytes) -> list[Block]:
        return self._orphans.pop(parent, [])

    def has_orphans(self, parent: bytes) -> bool:
        return parent in self._orphans

    # --- committing -----------------------------------------------------------------------

    def path_to(self, target: bytes) -> list[bytes]:
        """Hashes from just above the committed head up to ``target``, in height order."""
        path: list[bytes] = []
        cur = target
        while cur != self.committed_hash:
            header = self._headers.get(cur)
            if header is None or header.height <= self.committed_height:
                raise AssertionError(
                    "SAFETY: a block to commit does not extend the committed chain"
                )
            path.append(cur)
            cur = header.parent_hash
        path.reverse()
        return path

    def commit(self, bh: bytes) -> CertifiedBlock:
        """Move the committed head to ``bh`` (a child of the head, with a QC)."""
        header = self._headers[bh]
        cb = CertifiedBlock(self._blocks[bh], self._qc_of[bh])
        self.committed_height = header.height
        self.committed_hash = bh
        self._recent[header.height] = cb
        self._recent_heights[bh] = header.height
        if len(self._recent) > self._recent_max:
            _, old = self._recent.popitem(last=False)
            self._recent_heights.pop(block_hash(old.block.header), None)
        return cb

    def adopt_committed(self, cb: CertifiedBlock, ledger: Ledger) -> CertifiedBlock:
        """Insert and commit a block of the node's own stored chain (trusted)."""
        bh = self.insert(cb.block, ledger)
        self._qc_of[bh] = cb.qc
        return self.commit(bh)

    def prune(self) -> None:
        """Drop every block that can no longer be committed: those at or below the committed
        height but the head, and those above it that do not descend from the head (forks
        that left the chain below it, suffix blocks of a closed epoch), with the orphans
        waiting for any of them. Kept, such a block took room in the tree until the chain
        passed its height, and a block proposed on it was judged on a chain whose base was
        gone (a suffix block's proof walks down to its epoch's last block)."""
        keep = self.committed_height
        live = {self.committed_hash}
        dead: list[bytes] = []
        for bh, h in sorted(self._headers.items(), key=lambda e: e[1].height):
            if bh in live or bh == self.genesis_hash:
                continue
            if h.height > keep and h.parent_hash in live:
                live.add(bh)
            else:
                dead.append(bh)
        for bh in dead:
            self._headers.pop(bh, None)
            self._vote_ready.discard(bh)
            self._certified_told.discard(bh)
            self._blocks.pop(bh, None)
            self._ledgers.pop(bh, None)
            self._qc_of.pop(bh, None)
            self._orphans.pop(bh, None)
        for ph in [p for p, kids in self._orphans.items()
                   if all(self.stale(k.header) for k in kids)]:  # fmt: skip
            del self._orphans[ph]
        # QCs of blocks never inserted here (late timeouts, TCs and proposals name them) that
        # the chain has passed: nothing looks them up, and they piled up for good.
        head_epoch = self._headers[self.committed_hash].epoch
        for bh in [b for b, qc in self._qc_of.items() if b not in self._headers and (
                qc.height <= keep or qc.epoch < head_epoch)]:  # fmt: skip
            del self._qc_of[bh]
        if self.genesis_hash != self.committed_hash:
            self._ledgers.pop(self.genesis_hash, None)

    # --- serving catch-up -----------------------------------------------------------------

    def certified_range(self, start: int, end: int, top: bytes, most: int) -> list[CertifiedBlock]:
        """Certified blocks with heights in [start, end]: committed ones, then the certified
        chain ending at ``top`` (the high QC's block). At most ``most``."""
        out: list[CertifiedBlock] = []
        start = max(start, 1)
        end = min(end, start + most - 1)
        for h in range(start, min(end, self.committed_height) + 1):
            cb = self._recent.get(h)
            if cb is not None:
                out.append(cb)
        if end > self.committed_height:
            chain: list[CertifiedBlock] = []
            cur = top
            while cur in self._blocks and self._headers[cur].height > self.committed_height:
                qc = self._qc_of.get(cur)
                if qc is None:
                    break
                chain.append(CertifiedBlock(self._blocks[cur], qc))
                cur = self._headers[cur].parent_hash
            out.extend(cb for cb in reversed(chain) if start <= cb.block.header.height <= end)
        return out[:most]


__all__ = ["BlockTree"]
