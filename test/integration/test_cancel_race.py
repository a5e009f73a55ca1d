"""Cancel isolation (issue 9 item 4): a cancel reaches only the query it was meant for.

A server with a cancel in flight for it is not handed to another client until the cancel
connection to PostgreSQL has been closed by PostgreSQL (by then the backend has had its
signal); a cancel for a client that holds no server is dropped. SHOW POOLS counts the
cancel requests and the servers held back for them.
"""

import random
import socket
import struct
import threading
import time

import pytest

import admin_util as au
import helpers
import pgproto

pytestmark = au.sluice_only("cancel isolation and its SHOW POOLS counts are sluice's")

CANCEL_COLS = ("cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active_cancel",
               "sv_being_canceled")


def txn_pooler(make_pooler, pg, databases=None, **settings):
    s = {"pool_mode": "transaction", "default_pool_size": 1, "max_client_conn": 100}
    s.update(settings)
    kw = {"databases": databases} if databases else {}
    return au.make_admin_pooler(make_pooler, settings=s, **kw)


def pool_row(con):
    r = au.row_for(con, "POOLS", database="testdb", user="app")
    assert r is not None, "no testdb/app pool in SHOW POOLS"
    return r


def wait_pool(con, what, **want):
    def ok():
        r = pool_row(con)
        return r if all(au.as_int(r[k]) == v for k, v in want.items()) else None
    return helpers.wait_for(ok, 15, 0.002, what)


def until_ready_status(c):
    """Read c's messages to ReadyForQuery: (SQLSTATEs of the errors seen, its status)."""
    errors = []
    while True:
        t, payload = c.recv_msg()
        if t == "E":
            errors.append(pgproto.parse_error_fields(payload).get("C"))
        if t == "Z":
            return errors, payload[:1]


def until_ready(c):
    return until_ready_status(c)[0]


def wait_sleeping(pg, n=1):
    def active():
        with pg.connect() as c:
            r = c.execute("select count(*) from pg_stat_activity where state = 'active' "
                          "and query like 'select pg_sleep%%' and pid <> pg_backend_pid()"
                          ).fetchone()[0]
            return r >= n or None
    helpers.wait_for(active, 15, 0.01, "pg_sleep to be running")


@pytest.mark.hard_timeout(240)
def test_cancel_at_transaction_end_spares_next_client(make_pooler, pg):
    # Client 1 sleeps in a transaction; its cancel is sent just as the transaction ends
    # (right before its COMMIT) while client 2 waits for the only server. Client 1's
    # cancel may hit client 1 or nothing; client 2's pg_sleep must never be cancelled.
    p = txn_pooler(make_pooler, pg)
    rnd = random.Random(9)
    hit = []
    with p.raw_login() as c1, p.raw_login() as c2, au.console(p) as con:
        pid, key = c1.backend_key
        for i in range(200):
            assert until_ready_query(c1, "begin") == []
            c1.send_msg("Q", b"select pg_sleep(0.002)\0")
            c2.send_msg("Q", b"select pg_sleep(0.03), 'c2'\0")
            wait_pool(con, "client 2 to wait for the server", cl_waiting=1)
            time.sleep(rnd.random() * 0.004)  # sometimes during the sleep, sometimes after
            # not waiting for the cancel connection to close, as libpq would: the
            # commit follows at once, so the transaction ends with the cancel in flight
            cancel = send_cancel(p, pid, key)
            time.sleep(rnd.random() * 0.001)
            c1.send_msg("Q", b"commit\0")
            until_ready(c1)  # the sleep: done or cancelled, both are client 1's
            # its commit (a rollback if the sleep was cancelled); a cancelled commit
            # leaves the transaction failed, to be rolled back
            if until_ready_status(c1)[1] != b"I":
                assert until_ready_query(c1, "rollback") == []
            if until_ready(c2):
                hit.append(i)
            cancel.close()
    assert not hit, "client 2 got client 1's cancel in %d of 200 rounds: %r" % (len(hit), hit[:20])


def send_cancel(p, pid, key):
    """Send a CancelRequest to the pooler; the socket, still open, is returned."""
    s = socket.create_connection((p.host, p.port), timeout=15)
    s.sendall(struct.pack("!IIII", 16, pgproto.CANCEL_REQUEST_CODE, pid, key))
    return s


def cancel_in_thread(p, pid, key):
    """pgproto.cancel_request (which waits for the pooler to close the connection) in a
    thread: (thread, dict that gets 'done' once it returned)."""
    res = {}

    def run():
        pgproto.cancel_request(p.host, p.port, pid, key, timeout=30)
        res["done"] = True
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, res


def until_ready_query(c, sql):
    c.send_msg("Q", sql.encode() + b"\0")
    return until_ready(c)


@pytest.mark.hard_timeout(60)
def test_late_cancel_is_dropped(make_pooler, pg):
    # Client 1 ran a query and gave its server back; client 2 now runs on that server.
    # Client 1's cancel arrives late: it must not be forwarded.
    p = txn_pooler(make_pooler, pg)
    with p.raw_login() as c1, p.raw_login() as c2, au.console(p) as con:
        pid, key = c1.backend_key
        assert c1.scalar("select 1") == "1"
        c2.send_msg("Q", b"select pg_sleep(0.5), 'c2'\0")
        wait_sleeping(pg)
        start = len(p.log())
        pgproto.cancel_request(p.host, p.port, pid, key)
        p.wait_log("cancel request matches no running query", start=start)
        assert until_ready(c2) == []
        r = pool_row(con)
        assert [au.as_int(r[k]) for k in CANCEL_COLS] == [0, 0, 0, 0]


class CancelHoldingProxy:
    """A TCP relay to PostgreSQL that holds every CancelRequest until released, so a
    cancel stays in flight as long as the test wants."""

    def __init__(self, target):
        self.target = target
        self.release = threading.Event()
        self.held = 0
        self.lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.release.set()
        self.lsock.close()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    @staticmethod
    def _recv_exact(s, n):
        b = b""
        while len(b) < n:
            chunk = s.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def _serve(self, s):
        try:
            first = self._recv_exact(s, 8)
            up = socket.create_connection(self.target)
            length, code = struct.unpack("!II", first)
            if length == 16 and code == pgproto.CANCEL_REQUEST_CODE:
                first += self._recv_exact(s, 8)
                with self.lock:
                    self.held += 1
                self.release.wait(60)
            up.sendall(first)
        except (OSError, EOFError):
            s.close()
            return
        threading.Thread(target=self._pipe, args=(up, s), daemon=True).start()
        self._pipe(s, up)

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def holding_proxy(pg):
    proxy = CancelHoldingProxy((pg.host, pg.port))
    yield proxy
    proxy.close()


@pytest.mark.hard_timeout(90)
def test_show_pools_counts_cancel_in_flight(make_pooler, pg, holding_proxy):
    # The cancel is written and PostgreSQL has not closed its connection yet (the proxy
    # holds it): the request is active and the server is kept from reuse after its
    # client's query ends. Once PostgreSQL closes the cancel connection the server goes
    # on to the waiting client, whose query the late cancel must not touch.
    dbs = {"testdb": "host=127.0.0.1 port=%d dbname=testdb" % holding_proxy.port}
    p = txn_pooler(make_pooler, pg, databases=dbs)
    with p.raw_login() as c1, p.raw_login() as c2, au.console(p) as con:
        pid, key = c1.backend_key
        c1.send_msg("Q", b"select pg_sleep(0.5), 'c1'\0")
        wait_sleeping(pg)
        t, res = cancel_in_thread(p, pid, key)
        helpers.wait_for(lambda: holding_proxy.held == 1 or None, 15, 0.01,
                         "the proxy to hold the cancel")
        r = wait_pool(con, "the cancel to be forwarded", cl_active_cancel_req=1)
        assert au.as_int(r["cl_waiting_cancel_req"]) == 0
        assert au.as_int(r["sv_active_cancel"]) == 1
        assert until_ready(c1) == []  # the cancel never reached it: the sleep ended
        r = wait_pool(con, "the server to be held back", sv_being_canceled=1)
        assert au.as_int(r["sv_active"]) == 0 and au.as_int(r["sv_idle"]) == 0
        c2.send_msg("Q", b"select pg_sleep(0.2), 'c2'\0")
        wait_pool(con, "client 2 to wait", cl_waiting=1, sv_being_canceled=1)
        _, servers = au.show(con, "SERVERS")
        assert [s["state"] for s in servers if s["database"] == "testdb"] == [
            "being_canceled"]
        # the requester's connection stays open until the cancel is over, as libpq
        # expects before it sends its next query
        assert "done" not in res, "the cancel connection was closed before the cancel ended"
        _, clients = au.show(con, "CLIENTS")
        assert [c["state"] for c in clients].count("active_cancel_req") == 1, clients
        holding_proxy.release.set()
        assert until_ready(c2) == [], "client 2 got client 1's late cancel"
        t.join(15)
        assert res.get("done")
        r = wait_pool(con, "the cancel counts to return to 0",
                      cl_active_cancel_req=0, sv_active_cancel=0, sv_being_canceled=0)
        assert au.as_int(r["cl_waiting_cancel_req"]) == 0
        assert c1.scalar("select 'again'") == "again"


@pytest.mark.hard_timeout(90)
def test_unanswered_cancel_closes_its_server(make_pooler, pg, holding_proxy):
    # PostgreSQL never confirms the cancel within cancel_wait_timeout: whether it will
    # still hit is unknown, so the held server is closed rather than handed on.
    dbs = {"testdb": "host=127.0.0.1 port=%d dbname=testdb" % holding_proxy.port}
    p = txn_pooler(make_pooler, pg, databases=dbs, cancel_wait_timeout=1)
    with p.raw_login() as c1, au.console(p) as con:
        pid, key = c1.backend_key
        c1.send_msg("Q", b"begin; select pg_backend_pid()\0")
        until_ready(c1)
        t, res = cancel_in_thread(p, pid, key)
        wait_pool(con, "the cancel to be forwarded", cl_active_cancel_req=1)
        assert until_ready_query(c1, "commit") == []
        wait_pool(con, "the cancel to time out", cl_active_cancel_req=0, sv_active_cancel=0,
                  sv_being_canceled=0, sv_idle=0)
        assert c1.scalar("select 'fresh'") == "fresh"
        t.join(15)
        assert res.get("done")
