"""Fixtures for the ``seqctl`` tests: a real L1 mock in a background thread, keystores, a runner.

The CLI runs its own ``trio.run``, so the L1 (and the fake node RPC) live in another thread
with their own Trio loop. The L1 does not auto-mine; an on-demand miner makes a block as soon
as a call is pooled, so commands that wait for inclusion return quickly and epochs stay put.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner, Result

from l1_mock.server import L1Service, L1Settings, serve
from sequencer_node.cli.seqctl import main
from sequencer_node.keystore import save_keystore
from sequencer_node.wire.crypto import SigningKey
from tests.cli.fakenode import FakeNode
from tests.l1.helpers import genesis

PASSWORD = "s3cret"


class Background:
    """A Trio loop in a daemon thread running ``start(task_status=...)``; ``call`` runs async
    functions in it from the test's thread."""

    def __init__(self, start: Callable[..., Awaitable[Any]]) -> None:
        self._start = start
        self._ready: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.value: Any = None

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:
                self._cancel = nursery.cancel_scope
                self.value = await nursery.start(self._start)
                self._ready.put(None)
        except BaseException as e:
            self._ready.put(e)
            raise

    def __enter__(self) -> Background:
        self._thread.start()
        err = self._ready.get(timeout=20)
        if err is not None:
            raise err
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        assert self._cancel is not None
        trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(timeout=10)

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)


@dataclass
class L1:
    url: str
    node: L1Service
    bg: Background

    def mine(self, n: int = 1) -> None:
        self.bg.call(self.node.mine, n)


@contextmanager
def running_l1(data_dir: Path, **config: Any) -> Iterator[L1]:
    """A real L1 mock (test genesis of tests/l1/helpers.py with ``config`` overrides)."""
    g = genesis(**config)
    g = dataclasses.replace(g, config=dataclasses.replace(g.config, genesis_time=1_700_000_000))
    node = L1Service.open(g, L1Settings(data_dir, 2, auto_mine=False))

    async def start(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve, node, "127.0.0.1", 0)

            async def miner() -> None:
                while True:
                    await trio.sleep(0.01)
                    if node.chain.pool:
                        await node.mine(1)

            nursery.start_soon(miner)
            task_status.started(url)

    try:
        with Background(start) as bg:
            yield L1(bg.value, node, bg)
    finally:
        node.store.close()


@pytest.fixture
def l1(tmp_path: Path) -> Iterator[L1]:
    with running_l1(tmp_path / "l1") as chain:
        yield chain


@pytest.fixture
def keystore(tmp_path: Path) -> Callable[[SigningKey], Path]:
    """Write ``key`` to a throw-away keystore (cheap scrypt) with :data:`PASSWORD`."""

    def write(key: SigningKey) -> Path:
        path = tmp_path / "keys" / f"{key.public_key.hex()[:12]}.json"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            save_keystore(path, key, PASSWORD, scrypt_n=1024)
        return path

    return write


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    p = tmp_path / "pw.txt"
    p.write_text(PASSWORD + "\n")
    return p


def seqctl(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``seqctl`` in-process with a clean SEQ_* environment."""
    clean: dict[str, str | None] = {
        k: None
        for k in ("SEQ_PASSWORD", "SEQ_PASSWORD_FILE", "SEQ_L1_URL", "SEQ_NODE_URL", "SEQ_TIMEOUT")
    }
    return CliRunner().invoke(main, list(args), env={**clean, **(env or {})})


@dataclass
class Node:
    url: str
    fake: FakeNode


@pytest.fixture
def fake_node() -> Iterator[Node]:
    """A fake node RPC (tests/cli/fakenode.py) serving the contract's JSON."""
    fake = FakeNode()
    with Background(fake.serve) as bg:
        yield Node(bg.value, fake)
