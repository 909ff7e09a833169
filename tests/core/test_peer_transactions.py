"""Issue 12, finding 1 (core side): a peer's transaction that fails its signature check is
charged to that peer; the result of adding a peer's transaction is not ignored."""

from __future__ import annotations

from sequencer_node.core import api
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import Transaction


def _core() -> tuple[SequencerCore, Simulation]:
    sim = Simulation(5)
    return SequencerCore(sim.config_for(sim.instances[0]), sim.genesis), sim


def test_a_peer_transaction_with_a_bad_signature_is_charged_to_the_peer() -> None:
    core, sim = _core()
    peer, user = sim.keys[1].public_key, sim.users[0]
    forged = Transaction(user.public_key, sim.users[1].address, 5, 0, 1, bytes(64))
    out = core.handle(api.MessageReceived(peer, forged), 0)
    charged = [e for e in out if isinstance(e, api.PeerMisbehaved)]
    assert [(e.peer, e.offense.fault) for e in charged] == [(peer, api.Fault.BAD_SIGNATURE)]
    assert not core.is_pending(message_id(forged))


def test_a_valid_or_merely_stale_peer_transaction_is_not_charged() -> None:
    core, sim = _core()
    peer, user = sim.keys[1].public_key, sim.users[0]
    tx = sign_message(
        Transaction(user.public_key, sim.users[1].address, 5, 0, 1, bytes(64)), user, CHAIN_ID
    )
    assert not [
        e
        for e in core.handle(api.MessageReceived(peer, tx), 0)
        + core.handle(
            api.MessageReceived(peer, tx),
            1,  # a duplicate: the relay's fault at most
        )
        if isinstance(e, api.PeerMisbehaved)
    ]
