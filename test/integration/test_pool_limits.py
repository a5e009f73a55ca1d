"""Pool limits and descriptors (issue 9, items 7 and 8).

(alice is an admin user, whose head-of-queue clients may go past the limits by
admin_pool_size: these tests use the others.)

- max_db_connections / max_user_connections never starve a pool: a pool held back by
  a limit it shares with other pools gets one of their idle servers (the one idle
  longest is closed and a server opened for the waiter), as PgBouncer evicts.
- pool_size precedence: the [users] entry's, then the database's, then
  default_pool_size.
- SHOW STATS counts one server assignment per assignment, the first client of a
  pool (whose login borrows a server for its parameters) included.
- Out of descriptors, a server connect that fails with EMFILE leaves the waiters
  waiting: an idle server serves them, and the connect is retried once a
  descriptor is free.
"""

import os
import socket
import threading

import psycopg
import pytest

import admin_util as au
import helpers

WAIT_TIMEOUT = 15  # query_wait_timeout: a starved client fails instead of hanging

USERS = {"app": "", "alice": helpers.ALICE_PW, "bob": helpers.BOB_PW,
         "carol": helpers.CAROL_PW, "postgres": ""}


def limits_pooler(make_pooler, settings=None, **kw):
    s = au.admin_settings({
        "pool_mode": "transaction",
        "query_wait_timeout": WAIT_TIMEOUT,
        "server_idle_timeout": 0,
    })
    s.update(settings or {})
    kw.setdefault("auth_users", USERS)
    return make_pooler(settings=s, **kw)


def login(p, user, dbname="testdb", **kw):
    pw = USERS.get(user) or None
    return au.client(p, dbname=dbname, user=user, password=pw, **kw)


def one_query(p, user, dbname="testdb", sql="select 1"):
    with login(p, user, dbname) as c:
        return c.execute(sql).fetchone()[0]


def backends(pg, dbname=None, user=None):
    return len(pg.backend_pids(dbname=dbname, user=user))


def sluice_log(p, pattern):
    """sluice's own log line; PgBouncer words it otherwise."""
    if not helpers.IS_PGBOUNCER:
        p.wait_log(pattern)


def at_most(pg, n, dbname=None, user=None):
    """An evicted server's backend exits a moment after sluice closed it."""
    helpers.wait_for(lambda: backends(pg, dbname, user) <= n, 10, 0.05,
                     "at most %d backends" % n)


# ---------------------------------------------------------------------------
# item 8: limits shared by pools
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(90)
def test_max_db_connections_third_user_not_starved(make_pooler, pg):
    p = limits_pooler(make_pooler, {"max_db_connections": 2})
    # two users' pools, each left with one idle server: the database's limit is full
    assert one_query(p, "app") == 1
    assert one_query(p, "bob") == 1
    helpers.wait_for(lambda: backends(pg, "testdb") == 2, 10, 0.05, "two idle servers")
    # a third user's client gets a server (one of the idle ones is closed for it)
    assert one_query(p, "carol", sql="select current_user") == "carol"
    at_most(pg, 2, "testdb")
    sluice_log(p, r"evicted: max_db_connections")
    # the longest idle one went: app's; bob's stays
    helpers.wait_for(lambda: backends(pg, "testdb", "app") == 0, 10, 0.05,
                     "app's idle server closed")
    assert backends(pg, "testdb", "bob") == 1
    # and the pool that lost its server gets one back the same way
    assert one_query(p, "app", sql="select current_user") == "app"
    at_most(pg, 2, "testdb")


@pytest.mark.hard_timeout(90)
def test_max_user_connections_other_database_not_starved(make_pooler, pg):
    dbs = {"testdb": pg.dbentry("testdb"), "otherdb": pg.dbentry("otherdb")}
    p = limits_pooler(make_pooler, {"max_user_connections": 1}, databases=dbs)
    assert one_query(p, "carol", "testdb") == 1
    helpers.wait_for(lambda: backends(pg, "testdb", "carol") == 1, 10, 0.05, "idle server")
    assert one_query(p, "carol", "otherdb", "select current_database()") == "otherdb"
    sluice_log(p, r"evicted: max_user_connections")
    at_most(pg, 1, user="carol")


@pytest.mark.hard_timeout(90)
def test_no_eviction_of_busy_servers(make_pooler, pg):
    """Only idle servers are taken: a pool whose servers are all in use keeps them,
    and the waiter is served when one of them comes back idle."""
    p = limits_pooler(make_pooler, {"max_db_connections": 1})
    held = login(p, "app")
    held.autocommit = False
    held.execute("select 1")  # app's pool holds the database's only server
    t, res = au.run_in_thread(lambda: one_query(p, "bob", sql="select current_user"))
    assert au.still_pending(t, res, 1.0), res
    assert backends(pg, "testdb", "app") == 1
    held.execute("commit")  # idle now: bob's waiting pool takes it over
    assert au.finished(t, res, 10), "bob still waiting"
    assert res["v"] == "bob"
    held.close()


@pytest.mark.sluice_only("the PgBouncer installed here has no [users] pool_size")
@pytest.mark.hard_timeout(90)
def test_user_pool_size_over_database_pool_size(make_pooler, pg):
    dbs = {"testdb": pg.dbentry("testdb", pool_size=1)}
    p = limits_pooler(make_pooler, databases=dbs, users={"carol": "pool_size=3"})
    conns = [login(p, "carol") for _ in range(3)]
    try:
        for c in conns:  # three transactions at once: three servers
            c.autocommit = False
            assert c.execute("select 1").fetchone()[0] == 1
        assert backends(pg, "testdb", "carol") == 3
        with au.console(p) as con:
            r = au.row_for(con, "SHOW POOLS", database="testdb", user="carol")
            assert au.as_int(r["sv_active"]) == 3, r
    finally:
        for c in conns:
            c.close()
    # a user without a [users] pool_size gets the database's
    other = [login(p, "bob") for _ in range(2)]
    try:
        other[0].autocommit = False
        other[0].execute("select 1")
        other[1].autocommit = False
        t, res = au.run_in_thread(lambda: other[1].execute("select 1").fetchone()[0])
        assert au.still_pending(t, res, 1.0), res
        other[0].execute("commit")
        assert au.finished(t, res, 10) and res["v"] == 1, res
    finally:
        for c in other:
            c.close()


@pytest.mark.sluice_only("the PgBouncer installed here has no server_assignment_count")
@pytest.mark.hard_timeout(60)
def test_assignment_count_exact(make_pooler):
    """A fresh pool's first client borrows a server during its login (for the server's
    parameters) and gives it back: that is not an assignment of its own."""
    n = 5
    p = limits_pooler(make_pooler)
    with au.console(p) as con:
        with au.client(p) as c:  # the pool's first client
            for _ in range(n):
                c.execute("select 1")

        def total():
            return au.stat(con, "SHOW STATS", "testdb", "total_server_assignment_count")

        def xacts():
            return au.stat(con, "SHOW STATS", "testdb", "total_xact_count")

        helpers.wait_for(lambda: xacts() >= n, 10, 0.05, "transactions counted")
        assert total() == n
        with au.client(p) as c:  # a later client: its login needs no server
            for _ in range(n):
                c.execute("select 1")
        helpers.wait_for(lambda: xacts() >= 2 * n, 10, 0.05, "transactions counted")
        assert total() == 2 * n
        # a first request sent with the login's link still held counts once
        p2 = limits_pooler(make_pooler)
        with au.console(p2) as con2:
            assert _pipelined_first_query(p2) == "1"
            helpers.wait_for(
                lambda: au.stat(con2, "SHOW STATS", "testdb", "total_xact_count") >= 1,
                10, 0.05, "transaction counted")
            assert au.stat(con2, "SHOW STATS", "testdb", "total_server_assignment_count") == 1


def _pipelined_first_query(p):
    """Startup packet and a Query in one write, before any answer."""
    import pgproto
    s = socket.create_connection((p.host, p.port), timeout=10)
    try:
        q = b"select 1\0"
        s.sendall(pgproto.startup_packet({"user": "app", "database": "testdb"})
                  + b"Q" + (len(q) + 4).to_bytes(4, "big") + q)
        buf, value, ready = b"", None, 0
        while ready < 2:
            chunk = s.recv(65536)
            assert chunk, "closed"
            buf += chunk
            while len(buf) >= 5:
                length = int.from_bytes(buf[1:5], "big")
                if len(buf) < 1 + length:
                    break
                mtype, body, buf = buf[:1], buf[5:1 + length], buf[1 + length:]
                if mtype == b"D":
                    n = int.from_bytes(body[2:6], "big")
                    value = body[6:6 + n].decode()
                elif mtype == b"E":
                    raise AssertionError(body)
                elif mtype == b"Z":
                    ready += 1
        return value
    finally:
        s.close()


# ---------------------------------------------------------------------------
# item 7: out of descriptors
# ---------------------------------------------------------------------------

NOFILE = 64


def open_fds(p):
    return len(os.listdir("/proc/%d/fd" % p.proc.pid))


def fill_descriptors(p, n):
    """n TCP connections that never send a startup packet: accepted, they hold the
    pooler's descriptors until they close (client_login_timeout is long)."""
    socks = [socket.create_connection((p.host, p.port), timeout=10) for _ in range(n)]
    p.wait_log(r"accept\(\) on .*Too many open files")
    helpers.wait_for(lambda: open_fds(p) >= NOFILE - 1, 10, 0.05, "every descriptor in use")
    return socks


@pytest.mark.sluice_only("PgBouncer fails the waiters when socket() runs out")
@pytest.mark.hard_timeout(120)
def test_emfile_burst_with_idle_server_present(make_pooler, pg):
    p = limits_pooler(make_pooler, {
        "default_pool_size": 4,
        "max_client_conn": 1000,
        "client_login_timeout": 120,
        "query_wait_timeout": 60,
    }, nofile=NOFILE)
    au.warm_pool(p)  # one idle server
    clients = [au.client(p) for _ in range(4)]
    holder = au.client(p)
    silent = fill_descriptors(p, NOFILE)
    try:
        # a burst that wants more servers than there are descriptors: the idle one
        # serves every client in turn, nobody is failed
        results = [None] * len(clients)
        start = threading.Barrier(len(clients))

        def run(i):
            try:
                start.wait(10)
                results[i] = clients[i].execute("select pg_sleep(0.2), %d" % i).fetchone()[1]
            except Exception as e:  # noqa: B902 - reported below
                results[i] = e

        threads = [threading.Thread(target=run, args=(i,), daemon=True)
                   for i in range(len(clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        assert results == list(range(len(clients))), results
        p.wait_log(r"testdb/app: cannot open a server connection: socket: Too many open files")
        assert "server connection failed" not in p.log()
        assert backends(pg, "testdb") == 1

        # with the only server held, a waiter gets a new one as soon as descriptors
        # free up
        holder.autocommit = False
        holder.execute("select 1")
        t, res = au.run_in_thread(lambda: clients[0].execute("select 2").fetchone()[0])
        assert au.still_pending(t, res, 1.0), res
    finally:
        for s in silent:
            s.close()
    assert au.finished(t, res, 10), "the waiter was not served after descriptors freed up"
    assert res["v"] == 2
    p.wait_log(r"testdb/app: server connections can be opened again")
    holder.execute("commit")
    for c in clients + [holder]:
        assert c.execute("select 3").fetchone()[0] == 3
        c.close()


@pytest.mark.sluice_only("PgBouncer only warns about the descriptor limit")
@pytest.mark.hard_timeout(120)
def test_max_client_conn_capped_to_keep_descriptors_for_servers(make_pooler, pg):
    pool_size = 4
    p = limits_pooler(make_pooler, {"default_pool_size": pool_size, "max_client_conn": 1000},
                      nofile=NOFILE)
    cap = int(p.wait_log(r"max_client_conn 1000 capped to (\d+): the file descriptor "
                         r"limit %d keeps \d+ back for server connections" % NOFILE).group(1))
    assert pool_size <= cap < NOFILE
    clients = []
    try:
        # clients admitted up to the limit are refused by max_client_conn before
        # descriptors run out
        with pytest.raises(psycopg.OperationalError) as ei:
            for _ in range(NOFILE):
                clients.append(au.client(p))
        assert "no more connections allowed (max_client_conn)" in helpers.error_text(ei.value)
        assert len(clients) == cap
        # and a burst that needs every server of the pool still finds descriptors
        for c in clients[:pool_size]:
            c.autocommit = False
            assert c.execute("select 1").fetchone()[0] == 1
        assert backends(pg, "testdb") == pool_size
        assert "Too many open files" not in p.log()
    finally:
        for c in clients:
            c.close()


def cpu_seconds(p):
    with open("/proc/%d/stat" % p.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.sluice_only("sluice's descriptor reserve")
@pytest.mark.hard_timeout(60)
def test_accept_out_of_descriptors_does_not_spin(make_pooler):
    """Out of descriptors with clients still queued, the listener stops watching
    the queue instead of failing accept() in a loop: the pooler stays idle."""
    p = limits_pooler(make_pooler, {"client_login_timeout": 120}, nofile=NOFILE)
    silent = fill_descriptors(p, 2 * NOFILE)  # half of them wait in the accept queue
    try:
        before = cpu_seconds(p)
        threading.Event().wait(3)
        used = cpu_seconds(p) - before
        # a loop spinning on accept() burns its whole share of a core: seconds
        assert used < 0.5, "%.2f s of CPU in 3 s while out of descriptors" % used
        assert p.running()
    finally:
        for s in silent:
            s.close()
    helpers.wait_for(lambda: _login_ok(p), 10, 0.1, "a client gets in again")


def _login_ok(p):
    try:
        return one_query(p, "app") == 1
    except psycopg.OperationalError:
        return False
