"""Isolation fuzz test (issue 9, item 12): hostile sessions beside canary clients on one
small transaction-mode pool.

Canaries log in with their own application_name and DateStyle (or none, or the server's
defaults) and run checked queries: each selects a fresh token together with
current_setting('application_name') and current_setting('DateStyle') and must get exactly
that row, the exact message sequence and the right ReadyForQuery status back.  Hostile
sessions on the same pool (same database and user) send valid streams with bytes flipped,
messages split at random points with pauses (checked like canaries), truncated and
oversized lengths, COPY FROM STDIN aborted midway, cancels at random moments with their
own key, half messages then a close, floods, and parameter changes in and out of
transactions.  Any canary error, hang (CANARY_TIMEOUT) or wrong answer is a failure; so is
a wrong answer to a hostile session's own valid (if fragmented) queries.  At the end sluice
must be up and SHOW POOLS / SHOW CLIENTS must show nothing leaked.  The same fuzzer run
straight against PostgreSQL (test_fuzz_checks_hold_against_postgres) must find nothing:
that keeps the checks themselves honest.

Failures are counted per class (<wrong token>, <param leak>, <param leak, default
expected>, <error>, <hang>, <closed>, <protocol>); each detail names the client port (to
find the session in sluice's log) and the hostile scenarios running at that moment.

Environment:
  SLUICE_ISOFUZZ_SECONDS    fuzzing time (default 60; `make fuzz-isolation`: 600)
  SLUICE_ISOFUZZ_SEED       replay a run's choices (threads still interleave freely)
  SLUICE_ISOFUZZ_SCENARIOS  comma list of hostile scenarios (default: all in SCENARIOS)
  SLUICE_ISOFUZZ_CANARIES   comma list of canary profiles (default: all in PROFILES)
"""

import collections
import os
import random
import re
import socket
import struct
import threading
import time
import traceback

import pytest

import admin_util as au
import helpers
import pgproto

FUZZ_SECONDS = float(os.environ.get("SLUICE_ISOFUZZ_SECONDS", "60"))
POOL_SIZE = 3
N_CANARIES = 3
N_HOSTILES = 4
CANARY_TIMEOUT = 20.0  # an answer later than this is a hang
HOSTILE_TIMEOUT = 10.0
TABLE = "isofuzz_t"
SERVER_DATESTYLE = "ISO, MDY"  # helpers.PG_CONF
DATESTYLES = ["ISO, MDY", "ISO, DMY", "ISO, YMD", "SQL, DMY", "SQL, MDY", "German, DMY",
              "Postgres, MDY", "Postgres, DMY"]
OTHER_DATESTYLES = [d for d in DATESTYLES if d != SERVER_DATESTYLE]
# explicit: non-default values at startup; defaults: none, or the server's defaults sent
# explicitly; set: explicit, then SETs (to the defaults too when "defaults" is chosen)
PROFILES = ["explicit", "defaults", "set"]
MAX_DETAILS = 25


def _env_list(name, default):
    v = os.environ.get(name)
    chosen = [s.strip() for s in v.split(",") if s.strip()] if v else list(default)
    unknown = set(chosen) - set(default)
    if unknown:
        raise RuntimeError("%s: unknown %s (known: %s)" % (name, sorted(unknown), default))
    return chosen


# ---------------------------------------------------------------------------
# Frontend messages
# ---------------------------------------------------------------------------

def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def m_query(sql):
    return msg(b"Q", cstr(sql))


def m_parse(sql, name=""):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", 0))


def m_bind(params, portal="", stmt=""):
    body = cstr(portal) + cstr(stmt) + struct.pack("!HH", 0, len(params))
    for p in params:
        b = p.encode()
        body += struct.pack("!i", len(b)) + b
    return msg(b"B", body + struct.pack("!H", 0))


def m_describe_portal(portal=""):
    return msg(b"D", b"P" + cstr(portal))


def m_execute(portal=""):
    return msg(b"E", cstr(portal) + struct.pack("!I", 0))


def m_copy_data(data):
    return msg(b"d", data)


M_SYNC = msg(b"S")
M_FLUSH = msg(b"H")
M_TERMINATE = msg(b"X")
M_COPY_DONE = msg(b"c")


def m_copy_fail(why):
    return msg(b"f", cstr(why))


# ---------------------------------------------------------------------------
# Checked probes: (bytes, expected message types, token or None, ReadyForQuery status)
# ---------------------------------------------------------------------------

PROBE_SQL = "SELECT '%s', current_setting('application_name'), current_setting('DateStyle')"
PROBE_EXT = "SELECT $1::text, current_setting('application_name'), current_setting('DateStyle')"
PROBE_KINDS = ["simple", "extended", "sleep", "txn"]


def probe_steps(kind, tok, rng):
    if kind == "simple":
        return [(m_query(PROBE_SQL % tok), "TDCZ", tok, "I")]
    if kind == "sleep":
        sql = PROBE_SQL % tok + " FROM pg_sleep(%.3f)" % rng.uniform(0.001, 0.05)
        return [(m_query(sql), "TDCZ", tok, "I")]
    if kind == "extended":
        data = m_parse(PROBE_EXT) + m_bind([tok]) + m_describe_portal() + m_execute() + M_SYNC
        return [(data, "12TDCZ", tok, "I")]
    return [(m_query("BEGIN"), "CZ", None, "T"),
            (m_query(PROBE_SQL % tok), "TDCZ", tok, "T"),
            (m_query("COMMIT"), "CZ", None, "I")]


def data_row(payload):
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
    return row


def read_reply(rc):
    """Messages up to and including the next ReadyForQuery."""
    msgs = []
    while True:
        t, p = rc.recv_msg()
        msgs.append((t, p))
        if t == "Z":
            return msgs


# What went wrong is tagged <class> in the failure text; the figures count failures per
# class, so a parameter leak is not confused with crossed streams.
DEFAULTS = {"application_name": "", "DateStyle": SERVER_DATESTYLE}


def param_mismatch(name, got, want):
    if want is None or got == want:
        return None
    if got is None:
        return "<no ParameterStatus> for %s, expected %r" % (name, want)
    cls = "param leak, default expected" if want == DEFAULTS[name] else "param leak"
    return "<%s> %s=%r, expected %r" % (cls, name, got, want)


def check_row(row, tok, want):
    if row[0] != tok:
        return "<wrong token> row %r, expected token %r" % (row, tok)
    for name, got in zip(("application_name", "DateStyle"), row[1:3]):
        err = param_mismatch(name, got, want[name])
        if err:
            return err
    return None


def check_reply(msgs, shape, tok, want, status):
    """None if msgs is exactly the expected answer, else what is wrong.  want maps
    application_name and DateStyle to the value expected, or None for unchecked."""
    types = []
    for t, p in msgs:
        if t == "S":
            k, v = [x.decode("utf-8", "replace") for x in p.split(b"\0")[:2]]
            err = param_mismatch(k, v, want[k]) if k in want else None
            if err:
                return "ParameterStatus " + err
            continue
        if t in ("E", "N"):
            return "<%s> %s" % ("error" if t == "E" else "notice",
                                pgproto.ServerError(pgproto.parse_error_fields(p)))
        types.append(t)
        err = check_row(data_row(p), tok, want) if t == "D" else None
        if err:
            return err
        if t == "Z" and p[:1] != status.encode():
            return "<protocol> ReadyForQuery %r, expected %r" % (p[:1], status)
    if "".join(types) != shape:
        return "<protocol> messages %s, expected %s" % ("".join(types), shape)
    return None


def run_steps(rc, steps, want):
    for data, shape, tok, status in steps:
        rc.send(data)
        err = check_reply(read_reply(rc), shape, tok, want, status)
        if err:
            return err
    return None


def io_error(e):
    if isinstance(e, socket.timeout):
        return "<hang> no answer within the socket timeout"
    return "<closed> %s: %s" % (type(e).__name__, e)


def close_hard(sock):
    """Close with a RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def drain(sock, secs):
    """Read whatever arrives for secs seconds (or until EOF); return the bytes."""
    end, data = time.monotonic() + secs, b""
    while len(data) < 1 << 22:
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            sock.settimeout(left)
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def send_split(sock, data, rng, max_pause):
    """Send data in random pieces with random pauses between them."""
    pos = 0
    while pos < len(data):
        n = rng.randint(1, max(1, min(len(data) - pos, rng.choice([1, 7, 100, 5000, 1 << 20]))))
        sock.sendall(data[pos:pos + n])
        pos += n
        if pos < len(data) and rng.random() < 0.3:
            time.sleep(rng.uniform(0, max_pause))


# ---------------------------------------------------------------------------
# The run: counters, failures, who was doing what
# ---------------------------------------------------------------------------

class Fuzz:
    def __init__(self, pooler, seed, seconds, profiles):
        self.pooler = pooler
        self.profiles = profiles
        self.seed = seed
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.failures = collections.Counter()
        self.details = []
        self.active = {}  # hostile thread index -> scenario running now
        self.recent = collections.deque(maxlen=40)  # (end time, scenario)
        self.side_threads = []
        self.traces = collections.OrderedDict()  # hostile client port -> what it did

    def trace(self, port, scenario):
        with self.lock:
            self.traces[port] = t = [scenario]
            while len(self.traces) > 5000:
                self.traces.popitem(last=False)
        return t

    def rng_for(self, role, idx):
        return random.Random("%s/%s/%d" % (self.seed, role, idx))

    def done(self):
        return time.monotonic() >= self.deadline

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] += n

    def fail(self, who, detail):
        now = time.monotonic()
        m = re.search(r"<([^>]+)>", detail)
        kind = "%s: %s" % (who, m.group(1) if m else "other")
        with self.lock:
            self.failures[kind] += 1
            if len(self.details) < MAX_DETAILS:
                recent = sorted({s for t, s in self.recent if now - t < 2.0})
                self.details.append("t=%.1fs %s: %s [hostiles running: %s; ended <2s ago: %s]"
                                    % (now - self.t0, kind, detail, sorted(self.active.values()),
                                       recent))

    def side_thread(self, fn):
        t = threading.Thread(target=fn, daemon=True)
        with self.lock:
            self.side_threads.append(t)
        t.start()

    def enter(self, idx, scenario):
        with self.lock:
            self.active[idx] = scenario
            self.counts["sessions " + scenario] += 1

    def leave(self, idx):
        with self.lock:
            self.recent.append((time.monotonic(), self.active.pop(idx, "?")))


def guarded(fz, what, fn):
    """Run a worker body; a Python exception in it is a failure, never silent."""
    def run():
        try:
            fn()
        except BaseException:
            fz.fail("worker crashed", "<python exception> %s:\n%s" % (what, traceback.format_exc()))
    return run


# ---------------------------------------------------------------------------
# Canaries
# ---------------------------------------------------------------------------

def profile_start(profile, rng, tag):
    """(startup params, expected application_name/DateStyle) for a canary session."""
    if profile == "defaults":
        if rng.random() < 0.5:
            params = {}
        else:
            params = {"application_name": "", "DateStyle": SERVER_DATESTYLE}
        return params, {"application_name": "", "DateStyle": SERVER_DATESTYLE}
    want = {"application_name": tag, "DateStyle": rng.choice(OTHER_DATESTYLES)}
    return dict(want), dict(want)


class Canary:
    def __init__(self, fz, idx, profiles, label="canary"):
        self.fz, self.idx, self.profiles, self.label = fz, idx, profiles, label
        self.rng = fz.rng_for("canary", idx)
        self.n = 0

    def token(self):
        self.n += 1
        return "tok_c%d_%d_%06x" % (self.idx, self.n, self.rng.getrandbits(24))

    def run(self):
        while not self.fz.done():
            self.session(self.rng.choice(self.profiles))

    def session(self, profile):
        fz, rng = self.fz, self.rng
        params, want = profile_start(profile, rng, "canary%d_%06x" % (self.idx, rng.getrandbits(24)))
        try:
            rc = fz.pooler.raw_login(params=params, timeout=CANARY_TIMEOUT)
        except Exception as e:
            fz.fail(self.label + " login", "%s %r: %s" % (profile, params, io_error(e)))
            time.sleep(0.2)
            return
        port = rc.sock.getsockname()[1]  # to find the session in sluice's log
        try:
            fz.count("canary sessions")
            err = self.login_params(rc, want)
            for _ in range(rng.randint(3, 40)):
                if err or fz.done():
                    break
                err = self.one_check(rc, profile, want)
            if err:
                fz.fail("%s %s" % (self.label, profile), "client port %d: %s" % (port, err))
            else:
                rc.terminate()
        finally:
            rc.close()

    def login_params(self, rc, want):
        for k, v in want.items():
            err = param_mismatch(k, rc.params.get(k), v)
            if err:
                return "login ParameterStatus " + err
        return None

    def one_check(self, rc, profile, want):
        rng = self.rng
        if profile == "set" and rng.random() < 0.2:
            steps = self.set_steps(want)
            kind = "SET"
        else:
            kind = rng.choice(PROBE_KINDS)
            steps = probe_steps(kind, self.token(), rng)
        try:
            err = run_steps(rc, steps, want)
        except Exception as e:
            err = io_error(e)
        self.fz.count("canary queries checked")
        return "%s: %s" % (kind, err) if err else None

    def set_steps(self, want):
        """SET a new value (sometimes the server default or '') and expect it from now on."""
        rng = self.rng
        defaults = "defaults" in self.fz.profiles
        if rng.random() < 0.5:
            v = "canary%d_set_%06x" % (self.idx, rng.getrandbits(24))
            v = rng.choice(["", v]) if defaults else v
            want["application_name"] = v
            return [(m_query("SET application_name = '%s'" % v), "CZ", None, "I")]
        v = rng.choice(DATESTYLES if defaults else OTHER_DATESTYLES)
        want["DateStyle"] = v
        return [(m_query("SET DateStyle = '%s'" % v), "CZ", None, "I")]


# ---------------------------------------------------------------------------
# Hostile sessions
# ---------------------------------------------------------------------------

def hostile_params(rng):
    p = {}
    if rng.random() < 0.7:
        p["application_name"] = "hostile_%06x" % rng.getrandbits(24)
    if rng.random() < 0.7:
        p["DateStyle"] = rng.choice(DATESTYLES)
    return p


def hostile_piece(rng):
    """One valid message sequence, for flipping and cutting."""
    n = rng.randint(0, 1000)
    pick = rng.randrange(9)
    if pick == 0:
        return m_query("SELECT %d" % n)
    if pick == 1:
        return m_parse("SELECT $1::int + 1") + m_bind([str(n)]) + m_execute() + M_SYNC
    if pick == 2:
        return (m_query("BEGIN") + m_query("SET application_name = 'hostile_txn_%d'" % n)
                + m_query("COMMIT"))
    if pick == 3:
        return m_query("SET DateStyle = '%s'" % rng.choice(DATESTYLES))
    if pick == 4:
        rows = b"".join(b"%d\tv%d\n" % (n + i, i) for i in range(rng.randint(1, 20)))
        return m_query("COPY %s (id, v) FROM STDIN" % TABLE) + m_copy_data(rows) + M_COPY_DONE
    if pick == 5:
        return m_parse("SELECT %d" % n, "hs%d" % n) + M_FLUSH + msg(b"C", b"Shs%d\0" % n) + M_SYNC
    if pick == 6:
        return m_query("SELECT pg_sleep(0.0%d)" % rng.randint(1, 9))
    if pick == 7:
        return m_query("SELECT 1; SELECT 2")
    return M_SYNC


def want_of(params, check_defaults):
    """What a session that logged in with params must see (None: not checked, when the
    run leaves out the default-value checks)."""
    want = {k: params.get(k, v) for k, v in DEFAULTS.items()}
    if not check_defaults:
        want = {k: (None if v == DEFAULTS[k] else v) for k, v in want.items()}
    return want


class Hostile:
    def __init__(self, fz, idx, scenarios):
        self.fz, self.idx, self.scenarios = fz, idx, scenarios
        self.rng = fz.rng_for("hostile", idx)
        self.n = 0
        self.port = 0

    def run(self):
        while not self.fz.done():
            name = self.scenario = self.rng.choice(self.scenarios)
            self.steps = []
            self.fz.enter(self.idx, name)
            try:
                getattr(self, "h_" + name)()
            except (OSError, EOFError, pgproto.ProtocolError):
                pass  # hostiles get cut off; only what canaries see counts
            finally:
                self.fz.leave(self.idx)

    def login(self, params=None):
        p = hostile_params(self.rng) if params is None else params
        try:
            rc = self.fz.pooler.raw_login(params=p, timeout=HOSTILE_TIMEOUT)
            self.port = rc.sock.getsockname()[1]
            self.steps = self.fz.trace(self.port, "%s %r" % (self.scenario, p))
            return rc
        except Exception as e:
            self.fz.fail("hostile login", "%r: %s" % (p, io_error(e)))
            raise OSError("login failed")

    def token(self):
        self.n += 1
        return "tok_h%d_%d_%06x" % (self.idx, self.n, self.rng.getrandbits(24))

    def note(self, what):
        self.steps.append(what)

    def finish(self, rc):
        r = self.rng.random()
        self.note(("terminate", "close", "reset")[(r >= 0.4) + (r >= 0.7)])
        if r < 0.4:
            rc.terminate()
        elif r < 0.7:
            rc.close()
        else:
            close_hard(rc.sock)

    def checked(self, kind, err):
        """A wrong answer to a hostile's own valid queries is a failure too."""
        self.fz.count("hostile queries checked")
        if err:
            self.fz.fail("hostile " + kind, "client port %d: %s" % (self.port, err))

    # -- scenarios --------------------------------------------------------
    def h_flip(self):
        """Valid messages with 1-4 bytes flipped (type, length or body)."""
        rng = self.rng
        rc = self.login()
        stream = bytearray(b"".join(hostile_piece(rng) for _ in range(rng.randint(1, 6))))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(stream))
            stream[pos] = rng.randrange(256) if rng.random() < 0.3 else stream[pos] ^ (1 << rng.randrange(8))
        self.note("stream %r" % bytes(stream[:300]))
        try:
            send_split(rc.sock, bytes(stream), rng, 0.05)
            drain(rc.sock, rng.uniform(0, 0.5))
        finally:
            self.finish(rc)

    def h_split(self):
        """Valid checked queries split at random points, with reads between pieces,
        so a message is often half sent while the previous answer comes back."""
        rng = self.rng
        params = hostile_params(rng)
        want = want_of(params, "defaults" in self.fz.profiles)
        rc = self.login(params)
        steps = []
        for _ in range(rng.randint(1, 6)):
            steps += probe_steps(rng.choice(PROBE_KINDS), self.token(), rng)
        self.note("%d steps" % len(steps))
        try:
            err = self.send_steps_split(rc, steps, want)
        except Exception as e:
            err = io_error(e)
        self.checked("split", err)
        self.finish(rc)

    def send_steps_split(self, rc, steps, want):
        rng = self.rng
        stream = b"".join(s[0] for s in steps)
        ends, pos = [], 0
        for s in steps:
            pos += len(s[0])
            ends.append(pos)
        sent = answered = 0
        while answered < len(steps):
            if sent < len(stream):
                n = rng.randint(1, max(1, min(len(stream) - sent, rng.choice([1, 3, 20, 200]))))
                rc.send(stream[sent:sent + n])
                sent += n
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0, 0.15))
                if rng.random() < 0.6 and sent < len(stream):
                    continue
            # read the answers of every step now fully sent
            while answered < len(steps) and ends[answered] <= sent:
                _, shape, tok, status = steps[answered]
                err = check_reply(read_reply(rc), shape, tok, want, status)
                if err:
                    return err
                answered += 1
        return None

    def h_length(self):
        """A message with a length below 4, shorter or longer than its body."""
        rng = self.rng
        rc = self.login()
        try:
            body = cstr("SELECT %d" % rng.randint(0, 99))
            t = rng.choice([b"Q", b"P", b"B", b"d", b"E", b"S", b"z"])
            how = rng.randrange(3)
            if how == 0:
                ln = rng.randint(0, 3)
            elif how == 1:
                ln = rng.randint(4, len(body) + 3)
            else:
                ln = len(body) + 4 + (1 << rng.randint(0, 29)) + rng.randint(0, 1000)
                ln = min(ln, 0x3FFFFFFF)
            data = t + struct.pack("!I", ln) + body
            if how == 2 and rng.random() < 0.5:
                data += os.urandom(min(ln - len(body) - 4, rng.choice([10, 5000, 100000])))
            if rng.random() < 0.5:
                data += m_query("SELECT 1")
            self.note("type %r length %d, %d bytes sent" % (t, ln, len(data)))
            send_split(rc.sock, data, rng, 0.05)
            drain(rc.sock, rng.uniform(0, 0.6))
        finally:
            self.finish(rc)

    def h_copy(self):
        """COPY FROM STDIN with a bad row, then more CopyData (often big and slow), then
        CopyDone, CopyFail, a Query or nothing; then a checked query on the session."""
        rng = self.rng
        params = hostile_params(rng)
        want = want_of(params, "defaults" in self.fz.profiles)
        rc = self.login(params)
        try:
            rc.send(m_query("COPY %s (id, v) FROM STDIN" % TABLE))
            t, p = rc.recv_msg()
            if t != "G":
                self.checked("copy", "<protocol> COPY FROM STDIN answered %r %r" % (t, p[:200]))
                return
            ok = rng.random() < 0.15
            self.copy_body(rc, ok)
            err = self.copy_end(rc, ok, want)
            self.checked("copy", err)
        finally:
            self.finish(rc)

    def copy_body(self, rc, ok):
        rng = self.rng
        good = b"".join(b"%d\tgood\n" % rng.randint(0, 1 << 30) for _ in range(rng.randint(0, 50)))
        if good:
            rc.send(m_copy_data(good))
        self.note("CopyData %d good bytes" % len(good))
        if ok:
            return
        bad = b"not_an_int\tbad\n"
        if rng.random() < 0.5:
            bad += b"1\tx\n" * rng.randint(1, 65536)  # a big first CopyData, bad first row
        rc.send(m_copy_data(bad))
        self.note("CopyData %d bytes, bad first row" % len(bad))
        if rng.random() < 0.7:
            time.sleep(rng.uniform(0, 0.3))  # let the server's ErrorResponse + 'Z' arrive
        for _ in range(rng.randint(0, 4)):
            size = rng.choice([10, 1000, 65536, 262144])
            self.note("CopyData %d bytes, split" % size)
            send_split(rc.sock, m_copy_data(b"2\ty\n" * (size // 4)), rng, 0.1)
        self.note("sent")

    def copy_end(self, rc, ok, want):
        """Finish the COPY; returns what is wrong with the answers, or None."""
        rng = self.rng
        end = rng.choice(["done", "fail", "query", "none"]) if not ok else "done"
        tail = {"done": M_COPY_DONE, "fail": m_copy_fail("hostile gives up"),
                "query": b"", "none": b""}[end]
        self.note("end: " + end)
        rc.send(tail)
        if end == "none" and rng.random() < 0.5:
            return None  # close with the COPY (maybe) still open
        tok = self.token()
        probe = probe_steps("simple", tok, rng)
        if end == "query":
            rc.send(probe[0][0])
        try:
            first = read_reply(rc)
            self.note("answered %s" % "".join(t for t, _ in first))
        except Exception as e:
            return "after COPY (%s): %s" % (end, io_error(e))
        types = "".join(t for t, _ in first if t not in "SN")
        if ok and types != "CZ":
            return "<protocol> good COPY answered %s" % types
        if not ok and types != "EZ":
            return "<protocol> failed COPY (%s) answered %s, expected EZ" % (end, types)
        if end == "query":
            err = check_reply(read_reply(rc), "TDCZ", tok, want, "I")
        else:
            err = run_steps(rc, probe, want)
        return "query after COPY (%s): %s" % (end, err) if err else None

    def h_cancel(self):
        """Queries with a CancelRequest (own key, rarely a wrong one) at a random moment:
        before, during or after the query."""
        rng = self.rng
        params = hostile_params(rng)
        rc = self.login(params)
        want = want_of(params, "defaults" in self.fz.profiles)
        pid, key = rc.backend_key
        host, port = self.fz.pooler.host, self.fz.pooler.port
        try:
            for _ in range(rng.randint(1, 4)):
                k = key if rng.random() < 0.9 else key ^ 1
                delay = rng.uniform(0, 0.3)
                self.fz.side_thread(lambda d=delay, k=k: self.cancel_later(host, port, pid, k, d))
                self.note("cancel in %.3f s with %s key" % (delay, "own" if k == key else "wrong"))
                if rng.random() < 0.5:
                    rc.send(m_query("SELECT pg_sleep(%.3f)" % rng.uniform(0, 0.3)))
                    read_reply(rc)
                else:
                    self.cancelable_probe(rc, want)
                time.sleep(rng.uniform(0, 0.2))
        finally:
            self.finish(rc)

    def cancel_later(self, host, port, pid, key, delay):
        time.sleep(delay)
        try:
            pgproto.cancel_request(host, port, pid, key, timeout=5)
            self.fz.count("cancels sent")
        except OSError:
            pass

    def cancelable_probe(self, rc, want):
        """A checked query on a hostile that may itself be cancelled (57014 is fine)."""
        tok = self.token()
        rc.send(m_query(PROBE_SQL % tok + " FROM pg_sleep(%.3f)" % self.rng.uniform(0, 0.2)))
        msgs = read_reply(rc)
        errs = [pgproto.parse_error_fields(p).get("C") for t, p in msgs if t == "E"]
        if errs == ["57014"]:
            self.fz.count("hostile queries cancelled")
            return
        self.checked("cancel", check_reply(msgs, "TDCZ", tok, want, "I"))

    def h_half_close(self):
        """Part of a valid stream (sometimes of the startup packet), then a close."""
        rng = self.rng
        if rng.random() < 0.15:
            sock = socket.create_connection((self.fz.pooler.host, self.fz.pooler.port), timeout=5)
            pkt = pgproto.startup_packet({"user": "app", "database": "testdb"})
            sock.sendall(pkt[:rng.randrange(1, len(pkt))])
            time.sleep(rng.uniform(0, 0.2))
            close_hard(sock) if rng.random() < 0.5 else sock.close()
            return
        rc = self.login()
        stream = b"".join(hostile_piece(rng) for _ in range(rng.randint(1, 3)))
        cut = rng.randrange(1, len(stream))
        self.note("%d of %r" % (cut, stream[:300]))
        try:
            send_split(rc.sock, stream[:cut], rng, 0.05)
            time.sleep(rng.uniform(0, 0.3))
        finally:
            rc.close() if rng.random() < 0.5 else close_hard(rc.sock)

    def h_flood(self):
        """Pipelined queries (read back and checked, or abandoned), a huge query, garbage."""
        rng = self.rng
        rc = self.login()
        try:
            how = rng.randrange(4)
            self.note(("pipeline", "huge query", "Syncs", "garbage")[how])
            if how == 0:
                self.flood_pipeline(rc, rng.randint(100, 2000), rng.random() < 0.7)
            elif how == 1:
                n = rng.randint(1 << 20, 4 << 20)
                rc.send(m_query("SELECT length('%s')" % ("x" * n)))
                msgs = read_reply(rc)
                rows = [data_row(p) for t, p in msgs if t == "D"]
                self.checked("flood", None if rows == [[str(n)]] else "<wrong answer> huge query got %r" % rows)
            elif how == 2:
                rc.send(M_SYNC * rng.randint(100, 5000))
                drain(rc.sock, rng.uniform(0, 0.3))
            else:
                rc.send(os.urandom(rng.randint(1, 1 << 20)))
                drain(rc.sock, rng.uniform(0, 0.3))
        finally:
            self.finish(rc)

    def flood_pipeline(self, rc, n, read_all):
        base = self.rng.randint(0, 1 << 20)
        rc.send(b"".join(m_query("SELECT %d" % (base + i)) for i in range(n)))
        if not read_all:
            drain(rc.sock, self.rng.uniform(0, 0.2))
            return
        for i in range(n):
            msgs = read_reply(rc)
            rows = [data_row(p) for t, p in msgs if t == "D"]
            if rows != [[str(base + i)]]:
                self.checked("flood", "<wrong answer> pipelined query %d of %d got %r" % (i, n, rows))
                return
        self.checked("flood", None)

    def h_params(self):
        """SET / RESET / SET LOCAL of tracked parameters in and out of transactions that
        commit, roll back, fail or are abandoned."""
        rng = self.rng
        rc = self.login()
        sets = [
            lambda: "SET application_name = 'hostile_set_%06x'" % rng.getrandbits(24),
            lambda: "SET application_name = ''",
            lambda: "RESET application_name",
            lambda: "SET DateStyle = '%s'" % rng.choice(DATESTYLES),
            lambda: "SET DateStyle TO DEFAULT",
            lambda: "RESET ALL",
            lambda: "SET LOCAL DateStyle = '%s'" % rng.choice(DATESTYLES),
            lambda: "SET LOCAL application_name = 'hostile_local'",
        ]
        try:
            for _ in range(rng.randint(1, 6)):
                in_txn = rng.random() < 0.5
                if in_txn:
                    self.note("BEGIN")
                    rc.send(m_query("BEGIN"))
                    read_reply(rc)
                for _ in range(rng.randint(1, 3)):
                    sql = rng.choice(sets)()
                    self.note(sql)
                    rc.send(m_query(sql))
                    read_reply(rc)
                if in_txn:
                    end = rng.choice(["COMMIT", "ROLLBACK", "SELECT 1/0", "abandon"])
                    self.note(end)
                    if end == "abandon":
                        break
                    rc.send(m_query(end))
                    read_reply(rc)
                    if end.startswith("SELECT"):
                        rc.send(m_query("ROLLBACK"))
                        read_reply(rc)
        finally:
            self.finish(rc)


SCENARIOS = [n[2:] for n in vars(Hostile) if n.startswith("h_")]


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

@pytest.fixture
def fuzz_table(pg):
    with pg.connect("testdb") as c:
        c.execute("DROP TABLE IF EXISTS %s" % TABLE)
        c.execute("CREATE TABLE %s (id int, v text)" % TABLE)
        c.execute("GRANT ALL ON %s TO app" % TABLE)
    yield TABLE
    with pg.connect("testdb") as c:
        c.execute("DROP TABLE IF EXISTS %s" % TABLE)


def pool_settled(con):
    row = au.row_for(con, "POOLS", database="testdb", user="app")
    if row is None:
        return None
    busy = sum(au.as_int(row[k]) for k in ("cl_active", "cl_waiting", "sv_active", "sv_login"))
    _, clients = au.show(con, "CLIENTS")
    return row if busy == 0 and len(clients) == 1 else None


def leaks(p, fz):
    """What SHOW POOLS / CLIENTS / SERVERS show left behind once every client is gone."""
    with au.console(p) as con:
        try:
            helpers.wait_for(lambda: pool_settled(con), 30, 0.2,
                             "SHOW POOLS: no active/waiting client or server")
        except AssertionError:
            clients = au.rows_for(con, "CLIENTS", database="testdb")
            traces = ["client port %s (closed by the test) did: %s"
                      % (c["port"], fz.traces.get(c["port"], "?")) for c in clients]
            return "leaked clients or servers:\nPOOLS %r\nCLIENTS %r\nSERVERS %r\n%s" % (
                au.show(con, "POOLS")[1], clients, au.show(con, "SERVERS")[1], "\n".join(traces))
        servers = au.rows_for(con, "SERVERS", database="testdb")
        if len(servers) > POOL_SIZE or any(s["state"] not in ("idle", "used") for s in servers):
            return "servers after the run: %r" % servers
    return None


def final_canaries(fz, profiles):
    """After the storm: one clean session per profile must still work."""
    c = Canary(fz, 99, profiles, label="final canary")
    fz.deadline = time.monotonic() + 3600
    for profile in profiles:
        c.session(profile)


def pg_log_size(pg):
    return pg.logfile.stat().st_size if pg.logfile.exists() else 0


def count_in_pg_log(pg, start, needle):
    with open(pg.logfile, "rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", "replace").count(needle)


def report(fz, pg, log_start, seconds):
    lines = ["", "isolation fuzz: seed %s, %.0f s, pool_size %d, %d canaries, %d hostiles"
             % (fz.seed, seconds, POOL_SIZE, N_CANARIES, N_HOSTILES)]
    for k in sorted(fz.counts):
        lines.append("  %-32s %d" % (k, fz.counts[k]))
    lines.append("  %-32s %d" % ("hostile sessions run",
                                  sum(v for k, v in fz.counts.items() if k.startswith("sessions "))))
    lines.append("  %-32s %d" % ("failures", sum(fz.failures.values())))
    for k in sorted(fz.failures):
        lines.append("    %-30s %d" % (k, fz.failures[k]))
    lines.append("  postgres log 'invalid frontend message type' lines: %d"
                 % count_in_pg_log(pg, log_start, "invalid frontend message type"))
    return "\n".join(lines)


def run_fuzz(target, seed, seconds, scenarios, profiles):
    """Canaries and hostiles against target (a Pooler, or PostgreSQL itself) for seconds;
    returns the Fuzz record and the number of threads that did not finish."""
    fz = Fuzz(target, seed, seconds, profiles)
    threads = [threading.Thread(target=guarded(fz, "canary %d" % i, Canary(fz, i, profiles).run))
               for i in range(N_CANARIES)]
    threads += [threading.Thread(target=guarded(fz, "hostile %d" % i, Hostile(fz, i, scenarios).run))
                for i in range(N_HOSTILES)]
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join(max(1.0, fz.deadline - time.monotonic()) + CANARY_TIMEOUT + 30)
    for t in list(fz.side_threads):
        t.join(10)
    return fz, sum(t.is_alive() for t in threads)


def new_seed():
    return os.environ.get("SLUICE_ISOFUZZ_SEED") or "%08x" % random.SystemRandom().getrandbits(32)


class PostgresItself:
    """The fuzz target without a pooler: sessions log in to PostgreSQL directly."""

    def __init__(self, pg):
        self.host, self.port = pg.host, pg.port

    def raw_login(self, params=None, timeout=pgproto.DEFAULT_TIMEOUT):
        c = pgproto.RawConn(self.host, self.port, timeout)
        try:
            return c.startup(user="app", database="testdb", params=params)
        except BaseException:
            c.close()
            raise


@pytest.mark.hard_timeout(120)
def test_fuzz_checks_hold_against_postgres(pg, fuzz_table):
    """The fuzzer's own expectations: straight to PostgreSQL (a backend per session, so
    nothing can cross) every check passes.  A failure here is a bug in this file."""
    seed = new_seed()
    fz, stuck = run_fuzz(PostgresItself(pg), seed, 8, SCENARIOS, PROFILES)
    assert not stuck and not fz.failures, "%s\n%d threads stuck\n%s" % (
        report(fz, pg, pg_log_size(pg), 8), stuck, "\n".join(fz.details))


@pytest.mark.sluice_only("PgBouncer 1.18 fails it: a half-sent message's rest reaches the next "
                         "client's server, and parameters left at their default leak")
@pytest.mark.hard_timeout(FUZZ_SECONDS + 150)
def test_isolation_fuzz(make_pooler, pg, fuzz_table, capsys):
    scenarios = _env_list("SLUICE_ISOFUZZ_SCENARIOS", SCENARIOS)
    profiles = _env_list("SLUICE_ISOFUZZ_CANARIES", PROFILES)
    seed = new_seed()
    p = au.make_admin_pooler(make_pooler, settings={
        "pool_mode": "transaction", "default_pool_size": POOL_SIZE, "max_client_conn": 200,
        "query_wait_timeout": 120})
    log_start = pg_log_size(pg)
    fz, stuck = run_fuzz(p, seed, FUZZ_SECONDS, scenarios, profiles)
    problems = ["%d fuzz threads did not finish" % stuck] if stuck else []
    if not p.running():
        problems.append("sluice died during the fuzz run:\n" + p.output()[-3000:])
    else:
        problems.append(leaks(p, fz))
        final_canaries(fz, profiles)
    problems = [x for x in problems if x]
    text = report(fz, pg, log_start, FUZZ_SECONDS)
    with capsys.disabled():
        print(text)
    assert not fz.failures and not problems, "%s\nreplay: SLUICE_ISOFUZZ_SEED=%s\n%s\nfirst failures:\n%s" % (
        text, seed, "\n".join(problems), "\n".join(fz.details))
