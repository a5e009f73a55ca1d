"""Client churn (issue 5, item 6, client side).

Thousands of clients connect, run a query and leave, many of them rudely: a reset
(SO_LINGER 0), a half-close (shutdown(SHUT_WR)) instead of Terminate, a close in the
middle of the login, while waiting for a server of a pool of 2, or while their query
runs.  Each must be cleaned up at once, its server released or reset: afterwards
sluice holds no socket in CLOSE_WAIT, SHOW CLIENTS lists only the console, nothing
is left in SHOW LISTS / SHOW POOLS / SHOW MEM, and the servers are idle and usable.

Clients are raw asyncio sockets speaking the protocol by hand (helpers below), so
5,000 of them take seconds, not minutes.
"""

import asyncio
import os
import socket
import struct
import subprocess

import pytest

import admin_util
import helpers
import pgproto

pytestmark = pytest.mark.sluice_only("SHOW MEM and the process checks are sluice's")

USER = admin_util.STATS  # an ordinary pool user with a password (md5)
PASSWORD = admin_util.STATS_PW
N_CHURN = 5000
CONCURRENCY = 100
IO_TIMEOUT = 30  # a bound for a broken pooler only

SLEEP_SQL = "set client_connection_check_interval = '100ms'; select pg_sleep(60)"


# --- a minimal asyncio protocol client ---------------------------------------

class Raw:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def connect(cls, p, unix=False):
        if unix:
            path = os.path.join(str(p.sockdir), ".s.PGSQL.%d" % p.port)
            opening = asyncio.open_unix_connection(path)
        else:
            opening = asyncio.open_connection(p.host, p.port)
        r, w = await asyncio.wait_for(opening, IO_TIMEOUT)
        return cls(r, w)

    def sock(self):
        return self.w.get_extra_info("socket")

    async def msg(self):
        hdr = await asyncio.wait_for(self.r.readexactly(5), IO_TIMEOUT)
        (length,) = struct.unpack("!I", hdr[1:5])
        body = await asyncio.wait_for(self.r.readexactly(length - 4), IO_TIMEOUT)
        return hdr[:1], body

    async def until_ready(self):
        while True:
            t, body = await self.msg()
            if t == b"E":
                raise AssertionError(pgproto.parse_error_fields(body))
            if t == b"R" and body[:4] == b"\0\0\0\5":  # md5
                pw = pgproto.md5_password(PASSWORD, USER, body[4:8]).encode() + b"\0"
                self.w.write(b"p" + struct.pack("!I", len(pw) + 4) + pw)
            if t == b"Z":
                return

    def send_startup(self, database="testdb"):
        self.w.write(pgproto.startup_packet({"user": USER, "database": database}))

    async def login(self, database="testdb"):
        self.send_startup(database)
        await self.until_ready()

    def send_query(self, sql):
        payload = sql.encode() + b"\0"
        self.w.write(b"Q" + struct.pack("!I", len(payload) + 4) + payload)

    async def query(self, sql):
        self.send_query(sql)
        await self.w.drain()
        await self.until_ready()

    def reset(self):
        """Close with SO_LINGER 0: the peer gets a RST (on TCP)."""
        if self.sock().family != socket.AF_UNIX:
            self.sock().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.w.transport.abort()

    async def half_close(self):
        """shutdown(SHUT_WR), then read until the pooler closes its side."""
        await self.w.drain()
        self.w.write_eof()
        try:
            while await asyncio.wait_for(self.r.read(65536), IO_TIMEOUT):
                pass
        except ConnectionResetError:
            pass
        self.w.close()

    async def terminate(self):
        self.w.write(b"X\0\0\0\4")
        await self.w.drain()
        try:
            rest = await asyncio.wait_for(self.r.read(65536), IO_TIMEOUT)
        except ConnectionResetError:
            rest = b""
        assert rest == b"", "data after Terminate: %r" % rest[:40]
        self.w.close()

    def close(self):
        self.w.close()


# --- the ways a client leaves ------------------------------------------------

async def leave_normally(p, unix):
    c = await Raw.connect(p, unix)
    await c.login()
    await c.query("select 1")
    await c.terminate()


async def leave_reset_idle(p, unix):
    c = await Raw.connect(p, unix)
    await c.login()
    await c.query("select 1")
    c.reset()


async def leave_half_close_idle(p, unix):
    c = await Raw.connect(p, unix)
    await c.login()
    await c.query("select 1")
    await c.half_close()


async def leave_reset_in_query(p, unix):
    c = await Raw.connect(p, unix)
    await c.login()
    c.send_query("select 1")
    await c.w.drain()
    c.reset()


async def leave_half_close_in_query(p, unix):
    c = await Raw.connect(p, unix)
    await c.login()
    c.send_query("select 1")
    await c.half_close()


async def leave_close_in_transaction(p, unix):
    c = await Raw.connect(p, unix)
    await c.login()
    await c.query("begin; select 1")
    c.close()


async def leave_reset_in_login(p, unix):
    c = await Raw.connect(p, unix)
    c.w.write(pgproto.startup_packet({"user": USER, "database": "testdb"})[:10])
    await c.w.drain()
    c.reset()


async def leave_in_password_exchange(p, unix):
    c = await Raw.connect(p, unix)
    c.send_startup()
    t, body = await c.msg()
    assert t == b"R" and body[:4] == b"\0\0\0\5", (t, body)
    c.close()


async def leave_before_startup(p, unix):
    c = await Raw.connect(p, unix)
    c.close()


async def leave_after_ssl_request(p, unix):
    c = await Raw.connect(p, unix)
    c.w.write(pgproto.ssl_request())
    assert await asyncio.wait_for(c.r.readexactly(1), IO_TIMEOUT) == b"N"
    c.close()


LEAVES = [
    leave_normally, leave_normally, leave_reset_idle, leave_half_close_idle,
    leave_reset_in_query, leave_half_close_in_query, leave_close_in_transaction,
    leave_reset_in_login, leave_before_startup, leave_after_ssl_request,
    leave_in_password_exchange,
]


async def churn(p, n):
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i):
        async with sem:
            # one in six over the unix socket (11 ways and 6 are coprime: all mix)
            await LEAVES[i % len(LEAVES)](p, i % 6 == 0)

    await asyncio.gather(*(one(i) for i in range(n)))


# --- waiting and mid-query ---------------------------------------------------

async def leave_while_waiting(p, n):
    """n clients queue for a server (both are held elsewhere), then leave."""
    clients = []
    for _ in range(n):
        c = await Raw.connect(p)
        await c.login()
        c.send_query("select 1")
        await c.w.drain()
        clients.append(c)
    return clients


async def drop(clients, offset=0):
    for i, c in enumerate(clients):
        how = (i + offset) % 4
        if how == 0:
            c.reset()
        elif how == 1:
            await c.half_close()
        elif how == 2:
            c.close()
        else:
            # Terminate queued behind the query: the client is gone all the same
            c.w.write(b"X\0\0\0\4")
            await c.w.drain()
            c.close()


def pooler_pid_sockets_in_close_wait(pid):
    out = subprocess.run(["ss", "-tanpH", "state", "close-wait"], capture_output=True,
                         text=True, check=True).stdout
    return [ln for ln in out.splitlines() if "pid=%d," % pid in ln]


def pool_row(con, database="testdb"):
    return admin_util.row_for(con, "POOLS", database=database, user=USER)


def sleeping_backends(pg):
    with pg.connect("testdb", "app") as c:
        return c.execute(
            "select count(*) from pg_stat_activity where query like '%pg_sleep(60)%' "
            "and pid <> pg_backend_pid()").fetchone()[0]


def answered_queries(n):
    answered = (leave_normally, leave_reset_idle, leave_half_close_idle,
                leave_close_in_transaction)
    return sum(1 for i in range(n) if LEAVES[i % len(LEAVES)] in answered)


def user_client(p, **kw):
    return admin_util.client(p, user=USER, password=PASSWORD, **kw)


@pytest.mark.hard_timeout(180)
def test_churn_leaves_nothing_behind(make_pooler, pg):
    # a "server" that accepts connections and never answers: its clients wait for
    # the login of a server to learn the parameters (wait_login) for as long as needed
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    p = make_pooler(databases={
        "testdb": pg.dbentry("testdb"),
        "stuckdb": "host=127.0.0.1 port=%d dbname=testdb" % blackhole.getsockname()[1],
    }, settings=admin_util.admin_settings({
        "auth_type": "md5",
        "pool_mode": "transaction",
        "default_pool_size": 2,
        "max_client_conn": 2000,
        "server_connect_timeout": 60,
        "log_connections": 0,
        "log_disconnections": 0,
    }), extra_args=[])  # not -v: 5,000 clients would log a lot
    pid = p.proc.pid
    with admin_util.console(p) as con:
        baseline_fds = len(os.listdir("/proc/%d/fd" % pid))

        # 1. churn: 5,000 clients, in every way of leaving
        asyncio.run(churn(p, N_CHURN))
        stats = admin_util.row_for(con, "STATS", database="testdb")
        assert int(stats["total_query_count"]) >= answered_queries(N_CHURN), stats

        # 2. leaving while waiting for a server of the pool of 2
        holders = [user_client(p, autocommit=False) for _ in range(2)]
        for h in holders:
            h.execute("select 1")  # a transaction: each holds a server

        async def waiting_phase():
            clients = await leave_while_waiting(p, 200)
            helpers.wait_for(lambda: int(pool_row(con)["cl_waiting"]) == 200, 20, 0.05,
                             "200 clients waiting")
            await drop(clients)

        asyncio.run(waiting_phase())
        helpers.wait_for(lambda: int(pool_row(con)["cl_waiting"]) == 0, 20, 0.05,
                         "waiting clients gone")
        for h in holders:
            h.execute("commit")
            h.close()

        # 3. leaving while the query runs on the server
        async def mid_query_phase(rounds):
            for r in range(rounds):
                running = []
                for _ in range(2):
                    c = await Raw.connect(p)
                    await c.login()
                    c.send_query(SLEEP_SQL)
                    await c.w.drain()
                    running.append(c)
                queued = await leave_while_waiting(p, 3)
                helpers.wait_for(lambda: sleeping_backends(pg) >= 2, 20, 0.02,
                                 "both queries running")
                await drop(running + queued, offset=r)

        asyncio.run(mid_query_phase(12))

        # 4. leaving while a large result is on its way (the server is read no more
        # while the client does not take it)
        async def large_result_phase(rounds):
            for r in range(rounds):
                clients = []
                for _ in range(2):  # the pool's two servers
                    c = await Raw.connect(p)
                    await c.login()
                    c.send_query("select repeat('x', 1000) from generate_series(1, 20000)")
                    await c.w.drain()
                    await c.msg()  # RowDescription: the result is coming
                    clients.append(c)
                await drop(clients, offset=r)

        asyncio.run(large_result_phase(4))

        # 5. leaving while the pool waits for its first server's login (wait_login)
        async def wait_login_phase(n):
            clients = []
            for _ in range(n):
                c = await Raw.connect(p)
                c.send_startup("stuckdb")
                t, body = await c.msg()  # md5 request: authentication goes on at once
                pw = pgproto.md5_password(PASSWORD, USER, body[4:8]).encode() + b"\0"
                c.w.write(b"p" + struct.pack("!I", len(pw) + 4) + pw)
                await c.w.drain()
                clients.append(c)
            helpers.wait_for(lambda: int(pool_row(con, "stuckdb")["cl_waiting"]) == n, 20,
                             0.05, "clients waiting for the first server login")
            await drop(clients)

        asyncio.run(wait_login_phase(20))
        helpers.wait_for(lambda: int(pool_row(con, "stuckdb")["cl_waiting"]) == 0, 20, 0.05,
                         "wait_login clients gone")
        # the "server" gives up: sluice's half-logged-in servers see EOF
        blackhole.setblocking(False)
        while True:
            try:
                blackhole.accept()[0].close()
            except BlockingIOError:
                break
        blackhole.close()

        # 6. nothing left behind
        def only_console():
            _, rows = admin_util.show(con, "CLIENTS")
            return len(rows) == 1

        helpers.wait_for(only_console, 20, 0.05, "SHOW CLIENTS lists only the console")
        helpers.wait_for(lambda: not pooler_pid_sockets_in_close_wait(pid), 10, 0.05,
                         "no CLOSE_WAIT socket of sluice's")
        helpers.wait_for(lambda: sleeping_backends(pg) == 0, 20, 0.1,
                         "the interrupted queries ended on the server")
        helpers.wait_for(lambda: int(pool_row(con, "stuckdb")["sv_login"]) == 0, 20, 0.05,
                         "no server logging in to the blackhole")

        for db in ("testdb", "stuckdb"):
            row = pool_row(con, db)
            for col in ("cl_active", "cl_waiting", "sv_active"):
                assert int(row[col]) == 0, (db, col, row)
        lists = {r["list"]: int(r["items"]) for r in admin_util.show(con, "LISTS")[1]}
        assert lists["used_clients"] == 1, lists  # the console
        assert lists["login_clients"] == 0, lists
        mem = {r["name"]: r for r in admin_util.show(con, "MEM")[1]}
        # the console's own buffers and at most two per server
        assert int(mem["iobuf"]["used"]) <= 2 + 2 * lists["used_servers"], (mem, lists)

        # descriptors: the baseline plus at most the pool's servers
        fds = len(os.listdir("/proc/%d/fd" % pid))
        assert fds <= baseline_fds + 2, (fds, baseline_fds)

        # the servers are idle and usable
        clients = [user_client(p) for _ in range(5)]
        for i, c in enumerate(clients):
            assert c.execute("select %d" % i).fetchone()[0] == i
            c.close()
        servers = admin_util.rows_for(con, "SERVERS", database="testdb")
        assert servers and all(s["state"] in ("idle", "used") for s in servers), servers
    assert p.running()
