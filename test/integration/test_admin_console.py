"""Admin console: who may log in, how commands are parsed, every SHOW from psql
and psycopg 3, PgBouncer 1.25 column compatibility, the admin connection limits
and the admin server reserve (admin_pool_size).

See admin_util.py for why console connections use psycopg.ClientCursor."""

import subprocess

import psycopg
import pytest

import admin_util as au
import helpers

SHOW_COMMANDS = [
    "POOLS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "TOTALS", "SERVERS", "CLIENTS",
    "DATABASES", "USERS", "CONFIG", "LISTS", "MEM", "FDS", "SOCKETS", "ACTIVE_SOCKETS",
    "DNS_HOSTS", "DNS_ZONES", "VERSION", "STATE",
]
NOT_IN_118 = {"STATE": "1.18 has no SHOW STATE"}


def show_params():
    out = []
    for c in SHOW_COMMANDS:
        marks = [au.sluice_only(NOT_IN_118[c])] if c in NOT_IN_118 else []
        out.append(pytest.param(c, marks=marks, id=c))
    return out


# PgBouncer 1.25 column lists (/work/shared/compat/pgbouncer-admin-columns.md)
CLIENT_COLS = ["type", "user", "database", "replication", "state", "addr", "port", "local_addr",
               "local_port", "connect_time", "request_time", "wait", "wait_us", "close_needed",
               "ptr", "link", "remote_pid", "tls", "application_name", "prepared_statements", "id"]
PGB125_COLUMNS = {
    "POOLS": ["database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
              "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled",
              "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us",
              "pool_mode", "load_balance_hosts"],
    "STATS": ["database", "total_server_assignment_count", "total_xact_count",
              "total_query_count", "total_received", "total_sent", "total_xact_time",
              "total_query_time", "total_wait_time", "total_client_parse_count",
              "total_server_parse_count", "total_bind_count", "total_client_login_count",
              "avg_server_assignment_count", "avg_xact_count", "avg_query_count", "avg_recv",
              "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time",
              "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count",
              "avg_client_login_count"],
    "SERVERS": CLIENT_COLS,
    "CLIENTS": CLIENT_COLS,
    "DATABASES": ["name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
                  "reserve_pool_size", "server_lifetime", "pool_mode", "load_balance_hosts",
                  "max_connections", "current_connections", "max_client_connections",
                  "current_client_connections", "paused", "disabled"],
}
# Extra lists whose 1.25 layout is documented; checked as prefixes too.
STATS_TOTALS_COLS = ["database", "server_assignment_count", "xact_count", "query_count",
                     "bytes_received", "bytes_sent", "xact_time", "query_time", "wait_time",
                     "client_parse_count", "server_parse_count", "bind_count",
                     "client_login_count"]
SOCKET_EXTRA = ["recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain", "pkt_avail",
                "send_avail"]
PGB125_MORE = {
    "STATS_TOTALS": STATS_TOTALS_COLS,
    "STATS_AVERAGES": STATS_TOTALS_COLS,
    "SOCKETS": CLIENT_COLS + SOCKET_EXTRA,
    "ACTIVE_SOCKETS": CLIENT_COLS + SOCKET_EXTRA,
    "USERS": ["name", "pool_size", "reserve_pool_size", "pool_mode", "max_user_connections",
              "current_connections", "max_user_client_connections",
              "current_client_connections"],
    "STATE": ["key", "value"],
}
# Lists 1.18 already has in the 1.25 layout (exact).
SAME_IN_118 = {
    "TOTALS": ["name", "value"],
    "LISTS": ["list", "items"],
    "FDS": ["fd", "task", "user", "database", "addr", "port", "cancel", "link", "client_encoding",
            "std_strings", "datestyle", "timezone", "password", "scram_client_key",
            "scram_server_key"],
    "CONFIG": ["key", "value", "default", "changeable"],
    "MEM": ["name", "size", "used", "free", "memtotal"],
    "DNS_HOSTS": ["hostname", "ttl", "addrs"],
    "DNS_ZONES": ["zonename", "serial", "count"],
    "VERSION": ["version"],
}
SLUICE_TAIL = {
    "POOLS": au.PERCENTILE_COLUMNS,
    "STATS": au.PERCENTILE_COLUMNS,
    "SERVERS": ["host_health", "state_reason"],
}


def psql_as(p, sql, user=au.ADMIN, password=au.ADMIN_PW, dbname="pgbouncer", **kw):
    return p.psql(sql, dbname=dbname, user=user, password=password, **kw)


# ---------------------------------------------------------------------------
# Who may log in
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dbname", [
    "pgbouncer",
    pytest.param("sluice", marks=au.sluice_only("1.18 knows only the name 'pgbouncer'")),
])
def test_console_database_names(make_pooler, dbname):
    p = au.make_admin_pooler(make_pooler)
    with au.console(p, dbname=dbname) as c:
        cols, rows = au.show(c, "VERSION")
        assert cols == ["version"]
        assert len(rows) == 1 and rows[0]["version"]
    # the console is on the same listeners: the unix socket too
    with au.console(p, dbname=dbname, unix=True) as c:
        assert au.show(c, "VERSION")[1]


@pytest.mark.parametrize("dbname", [
    "pgbouncer",
    pytest.param("sluice", marks=au.sluice_only("1.18 knows only the name 'pgbouncer'")),
])
def test_ordinary_user_refused(make_pooler, dbname):
    p = au.make_admin_pooler(make_pooler)
    with pytest.raises(psycopg.OperationalError) as ei:
        au.console(p, user=au.ORDINARY, password=None, dbname=dbname)
    assert "not allowed" in helpers.error_text(ei.value)
    with p.raw() as r:
        from pgproto import ServerError
        with pytest.raises(ServerError) as ei2:
            r.startup(user=au.ORDINARY, database=dbname)
        assert ei2.value.severity == "FATAL"
        assert "not allowed" in ei2.value.message
    # the ordinary user still reaches the ordinary database
    assert au.can_connect(p)


def test_stats_user_may_show_not_control(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    with au.console(p, user=au.STATS, password=au.STATS_PW) as c:
        for what in ("POOLS", "STATS", "CLIENTS", "SERVERS", "DATABASES", "CONFIG", "VERSION"):
            au.show(c, what)
        for cmd in ("PAUSE", "RESUME", "RECONNECT", "KILL testdb", "DISABLE testdb",
                    "SET default_pool_size = 7", "RELOAD", "SHUTDOWN"):
            with pytest.raises(psycopg.Error) as ei:
                c.execute(cmd)
            assert "admin access needed" in helpers.error_text(ei.value), (cmd, ei.value)
            # the console connection stays usable
            assert au.show(c, "VERSION")[1]
    assert p.running()
    # nothing was paused or changed
    assert au.can_connect(p)


def test_admin_password_checked(make_pooler):
    """auth_type md5: the console checks the admin's password like any login."""
    p = au.make_admin_pooler(make_pooler, settings={"auth_type": "md5"})
    with au.console(p) as c:
        assert au.show(c, "VERSION")[1]
    with pytest.raises(psycopg.OperationalError):
        au.console(p, password=helpers.WRONG_PW)


def _psql_unix_as_run_user(p, user, dbname, sql="SHOW VERSION"):
    argv = helpers.runuser_prefix() + [
        helpers.PSQL, "-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
        "-h", str(p.sockdir), "-p", str(p.port), "-U", user, "-d", dbname, "-c", sql]
    return subprocess.run(argv, env=helpers.clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("user", [
    "pgbouncer",
    pytest.param("sluice", marks=au.sluice_only("1.18 knows only the user 'pgbouncer'")),
])
def test_unix_socket_peer_login(make_pooler, user):
    """A peer running as the pooler's own OS user logs in as pgbouncer/sluice
    without a password, although auth_type is md5 and the user is not in the
    auth_file."""
    p = au.make_admin_pooler(make_pooler, settings={"auth_type": "md5"})
    assert user not in p.auth_users
    dbs = ["pgbouncer"] + ([] if helpers.IS_PGBOUNCER else ["sluice"])
    for db in dbs:
        r = _psql_unix_as_run_user(p, user, db)
        assert r.returncode == 0, "psql -U %s -d %s over the unix socket as %s: %s" % (
            user, db, helpers.RUN_USER, r.stderr)
        assert r.stdout.strip(), r.stdout
        # a control command works too (it is an admin login)
        r = _psql_unix_as_run_user(p, user, db, "RECONNECT")
        assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not helpers.IS_ROOT, reason="needs a peer uid different from the pooler's")
def test_unix_socket_other_uid_needs_password(make_pooler):
    p = au.make_admin_pooler(make_pooler, settings={"auth_type": "md5"})
    # we are root, the pooler runs as postgres: no free pass
    r = subprocess.run(
        [helpers.PSQL, "-X", "-w", "-h", str(p.sockdir), "-p", str(p.port), "-U", "pgbouncer",
         "-d", "pgbouncer", "-c", "SHOW VERSION"],
        env=helpers.clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=30)
    assert r.returncode != 0, r.stdout
    # and over TCP neither
    with pytest.raises(psycopg.OperationalError):
        au.console(p, user="pgbouncer", password=None)


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["show pools", "SHOW POOLS;", "sHoW pOoLs", "Show Pools;"])
def test_case_and_semicolon(make_pooler, text):
    p = au.make_admin_pooler(make_pooler)
    with au.console(p) as c:
        ref_cols, _ = au.show(c, "SHOW POOLS")
        cols, _ = au.show(c, text)
        assert cols == ref_cols


def test_select_is_show(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    with au.client(p) as app:
        app.execute("select 1")  # so a testdb pool exists
        with au.console(p) as c:
            cols1, rows1 = au.show(c, "SHOW POOLS")
            cols2, rows2 = au.show(c, "SELECT pools")
            assert cols1 == cols2
            assert [(r["database"], r["user"]) for r in rows1] == [(r["database"], r["user"]) for r in rows2]
            assert ("testdb", "app") in [(r["database"], r["user"]) for r in rows2]
            cols3, _ = au.show(c, "select pools;")
            assert cols3 == cols1


@pytest.mark.parametrize("text", ["FOO", "SHOW NOSUCHTHING", "SELECT 1", "PAUSE testdb extra words here"])
def test_unknown_command(make_pooler, text):
    p = au.make_admin_pooler(make_pooler)
    with au.console(p) as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute(text)
        msg = helpers.error_text(ei.value)
        if text != "PAUSE testdb extra words here" or not helpers.IS_PGBOUNCER:
            assert "SHOW HELP" in msg, msg
        # the connection stays usable
        assert au.show(c, "VERSION")[1]
    assert au.can_connect(p)


def test_show_help(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    with au.console(p) as c:
        notices = []
        c.add_notice_handler(lambda d: notices.append((d.severity, d.message_primary, d.message_detail)))
        cur = c.execute("SHOW HELP")
        assert cur.description is None or cur.fetchall() is not None
        assert notices, "SHOW HELP sent no NOTICE"
        text = " ".join("%s %s" % (n[1] or "", n[2] or "") for n in notices).upper()
        for word in ("SHOW", "POOLS", "PAUSE", "RESUME", "RELOAD"):
            assert word in text, (word, notices)
        assert au.show(c, "VERSION")[1]
    r = psql_as(p, "SHOW HELP")
    assert r.returncode == 0, r.stderr
    assert "POOLS" in r.stderr.upper() + r.stdout.upper()


def test_extended_protocol_answered(make_pooler):
    """The console speaks the simple protocol; an extended-protocol query must get
    an answer (an error, a close, or a result if supported), not a hang, and the
    pooler keeps serving."""
    p = au.make_admin_pooler(make_pooler)
    with p.raw(timeout=5) as r:
        r.startup(user=au.ADMIN, database="pgbouncer", password=au.ADMIN_PW)
        r.send_msg("P", b"\0SHOW POOLS\0\0\0")
        r.send_msg("B", b"\0\0\0\0\0\0\0\0")
        r.send_msg("E", b"\0\0\0\0\0")
        r.send_msg("S")
        seen = []
        try:
            while True:
                mtype, _ = r.recv_msg()
                seen.append(mtype)
                if mtype in ("Z", "E"):
                    break
        except (EOFError, ConnectionResetError):
            seen.append("EOF")
        assert seen and seen[-1] in ("Z", "E", "EOF"), seen
    assert p.running()
    with au.console(p) as c:
        assert au.show(c, "VERSION")[1]


def test_raw_simple_query(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    with p.raw(timeout=5) as r:
        r.startup(user=au.ADMIN, database="pgbouncer", password=au.ADMIN_PW)
        rows = r.query("SHOW VERSION")
        assert len(rows) == 1 and rows[0][0]
        assert r.query("show lists;")
        r.terminate()


# ---------------------------------------------------------------------------
# Every SHOW, from psql and from psycopg
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("what", show_params())
def test_show_from_psql_and_psycopg(make_pooler, what):
    p = au.make_admin_pooler(make_pooler)
    with au.client(p) as app:
        app.execute("select 1")  # a client, a server and a pool to show
        r = psql_as(p, "SHOW %s" % what)
        assert r.returncode == 0, "psql SHOW %s: %s" % (what, r.stderr)
        assert "ERROR" not in r.stderr, r.stderr
        # psql with headers: a table comes back
        r2 = subprocess.run(
            [helpers.PSQL, "-X", "-w", "-h", p.host, "-p", str(p.port), "-U", au.ADMIN, "-d",
             "pgbouncer", "-c", "show %s;" % what.lower()],
            env=helpers.clean_env(PGPASSWORD=au.ADMIN_PW), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=30)
        assert r2.returncode == 0, r2.stderr
        assert "row" in r2.stdout, r2.stdout
        with au.console(p) as c:
            cols, rows = au.show(c, what)
            assert cols, "SHOW %s returned no columns" % what
            assert len(set(cols)) == len(cols), "duplicate column names: %s" % cols
            # twice more: the same columns (and > prepare_threshold runs are fine)
            for _ in range(6):
                assert au.show(c, what)[0] == cols
        # also the default psycopg cursor, which sends no-parameter queries as simple Query
        with p.connect(dbname="pgbouncer", user=au.ADMIN, password=au.ADMIN_PW, prepare_threshold=None) as c:
            cur = c.execute("SHOW %s" % what)
            assert [d.name for d in cur.description] == cols
            cur.fetchall()


def test_show_rows_have_content(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    with au.client(p, application_name="adm-content") as app:
        pid = au.backend_pid(app)
        with au.console(p) as c:
            assert au.row_for(c, "SHOW DATABASES", name="testdb") is not None
            assert au.row_for(c, "SHOW POOLS", database="testdb", user="app") is not None
            cl = au.rows_for(c, "SHOW CLIENTS", database="testdb", user="app")
            assert len(cl) == 1, cl
            assert cl[0]["application_name"] == "adm-content"
            assert cl[0]["type"] == "C"
            sv = au.rows_for(c, "SHOW SERVERS", database="testdb", user="app")
            assert len(sv) == 1, sv
            assert au.as_int(sv[0]["remote_pid"]) == pid
            assert sv[0]["type"] == "S"
            assert sv[0]["state"] == "active"  # session mode: linked to the client
            assert any(r["name"] == "app" for r in au.show(c, "USERS")[1])
            lists = {r["list"]: au.as_int(r["items"]) for r in au.show(c, "LISTS")[1]}
            for k in ("databases", "users", "pools", "used_clients", "used_servers"):
                assert k in lists, lists
            assert lists["used_servers"] >= 1
            assert au.config_value(c, "default_pool_size") == "5"
            version = au.show(c, "VERSION")[1][0]["version"]
            assert ("PgBouncer" if helpers.IS_PGBOUNCER else "sluice") in version
            totals = {r["name"]: r["value"] for r in au.show(c, "TOTALS")[1]}
            assert "total_xact_count" in totals and "total_query_count" in totals, totals


def test_show_fds_has_no_secrets(make_pooler):
    p = au.make_admin_pooler(make_pooler, settings={"auth_type": "md5"})
    with p.connect(user="alice", password=helpers.ALICE_PW) as a, \
            p.connect(user="bob", password=helpers.BOB_PW) as b:
        a.execute("select 1")
        b.execute("select 1")
        with au.console(p) as c:
            for what in ("FDS", "CLIENTS", "SERVERS", "SOCKETS", "USERS", "CONFIG", "DATABASES"):
                _, rows = au.show(c, what)
                text = repr(rows)
                for s in helpers.SECRETS:
                    assert s not in text, "SHOW %s shows a secret" % what


# ---------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------

@au.sluice_only("1.18 lacks several 1.25 columns")
@pytest.mark.parametrize("what", list(PGB125_COLUMNS) + list(PGB125_MORE))
def test_pgbouncer125_columns_prefix(make_pooler, what):
    p = au.make_admin_pooler(make_pooler)
    want = PGB125_COLUMNS.get(what) or PGB125_MORE[what]
    with au.console(p) as c:
        cols, _ = au.show(c, what)
    assert cols[: len(want)] == want, "SHOW %s columns:\n  got  %s\n  want %s (as a prefix)" % (what, cols, want)
    tail = SLUICE_TAIL.get(what)
    if tail:
        assert cols[-len(tail):] == tail, "SHOW %s should end with %s, got %s" % (what, tail, cols)


@pytest.mark.parametrize("what", list(SAME_IN_118))
def test_columns_exact(make_pooler, what):
    p = au.make_admin_pooler(make_pooler)
    with au.console(p) as c:
        cols, _ = au.show(c, what)
    assert cols == SAME_IN_118[what]


# ---------------------------------------------------------------------------
# Admin connections and servers beyond the ordinary limits
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(60)
def test_console_beyond_max_client_conn(make_pooler):
    p = au.make_admin_pooler(make_pooler, settings={"max_client_conn": 3, "default_pool_size": 1,
                                                    "query_wait_timeout": 30})
    holder = au.client(p, autocommit=False)
    w1 = au.client(p)
    w2 = au.client(p)
    threads = []
    try:
        holder.execute("select 1")  # in a transaction: holds the only server
        for w in (w1, w2):
            threads.append(au.run_in_thread(lambda w=w: au.query_then_close(w, "select 'waited'")))
        # the pool is full (one active, two waiting) and so is max_client_conn
        with pytest.raises(psycopg.OperationalError):
            p.connect(connect_timeout=5)
        with au.console(p, connect_timeout=5) as c:
            r = au.row_for(c, "SHOW POOLS", database="testdb", user="app")
            assert r is not None
            helpers.wait_for(lambda: au.as_int(au.row_for(c, "SHOW POOLS", database="testdb",
                                                          user="app")["cl_waiting"]) == 2,
                             10, 0.05, "two waiting clients in SHOW POOLS")
        # the stats user too
        with au.console(p, user=au.STATS, password=au.STATS_PW, connect_timeout=5) as c:
            assert au.show(c, "POOLS")[1]
        # and an ordinary user for the console is still refused for the console
        with pytest.raises(psycopg.OperationalError):
            au.console(p, user=au.ORDINARY, password=None, connect_timeout=5)
        holder.rollback()
        holder.close()
        for t, res in threads:
            t.join(20)
            assert res.get("v") == "waited", res
    finally:
        for c in (holder, w1, w2):
            c.close()


@au.sluice_only("1.18 has no admin_max_client_conn")
def test_admin_max_client_conn(make_pooler):
    p = au.make_admin_pooler(make_pooler, settings={"admin_max_client_conn": 2, "max_client_conn": 2})
    c1 = au.console(p)
    c2 = au.console(p, user=au.STATS, password=au.STATS_PW)
    try:
        with pytest.raises(psycopg.OperationalError):
            au.console(p, connect_timeout=5)
        # ordinary clients are counted apart: two still fit
        with au.client(p) as a, au.client(p) as b:
            assert a.execute("select 1").fetchone()[0] == 1
            assert b.execute("select 2").fetchone()[0] == 2
        assert au.show(c1, "VERSION")[1]
    finally:
        c1.close()
        c2.close()
    helpers.wait_for(lambda: _console_ok(p), 10, 0.1, "a console slot to be freed")


@au.sluice_only("1.18 has no admin_max_client_conn")
def test_admin_max_client_conn_default_16(make_pooler):
    p = au.make_admin_pooler(make_pooler, settings={"max_client_conn": 1})
    consoles = []
    try:
        for i in range(16):
            consoles.append(au.console(p, connect_timeout=5))
        with pytest.raises(psycopg.OperationalError):
            au.console(p, connect_timeout=5)
        # the one ordinary slot is still free
        assert au.can_connect(p)
    finally:
        for c in consoles:
            c.close()


def _console_ok(p):
    try:
        with au.console(p, connect_timeout=5) as c:
            return bool(au.show(c, "VERSION")[1])
    except psycopg.OperationalError:
        return False


@au.sluice_only("1.18 has no admin_pool_size: the admin waits like everyone else")
@pytest.mark.hard_timeout(60)
def test_admin_pool_size_reserve(make_pooler, pg):
    p = au.make_admin_pooler(make_pooler, settings={"default_pool_size": 1, "max_db_connections": 1,
                                                    "max_client_conn": 20, "query_wait_timeout": 30})
    holder = au.client(p, autocommit=False)
    waiters = [au.client(p) for _ in range(4)]
    threads = []
    try:
        holder.execute("select 1")
        for w in waiters:
            threads.append(au.run_in_thread(lambda w=w: au.query_then_close(w, "select 'waited'")))
        with au.console(p) as c:
            helpers.wait_for(lambda: au.as_int(au.row_for(c, "SHOW POOLS", database="testdb",
                                                          user="app")["cl_waiting"]) == 4,
                             10, 0.05, "four waiting clients")
        # the admin user gets a server for its own query at once
        t, res = au.run_in_thread(lambda: _admin_select(p))
        t.join(5)
        assert res.get("v") == 1, "admin's query on the exhausted database: %r" % res
        # ... while the app clients still wait
        assert all("v" not in r for _, r in threads), [r for _, r in threads]
        holder.rollback()
        holder.close()
        for t, r in threads:
            t.join(20)
            assert r.get("v") == "waited", r
    finally:
        holder.close()
        for w in waiters:
            w.close()


def _admin_select(p):
    with au.client(p, user=au.ADMIN, password=au.ADMIN_PW, connect_timeout=10) as a:
        return a.execute("select 1").fetchone()[0]
