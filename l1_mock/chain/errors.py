"""The two ways the L1 refuses a call: at submission, or when its block executes it."""

from __future__ import annotations


class CallRejected(ValueError):
    """A call refused at submission (it never enters the pool); the message says what was
    wrong."""


class CallFailed(ValueError):
    """A call that failed its checks during execution: it is still included, with a failed
    receipt that carries this message (nonce used, fee burned), as on Ethereum."""


__all__ = ["CallFailed", "CallRejected"]
