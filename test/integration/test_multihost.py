"""Several hosts per database: host=a,b port=x,y with per-host health
(health_check_fails / health_check_passes / health_check_period), the
load_balance_hosts policies, and target_session_attrs following a promoted
standby.

Besides the session's PostgreSQL (fixture pg) these tests start their own:
a second independent instance (pg_b, module-scoped; stopped and started again
by the health test), and for target_session_attrs a primary with a streaming
standby made by pg_basebackup -R.  Every wait is for a condition, with a
generous limit; nothing depends on how fast the machine is.
"""

import atexit
import signal
import subprocess

import psycopg
import pytest

import admin_util as au
import helpers

pytestmark = pytest.mark.sluice_only(
    "health-checked host lists, least-busy and prefer-standby are sluice's own")

PROBE = {"health_check_fails": 1, "health_check_passes": 2, "health_check_period": 0.3,
         "server_login_retry": 0.2, "default_pool_size": 20}


# ---------------------------------------------------------------------------
# More PostgreSQL instances
# ---------------------------------------------------------------------------

def start_again(server):
    """Start a stopped helpers.PgServer on its old data directory and port."""
    logf = open(server.logfile, "ab")
    server.proc = helpers.popen_as_run_user(
        [str(helpers.PG_BINDIR / "postgres"), "-D", str(server.datadir)],
        stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=helpers.clean_env(),
        cwd=str(server.base), deathsig=signal.SIGQUIT)
    logf.close()
    helpers.wait_for(server._ready, 60, 0.1,
                     "PostgreSQL on port %d to accept connections" % server.port)
    server.started = True


def new_server(parent):
    """A second, independent PostgreSQL (initdb, roles and databases as pg's)."""
    server = helpers.PgServer(helpers.make_dir(parent, 0o755))
    atexit.register(server.kill)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def pg_b(basedir, pg):
    server = new_server(basedir / "multihost_b")
    yield server
    server.stop()


def hosts_entry(*servers, extra=""):
    return ("host=%s port=%s dbname=testdb %s" % (
        ",".join(s.host for s in servers), ",".join(str(s.port) for s in servers), extra)).strip()


def hold(p, n):
    """n sessions, each with its own server (session pooling): (conns, server ports)."""
    conns = [p.connect() for _ in range(n)]
    ports = [c.execute("select inet_server_port()").fetchone()[0] for c in conns]
    return conns, ports


def close_all(conns):
    for c in conns:
        c.close()


def live_servers_on(adm, port):
    return [r for r in au.rows_for(adm, "SHOW SERVERS", port=port)
            if r["state_reason"] != "health_probe"]


# ---------------------------------------------------------------------------
# load_balance_hosts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("extra", ["", "load_balance_hosts=round-robin"])
def test_round_robin_spreads_over_hosts(make_pooler, pg, pg_b, extra):
    p = au.make_admin_pooler(make_pooler, databases={"testdb": hosts_entry(pg, pg_b, extra=extra)},
                             settings={"default_pool_size": 20})
    conns, ports = hold(p, 4)
    try:
        assert sorted(ports) == sorted([pg.port, pg.port, pg_b.port, pg_b.port]), ports
        with au.console(p) as adm:
            row = au.row_for(adm, "SHOW DATABASES", name="testdb")
            assert row["host"] == "127.0.0.1,127.0.0.1", row
            assert row["port"] == pg.port, row
            assert row["load_balance_hosts"] == "round-robin", row
            for r in au.rows_for(adm, "SHOW SERVERS", database="testdb"):
                assert r["host_health"] == "up", r
    finally:
        close_all(conns)


def test_disable_stays_on_first_host(make_pooler, pg, pg_b):
    p = make_pooler(databases={"testdb": hosts_entry(pg, pg_b, extra="load_balance_hosts=disable")},
                    settings={"default_pool_size": 20})
    conns, ports = hold(p, 4)
    try:
        assert ports == [pg.port] * 4, ports
    finally:
        close_all(conns)


def test_least_busy_picks_host_with_fewest_servers(make_pooler, pg, pg_b):
    p = au.make_admin_pooler(
        make_pooler, databases={"testdb": hosts_entry(pg, pg_b, extra="load_balance_hosts=least-busy")},
        settings={"default_pool_size": 20})
    conns, ports = hold(p, 4)
    try:
        assert sorted(ports) == sorted([pg.port, pg.port, pg_b.port, pg_b.port]), ports
        # the servers on the first host go away: it has none, the second has two
        on_a = [c for c, port in zip(conns, ports) if port == pg.port]
        pids = [c.execute("select pg_backend_pid()").fetchone()[0] for c in on_a]
        with pg.connect() as direct:
            for pid in pids:
                direct.execute("select pg_terminate_backend(%s)", [pid])
        close_all(on_a)
        with au.console(p) as adm:
            helpers.wait_for(lambda: not live_servers_on(adm, pg.port), 20, 0.05,
                             "the terminated servers to leave SHOW SERVERS")
            assert au.row_for(adm, "SHOW DATABASES", name="testdb")["load_balance_hosts"] == \
                "least-busy"
        # round-robin would put one of these on each host
        more, more_ports = hold(p, 2)
        conns += more
        assert more_ports == [pg.port, pg.port], more_ports
    finally:
        close_all(conns)


# ---------------------------------------------------------------------------
# health: down after health_check_fails, back after health_check_passes
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(180)
def test_stopped_host_skipped_and_taken_back(make_pooler, pg, pg_b):
    p = au.make_admin_pooler(make_pooler, databases={"testdb": hosts_entry(pg, pg_b)},
                             settings=PROBE)
    conns, ports = hold(p, 4)
    assert sorted(ports) == sorted([pg.port, pg.port, pg_b.port, pg_b.port]), ports
    close_all(conns)
    pg_b.stop()
    held = []
    try:
        with au.console(p) as adm:
            helpers.wait_for(lambda: not live_servers_on(adm, pg_b.port), 20, 0.05,
                             "the servers of the stopped host to close")
        # every new session works, and all of them are on the host that is up
        conns, ports = hold(p, 6)
        held += conns
        assert ports == [pg.port] * 6, ports
        p.wait_log(r"host 127\.0\.0\.1:%d is down after 1 failure" % pg_b.port, timeout=20)
        start = len(p.log())
        start_again(pg_b)
        p.wait_log(r"host 127\.0\.0\.1:%d is up again after 2 good checks in a row" % pg_b.port,
                   timeout=60, start=start)
        # new servers go to both hosts again
        conns, ports = hold(p, 4)
        held += conns
        assert ports.count(pg_b.port) >= 1, ports
        with au.console(p) as adm:
            for r in au.rows_for(adm, "SHOW SERVERS", database="testdb"):
                assert r["host_health"] == "up", r
    finally:
        close_all(held)
        if not pg_b.started:
            start_again(pg_b)


def test_reload_keeps_host_health(make_pooler, pg):
    dead = helpers.free_port()  # nothing listens there
    entry = "host=127.0.0.1,127.0.0.1 port=%d,%d dbname=testdb" % (dead, pg.port)
    p = make_pooler(databases={"testdb": entry}, settings=PROBE)
    conns, ports = hold(p, 3)
    close_all(conns)
    assert ports == [pg.port] * 3, ports
    p.wait_log(r"host 127\.0\.0\.1:%d is down after 1 failure" % dead, timeout=20)
    downs = p.log().count("is down after")
    p.settings["health_check_passes"] = 3
    p.write_files()
    p.reload()
    helpers.wait_for(lambda: "reload done" in p.log(), 20, 0.05, "the reload")
    # more sessions than idle servers: new servers, none tried on the dead host
    conns, ports = hold(p, 6)
    close_all(conns)
    assert ports == [pg.port] * 6, ports
    assert p.log().count("is down after") == downs, p.log()
    assert p.running()


def test_bad_host_lists_refused(make_pooler, pg):
    for entry, why in [
        ("host=127.0.0.1,127.0.0.1 port=1,2,3 dbname=testdb", "3 ports given for 2 hosts"),
        ("host=127.0.0.1,,127.0.0.1 dbname=testdb", "empty element in the host list"),
        ("host=127.0.0.1 dbname=testdb load_balance_hosts=random", "load_balance_hosts"),
        ("host=127.0.0.1 dbname=testdb target_session_attrs=any-rw", "target_session_attrs"),
    ]:
        p = make_pooler(databases={"testdb": entry}, start=False)
        p.write_files()
        r = helpers.run_pooler_cmd(["--check", str(p.ini)], timeout=30)
        assert r.returncode == 1, r.stdout
        assert why in r.stdout, r.stdout


# ---------------------------------------------------------------------------
# target_session_attrs with a streaming standby
# ---------------------------------------------------------------------------

REPL_HBA = "local replication all trust\nhost replication all 127.0.0.1/32 trust\n"


def make_standby(primary, parent):
    """pg_basebackup -R of primary, started on a port of its own."""
    standby = helpers.PgServer(helpers.make_dir(parent, 0o755))
    atexit.register(standby.kill)

    def basebackup():
        try:
            standby._run([str(helpers.PG_BINDIR / "pg_basebackup"), "-h", primary.host,
                          "-p", str(primary.port), "-U", "postgres", "-D", str(standby.datadir),
                          "-R", "-X", "stream", "-c", "fast", "--no-sync"])
            return True
        except RuntimeError:
            # the pg_hba.conf reload may not have happened yet
            subprocess.run(helpers.runuser_prefix() + ["rm", "-rf", str(standby.datadir)])
            return False

    helpers.wait_for(basebackup, 60, 0.5, "pg_basebackup to succeed")
    standby.port = helpers.free_port()
    conf = standby.datadir / "postgresql.conf"
    helpers.write_file(conf, conf.read_text() + "\nport = %d\nunix_socket_directories = '%s'\n"
                       % (standby.port, standby.sockdir), 0o600)
    start_again(standby)
    with standby.connect() as c:
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is True
    return standby


@pytest.mark.hard_timeout(240)
def test_read_write_follows_promoted_standby(make_pooler, workdir):
    primary = new_server(workdir / "primary")
    standby = None
    try:
        hba = primary.datadir / "pg_hba.conf"
        helpers.write_file(hba, hba.read_text() + REPL_HBA, 0o600)
        with primary.connect() as c:
            c.execute("select pg_reload_conf()")
        with primary.connect(dbname="testdb") as c:
            c.execute("create table mh (x int)")
            c.execute("alter table mh owner to app")
        standby = make_standby(primary, workdir / "standby")
        # the standby is listed first: without the check it would get sessions
        p = make_pooler(
            databases={"testdb": hosts_entry(standby, primary,
                                             extra="target_session_attrs=read-write")},
            settings=PROBE)
        conns, ports = hold(p, 4)
        try:
            assert ports == [primary.port] * 4, ports
            for c in conns:
                c.execute("insert into mh values (1)")  # never a read-only server
        finally:
            close_all(conns)
        p.wait_log(r"host 127\.0\.0\.1:%d does not suit target_session_attrs=read-write"
                   % standby.port, timeout=20)

        primary.stop()
        standby._run([str(helpers.PG_BINDIR / "pg_ctl"), "promote", "-w", "-D",
                      str(standby.datadir)])

        def writes_go_through():
            try:
                with p.connect() as c:
                    c.execute("insert into mh values (2)")
                    return c.execute("select inet_server_port()").fetchone()[0]
            except psycopg.Error:
                return None

        assert helpers.wait_for(writes_go_through, 60, 0.2,
                                "a write through the pooler after the promotion") == standby.port
        conns, ports = hold(p, 3)
        try:
            assert ports == [standby.port] * 3, ports
            for c in conns:
                c.execute("insert into mh values (3)")
        finally:
            close_all(conns)
        with standby.connect(dbname="testdb") as c:
            assert c.execute("select count(*) from mh where x = 3").fetchone()[0] == 3
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


@pytest.mark.hard_timeout(240)
def test_prefer_standby_and_fallback(make_pooler, workdir):
    primary = new_server(workdir / "primary")
    standby = None
    try:
        hba = primary.datadir / "pg_hba.conf"
        helpers.write_file(hba, hba.read_text() + REPL_HBA, 0o600)
        with primary.connect() as c:
            c.execute("select pg_reload_conf()")
        standby = make_standby(primary, workdir / "standby")
        p = make_pooler(
            databases={"testdb": hosts_entry(primary, standby,
                                             extra="target_session_attrs=prefer-standby")},
            settings=PROBE)
        conns, ports = hold(p, 3)
        try:
            assert ports == [standby.port] * 3, ports
        finally:
            close_all(conns)
        # no standby left: the primary is taken
        standby.stop()

        def on_primary():
            try:
                with p.connect() as c:
                    return c.execute("select inet_server_port()").fetchone()[0] == primary.port
            except psycopg.Error:
                return False

        helpers.wait_for(on_primary, 60, 0.2, "a session on the primary")
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
