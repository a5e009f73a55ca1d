"""Malformed and unusual startup traffic over raw sockets: each bad
connection is closed (possibly after an ErrorResponse) without disturbing
other clients; SSLRequest is declined; protocol 3.x minor negotiation."""

import random
import socket
import struct
import time

import psycopg
import pytest

import pgproto
from pgproto import startup_packet

GOOD = {"user": "app", "database": "testdb"}

_rng = random.Random(20240607)
_garbage_body = b"\xde\xad" + bytes(_rng.randrange(256) for _ in range(58))

BAD_PACKETS = {
    "zero_length": b"\x00\x00\x00\x00",
    "length_4": b"\x00\x00\x00\x04",
    "length_7": b"\x00\x00\x00\x07\x00\x03\x00",
    "huge_length": struct.pack("!II", 0x7FFFFFFF, pgproto.PROTO_3_0),
    "negative_length": struct.pack("!II", 0xFFFFFFFF, pgproto.PROTO_3_0),
    "http_request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "random_garbage": struct.pack("!I", 4 + len(_garbage_body)) + _garbage_body,
    "protocol_2_0": startup_packet(GOOD, version=2 << 16),
    "protocol_4_0": startup_packet(GOOD, version=4 << 16),
    "no_user": startup_packet({"database": "testdb"}),
    "empty_user": startup_packet({"user": "", "database": "testdb"}),
    "unterminated_params": (lambda b: struct.pack("!I", len(b) + 4) + b)(
        struct.pack("!I", pgproto.PROTO_3_0) + b"user\0app\0database\0testdb"),
    "key_without_value": (lambda b: struct.pack("!I", len(b) + 4) + b)(
        struct.pack("!I", pgproto.PROTO_3_0) + b"user\0app\0database\0\0"),
    "oversized_startup": startup_packet({"user": "app", "database": "testdb",
                                         "application_name": "x" * 200000}),
    "ssl_then_garbage": pgproto.ssl_request() + b"\x00\x00\x00\x00",
    "cancel_unknown_key": struct.pack("!IIII", 16, pgproto.CANCEL_REQUEST_CODE, 12345, 67890),
    "cancel_short": struct.pack("!II", 8, pgproto.CANCEL_REQUEST_CODE),
}


@pytest.fixture
def proto_pooler(make_pooler):
    # client_login_timeout long enough that only active rejection closes the
    # bad connections within the test's 10 s.
    return make_pooler(settings={"client_login_timeout": 60})


def assert_still_serving(p, before):
    assert p.running(), "pooler exited:\n" + p.output()[-3000:]
    assert before.execute("select 'still here'").fetchone()[0] == "still here"
    with p.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


# PgBouncer 1.18 waits (until client_login_timeout) for a full 8-byte header.
_WAITS_IN_PGBOUNCER = {"zero_length", "length_4", "length_7"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.sluice_only("waits for 8 header bytes before judging the length"))
    if n in _WAITS_IN_PGBOUNCER else n
    for n in sorted(BAD_PACKETS)])
def test_bad_startup_closes_only_that_connection(proto_pooler, name):
    p = proto_pooler
    with p.connect() as before:
        before.execute("select 1")
        s = socket.create_connection((p.host, p.port), timeout=10)
        try:
            try:
                s.sendall(BAD_PACKETS[name])
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed on us even before we finished: fine
            c = pgproto.RawConn.__new__(pgproto.RawConn)
            c.sock, c.buf = s, b""
            try:
                msgs = c.wait_closed(timeout=10)
            except socket.timeout:
                pytest.fail("pooler kept the connection open after %s" % name)
            for t, payload in msgs:
                # only an error response (or 'N' to an SSLRequest) is acceptable
                assert t in ("E", "N"), (t, payload)
                if t == "E":
                    fields = pgproto.parse_error_fields(payload)
                    assert fields.get("S") in ("FATAL", "ERROR"), fields
        finally:
            s.close()
        assert_still_serving(p, before)


@pytest.mark.parametrize("sent", [3, 10, 30])
def test_truncated_startup_then_close(proto_pooler, sent):
    p = proto_pooler
    pkt = startup_packet(GOOD)
    with p.connect() as before:
        for _ in range(5):
            s = socket.create_connection((p.host, p.port), timeout=10)
            s.sendall(pkt[:sent])
            s.close()
        # also: half-close after a partial packet
        s = socket.create_connection((p.host, p.port), timeout=10)
        s.sendall(pkt[:sent])
        s.shutdown(socket.SHUT_WR)
        try:
            data = s.recv(65536)
            while data:  # an ErrorResponse is fine; then EOF
                data = s.recv(65536)
        except ConnectionResetError:
            pass
        except socket.timeout:
            pytest.fail("pooler kept a half-closed connection with a partial startup open")
        s.close()
        assert_still_serving(p, before)


def test_connect_and_close_without_sending(proto_pooler):
    p = proto_pooler
    with p.connect() as before:
        for _ in range(20):
            socket.create_connection((p.host, p.port), timeout=10).close()
        assert_still_serving(p, before)


def test_many_bad_connections_at_once(proto_pooler):
    p = proto_pooler
    with p.connect() as before:
        socks = []
        for i in range(50):
            s = socket.create_connection((p.host, p.port), timeout=10)
            socks.append(s)
            s.sendall(BAD_PACKETS[sorted(BAD_PACKETS)[i % len(BAD_PACKETS)]])
        for s in socks:
            s.close()
        assert_still_serving(p, before)


def _raw_on(sock):
    c = pgproto.RawConn.__new__(pgproto.RawConn)
    c.sock, c.buf, c.params, c.notices, c.auth_codes = sock, b"", {}, [], []
    c.backend_key = c.negotiate = None
    return c


def _dribble(sock, data):
    for b in data:
        sock.send(bytes([b]))
        time.sleep(0.002)


def _read_result(c):
    rows = []
    while True:
        t, payload = c.recv_msg()
        assert t != "E", pgproto.parse_error_fields(payload)
        if t == "D":
            rows.append(payload)
        if t == "Z":
            return rows


@pytest.mark.sluice_only("closes the connection: 'client sent partial pkt in startup phase'")
def test_startup_fragmented(proto_pooler):
    # The startup packet arriving one byte at a time (legal TCP behaviour).
    p = proto_pooler
    s = socket.create_connection((p.host, p.port), timeout=15)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = _raw_on(s)
    try:
        _dribble(s, startup_packet(GOOD))
        c._login("app", None)
        assert c.scalar("select 4") == "4"
    finally:
        s.close()


def test_query_fragmented(proto_pooler):
    # Messages after login arriving one byte at a time.
    p = proto_pooler
    with p.raw_login() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _dribble(c.sock, b"Q" + struct.pack("!I", 4 + 9) + b"select 5\0")
        rows = _read_result(c)
        assert rows and rows[0].endswith(b"5")
        # and several messages in one segment
        c.send(b"Q" + struct.pack("!I", 4 + 9) + b"select 6\0" + b"Q" + struct.pack("!I", 4 + 9) + b"select 7\0")
        assert _read_result(c)[0].endswith(b"6")
        assert _read_result(c)[0].endswith(b"7")


def test_ssl_request_declined(proto_pooler):
    p = proto_pooler
    with p.raw() as c:
        c.send(pgproto.ssl_request())
        assert c.recv_byte() == b"N"
        # plain startup on the same connection then works
        c.startup(user="app", database="testdb")
        assert c.scalar("select 11") == "11"


def test_sslmode_prefer_and_require(proto_pooler):
    p = proto_pooler
    with p.connect(sslmode="prefer") as c:
        assert c.execute("select 1").fetchone()[0] == 1
        assert c.pgconn.ssl_in_use is False
    with p.connect(sslmode="disable") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(sslmode="require")
    assert "SSL" in str(ei.value)
    r = p.psql("select 1", env={"PGSSLMODE": "require"})
    assert r.returncode != 0


@pytest.mark.sluice_only("1.18 does not send NegotiateProtocolVersion")
@pytest.mark.parametrize("minor", [1, 5])
def test_protocol_minor_negotiation(proto_pooler, minor):
    p = proto_pooler
    with p.raw() as c:
        c.startup(user="app", database="testdb", version=(3 << 16) | minor,
                  params={"_pq_.sluice_test_option": "on"})
        assert c.negotiate is not None, "no NegotiateProtocolVersion ('v') message"
        newest, unrecognised = c.negotiate
        # PostgreSQL sends the full version (3 << 16 | minor); the docs say minor
        assert newest >> 16 in (0, 3), newest
        assert newest & 0xFFFF < minor
        assert "_pq_.sluice_test_option" in unrecognised
        assert c.scalar("select 'negotiated'") == "negotiated"


def test_protocol_3_0_with_pq_option_rejected_or_negotiated(proto_pooler):
    # A _pq_. option in a 3.0 startup is either negotiated away or refused with
    # an error, never silently passed through to break the server login.
    p = proto_pooler
    with p.raw() as c:
        try:
            c.startup(user="app", database="testdb", params={"_pq_.sluice_test_option": "on"})
        except pgproto.ServerError:
            c.wait_closed(timeout=10)
            return
        assert c.scalar("select 1") == "1"


def test_pipelined_startup_and_query(proto_pooler):
    # Startup and a query in one write (the client doesn't wait for ReadyForQuery).
    p = proto_pooler
    with p.raw() as c:
        c.send(startup_packet(GOOD) + b"Q" + struct.pack("!I", 4 + 10) + b"select 42\0")
        c._login("app", None)
        rows = _read_result(c)
        assert rows and rows[0].endswith(b"42")


def test_terminate_message_closes(proto_pooler):
    p = proto_pooler
    with p.raw_login() as c:
        c.send_msg("X")
        c.wait_closed(timeout=10)


def test_unknown_message_type_after_login(proto_pooler):
    # A bogus message type is passed on or refused; either way no crash and
    # other clients are fine.
    p = proto_pooler
    with p.connect() as before:
        with p.raw_login() as c:
            c.send_msg("!", b"junk")
            try:
                c.wait_closed(timeout=10)
            except socket.timeout:
                pass
        assert_still_serving(p, before)


def test_huge_message_length_after_login(proto_pooler):
    p = proto_pooler
    with p.connect() as before:
        with p.raw_login() as c:
            c.send(b"Q" + struct.pack("!I", 0x7FFFFFF0) + b"select 1")
            try:
                c.wait_closed(timeout=10)
            except socket.timeout:
                pass  # waiting for the rest of a (legal-looking) message is OK
        assert_still_serving(p, before)


def test_message_length_below_4_after_login(proto_pooler):
    p = proto_pooler
    with p.connect() as before:
        with p.raw_login() as c:
            c.send(b"Q" + struct.pack("!I", 2))
            try:
                c.wait_closed(timeout=10)
            except socket.timeout:
                pytest.fail("invalid message length did not close the connection")
        assert_still_serving(p, before)


def test_gssenc_request_declined(proto_pooler):
    p = proto_pooler
    with p.raw() as c:
        c.send(struct.pack("!II", 8, pgproto.GSSENC_REQUEST_CODE))
        assert c.recv_byte() == b"N"
        c.startup(user="app", database="testdb")
        assert c.scalar("select 12") == "12"


def test_unsupported_startup_parameter(make_pooler):
    p = make_pooler()
    with p.raw() as c:
        with pytest.raises(pgproto.ServerError) as ei:
            c.startup(user="app", database="testdb", params={"search_path": "nowhere"})
        assert "unsupported startup parameter: search_path" in ei.value.message
        c.wait_closed(timeout=10)
    p2 = make_pooler(settings={"ignore_startup_parameters": "search_path,extra_float_digits"})
    with p2.raw_login(params={"search_path": "nowhere", "extra_float_digits": "3"}) as c:
        assert c.scalar("select 1") == "1"


@pytest.mark.hard_timeout(60)
def test_client_login_timeout(make_pooler):
    p = make_pooler(settings={"client_login_timeout": 2})
    with p.connect() as before:
        s = socket.create_connection((p.host, p.port), timeout=20)
        s2 = socket.create_connection((p.host, p.port), timeout=20)
        try:
            s2.sendall(startup_packet(GOOD)[:6])  # a partial startup packet
            t0 = time.monotonic()
            for sock in (s, s2):
                c = _raw_on(sock)
                try:
                    c.wait_closed(timeout=20)
                except socket.timeout:
                    pytest.fail("idle unauthenticated connection not closed (client_login_timeout=2)")
            elapsed = time.monotonic() - t0
            assert elapsed >= 1.0, "closed after %.2fs, before client_login_timeout" % elapsed
        finally:
            s.close()
            s2.close()
        # logged-in clients are not affected by client_login_timeout
        time.sleep(0.5)
        assert before.execute("select 1").fetchone()[0] == 1
