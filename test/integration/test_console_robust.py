"""Console robustness and shutdown details (issue 9, items 5 and 11).

- A console pipeline of any length is answered in full, one command at a time, while
  other clients are served and sluice's output buffer for the console stays bounded
  (it stops reading a console that does not read its replies).
- The console stays reachable during every shutdown mode; SHUTDOWN WAIT_FOR_SERVERS
  turns away clients that need a server; SET *_tls_sslmode = disable is accepted.

See admin_util.py for the console users (alice admin, bob stats)."""

import collections
import socket
import struct
import threading

import pytest

import admin_util as au
import helpers

PIPELINE = 100_000  # pipelined console queries after the big one
BIG = 16 * 1024  # the first console message: grows the input buffer


def q_msg(sql):
    return b"Q" + struct.pack("!I", len(sql) + 5) + sql + b"\0"


def pipeline():
    """The 16 KB message, then PIPELINE queries: ';' (empty) and 'SHOW VERSION;'."""
    parts = [q_msg(b"SHOW " + b"x" * BIG + b";")]
    versions = 0
    for i in range(PIPELINE):
        if i % 3 == 0:
            parts.append(q_msg(b"SHOW VERSION;"))
            versions += 1
        else:
            parts.append(q_msg(b";"))
    return b"".join(parts), versions


def count_replies(sock, ready_wanted):
    """Reads messages until ready_wanted ReadyForQuery; returns a Counter of types.
    (pgproto.RawConn re-slices its buffer per message: too slow for 100,000.)"""
    counts = collections.Counter()
    buf = bytearray()
    pos = 0
    while counts["Z"] < ready_wanted:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("console closed after %r" % dict(counts))
        buf += chunk
        while len(buf) - pos >= 5:
            (length,) = struct.unpack_from("!I", buf, pos + 1)
            if len(buf) - pos < 1 + length:
                break
            counts[chr(buf[pos])] += 1
            pos += 1 + length
        del buf[:pos]
        pos = 0
    return counts


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.mark.hard_timeout(180)
def test_console_long_pipeline_answered_and_bounded(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    au.warm_pool(p)
    data, versions = pipeline()
    # unix socket: its kernel buffers are small, so replies that the client does not
    # read pile up in sluice unless sluice stops taking commands
    con = helpers.pgproto.RawConn(str(p.sockdir), p.port, timeout=120)
    con.startup(user=au.STATS, database="pgbouncer")
    rss_before = rss_kb(p.proc.pid)
    sent = {}

    def write():
        try:
            con.sock.sendall(data)
            sent["v"] = True
        except BaseException as e:  # noqa: B902 - reported below
            sent["v"] = e

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    # the console reads none of its replies yet: sluice must neither die nor buffer
    # them all, and must go on serving everyone else
    writer.join(3)
    for _ in range(3):
        with au.client(p) as c:
            assert c.execute("select 'served'").fetchone()[0] == "served"
        with au.console(p) as adm:
            assert au.show(adm, "VERSION")[1]
    assert p.running(), "sluice died: " + p.output()[-3000:]
    grown = rss_kb(p.proc.pid) - rss_before
    assert grown < 2048, "RSS grew by %d kB while the console did not read" % grown
    counts = count_replies(con.sock, PIPELINE + 1)
    writer.join(30)
    assert sent.get("v") is True, sent
    assert counts["E"] == 1, counts  # the 16 KB one: command too long
    assert counts["I"] == PIPELINE - versions, counts  # EmptyQueryResponse per ';'
    assert counts["D"] == versions, counts
    assert counts["Z"] == PIPELINE + 1, counts
    # and the console is still usable
    con.sock.settimeout(10)
    assert con.query("SHOW VERSION")
    con.close()
    assert p.running()
