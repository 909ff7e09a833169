"""``seqctl load`` against the fake node: counts, latencies, refusals, funding, errors."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from sequencer_node.cli.load import LoadConfig, LoadRun, LoadStats, percentile
from sequencer_node.devnet.accounts import load_account_key
from sequencer_node.system.commandline import EXIT_FAILED, EXIT_UNREACHABLE
from sequencer_node.wire.crypto import SigningKey
from tests.cli.conftest import Node, seqctl
from tests.l1.helpers import USER

Keystore = Callable[[SigningKey], Path]


def test_percentiles_and_stats_are_exact() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (
        50.0, 90.0, 99.0,
    )  # fmt: skip
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    s = LoadStats()
    s.sending(b"a", 1.0)
    s.sending(b"b", 1.5)
    s.sending(b"c", 2.0)
    s.refused(b"c", "NONCE_TOO_LOW")
    s.accepted_tx()
    s.accepted_tx()
    s.block_seen(7, [b"a", b"zz"], 3.0)
    s.block_seen(8, [b"b", b"a"], 4.0)  # "a" again: counted once
    s.l1_covers(7)
    out = s.summary(2.0, 1.5)
    assert (out["submitted"], out["accepted"], out["certified"], out["in_l1"]) == (3, 2, 2, 1)
    assert out["rejected"] == {"NONCE_TOO_LOW": 1}
    assert out["latency_s"]["p50"] == 2.0
    assert out["latency_s"]["max"] == 2.5
    assert out["achieved_rate"] == 1.0


def test_submit_to_l1_latency_counts_each_transaction_once_its_height_is_covered() -> None:
    s = LoadStats()
    for i, h in enumerate((b"a", b"b", b"c")):
        s.sending(h, float(i))
    s.block_seen(5, [b"a"], 10.0)
    s.block_seen(6, [b"b"], 11.0)
    s.block_seen(9, [b"c"], 12.0)
    s.l1_covers(6, 20.0)
    s.l1_covers(6, 21.0)  # the same batch polled again: nothing more
    assert s.l1_latencies == [20.0, 19.0]
    s.l1_covers(4, 22.0)  # an older batch listed after a newer one covers nothing new
    s.l1_covers(9, 30.0)
    assert s.l1_latencies == [20.0, 19.0, 28.0]


def test_dev_accounts_are_the_ones_the_devnet_funds() -> None:
    # docs/cli.md tells users these seeds; the devnet's genesis funds exactly these keys
    # (tests/devnet/test_parts.py checks the genesis side).
    assert [load_account_key(i).public_key for i in range(3)] == [
        SigningKey.deterministic(f"devnet-load-{i}").public_key for i in range(3)
    ]
    with pytest.raises(ValueError, match=">= 0"):
        load_account_key(-1)


def _fund(node: Node, n: int) -> None:
    for i in range(n):
        node.fake.balances[load_account_key(i).address] = 10**9


def test_load_run_counts_everything(fake_node: Node) -> None:
    _fund(fake_node, 4)
    fake_node.fake.auto_batch = True
    r = seqctl("load", "--node-url", fake_node.url, "--node-url", fake_node.url, "--rate", "200",
               "--duration", "0.5", "--accounts", "4", "--drain", "10", "--wait-l1", "--json",
               "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["submitted"] == 100
    assert out["accepted"] + out["rejected_total"] + out["skipped_max_in_flight"] == 100
    assert out["accepted"] >= 95
    assert out["certified"] == out["accepted"]
    assert out["in_l1"] == out["certified"]
    lat = out["latency_s"]
    assert lat["samples"] == out["certified"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 5
    assert len(fake_node.fake.txs) == out["accepted"]
    # every account's nonces went out in order: the fake node certified them all
    assert (
        sum(fake_node.fake.nonces.get(load_account_key(i).address, 0) for i in range(4))
        == (out["accepted"])
    )


def test_load_presigns_and_sends_batches(fake_node: Node) -> None:
    _fund(fake_node, 4)
    r = seqctl("load", "--node-url", fake_node.url, "--rate", "1000", "--duration", "0.5",
               "--accounts", "4", "--drain", "10", "--json", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["certified"] == out["accepted"] == out["submitted"] == 500
    sizes = fake_node.fake.batch_sizes
    assert sum(sizes) == 500
    assert len(sizes) <= 100  # batches of several transactions, not one request each
    client = out["client"]
    assert client["presigned"] == 500  # all signed before the timed part
    assert client["resigned"] == 0
    assert client["cpu_s"] > 0
    assert client["cpu_us_per_tx"] > 0


def test_a_request_interval_coalesces_due_transactions_into_fewer_requests(
    fake_node: Node,
) -> None:
    _fund(fake_node, 4)
    r = seqctl("load", "--node-url", fake_node.url, "--rate", "400", "--duration", "1",
               "--accounts", "4", "--drain", "10", "--request-interval-ms", "250", "--json",
               "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["certified"] == out["accepted"] == out["submitted"] == 400
    sizes = fake_node.fake.batch_sizes
    assert sum(sizes) == 400
    # one lane, at most one request per 250 ms over a 1 s run (the generator's 10 ms ticks
    # would make it up to 100)
    assert len(sizes) <= 6, sizes
    client = out["client"]
    assert client["requests"] == len(sizes)
    assert client["request_interval_ms"] == 250
    assert client["txs_per_request"] == round(400 / len(sizes), 1)
    # latency counts from when each transaction was due: the wait for the interval is in it
    assert out["latency_s"]["max"] >= 0.2


def test_a_refused_batch_resyncs_the_nonces_of_its_accounts(fake_node: Node) -> None:
    _fund(fake_node, 2)
    fake_node.fake.overload_every = 3
    r = seqctl("load", "--node-url", fake_node.url, "--rate", "200", "--duration", "0.5",
               "--accounts", "2", "--drain", "10", "--json", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rejected"].keys() == {"OVERLOADED"}
    assert out["client"]["resigned"] > 0  # the nonces after a lost batch were signed again
    assert out["certified"] == out["accepted"] > 0
    assert out["accepted"] + out["rejected_total"] == out["submitted"] == 100
    nonces = fake_node.fake.nonces
    assert sum(nonces.get(load_account_key(i).address, 0) for i in range(2)) == out["accepted"]


def test_load_counts_refusals_by_reason(fake_node: Node) -> None:
    _fund(fake_node, 2)
    fake_node.fake.overload_every = 5
    r = seqctl("load", "--node-url", fake_node.url, "--rate", "100", "--duration", "0.4",
               "--accounts", "2", "--drain", "5", "--max-in-flight", "8")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "OVERLOADED" in r.stdout
    assert "rejected because" in r.stdout
    assert "p50" in r.stdout
    # progress goes to stderr when not quiet (plain lines without a TTY, at least the last)
    assert "error" not in r.stderr


def test_load_funds_accounts_first(fake_node: Node, keystore: Keystore, pwfile: Path) -> None:
    fake_node.fake.balances[USER.address] = 10**15
    r = seqctl("load", "--node-url", fake_node.url, "--rate", "50", "--duration", "0.2",
               "--accounts", "3", "--fund-from", str(keystore(USER)), "--password-file",
               str(pwfile), "--fund-amount", "1000", "--json", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["accepted"] == 10
    assert fake_node.fake.nonces[USER.address] == 3


def test_load_errors(fake_node: Node) -> None:
    r = seqctl("load", "--node-url", fake_node.url, "--duration", "1", "--accounts", "2")
    assert r.exit_code == EXIT_FAILED
    assert "none of the 2 load accounts has an L2 balance" in r.stderr
    assert "--fund-from" in r.stderr
    r = seqctl("load", "--node-url", "http://127.0.0.1:9", "--duration", "1")
    assert r.exit_code == EXIT_UNREACHABLE
    r = seqctl("load", "--node-url", fake_node.url, "--duration", "soon")
    assert r.exit_code == EXIT_FAILED
    assert "not a duration" in r.stderr


def test_ctrl_c_stops_sending_and_still_prints_the_summary(fake_node: Node) -> None:
    _fund(fake_node, 2)

    def interrupt(n: int) -> None:
        if n == 10:
            os.kill(os.getpid(), signal.SIGINT)

    fake_node.fake.on_submission = interrupt
    r = seqctl("load", "--node-url", fake_node.url, "--rate", "50", "--duration", "60",
               "--accounts", "2", "--drain", "10", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["interrupted"] is True
    assert 10 <= out["submitted"] < 50  # stopped long before 60 s x 50 tx/s
    assert out["certified"] == out["accepted"]
    assert "interrupted: stopped sending" in r.stderr


def test_sigterm_stops_at_once_and_still_prints_the_summary(fake_node: Node) -> None:
    # issue 14, friction 4: SIGTERM (docker stop; PID 1 in its container) was ignored
    _fund(fake_node, 2)

    def terminate(n: int) -> None:
        if n == 10:
            os.kill(os.getpid(), signal.SIGTERM)

    fake_node.fake.on_submission = terminate
    fake_node.fake.block_time = 3600.0  # nothing certified: only SIGTERM ends the drain
    before = signal.getsignal(signal.SIGTERM)
    r = seqctl("load", "--node-url", fake_node.url, "--rate", "50", "--duration", "60",
               "--accounts", "2", "--drain", "60", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["interrupted"] is True
    assert 10 <= out["submitted"] < 50
    assert "terminated: stopped sending" in r.stderr
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_dead_node_is_counted_and_the_follower_moves_on(fake_node: Node) -> None:
    _fund(fake_node, 2)
    dead = "http://127.0.0.1:9"
    r = seqctl("load", "--node-url", f"{dead},{fake_node.url}", "--rate", "100", "--duration",
               "0.2", "--accounts", "2", "--drain", "5", "--json", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rejected"] == {"UNREACHABLE": 10}  # account 0 is pinned to the dead node
    assert out["accepted"] == 10
    assert out["certified"] == 10  # followed through the live node
    assert out["follow_errors"] >= 1


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_is_one_refreshing_bar_on_a_terminal(fake_node: Node) -> None:
    _fund(fake_node, 2)
    cfg = LoadConfig((fake_node.url,), rate=50, duration=1.2, accounts=2, max_in_flight=8,
                     amount=1, fee=1, drain=5, wait_l1=False, chain_id=None, fund_from=None,
                     fund_amount=1)  # fmt: skip
    tty = _Tty()
    out = await LoadRun(cfg, tty).run()
    assert out["certified"] == out["accepted"] == 60
    text = tty.getvalue()
    assert text.count("\r\x1b[2K") >= 2  # refreshed in place, at least twice
    assert "sent " in text
    assert "━" in text  # rich's progress bar over the sending time
    assert text.endswith("\n")  # the summary starts on its own line
