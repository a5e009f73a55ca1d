"""Isolation between clients that share servers in transaction mode: a server goes
back to the pool only between two of its client's messages, copy data left over
from a failed COPY never reaches another client's server, and frontend messages that
do not exist are refused by the pooler instead of ending a pooled server session."""

import socket
import struct
import threading
import time

import pytest

import pgproto

pytestmark = pytest.mark.sluice_only("transaction pooling isolation rules sluice adds")

BIG = 256 * 1024


@pytest.fixture
def txn_pool(make_pooler):
    return make_pooler(settings={"pool_mode": "transaction", "default_pool_size": 1})


@pytest.fixture
def copy_table(pg):
    with pg.connect(dbname="testdb") as c:
        c.execute("DROP TABLE IF EXISTS iso_copy")
        c.execute("CREATE TABLE iso_copy (n int)")
        c.execute("GRANT ALL ON iso_copy TO PUBLIC")
    yield "iso_copy"
    with pg.connect(dbname="testdb") as c:
        c.execute("DROP TABLE IF EXISTS iso_copy")


def pg_log_size(pg):
    return pg.logfile.stat().st_size


def pg_log_since(pg, offset):
    with open(pg.logfile, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def copy_data(payload_len, first_row=b"not a number\n"):
    body = first_row + b"1\n" * ((payload_len - len(first_row)) // 2)
    body += b"\n" * (payload_len - len(body))
    return b"d" + struct.pack("!I", len(body) + 4) + body


def read_until_ready(conn):
    msgs = []
    while True:
        t, p = conn.recv_msg()
        msgs.append((t, p))
        if t == "Z":
            return msgs


class Canary(threading.Thread):
    """A second client on the pool of one: its queries must come back right."""

    def __init__(self, pooler, rounds):
        super().__init__(daemon=True)
        self.pooler, self.rounds = pooler, rounds
        self.errors, self.done = [], 0

    def run(self):
        try:
            with self.pooler.raw_login(timeout=30) as c:
                for i in range(self.rounds):
                    token = "canary-%d" % i
                    got = c.scalar("SELECT '%s'" % token)
                    if got != token:
                        self.errors.append("wanted %s got %r" % (token, got))
                    self.done += 1
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            self.errors.append(repr(e))


def test_failed_copy_with_streaming_copydata_stays_with_its_client(txn_pool, pg, copy_table):
    start = pg_log_size(pg)
    with txn_pool.raw_login(timeout=30) as a:
        a.send_msg("Q", b"COPY iso_copy FROM STDIN\0")
        assert a.recv_msg()[0] == "G"
        # a whole bad message, then the head of the next one: PostgreSQL fails the
        # COPY on the first and answers while the second is still arriving
        second = copy_data(BIG)
        a.send(copy_data(BIG) + second[: BIG // 2])
        msgs = read_until_ready(a)
        types = [t for t, _ in msgs]
        assert types[0] == "E" and types[-1] == "Z", types
        canary = Canary(txn_pool, 20)
        canary.start()
        time.sleep(1.0)  # the canary asks for the only server meanwhile
        a.send(second[BIG // 2 :])
        for _ in range(3):
            a.send(copy_data(BIG))  # more of the aborted COPY, as psql would send it
        a.send_msg("c")
        canary.join(30)
        assert not canary.is_alive(), "canary hung"
        assert canary.errors == [], canary.errors
        assert canary.done == 20
        # the client's own next query is answered, and its COPY error came once
        assert a.scalar("SELECT 'after'") == "after"
        assert types.count("E") == 1
    log = pg_log_since(pg, start)
    assert "invalid frontend message type" not in log, log[-2000:]
    assert "unexpected message type" not in log, log[-2000:]


def test_copydata_after_failed_copy_is_discarded_without_a_server(txn_pool, pg, copy_table):
    start = pg_log_size(pg)
    with txn_pool.raw_login(timeout=30) as a:
        a.send_msg("Q", b"COPY iso_copy FROM STDIN\0")
        assert a.recv_msg()[0] == "G"
        a.send(copy_data(1000))
        assert [t for t, _ in read_until_ready(a)][0] == "E"
        # the server is back in the pool: the canary gets it while a's stray copy
        # data (and a CopyFail) arrive in pieces
        with txn_pool.raw_login(timeout=30) as b:
            stray = copy_data(BIG) + b"f" + struct.pack("!I", 10) + b"abort\0"
            for i in range(0, len(stray), 7777):
                a.send(stray[i : i + 7777])
                assert b.scalar("SELECT %d" % i) == str(i)
        assert a.scalar("SELECT 'a ok'") == "a ok"
    assert "invalid frontend message type" not in pg_log_since(pg, start)


def test_half_message_then_pause_reaches_only_its_server(txn_pool, pg):
    start = pg_log_size(pg)
    with txn_pool.raw_login(timeout=30) as a, txn_pool.raw_login(timeout=30) as b:
        q = b"Q" + struct.pack("!I", 4 + 20) + b"SELECT 'half-split'\0"
        assert len(q) == 25
        for cut in (1, 3, 4, 5, 9, 24):
            # a whole query, then part of the next message; wait for the answer
            a.send(b"Q" + struct.pack("!I", 4 + 9) + b"SELECT 1\0" + q[:cut])
            assert [t for t, _ in read_until_ready(a)][-1] == "Z"
            # the other client asks meanwhile: it gets the server now (a's header
            # is not complete) or once a's message is through, never a's bytes
            got = []
            t = threading.Thread(target=lambda: got.append(b.scalar("SELECT 'b%d'" % cut)))
            t.start()
            time.sleep(0.3)
            a.send(q[cut:])
            rows = [p for t_, p in read_until_ready(a) if t_ == "D"]
            assert rows and rows[0].endswith(b"half-split"), rows
            t.join(20)
            assert got == ["b%d" % cut]
    assert "invalid frontend message type" not in pg_log_since(pg, start)


@pytest.mark.parametrize("in_txn", [False, True])
@pytest.mark.parametrize("mtype", [b"z", b"p", b"\x00", b"\xff"])
def test_unknown_frontend_message_is_refused_by_the_pooler(txn_pool, pg, mtype, in_txn):
    start = pg_log_size(pg)
    with txn_pool.raw_login() as a:
        pid = a.scalar("SELECT pg_backend_pid()")
        if in_txn:
            a.send_msg("Q", b"BEGIN\0")
            read_until_ready(a)  # holds the server now
        a.send(mtype + struct.pack("!I", 8) + b"abcd")
        msgs = a.wait_closed(timeout=10)
        errs = [pgproto.parse_error_fields(p) for t, p in msgs if t == "E"]
        assert errs and errs[-1].get("C") == "08P01", msgs
    with txn_pool.raw_login() as b:
        assert b.scalar("SELECT 1") == "1"
        if not in_txn:  # the pooled server session was not touched
            assert b.scalar("SELECT pg_backend_pid()") == pid
    assert "invalid frontend message type" not in pg_log_since(pg, start)


# --- session parameters in transaction mode ------------------------------------------

# name, a value that is not the server's default (the default comes from the server)
TRACKED = [
    ("application_name", "test"),
    ("client_encoding", "LATIN1"),
    ("DateStyle", "SQL, DMY"),
    ("IntervalStyle", "sql_standard"),
    ("TimeZone", "Asia/Tokyo"),
    ("standard_conforming_strings", "off"),
]


@pytest.fixture(scope="module")
def pg_defaults(pg):
    with pg.connect(dbname="testdb") as c:
        return {k: c.execute("SHOW %s" % k).fetchone()[0] for k, _ in TRACKED}


def show(c, name):
    return c.scalar("SHOW %s" % name)


def lit(v):
    return "'%s'" % v.replace("'", "''")


@pytest.mark.parametrize("name,other", TRACKED, ids=[t[0] for t in TRACKED])
@pytest.mark.parametrize("first", ["setter", "plain"])
def test_tracked_parameter_never_leaks(txn_pool, pg_defaults, name, other, first):
    default = pg_defaults[name]
    order = [("setter", {name: other}), ("plain", None)]
    if first == "plain":
        order.reverse()
    conns = {}
    try:
        for who, params in order:
            conns[who] = txn_pool.raw_login(params=params)
        setter, plain = conns["setter"], conns["plain"]
        for _ in range(2):
            assert show(setter, name) == other
            assert show(plain, name) == default  # sent none: the default, not other's
        # the default set explicitly by one client is kept for it
        setter.query("SET %s TO %s" % (name, lit(default)))
        plain.query("SET %s TO %s" % (name, lit(other)))
        for _ in range(2):
            assert show(setter, name) == default
            assert show(plain, name) == other
        # a client that asked for the default at startup keeps it too
        with txn_pool.raw_login(params={name: default}) as explicit:
            for _ in range(2):
                assert show(explicit, name) == default
                assert show(plain, name) == other
    finally:
        for c in conns.values():
            c.close()


def test_empty_application_name_is_kept(txn_pool):
    with txn_pool.raw_login(params={"application_name": "test"}) as a, txn_pool.raw_login(
        params={"application_name": ""}
    ) as b:
        for _ in range(3):
            assert show(a, "application_name") == "test"
            assert show(b, "application_name") == ""


# --- list-valued parameters ------------------------------------------------------------


@pytest.fixture
def schemas(pg):
    with pg.connect(dbname="testdb") as c:
        c.execute("DROP SCHEMA IF EXISTS iso_s1 CASCADE")
        c.execute("CREATE SCHEMA iso_s1")
        c.execute("CREATE TABLE iso_s1.only_in_s1 (v text)")
        c.execute("INSERT INTO iso_s1.only_in_s1 VALUES ('found')")
        c.execute("GRANT USAGE ON SCHEMA iso_s1 TO PUBLIC")
        c.execute("GRANT SELECT ON iso_s1.only_in_s1 TO PUBLIC")
    yield
    with pg.connect(dbname="testdb") as c:
        c.execute("DROP SCHEMA IF EXISTS iso_s1 CASCADE")


@pytest.fixture
def sp_pool(make_pooler):
    return make_pooler(settings={"pool_mode": "transaction", "default_pool_size": 1,
                                 "track_extra_parameters": "IntervalStyle, search_path"})


def test_search_path_list_at_startup_raw(sp_pool, schemas):
    with sp_pool.raw_login(params={"search_path": "iso_s1, public"}) as a, sp_pool.raw_login() as b:
        for _ in range(2):
            assert a.scalar("SELECT current_schemas(false)") == "{iso_s1,public}"
            assert a.scalar("SELECT v FROM only_in_s1") == "found"
            # the other client did not ask for it: the server's default comes back
            assert b.scalar("SHOW search_path") == '"$user", public'


def test_search_path_list_at_startup_asyncpg(sp_pool, schemas):
    import asyncio

    import asyncpg

    async def run():
        a = await asyncpg.connect(host=sp_pool.host, port=sp_pool.port, user="app",
                                  database="testdb", statement_cache_size=0,
                                  server_settings={"search_path": "iso_s1, public"})
        b = await asyncpg.connect(host=sp_pool.host, port=sp_pool.port, user="app",
                                  database="testdb", statement_cache_size=0)
        try:
            for _ in range(2):
                assert await a.fetchval("SELECT current_schemas(false)::text") == "{iso_s1,public}"
                assert await a.fetchval("SELECT v FROM only_in_s1") == "found"
                assert await b.fetchval("SHOW search_path") == '"$user", public'
        finally:
            await a.close()
            await b.close()

    asyncio.run(run())


def test_scalar_value_with_comma_stays_one_value(sp_pool):
    with sp_pool.raw_login(params={"application_name": "a, b"}) as a, sp_pool.raw_login() as b:
        for _ in range(2):
            assert show(a, "application_name") == "a, b"
            assert show(b, "application_name") == ""


# --- statistics count bytes that arrived ----------------------------------------------


def test_bytes_received_counts_arrived_bytes_not_declared_lengths(make_pooler):
    p = make_pooler(settings={"pool_mode": "transaction", "admin_users": "postgres",
                              "stats_period": 1})
    with p.raw_login(timeout=30) as a:
        a.send(b"Q" + struct.pack("!I", 1000000) + b"SELECT '" + b"x" * 91)  # 100 bytes
        time.sleep(0.3)
        with p.raw_login(user="postgres", database="pgbouncer") as adm:
            cols = None
            for _ in range(50):
                res = adm.query("SHOW STATS")
                rows = [r for r in res if r[0] == "testdb"]
                if rows:
                    cols = rows[0]
                    break
            assert cols is not None
            # columns: database, total_server_assignment_count, total_xact_count,
            # total_query_count, total_received, ...
            received = int(cols[4])
            assert 100 <= received < 10000, cols


def test_client_leaving_mid_copydata_does_not_hand_on_a_broken_server(txn_pool, pg, copy_table):
    """The COPY failed and the server said ReadyForQuery, but the client closes in the
    middle of its next CopyData: the server has part of a message and must not serve
    anyone again."""
    start = pg_log_size(pg)
    for _ in range(3):
        with txn_pool.raw_login(timeout=30) as a:
            a.send_msg("Q", b"COPY iso_copy FROM STDIN\0")
            assert a.recv_msg()[0] == "G"
            second = copy_data(BIG)
            a.send(copy_data(1000) + second[: BIG // 3])
            assert [t for t, _ in read_until_ready(a)][0] == "E"
        with txn_pool.raw_login(timeout=30) as b:
            for i in range(5):
                assert b.scalar("SELECT 'next %d'" % i) == "next %d" % i
    log = pg_log_since(pg, start)
    assert "invalid frontend message type" not in log, log[-2000:]


def test_search_path_list_in_options_psycopg(sp_pool, schemas):
    # libpq has no keyword for search_path: psycopg (and PGOPTIONS) send it in options
    with sp_pool.connect(options="-c search_path=iso_s1,public") as a, sp_pool.connect() as b:
        for _ in range(2):
            assert a.execute("SELECT current_schemas(false)::text").fetchone()[0] == "{iso_s1,public}"
            assert a.execute("SELECT v FROM only_in_s1").fetchone()[0] == "found"
            assert b.execute("SHOW search_path").fetchone()[0] == '"$user", public'


def test_options_settings_forms(sp_pool):
    opts = r"-c application_name=with\ space --DateStyle=SQL,DMY -cIntervalStyle=iso_8601"
    with sp_pool.connect(options=opts) as a, sp_pool.connect() as b:
        for _ in range(2):
            assert a.execute("SHOW application_name").fetchone()[0] == "with space"
            assert a.execute("SHOW DateStyle").fetchone()[0] == "SQL, DMY"
            assert a.execute("SHOW IntervalStyle").fetchone()[0] == "iso_8601"
            assert b.execute("SHOW IntervalStyle").fetchone()[0] == "postgres"


@pytest.mark.parametrize("opts", ["-c work_mem=64MB", "-c", "--geqo", "-d 5", "-c =x"])
def test_options_that_cannot_follow_the_client_are_refused(sp_pool, opts):
    import psycopg

    with pytest.raises(psycopg.OperationalError) as e:
        sp_pool.connect(options=opts)
    assert "unsupported options startup parameter" in str(e.value)
    with sp_pool.connect() as c:  # others unaffected
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_replies_a_departed_client_did_not_read_go_nowhere(make_pooler):
    """A client that asked for a large reply and closed without reading it: whatever of
    that reply sluice still held for it must not reach the server's next client. (A big
    pkt_buf lets the whole reply, ReadyForQuery included, sit in sluice at once.)"""
    pool = make_pooler(settings={"pool_mode": "transaction", "default_pool_size": 1,
                                 "pkt_buf": 16 * 1024 * 1024})
    bad = []
    with pool.raw_login(timeout=30) as b:
        for n in range(30):
            a = pool.raw_login(timeout=30)
            a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            rows = 10 + 15 * n  # 100 kB to 4.5 MB: some more than a's socket takes
            a.send_msg("Q", ("SELECT repeat('x', 10000) FROM generate_series(1, %d)" % rows).encode() + b"\0")
            time.sleep(0.2)  # the server answers; sluice forwards what a's socket takes
            a.close()
            token = "b-%d" % n
            try:
                got = b.scalar("SELECT '%s'" % token)
            except Exception as e:  # noqa: BLE001
                got = repr(e)
            if got != token:
                bad.append((rows, got[:80] if isinstance(got, str) else got))
                break
    assert bad == [], bad
