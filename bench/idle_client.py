#!/usr/bin/python3
"""Opens many PostgreSQL client connections, logs each in and keeps them idle.

    idle_client.py --port 6432 --clients 10000 --ready-file /tmp/x.json [options]

Used by bench/idle_clients.sh. Each connection sends a protocol 3.0 startup packet
(no SSLRequest, no password: the pooler must trust the user) and reads until
ReadyForQuery ('Z'). Connections are opened with non-blocking sockets and at most
--concurrency logins in flight at a time, so the pooler's listen backlog never overflows.

Once every connection has logged in or failed, a JSON summary is written to --ready-file
(atomically: written under another name, then renamed) and the connections stay open,
idle, until SIGTERM or SIGINT; then each gets a Terminate message and is closed, and the
process exits 0 (1 if a connection failed).
"""
import argparse
import errno
import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time


def startup_packet(user, dbname, appname):
    body = struct.pack("!I", 196608)  # protocol 3.0
    for k, v in (("user", user), ("database", dbname), ("application_name", appname)):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def error_text(payload):
    """The 'M' (message) and 'C' (code) fields of an ErrorResponse."""
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return f"{fields.get('S', 'ERROR')} {fields.get('C', '?')}: {fields.get('M', '?')}"


class Conn:
    __slots__ = ("sock", "buf", "state", "sent")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.state = "connect"
        self.sent = 0


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        sys.exit(f"idle_client: need {need} file descriptors, hard limit is {hard} "
                 f"(raise it: ulimit -Hn {need}, as root)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--dbname", default="postgres")
    ap.add_argument("--appname", default="idle_client")
    ap.add_argument("--concurrency", type=int, default=100,
                    help="logins in flight at a time (keep it under the listen backlog)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for all logins")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--no-hold", action="store_true", help="close at once (testing)")
    a = ap.parse_args()

    raise_nofile(a.clients + 64)
    # block the signals now, wait for them with sigwait later: no race with a TERM
    # that arrives while the logins are still going on
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

    pkt = startup_packet(a.user, a.dbname, a.appname)
    sel = selectors.DefaultSelector()
    idle = []           # logged-in sockets, kept open
    errors = {}         # message -> count
    failed = 0
    started = 0
    pending = 0
    t0 = time.monotonic()
    deadline = t0 + a.timeout

    def fail(c, why):
        nonlocal failed, pending
        failed += 1
        pending -= 1
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def start_one():
        nonlocal started, pending
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        started += 1
        pending += 1
        c = Conn(s)
        rc = s.connect_ex((a.host, a.port))
        if rc not in (0, errno.EINPROGRESS):
            fail(c, f"connect: {os.strerror(rc)}")
            return
        sel.register(s, selectors.EVENT_WRITE, c)

    timed_out = False
    while started < a.clients or pending > 0:
        while started < a.clients and pending < a.concurrency:
            start_one()
        now = time.monotonic()
        if now > deadline:
            timed_out = True
            break
        for key, _ in sel.select(timeout=min(1.0, deadline - now)):
            c = key.data
            s = c.sock
            if c.state == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, f"connect: {os.strerror(err)}")
                    continue
                c.state = "send"
            if c.state == "send":
                try:
                    c.sent += s.send(pkt[c.sent:])
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(c, f"send: {e.strerror}")
                    continue
                if c.sent == len(pkt):
                    c.state = "login"
                    sel.modify(s, selectors.EVENT_READ, c)
                continue
            # login: read messages until ReadyForQuery
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(c, f"recv: {e.strerror}")
                continue
            if not data:
                fail(c, "connection closed during login")
                continue
            c.buf += data
            while len(c.buf) >= 5:
                typ = c.buf[0:1]
                (ln,) = struct.unpack("!I", c.buf[1:5])
                if len(c.buf) < 1 + ln:
                    break
                payload, c.buf = c.buf[5:1 + ln], c.buf[1 + ln:]
                if typ == b"E":
                    fail(c, error_text(payload))
                    break
                if typ == b"R":
                    (code,) = struct.unpack("!I", payload[:4])
                    if code != 0:
                        fail(c, f"server asks for authentication (method {code}); "
                                "the pooler must use trust")
                        break
                elif typ == b"Z":
                    sel.unregister(s)
                    c.state = "idle"
                    pending -= 1
                    idle.append(s)
                    break
                # S (ParameterStatus), K (BackendKeyData), N (notice): nothing to do
    elapsed = time.monotonic() - t0
    if timed_out:
        errors[f"timed out after {a.timeout:.0f}s"] = pending
        failed += pending
        for key in list(sel.get_map().values()):
            key.fileobj.close()
    sel.close()

    summary = {"requested": a.clients, "ok": len(idle), "failed": failed,
               "login_seconds": round(elapsed, 3),
               "logins_per_second": round(len(idle) / elapsed, 1) if elapsed > 0 else None,
               "errors": errors, "pid": os.getpid()}
    tmp = a.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f)
        f.write("\n")
    os.rename(tmp, a.ready_file)
    print(f"idle_client: {len(idle)}/{a.clients} logged in in {elapsed:.1f}s, {failed} failed"
          + "".join(f"\n  {n} x {m}" for m, n in sorted(errors.items(), key=lambda x: -x[1])),
          file=sys.stderr, flush=True)

    if not a.no_hold:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    terminate = b"X\0\0\0\4"
    for s in idle:
        try:
            s.send(terminate)
        except OSError:
            pass
        s.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
