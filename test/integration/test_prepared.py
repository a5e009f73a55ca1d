"""Protocol-level named prepared statements in transaction and statement pooling
(issue 4, item 4; max_prepared_statements).

A client's named Parse is remembered by the pooler and prepared under the pooler's own
name on whichever server the client is given (lazily, at the first Bind/Describe that
needs it), with a per-server LRU of max_prepared_statements; the client's Close is
answered by the pooler; DEALLOCATE ALL / DISCARD ALL forget the client's statements; a
Parse skipped by the server after an error is forgotten. max_prepared_statements = 0
and session mode pass named statements through unchanged.

How a client is made to change servers without timing: with default_pool_size = 2, a
second client opens a transaction on the only server that exists so far (checked with
pg_backend_pid()), so the first client's next transaction must run on a new one.

Everything except the pass-through checks (max_prepared_statements = 0, session mode)
fails under PgBouncer 1.18, which has no prepared statement support in transaction
pooling (a named statement prepared on one server is missing on the others, and two
clients' statements of the same name collide on one server).
"""

import asyncio
import decimal
import re
import struct
import subprocess
import threading

import pytest

import admin_util as au
import helpers
import pgproto

NO_PREPARED_SUPPORT = "PgBouncer 1.18 has no prepared statement support in transaction pooling"
sluice_only = au.sluice_only(NO_PREPARED_SUPPORT)


# ---------------------------------------------------------------------------
# poolers
# ---------------------------------------------------------------------------


def prep_pooler(make_pooler, pg, size=1, mode="transaction", max_prepared=None, **settings):
    s = {"pool_mode": mode, "default_pool_size": size, "max_client_conn": 100}
    if max_prepared is not None:
        # PgBouncer 1.18 does not know the setting (and behaves as with 0)
        s["max_prepared_statements"] = None if helpers.IS_PGBOUNCER else max_prepared
    s.update(settings)
    return au.make_admin_pooler(make_pooler, settings=s)


# ---------------------------------------------------------------------------
# extended protocol by hand (on top of pgproto.RawConn)
# ---------------------------------------------------------------------------


def _msg(mtype, payload=b""):
    return mtype.encode() + struct.pack("!I", len(payload) + 4) + payload


def _cstr(s):
    return s.encode() + b"\0"


def Parse(name, sql, types=()):
    return _msg("P", _cstr(name) + _cstr(sql) + struct.pack("!H", len(types))
                + b"".join(struct.pack("!I", t) for t in types))


def Bind(stmt, params=(), portal=""):
    body = _cstr(portal) + _cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for v in params:
        if v is None:
            body += struct.pack("!i", -1)
        else:
            b = str(v).encode()
            body += struct.pack("!i", len(b)) + b
    return _msg("B", body + struct.pack("!H", 0))


def Describe(kind, name):
    return _msg("D", kind.encode() + _cstr(name))


def Execute(portal="", max_rows=0):
    return _msg("E", _cstr(portal) + struct.pack("!I", max_rows))


def Close(kind, name):
    return _msg("C", kind.encode() + _cstr(name))


def Query(sql):
    return _msg("Q", _cstr(sql))


SYNC = _msg("S")


class Result:
    """The replies up to ReadyForQuery. types: message types in order, without the
    asynchronous ones (ParameterStatus 'S', NoticeResponse 'N')."""

    def __init__(self):
        self.types = ""
        self.rows = []
        self.errors = []
        self.status = None

    def __repr__(self):
        return "Result(types=%r, rows=%r, errors=%r)" % (self.types, self.rows, [str(e) for e in self.errors])

    def error_text(self):
        return "\n".join(e.all_text() for e in self.errors)


def _data_row(payload):
    (n,) = struct.unpack("!H", payload[:2])
    pos, row = 2, []
    for _ in range(n):
        (ln,) = struct.unpack("!i", payload[pos:pos + 4])
        pos += 4
        if ln < 0:
            row.append(None)
        else:
            row.append(payload[pos:pos + ln].decode("utf-8", "replace"))
            pos += ln
    return tuple(row)


def read_until_ready(conn):
    r = Result()
    while True:
        mtype, payload = conn.recv_msg()
        if mtype in ("S", "N"):
            continue
        r.types += mtype
        if mtype == "D":
            r.rows.append(_data_row(payload))
        elif mtype == "E":
            r.errors.append(pgproto.ServerError(pgproto.parse_error_fields(payload)))
        elif mtype == "Z":
            r.status = payload[:1].decode()
            return r


def run(conn, *msgs):
    """Send the messages (the last one is normally SYNC) and read to ReadyForQuery."""
    conn.send(b"".join(msgs))
    return read_until_ready(conn)


def ok(conn, *msgs, types=None):
    r = run(conn, *msgs)
    assert not r.errors, r
    if types is not None:
        assert r.types == types, r
    return r


def pid_of(conn):
    return int(conn.scalar("select pg_backend_pid()"))


def parse_with_pid(conn, name, sql):
    """Parse name in a transaction that also reports the server's pid."""
    r = ok(conn, Parse(name, sql), Parse("", "select pg_backend_pid()"), Bind(""), Execute(), SYNC,
           types="112DCZ")
    return int(r.rows[0][0])


def hold_server(conn, expect_pid):
    """conn opens a transaction on the server with expect_pid (the only idle one)."""
    conn.query("begin")
    got = pid_of(conn)
    assert got == expect_pid, "holder got server %s, expected the only one, %s" % (got, expect_pid)


def client_port(conn):
    return conn.sock.getsockname()[1]


def stats(adm):
    return (au.stat(adm, "STATS", "testdb", "total_client_parse_count"),
            au.stat(adm, "STATS", "testdb", "total_server_parse_count"))


def servers(adm, db="testdb"):
    return au.rows_for(adm, "SERVERS", database=db)


# ---------------------------------------------------------------------------
# pgbench
# ---------------------------------------------------------------------------


def pgbench_result(out):
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert processed, out
    return int(processed.group(1)), int(failed.group(1)) if failed else 0


# -M simple and -M extended with 50 clients on 5 servers in transaction mode are in
# test_txn_pooling.py (test_pgbench_transaction_mode).
@sluice_only
@pytest.mark.hard_timeout(180)
@pytest.mark.parametrize("mode,script", [("transaction", "select-only"),
                                         ("transaction", "tpcb-like"),
                                         ("statement", "select-only")])
def test_pgbench_prepared_50_clients_5_servers(make_pooler, pg, mode, script):
    # initialized directly on PostgreSQL: pgbench -i uses transaction blocks
    # (refused in statement mode)
    init = subprocess.run([helpers.PGBENCH, "-i", "-q", "-s", "1", "-h", pg.host, "-p", str(pg.port),
                           "-U", "app", "benchdb"], env=helpers.clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    p = au.make_admin_pooler(make_pooler, databases={"benchdb": pg.dbentry("benchdb")},
                             settings={"pool_mode": mode, "default_pool_size": 5, "max_client_conn": 100})
    per_client = 100 if script == "select-only" else 40
    # (Without the feature tpcb-like does not fail fast: clients that fail inside a transaction
    # keep their servers until pgbench ends, and the others wait in a blocking PQprepare.)
    r = p.pgbench(["-n", "-b", script, "-c", "50", "-j", "2", "-t", str(per_client), "-M", "prepared"],
                  timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    processed, failed = pgbench_result(r.stdout)
    assert failed == 0, r.stdout
    assert processed == 50 * per_client, r.stdout
    with au.console(p) as adm:
        srv = servers(adm, "benchdb")
        client_parses = au.stat(adm, "STATS", "benchdb", "total_client_parse_count")
        server_parses = au.stat(adm, "STATS", "benchdb", "total_server_parse_count")
    assert 0 < len(srv) <= 5, srv
    # every client prepares each SQL command of its script once
    per_script = 1 if script == "select-only" else 7  # BEGIN, 5 statements, END
    assert client_parses == 50 * per_script, client_parses
    # a server prepares each distinct statement at most once (nothing is evicted)
    assert 0 < server_parses <= len(srv) * per_script, (server_parses, len(srv))


# ---------------------------------------------------------------------------
# asyncpg
# ---------------------------------------------------------------------------


async def _asyncpg_workload(p):
    import asyncpg

    async def connect():
        return await asyncpg.connect(host=p.host, port=p.port, user="app", database="testdb",
                                     ssl=False, timeout=helpers.CONNECT_TIMEOUT, command_timeout=30)

    conns = [await connect() for _ in range(10)]
    holders = [await connect() for _ in range(2)]
    pool = None
    pids = set()
    try:
        # Each connection prepares its own texts; asyncpg names them __asyncpg_stmt_<n>__
        # per connection, so the same names stand for different statements.
        # (asyncpg's prepare() is Parse, Describe, Flush: no Sync, so the connection keeps
        # its server until it uses the statement, which it does at once.)
        stmts = []
        for j, c in enumerate(conns):
            mul = await c.prepare("select $1::int * %d, pg_backend_pid()" % (j + 1))
            assert (await mul.fetchrow(1))[0] == j + 1
            cat = await c.prepare("select $1::text || '/%d/' || $2::int, pg_backend_pid()" % j)
            assert (await cat.fetchrow("x", 0))[0] == "x/%d/0" % j
            stmts.append((mul, cat))

        async def use(j, rounds):
            c = conns[j]
            mul, cat = stmts[j]
            seen = set()
            for n in range(rounds):
                v, pid = await mul.fetchrow(n)
                assert v == n * (j + 1), (j, n, v)
                seen.add(pid)
                s, pid = await cat.fetchrow("c%d" % j, n)
                assert s == "c%d/%d/%d" % (j, j, n), (j, n, s)
                seen.add(pid)
                # statement cache: plain fetch with arguments
                row = await c.fetchrow("select $1::int + %d as v, pg_backend_pid() as pid" % (j % 3), n)
                assert row["v"] == n + j % 3, (j, n, row)
                seen.add(row["pid"])
                assert await c.fetchval("select $1::text || $2::text", "a%d" % j, str(n)) == "a%d%d" % (j, n)
            return seen

        async def phase():
            got = await asyncio.gather(*[use(j, 8) for j in range(len(conns))])
            return set().union(*got)

        # Phase 1: one holder keeps the first server in a transaction, everyone runs on the
        # other one. Phase 2: the other server is held, everyone runs on the first one.
        h1, h2 = holders
        await h1.execute("begin")
        first = await h1.fetchval("select pg_backend_pid()")
        on = await phase()
        assert first not in on and len(on) == 1, (first, on)
        second = on.pop()
        await h2.execute("begin")
        assert await h2.fetchval("select pg_backend_pid()") == second
        await h1.execute("commit")
        on = await phase()
        assert on == {first}, (first, second, on)
        await h2.execute("commit")
        pids |= {first, second}

        # Free for all, through an asyncpg pool of 10 on the same 2 servers.
        pool = await asyncpg.create_pool(host=p.host, port=p.port, user="app", database="testdb",
                                         ssl=False, timeout=helpers.CONNECT_TIMEOUT, command_timeout=30,
                                         min_size=10, max_size=10)

        async def job(i):
            async with pool.acquire() as c:
                k = i % 7
                assert await c.fetchval("select $1::int + %d" % k, i) == i + k
                ps = await c.prepare("select $1::bigint * 3, pg_backend_pid()")
                v, pid = await ps.fetchrow(i)
                assert v == 3 * i
                return pid

        pids |= set(await asyncio.gather(*[job(i) for i in range(300)]))
        for seen in await asyncio.gather(*[use(j, 3) for j in range(len(conns))]):
            pids |= seen
    finally:
        if pool is not None:
            await pool.close()
        for c in conns + holders:
            await c.close()
    return pids


@sluice_only
@pytest.mark.hard_timeout(120)
def test_asyncpg_prepared_statements_move_between_servers(make_pooler, pg):
    pytest.importorskip("asyncpg")
    p = prep_pooler(make_pooler, pg, size=2)
    pids = asyncio.run(asyncio.wait_for(_asyncpg_workload(p), 90))
    assert len(pids) == 2, pids
    with au.console(p) as adm:
        srv = servers(adm)
    assert len(srv) == 2, srv  # servers are kept: this is the peak
    assert {int(r["remote_pid"]) for r in srv} == pids
    assert set(pg.backend_pids("testdb", "app")) == pids


# ---------------------------------------------------------------------------
# psycopg 3
# ---------------------------------------------------------------------------


def _psycopg_round(conns, idx, rounds, queries):
    """Connection i runs the queries in its own order, so its _pg3_<n> names stand for
    other texts than the same names of the others."""
    pids = set()
    for i in idx:
        c = conns[i]
        order = queries[i % len(queries):] + queries[:i % len(queries)]
        for n in range(rounds):
            for sql, args, expect in order:
                if i % 2:
                    row = c.cursor().execute(sql, args(i, n), prepare=True).fetchone()
                else:
                    row = c.execute(sql, args(i, n)).fetchone()
                assert row[0] == expect(i, n), (i, n, sql, row)
                pids.add(row[1])
    return pids


PSYCOPG_QUERIES = [
    ("select %s::int + 1, pg_backend_pid()", lambda i, n: (n,), lambda i, n: n + 1),
    ("select %s::text || '-' || %s::text, pg_backend_pid()", lambda i, n: ("c%d" % i, n),
     lambda i, n: "c%d-%d" % (i, n)),
    ("select %s::int * %s::int, pg_backend_pid()", lambda i, n: (i, n), lambda i, n: i * n),
    ("select length(%s::text), pg_backend_pid()", lambda i, n: ("x" * n,), lambda i, n: n),
    ("select %s::numeric / 4, pg_backend_pid()", lambda i, n: (n,), lambda i, n: decimal.Decimal(n) / 4),
]


@sluice_only
@pytest.mark.hard_timeout(120)
def test_psycopg_server_side_prepare(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=2)
    # even connections: prepare_threshold=0 (every query prepared); odd ones: the default
    # threshold, with execute(prepare=True)
    conns = [p.connect(prepare_threshold=0) if i % 2 == 0 else p.connect() for i in range(6)]
    a, b = au.client(p), au.client(p)
    try:
        a.execute("begin")
        first = a.execute("select pg_backend_pid()").fetchone()[0]
        on = _psycopg_round(conns, range(6), 3, PSYCOPG_QUERIES)
        assert first not in on and len(on) == 1, (first, on)
        second = on.pop()
        b.execute("begin")
        assert b.execute("select pg_backend_pid()").fetchone()[0] == second
        a.execute("commit")
        assert _psycopg_round(conns, range(6), 3, PSYCOPG_QUERIES) == {first}
        b.execute("commit")
        # and all at once, from threads
        errors = []

        def worker(i):
            try:
                _psycopg_round(conns, [i], 10, PSYCOPG_QUERIES)
            except BaseException as e:  # noqa: B902 - reported below
                errors.append((i, e))

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        # psycopg really prepared them: named statements, 5 per connection (or more, if it
        # prepared one text for several parameter types)
        with au.console(p) as adm:
            counts = sorted(int(r["prepared_statements"]) for r in au.rows_for(adm, "CLIENTS", database="testdb"))
        assert counts[:2] == [0, 0] and all(n >= len(PSYCOPG_QUERIES) for n in counts[2:]), counts
    finally:
        for c in conns + [a, b]:
            c.close()


# ---------------------------------------------------------------------------
# raw protocol
# ---------------------------------------------------------------------------


@sluice_only
def test_statement_follows_client_to_another_server(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=2)
    a, b = p.raw_login(), p.raw_login()
    try:
        first = parse_with_pid(a, "s1", "select $1::int * 2, pg_backend_pid()")
        r = ok(a, Bind("s1", [21]), Execute(), SYNC, types="2DCZ")
        assert r.rows == [("42", str(first))]
        hold_server(b, first)
        # a's next transaction runs on a second server, which lacks s1
        r = ok(a, Describe("S", "s1"), SYNC, types="tTZ")
        r = ok(a, Bind("s1", [5]), Execute(), SYNC, types="2DCZ")
        second = int(r.rows[0][1])
        assert r.rows[0][0] == "10" and second != first
        b.query("commit")
        # both servers have it now: whichever a gets, it is not prepared again
        b.query("begin")
        held = pid_of(b)
        r = ok(a, Bind("s1", [7]), Execute(), SYNC, types="2DCZ")
        assert r.rows[0][0] == "14" and int(r.rows[0][1]) != held
        b.query("commit")
        with au.console(p) as adm:
            # client: s1 and the unnamed one; server: those two, and s1 on the second server
            assert stats(adm) == (2, 3)
            assert sorted(int(r["prepared_statements"]) for r in servers(adm)) == [1, 1]
    finally:
        a.close()
        b.close()


@sluice_only
def test_statement_survives_terminated_server(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        first = parse_with_pid(a, "s1", "select $1::text || '!', pg_backend_pid()")
        assert b.scalar("select 1") == "1"
        with pg.connect() as su:
            assert su.execute("select pg_terminate_backend(%s)", (first,)).fetchone()[0]
        helpers.wait_for(lambda: first not in pg.backend_pids(), 10, 0.05, "backend to exit")
        with au.console(p) as adm:
            helpers.wait_for(lambda: all(int(r["remote_pid"]) != first for r in servers(adm)), 10, 0.05,
                             "the pooler to drop the dead server")
        r = ok(a, Bind("s1", ["hi"]), Execute(), SYNC, types="2DCZ")
        assert r.rows[0][0] == "hi!" and int(r.rows[0][1]) != first
    finally:
        a.close()
        b.close()


@sluice_only
def test_same_name_different_statements_on_one_server(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        ok(a, Parse("s", "select 'from a'"), SYNC, types="1Z")
        ok(b, Parse("s", "select 'from b', $1::int"), SYNC, types="1Z")
        for _ in range(3):
            assert ok(a, Bind("s"), Execute(), SYNC, types="2DCZ").rows == [("from a",)]
            assert ok(b, Bind("s", [3]), Execute(), SYNC, types="2DCZ").rows == [("from b", "3")]
        # a client re-using its own name for a new text after Close
        ok(a, Close("S", "s"), Parse("s", "select 'a again'"), SYNC, types="31Z")
        assert ok(a, Bind("s"), Execute(), SYNC, types="2DCZ").rows == [("a again",)]
    finally:
        a.close()
        b.close()


@sluice_only
def test_close_is_answered_and_forgets_the_statement(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        ok(a, Parse("s1", "select 11"), SYNC, types="1Z")
        assert ok(a, Bind("s1"), Execute(), SYNC).rows == [("11",)]
        ok(a, Close("S", "s1"), SYNC, types="3Z")
        # answered by the pooler: the statement stays prepared on the server
        assert a.scalar("select count(*) from pg_prepared_statements") == "1"
        with au.console(p) as adm:
            assert [int(r["prepared_statements"]) for r in servers(adm)] == [1]
            # and another client's Parse of the same text does not reach the server
            _, server_parses = stats(adm)
            ok(b, Parse("b1", "select 11"), SYNC, types="1Z")
            assert stats(adm)[1] == server_parses
        r = run(a, Bind("s1"), Execute(), SYNC)
        assert r.types == "EZ", r
        assert r.errors[0].sqlstate == "26000" and "does not exist" in r.errors[0].message, r
        assert ok(b, Bind("b1"), Execute(), SYNC, types="2DCZ").rows == [("11",)]
        # Close in a pipeline, between other messages, keeps the order of the replies
        r = ok(a, Parse("s2", "select 12"), Bind("s2"), Execute(), Close("S", "s2"),
               Parse("s3", "select 13"), Bind("s3"), Execute(), SYNC, types="12DC312DCZ")
        assert r.rows == [("12",), ("13",)]
        # closing a name that does not exist is no error (as in PostgreSQL)
        ok(a, Close("S", "never_prepared"), SYNC, types="3Z")
    finally:
        a.close()
        b.close()


@sluice_only
def test_parse_of_statement_already_on_server_is_answered_by_pooler(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    sql = "select $1::int + 100"
    try:
        with au.console(p) as adm:
            assert stats(adm) == (0, 0)
            ok(a, Parse("a1", sql), SYNC, types="1Z")
            assert ok(a, Bind("a1", [1]), Execute(), SYNC).rows == [("101",)]
            assert stats(adm) == (1, 1)
            # another client, another name, the same statement: not sent to the server
            ok(b, Parse("b1", sql), SYNC, types="1Z")
            assert stats(adm) == (2, 1)
            assert ok(b, Bind("b1", [2]), Execute(), SYNC, types="2DCZ").rows == [("102",)]
            r = ok(b, Parse("b2", sql), Bind("b2", [3]), Execute(), SYNC, types="12DCZ")
            assert r.rows == [("103",)]
            assert stats(adm) == (3, 1)
            srv = servers(adm)
            assert [int(r["prepared_statements"]) for r in srv] == [1], srv
    finally:
        a.close()
        b.close()


@sluice_only
def test_show_clients_and_servers_prepared_statements(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        ok(a, Parse("x1", "select 1"), Parse("x2", "select 2"), Parse("x3", "select 3"), SYNC, types="111Z")
        ok(b, Parse("y1", "select 3"), SYNC, types="1Z")
        with au.console(p) as adm:
            by_port = {int(r["port"]): int(r["prepared_statements"])
                       for r in au.rows_for(adm, "CLIENTS", database="testdb")}
            assert by_port == {client_port(a): 3, client_port(b): 1}, by_port
            assert [int(r["prepared_statements"]) for r in servers(adm)] == [3]
            ok(a, Close("S", "x1"), SYNC, types="3Z")
            by_port = {int(r["port"]): int(r["prepared_statements"])
                       for r in au.rows_for(adm, "CLIENTS", database="testdb")}
            assert by_port == {client_port(a): 2, client_port(b): 1}, by_port
            # the server keeps it
            assert [int(r["prepared_statements"]) for r in servers(adm)] == [3]
    finally:
        a.close()
        b.close()


@sluice_only
def test_lru_eviction_and_reprepare(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1, max_prepared=2)
    a = p.raw_login()
    names = ["r%d" % k for k in range(5)]
    try:
        r = ok(a, *[Parse(n, "select $1::int * %d + %d" % (k + 2, k)) for k, n in enumerate(names)], SYNC)
        assert r.types == "11111Z", r
        with au.console(p) as adm:
            _, parses_before = stats(adm)
            for rnd in range(4):
                for k, n in enumerate(names):
                    r = ok(a, Bind(n, [rnd]), Execute(), SYNC, types="2DCZ")
                    assert r.rows == [(str(rnd * (k + 2) + k),)], (rnd, n, r)
                    on_server = a.query("select name from pg_prepared_statements")
                    assert len(on_server) <= 2, on_server
                    # the server knows them under the pooler's names only
                    assert not {row[0] for row in on_server} & set(names), on_server
                    assert [int(x["prepared_statements"]) for x in servers(adm)] == [len(on_server)]
            _, parses_after = stats(adm)
        # round robin over 5 with room for 2: every use prepared again
        assert parses_after - parses_before == 4 * 5, (parses_before, parses_after)
    finally:
        a.close()


# fails at Execute (1/0 would already fail when planned, at Bind)
DIV_BY_ZERO = "select 1 / (random() * 0)::int"


@sluice_only
def test_error_in_pipeline_forgets_skipped_parse(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        # b's statements of the same names, on the same server, are not disturbed
        ok(b, Parse("s1", "select 'b one'"), Parse("s2", "select 'b two'"), SYNC, types="11Z")
        r = run(a, Parse("s1", "selec 1 broken"), Parse("s2", "select 'two'"), SYNC)
        assert r.types == "EZ" and r.errors[0].sqlstate == "42601", r
        # s2's Parse was skipped: it is not on the server, a new Parse must reach it
        r = ok(a, Parse("s2", "select 'two'"), Bind("s2"), Execute(), SYNC, types="12DCZ")
        assert r.rows == [("two",)]
        # the same text from another client is on the server now
        r = ok(b, Parse("b2", "select 'two'"), Bind("b2"), Execute(), SYNC, types="12DCZ")
        assert r.rows == [("two",)]
        # s1, fixed
        ok(a, Parse("s1", "select 'one'"), SYNC, types="1Z")
        assert ok(a, Bind("s1"), Execute(), SYNC, types="2DCZ").rows == [("one",)]
        # an error after a good Parse in the same pipeline: that Parse was not skipped
        r = run(a, Parse("s3", "select 'three'"), Parse("", DIV_BY_ZERO), Bind(""), Execute(), SYNC)
        assert r.types == "112EZ" and r.errors[0].sqlstate == "22012", r
        assert ok(a, Bind("s3"), Execute(), SYNC, types="2DCZ").rows == [("three",)]
        assert ok(b, Parse("b3", "select 'three'"), Bind("b3"), Execute(), SYNC, types="12DCZ").rows == [("three",)]
        assert ok(b, Bind("s1"), Execute(), Bind("s2"), Execute(), SYNC, types="2DC2DCZ").rows == \
            [("b one",), ("b two",)]
    finally:
        a.close()
        b.close()


@sluice_only
def test_error_before_injected_parse_reprepares(make_pooler, pg):
    # max 1: preparing t2 evicts t1, so the Bind of t1 after the error needs an injected
    # Parse, which the server skips
    p = prep_pooler(make_pooler, pg, size=1, max_prepared=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        # another client's t1, on the same server
        ok(b, Parse("t1", "select 'b first'"), SYNC, types="1Z")
        ok(a, Parse("t1", "select 'first'"), SYNC, types="1Z")
        ok(a, Parse("t2", "select 'second'"), SYNC, types="1Z")
        r = run(a, Parse("", "selec broken"), Bind("t1"), Execute(), SYNC)
        assert r.types == "EZ" and r.errors[0].sqlstate == "42601", r
        assert ok(a, Bind("t1"), Execute(), SYNC, types="2DCZ").rows == [("first",)]
        assert ok(a, Bind("t2"), Execute(), SYNC, types="2DCZ").rows == [("second",)]
        # an error in the middle of a pipeline that uses both
        r = run(a, Bind("t1"), Execute(), Parse("", DIV_BY_ZERO), Bind(""), Execute(),
                Bind("t2"), Execute(), SYNC)
        assert r.types == "2DC12EZ" and r.errors[0].sqlstate == "22012", r
        assert ok(a, Bind("t2"), Execute(), Bind("t1"), Execute(), SYNC, types="2DC2DCZ").rows == \
            [("second",), ("first",)]
        assert ok(b, Bind("t1"), Execute(), SYNC, types="2DCZ").rows == [("b first",)]
        assert a.scalar("select count(*) from pg_prepared_statements") == "1"
    finally:
        a.close()
        b.close()


@sluice_only
@pytest.mark.parametrize("command", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_deallocate_all_forgets_client_statements(make_pooler, pg, command):
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        ok(a, Parse("d1", "select 'd1'"), Parse("d2", "select 'd2'"), SYNC, types="11Z")
        ok(b, Parse("keep", "select 'b keeps'"), SYNC, types="1Z")
        assert ok(a, Bind("d1"), Execute(), SYNC).rows == [("d1",)]
        a.query(command)
        for name in ("d1", "d2"):
            r = run(a, Bind(name), Execute(), SYNC)
            assert r.types == "EZ" and r.errors[0].sqlstate == "26000", r
            assert "does not exist" in r.errors[0].message, r
        # the names are free again, for other texts too
        ok(a, Parse("d1", "select 'd1 new'"), SYNC, types="1Z")
        assert ok(a, Bind("d1"), Execute(), SYNC, types="2DCZ").rows == [("d1 new",)]
        ok(a, Parse("d2", "select 'd2'"), SYNC, types="1Z")
        assert ok(a, Bind("d2"), Execute(), SYNC, types="2DCZ").rows == [("d2",)]
        # the other client's statement was not lost with the server's
        assert ok(b, Bind("keep"), Execute(), SYNC, types="2DCZ").rows == [("b keeps",)]
        with au.console(p) as adm:
            by_port = {int(r["port"]): int(r["prepared_statements"])
                       for r in au.rows_for(adm, "CLIENTS", database="testdb")}
        assert by_port == {client_port(a): 2, client_port(b): 1}, by_port
    finally:
        a.close()
        b.close()


def test_max_prepared_statements_0_passes_through(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=2, max_prepared=0)
    a, b = p.raw_login(), p.raw_login()
    try:
        first = parse_with_pid(a, "s1", "select 1")
        # on the same server it is there, under the client's own name
        assert ok(a, Bind("s1"), Execute(), SYNC, types="2DCZ").rows == [("1",)]
        hold_server(b, first)
        assert ("s1",) in b.query("select name from pg_prepared_statements")
        r = run(a, Bind("s1"), Execute(), SYNC)
        assert r.types == "EZ" and r.errors[0].sqlstate == "26000", r
        assert 'prepared statement "s1" does not exist' in r.errors[0].message, r
        b.query("commit")
    finally:
        a.close()
        b.close()


def test_session_mode_passes_through(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1, mode="session")
    a = p.raw_login()
    try:
        ok(a, Parse("my_session_stmt", "select $1::int + 1"), SYNC, types="1Z")
        assert ok(a, Bind("my_session_stmt", [1]), Execute(), SYNC).rows == [("2",)]
        assert a.query("select name from pg_prepared_statements") == [("my_session_stmt",)]
        ok(a, Close("S", "my_session_stmt"), SYNC, types="3Z")
        assert a.query("select name from pg_prepared_statements") == []
        # the server's own error for a name in use
        ok(a, Parse("dup", "select 1"), SYNC, types="1Z")
        r = run(a, Parse("dup", "select 2"), SYNC)
        assert r.types == "EZ" and r.errors[0].sqlstate == "42P05", r
    finally:
        a.close()


# ---------------------------------------------------------------------------
# between transactions: Parse ... Sync answered without a server
# ---------------------------------------------------------------------------


@sluice_only
def test_parse_between_transactions_needs_no_server(make_pooler, pg):
    """With the only server held by another client's open transaction, a Parse + Sync of
    a statement some server has already accepted is answered at once (libpq's
    PQprepare); one no server has seen yet waits for a server, which validates it."""
    p = prep_pooler(make_pooler, pg, size=1)
    a, b, holder = p.raw_login(), p.raw_login(), p.raw_login()
    try:
        srv_pid = parse_with_pid(a, "s1", "select 41")
        hold_server(holder, srv_pid)
        ok(b, Parse("b1", "select 41"), SYNC, types="1Z")  # answered by the pooler
        ok(b, Close("S", "b1"), Parse("b2", "select 41"), SYNC, types="31Z")
        # a text no server has accepted cannot be answered here: it waits for the server
        b.send(Parse("b3", "select 42") + SYNC)
        t, res = au.run_in_thread(lambda: read_until_ready(b))
        assert au.still_pending(t, res, 0.5), res
        holder.query("commit")
        assert au.finished(t, res, 10), res
        assert res["v"].types == "1Z" and not res["v"].errors, res
        assert ok(b, Bind("b2"), Execute(), SYNC, types="2DCZ").rows == [("41",)]
        # a bad statement is never "accepted": its error comes from the server
        r = run(b, Parse("bad", "selec 1"), SYNC)
        assert r.types == "EZ" and r.errors[0].sqlstate == "42601", r
        r = run(b, Parse("bad2", "selec 1"), SYNC)
        assert r.types == "EZ", r
    finally:
        for c in (a, b, holder):
            c.close()


# ---------------------------------------------------------------------------
# malformed messages: the client gets a protocol error, nobody else notices
# ---------------------------------------------------------------------------


MALFORMED = {
    "parse_name_unterminated": _msg("P", b"s1"),
    "parse_query_unterminated": _msg("P", _cstr("s1") + b"select 1"),
    "parse_no_param_count": _msg("P", _cstr("s1") + _cstr("select 1")),
    "bind_names_unterminated": _msg("B", b"\0s1"),
    "bind_empty": _msg("B", b""),
    "describe_empty": _msg("D", b""),
    "describe_name_unterminated": _msg("D", b"Ss1"),
    "close_name_unterminated": _msg("C", b"Ss1"),
}


@sluice_only
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_extended_messages(make_pooler, pg, name):
    p = prep_pooler(make_pooler, pg, size=1)
    bystander, bad = p.raw_login(), p.raw_login()
    try:
        ok(bystander, Parse("s1", "select 7"), SYNC, types="1Z")
        bad.send(MALFORMED[name] + SYNC)
        got = ""
        with pytest.raises((EOFError, ConnectionError, OSError)):
            while True:
                mtype, payload = bad.recv_msg()
                got += mtype
                if mtype == "E":
                    err = pgproto.ServerError(pgproto.parse_error_fields(payload))
                    assert err.sqlstate == "08P01" and "invalid" in err.message, err
        assert got == "E", got
        # the other client and the pool are unharmed
        assert ok(bystander, Bind("s1"), Execute(), SYNC).rows == [("7",)]
        with au.console(p) as adm:
            assert all(int(r["prepared_statements"]) <= 1 for r in servers(adm))
    finally:
        bystander.close()
        bad.close()
