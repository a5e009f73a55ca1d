"""pgbench through the pooler (session mode, pool as large as the client count)."""

import re

import pytest

CLIENTS = 10


def parse(out):
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert processed, out
    return int(processed.group(1)), int(failed.group(1)) if failed else 0


@pytest.fixture
def bench_pooler(make_pooler, pg):
    p = make_pooler(databases={"benchdb": pg.dbentry("benchdb")},
                    settings={"default_pool_size": CLIENTS, "max_client_conn": 50})
    r = p.pgbench(["-i", "-q", "-s", "1"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return p


@pytest.mark.hard_timeout(180)
def test_pgbench_tpcb(bench_pooler):
    r = bench_pooler.pgbench(["-c", str(CLIENTS), "-j", "2", "-T", "5"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    processed, failed = parse(r.stdout)
    assert failed == 0, r.stdout
    assert processed > 0, r.stdout
    assert "number of clients: %d" % CLIENTS in r.stdout


@pytest.mark.hard_timeout(180)
@pytest.mark.parametrize("mode", ["extended", "prepared"])
def test_pgbench_protocol_modes(bench_pooler, mode):
    r = bench_pooler.pgbench(["-c", str(CLIENTS), "-j", "2", "-t", "50", "-M", mode, "-n"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    processed, failed = parse(r.stdout)
    assert failed == 0, r.stdout
    assert processed == CLIENTS * 50, r.stdout


@pytest.mark.hard_timeout(180)
def test_pgbench_connect_per_transaction(bench_pooler):
    # -C: a new connection for every transaction (login path under load)
    r = bench_pooler.pgbench(["-c", "4", "-j", "2", "-t", "25", "-C", "-S", "-n"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    processed, failed = parse(r.stdout)
    assert failed == 0 and processed == 100, r.stdout
