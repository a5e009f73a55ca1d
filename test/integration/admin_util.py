"""Shared helpers for the admin console tests (test_admin_*.py).

Console connections and the simple query protocol
-------------------------------------------------
The admin console (PgBouncer's, and sluice's which copies it) speaks only the
simple query protocol (Query 'Q' messages).  psycopg 3's default Cursor sends
execute() without parameters as a simple Query, *but* its automatic prepared
statements (prepare_threshold, default 5) switch a query text that has been
run 5 times to Parse/Bind/Execute, i.e. the extended protocol, which the
console refuses.  A psycopg.ClientCursor never prepares and always sends a
simple Query (parameters, if any, are interpolated client-side).  So console()
below connects with cursor_factory=psycopg.ClientCursor and prepare_threshold=
None (belt and braces), in autocommit mode (otherwise psycopg would send BEGIN
first, which the console rejects).  Use conn.execute("SHOW POOLS") on it.
psql -c also uses the simple protocol.

For counting transactions through the pooler (test_admin_stats.py) the same
applies: a ClientCursor connection sends each 'select 1' as one simple Query,
so 100 executions are exactly 100 queries and 100 transactions (autocommit).

Users: the admin tests run with auth_type=trust (default of the harness) and
  admin_users = alice   (ADMIN)
  stats_users = bob     (STATS)
and 'app' (in the auth_file, in neither list) as the ordinary user.
"""

import os
import socket
import threading
import time

import psycopg
import pytest

import helpers

ADMIN = "alice"
ADMIN_PW = helpers.ALICE_PW
STATS = "bob"
STATS_PW = helpers.BOB_PW
ORDINARY = "app"

CONSOLE_DBS = ("pgbouncer", "sluice")

# The percentile columns sluice appends to SHOW POOLS and SHOW STATS.
PERCENTILE_COLUMNS = [
    "p50_wait_us", "p95_wait_us", "p99_wait_us",
    "p50_query_us", "p95_query_us", "p99_query_us",
    "p50_xact_us", "p95_xact_us", "p99_xact_us",
]

sluice_only = pytest.mark.sluice_only


def admin_settings(extra=None):
    s = {"admin_users": ADMIN, "stats_users": STATS}
    s.update(extra or {})
    return s


def make_admin_pooler(make_pooler, settings=None, **kw):
    """A pooler with admin_users=alice and stats_users=bob."""
    return make_pooler(settings=admin_settings(settings), **kw)


def console(p, user=ADMIN, password=ADMIN_PW, dbname="pgbouncer", **kw):
    """psycopg 3 connection to the admin console that sends simple Queries only."""
    kw.setdefault("cursor_factory", psycopg.ClientCursor)
    kw.setdefault("prepare_threshold", None)
    return p.connect(dbname=dbname, user=user, password=password, **kw)


def client(p, dbname="testdb", user="app", **kw):
    """Ordinary client whose queries are simple Queries (ClientCursor)."""
    kw.setdefault("cursor_factory", psycopg.ClientCursor)
    kw.setdefault("prepare_threshold", None)
    return p.connect(dbname=dbname, user=user, **kw)


def show(conn, what):
    """Run 'SHOW <what>' (or any row-returning console command); returns
    (column names, list of dicts)."""
    cur = conn.execute(what if " " in what.strip() else "SHOW " + what)
    if cur.description is None:
        return [], []
    cols = [d.name for d in cur.description]
    return cols, [dict(zip(cols, r)) for r in cur.fetchall()]


def rows_for(conn, what, **match):
    _, rows = show(conn, what)
    return [r for r in rows if all(str(r.get(k)) == str(v) for k, v in match.items())]


def row_for(conn, what, **match):
    r = rows_for(conn, what, **match)
    return r[0] if r else None


COMMAND_TIMEOUT = 10


def command(conn, text, timeout=COMMAND_TIMEOUT):
    """Run a control command; returns the CommandComplete tag.  Bounded: if the
    console has not answered within timeout seconds, the connection is cut (so
    nothing stays blocked on it) and AssertionError says which command hung."""
    t, res = run_in_thread(lambda: conn.execute(text).statusmessage)
    t.join(timeout)
    if "v" not in res:
        abort(conn)
        t.join(5)
        raise AssertionError("console command %r did not answer within %ss" % (text, timeout))
    if isinstance(res["v"], BaseException):
        raise res["v"]
    return res["v"]


def abort(conn):
    """Cut a psycopg connection's socket from outside (safe while another thread
    is blocked in execute on it: that thread gets an OperationalError)."""
    try:
        fd = os.dup(conn.fileno())
    except Exception:
        return
    s = socket.socket(fileno=fd)
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()


def as_int(v):
    if v is None or v == "":
        return 0
    return int(v)


def stat(conn, table, db, col):
    """One number from SHOW STATS / STATS_TOTALS / STATS_AVERAGES for db (0 if no row)."""
    r = row_for(conn, table, database=db)
    return as_int(r[col]) if r else 0


def config_value(conn, key):
    r = row_for(conn, "SHOW CONFIG", key=key)
    return None if r is None else str(r["value"])


def run_in_thread(fn):
    """Run fn() in a daemon thread; returns (thread, result dict with 'v' once done,
    holding the return value or the exception)."""
    res = {}

    def run():
        try:
            res["v"] = fn()
        except BaseException as e:  # noqa: B902 - reported to the test
            res["v"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, res


def query_then_close(conn, sql):
    """For waiter threads: in session mode a client keeps its server until it
    disconnects, so a waiter that got served must leave for the next one."""
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def still_pending(t, res, secs):
    """Let the thread run for secs; True if it has not finished."""
    t.join(secs)
    return "v" not in res


def finished(t, res, secs):
    t.join(secs)
    return "v" in res


def expect_exit(p, why="admin SHUTDOWN"):
    """Tell the harness that the pooler exiting on its own is on purpose (the
    conftest teardown flags an unexpected exit unless the test 'signalled' it)."""
    p.signalled.append(why)


def warm_pool(p, dbname="testdb", user="app"):
    """Run one query and leave, so the pool has an idle server and known server
    parameters before the test's own clients log in."""
    with client(p, dbname=dbname, user=user) as c:
        c.execute("select 1")


def wait_exit(p, timeout):
    return p.wait_exit(timeout)


def can_connect(p, dbname="testdb", user="app", timeout=5):
    try:
        with p.connect(dbname=dbname, user=user, connect_timeout=timeout) as c:
            c.execute("select 1")
            return True
    except psycopg.OperationalError:
        return False


def backend_pid(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def wait_gone(pg, pid, timeout=10, what=None):
    helpers.wait_for(lambda: pid not in pg.backend_pids(), timeout, 0.05,
                     what or "backend %s to be closed" % pid)


def wait_query_running(pg, pid, needle="pg_sleep", timeout=10):
    def active():
        with pg.connect() as a:
            r = a.execute("select state, query from pg_stat_activity where pid = %s", (pid,)).fetchone()
            return r is not None and r[0] == "active" and needle in r[1]
    helpers.wait_for(active, timeout, 0.05, "query to be running on backend %s" % pid)


def elapsed_since(t0):
    return time.monotonic() - t0
