"""Admin console statistics: SHOW STATS / STATS_TOTALS / STATS_AVERAGES / TOTALS
counters against a known workload, SHOW POOLS / CLIENTS / SERVERS states, wait
time, SHOW STATE, and sluice's latency percentiles.

Workloads go through a psycopg.ClientCursor connection in autocommit mode, so
each 'select 1' is one simple Query = one query = one transaction (see
admin_util.py).  stats_period is 1 s so averages fill in quickly; tests poll
instead of sleeping."""

import time

import pytest

import admin_util as au
import helpers

N = 100


def stats_pooler(make_pooler, settings=None, **kw):
    s = {"stats_period": 1, "query_wait_timeout": 30}
    s.update(settings or {})
    return au.make_admin_pooler(make_pooler, settings=s, **kw)


def totals(adm, db="testdb"):
    r = au.row_for(adm, "SHOW STATS_TOTALS", database=db)
    if r is None:
        return {}
    return {k: au.as_int(v) for k, v in r.items() if k != "database"}


def delta(after, before, key):
    return after.get(key, 0) - before.get(key, 0)


def wait_totals(adm, before, key, at_least, timeout=5, db="testdb"):
    """Poll STATS_TOTALS until key grew by at_least (stats may lag a little)."""
    got = {}

    def grown():
        got["t"] = totals(adm, db)
        return delta(got["t"], before, key) >= at_least

    try:
        helpers.wait_for(grown, timeout, 0.05, "%s to grow by %d" % (key, at_least))
    except AssertionError:
        raise AssertionError("STATS_TOTALS %s grew by %d, want >= %d; before %s after %s"
                             % (key, delta(got["t"], before, key), at_least, before, got["t"]))
    return got["t"]


# ---------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------

def test_stats_totals_count_simple_queries(make_pooler):
    p = stats_pooler(make_pooler)
    with au.console(p) as adm:
        before = totals(adm)
        stats_before = au.row_for(adm, "SHOW STATS", database="testdb") or {}
        t0 = time.monotonic()
        with au.client(p) as c:
            for _ in range(N):
                c.execute("select 1")
            run_us = (time.monotonic() - t0) * 1e6
            after = wait_totals(adm, before, "xact_count", N)
            assert delta(after, before, "xact_count") == N, (before, after)
            assert delta(after, before, "query_count") == N, (before, after)
            # a Query message for 'select 1' is 14 bytes; each answer is bigger
            assert delta(after, before, "bytes_received") >= 14 * N, (before, after)
            assert delta(after, before, "bytes_sent") >= 14 * N, (before, after)
            assert 0 < delta(after, before, "query_time") <= run_us + 1e6, (before, after, run_us)
            assert 0 < delta(after, before, "xact_time") <= run_us + 1e6, (before, after, run_us)
            # SHOW STATS has the same totals under its own names
            st = au.row_for(adm, "SHOW STATS", database="testdb")
            assert au.as_int(st["total_xact_count"]) - au.as_int(stats_before.get("total_xact_count")) == N
            assert au.as_int(st["total_query_count"]) - au.as_int(stats_before.get("total_query_count")) == N
            assert au.as_int(st["total_received"]) - au.as_int(stats_before.get("total_received")) >= 14 * N
            assert au.as_int(st["total_sent"]) - au.as_int(stats_before.get("total_sent")) >= 14 * N
        # the server reset after the client left is not client traffic
        time.sleep(0.2)
        final = totals(adm)
        assert delta(final, before, "xact_count") == N, (before, final)
        assert delta(final, before, "query_count") == N, (before, final)
        # another database's row is not touched
        assert au.row_for(adm, "SHOW STATS_TOTALS", database="otherdb") is None or \
            totals(adm, "otherdb").get("xact_count", 0) == 0


def test_stats_totals_count_extended_queries(make_pooler):
    p = stats_pooler(make_pooler)
    with au.console(p) as adm:
        before = totals(adm)
        with p.connect(prepare_threshold=None) as c:  # Parse/Bind/Execute/Sync each
            for i in range(50):
                assert c.execute("select %s::int", (i,)).fetchone()[0] == i
            after = wait_totals(adm, before, "xact_count", 50)
            assert delta(after, before, "xact_count") == 50, (before, after)
            assert delta(after, before, "query_count") == 50, (before, after)


def test_stats_count_transactions_with_several_queries(make_pooler):
    p = stats_pooler(make_pooler)
    with au.console(p) as adm:
        before = totals(adm)
        with au.client(p, autocommit=False) as c:
            for _ in range(10):
                c.execute("select 1")
                c.execute("select 2")
                c.execute("select 3")
                c.commit()  # BEGIN (sent by psycopg), 3 queries, COMMIT
            after = wait_totals(adm, before, "xact_count", 10)
            assert delta(after, before, "xact_count") == 10, (before, after)
            assert delta(after, before, "query_count") == 50, (before, after)


def test_pgbench_counts(make_pooler, pg, workdir):
    p = stats_pooler(make_pooler, databases={"testdb": pg.dbentry("testdb"),
                                             "benchdb": pg.dbentry("benchdb")})
    with au.console(p) as adm:
        before = totals(adm, "benchdb")
        script = helpers.write_file(workdir / "select1.sql", "select 1;\n")
        r = p.pgbench(["-n", "-f", str(script), "-c", "2", "-j", "1", "-t", "50"])
        assert r.returncode == 0, r.stderr + r.stdout
        after = wait_totals(adm, before, "xact_count", 100, db="benchdb")
        assert delta(after, before, "xact_count") == 100, (before, after)
        assert delta(after, before, "query_count") == 100, (before, after)


@pytest.mark.hard_timeout(60)
def test_stats_averages_fill_in(make_pooler):
    p = stats_pooler(make_pooler)
    with au.console(p) as adm, au.client(p) as c:
        def averages_filled():
            for _ in range(20):
                c.execute("select 1")
            r = au.row_for(adm, "SHOW STATS_AVERAGES", database="testdb")
            s = au.row_for(adm, "SHOW STATS", database="testdb")
            return (r is not None and s is not None and au.as_int(r["xact_count"]) > 0
                    and au.as_int(r["query_count"]) > 0 and au.as_int(s["avg_query_count"]) > 0
                    and au.as_int(s["avg_xact_count"]) > 0 and au.as_int(r["bytes_received"]) > 0)
        helpers.wait_for(averages_filled, 6, 0.05, "STATS_AVERAGES to fill in (stats_period = 1)")


def test_show_totals_grow(make_pooler):
    p = stats_pooler(make_pooler)
    with au.console(p) as adm:
        def tot():
            return {r["name"]: au.as_int(r["value"]) for r in au.show(adm, "TOTALS")[1]}
        before = tot()
        with au.client(p) as c:
            for _ in range(20):
                c.execute("select 1")
        helpers.wait_for(lambda: tot()["total_query_count"] - before["total_query_count"] >= 20,
                         5, 0.05, "TOTALS total_query_count to grow by 20")
        after = tot()
        assert after["total_xact_count"] - before["total_xact_count"] >= 20


# ---------------------------------------------------------------------------
# States and wait time
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(60)
def test_pools_clients_servers_states_and_wait(make_pooler, pg):
    p = stats_pooler(make_pooler, settings={"default_pool_size": 1})
    holder = au.client(p, application_name="st-holder")
    waiter = au.client(p, application_name="st-waiter")
    try:
        pid = au.backend_pid(holder)
        with au.console(p) as adm:
            before = totals(adm)
            t, r = au.run_in_thread(lambda: au.query_then_close(waiter, "select 'waited'"))

            def pool():
                return au.row_for(adm, "SHOW POOLS", database="testdb", user="app")
            helpers.wait_for(lambda: au.as_int(pool()["cl_waiting"]) == 1, 5, 0.05, "cl_waiting = 1")
            time.sleep(0.6)
            pr = pool()
            assert au.as_int(pr["cl_active"]) == 1, pr
            assert au.as_int(pr["sv_active"]) == 1, pr
            maxwait_us = au.as_int(pr["maxwait"]) * 1000000 + au.as_int(pr["maxwait_us"])
            assert 300000 <= maxwait_us <= 30000000, pr
            clients = {c["application_name"]: c for c in au.rows_for(adm, "SHOW CLIENTS", database="testdb")}
            assert clients["st-holder"]["state"] == "active", clients
            assert clients["st-waiter"]["state"] == "waiting", clients
            sv = au.row_for(adm, "SHOW SERVERS", remote_pid=pid)
            assert sv is not None and sv["state"] == "active", au.show(adm, "SERVERS")[1]
            holder.close()
            assert au.finished(t, r, 10) and r["v"] == "waited", r
            helpers.wait_for(lambda: au.as_int(pool()["cl_waiting"]) == 0, 5, 0.05, "cl_waiting = 0")
            # the waiter's wait (> 0.6 s) is in total wait_time
            after = wait_totals(adm, before, "xact_count", 1)
            assert delta(after, before, "wait_time") >= 500000, (before, after)
            assert delta(after, before, "wait_time") <= 30000000, (before, after)
    finally:
        holder.close()
        waiter.close()


@au.sluice_only("1.18 has no SHOW STATE")
def test_show_state(make_pooler):
    p = stats_pooler(make_pooler)
    truthy = ("yes", "1", "true", "on", "t")

    def state(adm):
        cols, rows = au.show(adm, "STATE")
        assert cols[:2] == ["key", "value"], cols
        return {r["key"]: str(r["value"]).lower() for r in rows}

    with au.console(p) as adm:
        s = state(adm)
        for k in ("active", "paused", "suspended"):
            assert k in s, s
        assert s["active"] in truthy and s["paused"] not in truthy and s["suspended"] not in truthy, s
        assert au.command(adm, "PAUSE") == "PAUSE"
        s = state(adm)
        assert s["paused"] in truthy, s
        assert au.command(adm, "RESUME") == "RESUME"
        assert state(adm)["paused"] not in truthy
        assert au.command(adm, "SUSPEND") == "SUSPEND"
        assert state(adm)["suspended"] in truthy
        assert au.command(adm, "RESUME") == "RESUME"
        assert state(adm)["suspended"] not in truthy
    assert au.can_connect(p)


# ---------------------------------------------------------------------------
# sluice's percentile columns
# ---------------------------------------------------------------------------

def _pcts(row, kind):
    return [au.as_int(row["p%d_%s_us" % (q, kind)]) for q in (50, 95, 99)]


@au.sluice_only("1.18 has no percentile columns")
@pytest.mark.hard_timeout(60)
def test_percentiles_ordered_and_bounded(make_pooler):
    p = stats_pooler(make_pooler)
    t0 = time.monotonic()
    with au.console(p) as adm, au.client(p) as c:
        seen = {}

        def filled():
            for i in range(20):
                # a spread of query times: most fast, a few ~5 ms
                c.execute("select pg_sleep(0.005)" if i % 10 == 0 else "select 1")
            s = au.row_for(adm, "SHOW STATS", database="testdb")
            pl = au.row_for(adm, "SHOW POOLS", database="testdb", user="app")
            seen["s"], seen["p"] = s, pl
            return (s is not None and pl is not None and _pcts(s, "query")[2] > 0
                    and _pcts(s, "xact")[2] > 0 and _pcts(pl, "query")[2] > 0)

        helpers.wait_for(filled, 8, 0.05, "SHOW STATS / SHOW POOLS query percentiles to fill in")
        bound_us = (time.monotonic() - t0) * 1e6
        for name, row in (("STATS", seen["s"]), ("POOLS", seen["p"])):
            for kind in ("wait", "query", "xact"):
                p50, p95, p99 = _pcts(row, kind)
                assert 0 <= p50 <= p95 <= p99, "%s %s percentiles %s" % (name, kind, (p50, p95, p99))
                assert p99 <= bound_us, "%s p99_%s_us = %d > the whole run (%d us)" % (
                    name, kind, p99, bound_us)
            # a 'select 1' round trip is far below a second
            assert _pcts(row, "query")[0] < 1000000, row


@au.sluice_only("1.18 has no percentile columns")
@pytest.mark.hard_timeout(60)
def test_wait_percentiles_see_a_wait(make_pooler):
    p = stats_pooler(make_pooler, settings={"default_pool_size": 1})
    holder = au.client(p)
    try:
        holder.execute("select 1")
        t, r = au.run_in_thread(lambda: _connect_query(p))
        time.sleep(0.5)
        holder.close()
        assert au.finished(t, r, 10) and r["v"] == 1, r
        with au.console(p) as adm:
            def waited():
                s = au.row_for(adm, "SHOW STATS", database="testdb")
                return s is not None and _pcts(s, "wait")[2] >= 300000 and s
            s = helpers.wait_for(waited, 5, 0.05, "p99_wait_us to show the ~0.5 s wait")
            p50, p95, p99 = _pcts(s, "wait")
            assert p50 <= p95 <= p99 <= 30000000, s
    finally:
        holder.close()


def _connect_query(p):
    with au.client(p, connect_timeout=20) as c:
        return c.execute("select 1").fetchone()[0]
