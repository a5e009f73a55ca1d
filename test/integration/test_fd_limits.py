"""Out of file descriptors (issue 5, item 9).

The pooler runs under a low RLIMIT_NOFILE (prlimit).  A connection storm past it
must leave it alive: existing clients keep working, the admin console still answers
(from the descriptor reserve), and every new client past the limit is answered at
once with "too many connections" (SQLSTATE 53300) and a close instead of waiting in
the accept queue.  After the storm everything recovers.

max_client_conn is capped against the limit at start-up (issue 9 item 7), so that
servers still find descriptors: a storm of clients that log in is refused by
max_client_conn ("no more connections allowed") before descriptors run out.  The
tests then take the remaining descriptors with connections that send nothing
(fill_to_limit), so that the reserve's refusals and console logins are exercised.
"""

import os
import re
import socket
import struct

import psycopg
import pytest

import admin_util
import helpers
import pgproto

pytestmark = pytest.mark.sluice_only("PgBouncer leaves clients past the descriptor limit "
                                     "waiting in the accept queue")

NOFILE = 64
REFUSED_TEXT = "too many connections"
CAPPED_TEXT = "no more connections allowed (max_client_conn)"
RESERVE_FDS = 12  # LISTEN_RESERVE_FDS in src/listen.h
RESERVE_CONSOLES = 4  # console logins that may keep a reserved descriptor
ANSWER_TIMEOUT = 15  # a bound for a broken pooler, far below client_login_timeout


def settings(extra=None):
    s = admin_util.admin_settings({
        "pool_mode": "transaction",
        "default_pool_size": 2,
        "max_client_conn": 1000,
        "client_login_timeout": 120,
    })
    s.update(extra or {})
    return s


def open_fds(p):
    return len(os.listdir("/proc/%d/fd" % p.proc.pid))


def send_startup(p, user="app", database="testdb", ssl_first=False):
    s = socket.create_connection((p.host, p.port), timeout=ANSWER_TIMEOUT)
    if ssl_first:
        s.sendall(pgproto.ssl_request())
    else:
        s.sendall(pgproto.startup_packet({"user": user, "database": database}))
    return s


def read_answer(s, ssl_first=False):
    """('ready', None) after a login, ('error', fields) after an ErrorResponse;
    AssertionError when the pooler keeps the client waiting or just closes."""
    buf = b""
    try:
        if ssl_first:
            b = s.recv(1)
            assert b == b"N", "answer to SSLRequest: %r" % b
            s.sendall(pgproto.startup_packet({"user": "app", "database": "testdb"}))
        while True:
            while len(buf) >= 5:
                mtype = buf[:1]
                (length,) = struct.unpack("!I", buf[1:5])
                if len(buf) < 1 + length:
                    break
                payload, buf = buf[5:1 + length], buf[1 + length:]
                if mtype == b"E":
                    return "error", pgproto.parse_error_fields(payload)
                if mtype == b"Z":
                    return "ready", None
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed without an answer")
            buf += chunk
    except socket.timeout:
        raise AssertionError("no answer within %ss: left waiting" % ANSWER_TIMEOUT)


def storm(p, n):
    """n clients that log in (or are refused); the logged-in ones stay open."""
    kept, refused = [], []
    for _ in range(n):
        s = send_startup(p)
        kind, fields = read_answer(s)
        if kind == "ready":
            kept.append(s)
        else:
            refused.append(fields)
            s.close()
    return kept, refused


def assert_refused(fields, capped=False):
    """capped: refused by the max_client_conn cap is as good (a storm of logins)."""
    assert fields.get("C") == "53300", fields
    msg = fields.get("M", "")
    assert REFUSED_TEXT in msg or (capped and CAPPED_TEXT in msg), fields


def fill_to_limit(p):
    """Connections that send nothing, one per descriptor the pooler has left, so
    that the next client finds it out of descriptors (client_login_timeout is long,
    so they stay).  Exactly as many as are free: none waits in the accept queue."""
    socks = []
    for _ in range(20):  # refused clients may still be giving theirs back: again
        have = open_fds(p)
        if have >= NOFILE:
            return socks
        socks += [socket.create_connection((p.host, p.port), timeout=ANSWER_TIMEOUT)
                  for _ in range(NOFILE - have)]
        try:
            helpers.wait_for(lambda: open_fds(p) >= NOFILE, 1, 0.05)
        except AssertionError:
            pass
    raise AssertionError("the pooler holds %d descriptors, not %d" % (open_fds(p), NOFILE))


def close_all(socks):
    for s in socks:
        s.close()


def test_startup_logs_descriptor_limit(make_pooler):
    p = make_pooler(settings=settings(), nofile=NOFILE)
    log = p.wait_log(r"file descriptor limit: %d \(hard %d\); may need \d+: "
                     r"max_client_conn 1000" % (NOFILE, NOFILE))
    assert log
    p.wait_log(r"file descriptor limit %d is below the \d+ the config may need" % NOFILE)


def test_raises_soft_limit_to_what_config_needs(make_pooler):
    p = make_pooler(settings=settings({"max_client_conn": 200}), nofile=(NOFILE, 4096))
    p.wait_log(r"raised the file descriptor limit from %d to \d+" % NOFILE)
    with open("/proc/%d/limits" % p.proc.pid) as f:
        line = [ln for ln in f if ln.startswith("Max open files")][0]
    soft = int(line.split()[3])
    assert 200 < soft <= 4096


def raw_query(s, sql):
    """Simple query on a raw logged-in socket; the first column of the first row."""
    payload = sql.encode() + b"\0"
    s.sendall(b"Q" + struct.pack("!I", len(payload) + 4) + payload)
    buf, value = b"", None
    while True:
        while len(buf) >= 5:
            (length,) = struct.unpack("!I", buf[1:5])
            if len(buf) < 1 + length:
                break
            mtype, body, buf = buf[:1], buf[5:1 + length], buf[1 + length:]
            if mtype == b"D" and value is None:
                (n,) = struct.unpack("!I", body[2:6])
                value = body[6:6 + n].decode()
            elif mtype == b"E":
                raise AssertionError(pgproto.parse_error_fields(body))
            elif mtype == b"Z":
                return value
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("closed during a query")
        buf += chunk


@pytest.mark.hard_timeout(120)
def test_storm_past_descriptor_limit(make_pooler):
    p = make_pooler(settings=settings(), nofile=NOFILE)
    # existing clients, with both servers of the pool opened
    existing = [admin_util.client(p) for _ in range(3)]
    held = p.connect(autocommit=False)
    held.execute("select 1")  # holds one server for the whole storm
    for c in existing:
        assert c.execute("select 1").fetchone()[0] == 1

    kept, refused = storm(p, 3 * NOFILE)
    fill = fill_to_limit(p)
    try:
        # the limit was reached: some logged in, the rest were answered and closed
        assert kept, "no storm client got in"
        assert len(refused) >= NOFILE, "only %d refused" % len(refused)
        for f in refused:
            assert_refused(f, capped=True)
        p.wait_log(r"max_client_conn 1000 capped to \d+")
        # at the limit, with the reserve whole again (the refused gave theirs back)
        assert NOFILE - 2 <= open_fds(p) <= NOFILE
        s = send_startup(p)
        kind, fields = read_answer(s)
        s.close()
        assert kind == "error"
        assert_refused(fields)
        p.wait_log(r"accept\(\) on .*Too many open files: refusing new clients")

        # existing clients still work, in and out of a transaction
        for c in existing:
            assert c.execute("select 2").fetchone()[0] == 2
        assert held.execute("select 3").fetchone()[0] == 3
        # as do the storm clients that got in
        assert raw_query(kept[0], "select 4") == "4"

        # the console answers, over TCP (SSLRequest first) and the unix socket
        with admin_util.console(p) as con:
            _, pools = admin_util.show(con, "POOLS")
            assert any(r["database"] == "testdb" for r in pools)
            _, lists = admin_util.show(con, "LISTS")
            used = {r["list"]: r["items"] for r in lists}["used_clients"]
            assert used >= len(kept) + len(existing) + 1
        with admin_util.console(p, unix=True) as con:
            admin_util.show(con, "POOLS")

        # libpq clients past the limit get the error at once, TCP and unix
        for unix in (False, True, False):
            with pytest.raises(psycopg.OperationalError) as ei:
                p.connect(unix=unix, connect_timeout=ANSWER_TIMEOUT)
            assert REFUSED_TEXT in helpers.error_text(ei.value)
        # a raw client opening with an SSLRequest is answered 'N', then refused
        s = send_startup(p, ssl_first=True)
        kind, fields = read_answer(s, ssl_first=True)
        s.close()
        assert kind == "error"
        assert_refused(fields)

        # every reserved descriptor held by a client that sends nothing: a newcomer
        # waits in the queue until one of them leaves (or is failed after the probe
        # timeout), then is refused as usual
        silent = [socket.create_connection((p.host, p.port), timeout=ANSWER_TIMEOUT)
                  for _ in range(RESERVE_FDS)]
        try:
            waiting = send_startup(p)
        finally:
            close_all(silent[:1])
        kind, fields = read_answer(waiting)
        waiting.close()
        assert kind == "error"
        assert_refused(fields)
        # the rest are failed after the probe timeout; a libpq client meanwhile
        # waits for them, then gets the error with its text
        try:
            with pytest.raises(psycopg.OperationalError) as ei:
                p.connect(connect_timeout=ANSWER_TIMEOUT)
            assert REFUSED_TEXT in helpers.error_text(ei.value)
        finally:
            close_all(silent)
        # their descriptors come back: the console answers again
        helpers.wait_for(lambda: _console_ok(p), 10, 0.1, "console reachable again")
        assert p.running()
    finally:
        close_all(kept)
        close_all(fill)

    # after the storm: new clients get in again, and the episode's end is logged
    helpers.wait_for(lambda: _client_ok(p), 10, 0.1, "an ordinary client gets in again")
    p.wait_log(r"file descriptors available again: \d+ clients were refused")
    for c in existing:
        assert c.execute("select 5").fetchone()[0] == 5
        c.close()
    held.execute("commit")
    held.close()
    more = [admin_util.client(p) for _ in range(10)]
    for c in more:
        assert c.execute("select 6").fetchone()[0] == 6
        c.close()
    with admin_util.console(p) as con:
        _, clients = admin_util.show(con, "CLIENTS")
        assert len(clients) == 1, clients  # only the console itself


def _console_ok(p):
    try:
        with admin_util.console(p, connect_timeout=5) as con:
            admin_util.show(con, "POOLS")
        return True
    except psycopg.OperationalError:
        return False


def _client_ok(p):
    try:
        with p.connect(connect_timeout=5) as c:
            return c.execute("select 1").fetchone()[0] == 1
    except psycopg.OperationalError:
        return False


@pytest.mark.hard_timeout(60)
def test_console_keeps_reserved_descriptor(make_pooler):
    """A console login made on a reserved descriptor stays usable after the storm
    clients leave, and its descriptor returns to the reserve when it closes."""
    p = make_pooler(settings=settings(), nofile=NOFILE)
    kept, refused = storm(p, 2 * NOFILE)
    fill = fill_to_limit(p)
    cons = []
    try:
        assert refused
        cons = [admin_util.console(p) for _ in range(RESERVE_CONSOLES)]
        for con in cons:
            admin_util.show(con, "POOLS")
        p.wait_log(r"console login on a reserved descriptor")
        # one more console would leave too few reserved descriptors for the rest
        with pytest.raises(psycopg.OperationalError) as ei:
            admin_util.console(p, connect_timeout=ANSWER_TIMEOUT)
        assert REFUSED_TEXT in helpers.error_text(ei.value)
        # an ordinary client is refused, not left waiting
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect(connect_timeout=ANSWER_TIMEOUT)
        assert REFUSED_TEXT in helpers.error_text(ei.value)
        cons.pop().close()
        cons.append(admin_util.console(p))
    finally:
        close_all(kept)
        close_all(fill)
    for con in cons:
        admin_util.show(con, "LISTS")
        con.close()
    helpers.wait_for(lambda: _client_ok(p), 10, 0.1, "an ordinary client gets in again")
    # a second storm behaves the same: the reserve is whole again
    kept, refused = storm(p, 2 * NOFILE)
    try:
        assert refused
        for f in refused:
            assert_refused(f, capped=True)
        assert _console_ok(p)
    finally:
        close_all(kept)
    assert not re.search(r"cannot hold \d+ spare descriptors", p.log())
