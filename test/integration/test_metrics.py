"""The Prometheus endpoint (metrics_listen): /metrics in the text exposition format
(checked with promtool from Debian's prometheus package), counters and gauges that
follow real traffic, host health after a failed server login, /health (200, and 503
while paused or shutting down), 400/404/405, the connection cap and idle timeout, and
bad metrics_listen values refusing to start.

Queries for exact counting go through a psycopg.ClientCursor connection, which sends
each execute() as one simple Query (see admin_util.py for why)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import psycopg
import pytest

import helpers

pytestmark = pytest.mark.sluice_only("PgBouncer has no built-in HTTP metrics endpoint")

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# Every family /metrics must declare (HELP and TYPE), whatever the traffic.
FAMILIES = {
    "sluice_up": "gauge",
    "sluice_info": "gauge",
    "sluice_clients": "gauge",
    "sluice_paused": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "sluice_database_paused": "gauge",
    "sluice_database_disabled": "gauge",
    "sluice_database_server_connections": "gauge",
    "sluice_database_client_connections": "gauge",
    "sluice_host_up": "gauge",
    "sluice_pool_cl_active": "gauge",
    "sluice_pool_cl_waiting": "gauge",
    "sluice_pool_sv_active": "gauge",
    "sluice_pool_sv_idle": "gauge",
    "sluice_pool_sv_used": "gauge",
    "sluice_pool_sv_tested": "gauge",
    "sluice_pool_sv_login": "gauge",
    "sluice_pool_maxwait_seconds": "gauge",
    "sluice_pool_server_assignments_total": "counter",
    "sluice_pool_xacts_total": "counter",
    "sluice_pool_queries_total": "counter",
    "sluice_pool_received_bytes_total": "counter",
    "sluice_pool_sent_bytes_total": "counter",
    "sluice_pool_xact_time_seconds_total": "counter",
    "sluice_pool_query_time_seconds_total": "counter",
    "sluice_pool_wait_time_seconds_total": "counter",
    "sluice_pool_client_parses_total": "counter",
    "sluice_pool_server_parses_total": "counter",
    "sluice_pool_binds_total": "counter",
    "sluice_pool_client_logins_total": "counter",
    "sluice_pool_server_logins_total": "counter",
    "sluice_pool_wait_duration_seconds": "summary",
    "sluice_pool_query_duration_seconds": "summary",
    "sluice_pool_xact_duration_seconds": "summary",
}

# --------------------------------------------------------------------------- helpers


def metrics_pooler(make_pooler, settings=None, host="127.0.0.1", **kw):
    """A started pooler with metrics_listen on a free loopback port (p.metrics_port)."""
    port = helpers.free_port()
    s = {"metrics_listen": "%s:%d" % (host, port)}
    s.update(settings or {})
    p = make_pooler(settings=s, **kw)
    p.metrics_port = port
    # the pooler's own port accepts before metrics_open has run: wait for ours too
    helpers.wait_for(lambda: _port_open(port), 10, 0.05, "the metrics port to accept")
    return p


def _port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_get(p, path, method="GET", timeout=10):
    """(status, headers, body text) of one request; 4xx/5xx are returned, not raised."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (p.metrics_port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8")
        e.close()
        return e.code, e.headers, body


def raw_request(port, data, shut_write=False, timeout=10):
    """Send bytes, read until the server closes; returns what it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, ((label, value), ...sorted)): float} and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, "unparsable sample line: %r" % line
        labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def scrape(p):
    status, headers, body = http_get(p, "/metrics")
    assert status == 200, body
    return parse_metrics(body)[0]


def value(samples, name, **labels):
    """One sample's value; None if absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


def pool_value(samples, name, database="testdb", user="app"):
    return value(samples, name, database=database, user=user)


def simple_client(p, **kw):
    """Connection whose execute() sends one simple Query each (no prepares)."""
    kw.setdefault("cursor_factory", psycopg.ClientCursor)
    kw.setdefault("prepare_threshold", None)
    return p.connect(**kw)


def console(p, user="alice"):
    return simple_client(p, dbname="pgbouncer", user=user, password=helpers.ALICE_PW)


def promtool_check(text):
    if not os.path.exists(PROMTOOL):
        pytest.fail("promtool not found: install Debian's prometheus package (contrib/deps.sh)")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


# --------------------------------------------------------------------------- /metrics


def test_metrics_format_and_promtool(make_pooler):
    p = metrics_pooler(make_pooler)
    with simple_client(p) as c:
        c.execute("select 1")
        status, headers, body = http_get(p, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body.encode())
    samples, types = parse_metrics(body)
    for fam, typ in FAMILIES.items():
        assert "# HELP %s " % fam in body, fam
        assert types.get(fam) == typ, fam
    assert value(samples, "sluice_up") == 1
    version = [lbl for (n, lbl) in samples if n == "sluice_info"]
    assert len(version) == 1 and version[0][0][0] == "version" and version[0][0][1]
    assert value(samples, "process_open_fds") > 3
    assert value(samples, "process_max_fds") >= value(samples, "process_open_fds")
    assert value(samples, "process_resident_memory_bytes") > 100000
    assert abs(value(samples, "process_start_time_seconds") - time.time()) < 300
    # promtool: exit 1 is a format error, 3 lint problems (naming, units...); both fail
    rc, out = promtool_check(body)
    assert rc == 0, "promtool check metrics (exit %d):\n%s" % (rc, out)


def test_promtool_catches_broken_text():
    """The check above would notice a broken exposition (guards the guard)."""
    rc, out = promtool_check("# TYPE x gauge\nx{a=\"b} 1\n")
    assert rc != 0, out


def test_counters_and_gauges_follow_traffic(make_pooler):
    p = metrics_pooler(make_pooler)
    n = 25
    with simple_client(p) as c:
        c.execute("select 1")
        before = scrape(p)
        for i in range(n):
            c.execute("select %d" % i)
        during = scrape(p)
        # session mode: the client holds its server
        assert pool_value(during, "sluice_pool_cl_active") == 1
        assert pool_value(during, "sluice_pool_cl_waiting") == 0
        assert pool_value(during, "sluice_pool_sv_active") == 1
        assert pool_value(during, "sluice_pool_maxwait_seconds") == 0
        assert value(during, "sluice_clients") == 1
        assert value(during, "sluice_database_client_connections", database="testdb") == 1
        assert value(during, "sluice_database_server_connections", database="testdb") == 1
        assert value(during, "sluice_host_up", database="testdb", host="127.0.0.1") == 1
    for name in ("sluice_pool_queries_total", "sluice_pool_xacts_total"):
        delta = pool_value(during, name) - pool_value(before, name)
        assert delta == n, "%s grew by %s for %d queries" % (name, delta, n)
    # each Query message is at least 5 + len("select N") bytes; each answer more
    for name in ("sluice_pool_received_bytes_total", "sluice_pool_sent_bytes_total"):
        delta = pool_value(during, name) - pool_value(before, name)
        assert delta >= n * 13, "%s grew by %s for %d queries" % (name, delta, n)
    for name in ("sluice_pool_client_logins_total", "sluice_pool_server_logins_total",
                 "sluice_pool_server_assignments_total"):
        assert pool_value(during, name) >= 1, name
    # the summaries' _count and _sum are the counters
    for fam, count, total in (
        ("sluice_pool_query_duration_seconds", "sluice_pool_queries_total",
         "sluice_pool_query_time_seconds_total"),
        ("sluice_pool_xact_duration_seconds", "sluice_pool_xacts_total",
         "sluice_pool_xact_time_seconds_total"),
        ("sluice_pool_wait_duration_seconds", "sluice_pool_server_assignments_total",
         "sluice_pool_wait_time_seconds_total"),
    ):
        assert pool_value(during, fam + "_count") == pool_value(during, count)
        assert pool_value(during, fam + "_sum") == pool_value(during, total)
    # every counter is monotonic
    for (name, labels), v in before.items():
        if name.endswith("_total") and (name, labels) in during:
            assert during[(name, labels)] >= v, name

    # the extended protocol: Parse and Bind are counted
    with p.connect(prepare_threshold=None) as c:
        for i in range(3):
            assert c.execute("select %s::int", (i,)).fetchone()[0] == i
        ext = scrape(p)
    assert pool_value(ext, "sluice_pool_binds_total") - pool_value(during, "sluice_pool_binds_total") == 3
    assert pool_value(ext, "sluice_pool_client_parses_total") > pool_value(
        during, "sluice_pool_client_parses_total")

    # the clients left: their servers went back to the pool
    def released():
        s = scrape(p)
        return (pool_value(s, "sluice_pool_cl_active") == 0 and
                pool_value(s, "sluice_pool_sv_active") == 0 and
                pool_value(s, "sluice_pool_sv_idle") >= 1 and value(s, "sluice_clients") == 0)
    helpers.wait_for(released, 10, 0.1, "the pool gauges to show the clients gone")


def test_quantiles_after_a_stats_period(make_pooler):
    p = metrics_pooler(make_pooler, settings={"stats_period": "1"})
    with simple_client(p) as c:
        for _ in range(20):
            c.execute("select pg_sleep(0.002)")

    def quantiles():
        s = scrape(p)
        q = {qq: value(s, "sluice_pool_query_duration_seconds", database="testdb", user="app",
                       quantile=qq) for qq in ("0.5", "0.95", "0.99")}
        return q if all(v is not None and v == v for v in q.values()) else None  # not NaN
    q = helpers.wait_for(quantiles, 10, 0.2, "query quantiles once a stats_period has ended")
    assert 0.001 < q["0.5"] <= q["0.95"] <= q["0.99"] < 5, q


def test_host_up_after_failed_server_login(make_pooler, pg):
    dead = helpers.free_port()  # nothing listens there
    p = metrics_pooler(make_pooler, databases={
        "testdb": pg.dbentry("testdb"),
        "deaddb": "host=127.0.0.1 port=%d dbname=testdb" % dead,
        "unixdb": "host=%s port=%d dbname=testdb" % (pg.sockdir, pg.port),
    })
    for db in ("testdb", "unixdb"):
        with simple_client(p, dbname=db) as c:
            c.execute("select 1")
    with pytest.raises(psycopg.OperationalError):
        simple_client(p, dbname="deaddb").close()
    s = scrape(p)
    assert value(s, "sluice_host_up", database="testdb", host="127.0.0.1") == 1
    assert value(s, "sluice_host_up", database="deaddb", host="127.0.0.1") == 0
    assert value(s, "sluice_host_up", database="unixdb", host="unix") == 1


# --------------------------------------------------------------------------- /health and errors


def test_health_and_errors(make_pooler):
    p = metrics_pooler(make_pooler)
    status, headers, body = http_get(p, "/health")
    assert (status, body) == (200, "OK\n")
    assert headers["Content-Type"].startswith("text/plain")
    assert http_get(p, "/health?verbose=1")[0] == 200
    assert http_get(p, "/nope")[0] == 404
    assert http_get(p, "/metrics/x")[0] == 404
    status, headers, _ = http_get(p, "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, body = http_get(p, "/metrics", method="HEAD")
    assert status == 200 and body == "" and int(headers["Content-Length"]) > 1000

    # garbage: 400 and the connection is closed (raw_request reads to EOF)
    for junk in (b"garbage\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n"):
        out = raw_request(p.metrics_port, junk)
        assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (junk[:20], out)
        assert b"\r\nConnection: close\r\n" in out
    # an incomplete request, then the client's FIN: 400 as well
    out = raw_request(p.metrics_port, b"GET /health HTTP/1.1\r\n", shut_write=True)
    assert out.startswith(b"HTTP/1.1 400 "), out
    # HTTP/1.0, LF-only lines, absolute-form target
    out = raw_request(p.metrics_port, b"GET http://x/health HTTP/1.0\n\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nOK\n"), out
    # a request sent a byte at a time
    with socket.create_connection(("127.0.0.1", p.metrics_port), timeout=10) as s:
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n":
            s.sendall(bytes([b]))
            time.sleep(0.002)
        out = b""
        while not out.endswith(b"OK\n"):
            d = s.recv(4096)
            assert d, out
            out += d
    # still serving, and the pooler too
    assert http_get(p, "/health")[0] == 200
    with simple_client(p) as c:
        assert c.execute("select 1").fetchone()[0] == 1


@pytest.mark.hard_timeout(60)
def test_connection_cap_and_idle_timeout(make_pooler):
    """16 silent connections fill every slot: the 17th waits in the backlog until
    sluice drops the silent ones (10 s), then it is served."""
    p = metrics_pooler(make_pooler)
    idle = [socket.create_connection(("127.0.0.1", p.metrics_port), timeout=30)
            for _ in range(16)]
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        late = socket.create_connection(("127.0.0.1", p.metrics_port), timeout=30)
        late.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        late.settimeout(1)
        with pytest.raises(socket.timeout):
            late.recv(100)
        late.settimeout(30)
        out = b""
        while True:
            d = late.recv(4096)
            if not d:
                break
            out += d
        waited = time.monotonic() - t0
        late.close()
        assert out.startswith(b"HTTP/1.1 200 OK\r\n"), out
        assert 8 < waited < 20, waited
        # the silent ones were closed by sluice
        for s in idle:
            s.settimeout(5)
            assert s.recv(100) == b""
    finally:
        for s in idle:
            s.close()
    # the pooler still serves both sides
    assert http_get(p, "/health")[0] == 200
    with simple_client(p) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_health_503_while_paused(make_pooler):
    p = metrics_pooler(make_pooler, settings={"admin_users": "alice"})
    with simple_client(p) as c:
        c.execute("select 1")
    try:
        adm = console(p)
        adm.execute("PAUSE")
    except (psycopg.Error, OSError) as e:
        pytest.skip("the admin console cannot PAUSE yet: %s" % e)
    try:
        status, _, body = http_get(p, "/health")
        assert (status, body) == (503, "paused\n")
        s = scrape(p)
        assert value(s, "sluice_paused") == 1
        adm.execute("RESUME")
        status, _, body = http_get(p, "/health")
        assert (status, body) == (200, "OK\n")
        assert value(scrape(p), "sluice_paused") == 0
        # pausing one database does not make the process unhealthy
        adm.execute("PAUSE testdb")
        assert http_get(p, "/health")[0] == 200
        assert value(scrape(p), "sluice_database_paused", database="testdb") == 1
        adm.execute("RESUME testdb")
        assert value(scrape(p), "sluice_database_paused", database="testdb") == 0
    finally:
        adm.close()


def test_health_503_while_shutting_down(make_pooler):
    p = metrics_pooler(make_pooler)
    with simple_client(p) as c:
        c.execute("select 1")
        p.signal(signal.SIGTERM)  # waits for the last client
        helpers.wait_for(lambda: http_get(p, "/health")[0] == 503, 10, 0.05,
                         "/health to say 503")
        status, _, body = http_get(p, "/health")
        assert (status, body) == (503, "shutting down\n")
        # metrics still served, the client still works
        assert value(scrape(p), "sluice_clients") == 1
        assert c.execute("select 2").fetchone()[0] == 2
    assert p.wait_exit(15) == 0


# --------------------------------------------------------------------------- metrics_listen


def test_listen_any_address(make_pooler):
    p = metrics_pooler(make_pooler, host="*")
    assert http_get(p, "/health")[0] == 200


def test_listen_ipv6(make_pooler):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.skip("no IPv6 loopback here: %s" % e)
    port = helpers.free_port()
    make_pooler(settings={"metrics_listen": "[::1]:%d" % port})

    def get():
        try:
            with urllib.request.urlopen("http://[::1]:%d/health" % port, timeout=5) as r:
                return r.status == 200 and r.read() == b"OK\n"
        except OSError:
            return False
    helpers.wait_for(get, 10, 0.1, "/health over IPv6")


@pytest.mark.parametrize("spec", ["nonsense", "127.0.0.1", "127.0.0.1:0", "::1:9127",
                                  "127.0.0.1:99999", "in-use"])
def test_bad_metrics_listen_refuses_to_start(make_pooler, spec):
    p = make_pooler(start=False)
    if spec == "in-use":
        spec = "127.0.0.1:%d" % p.port  # the pooler's own listen port
    p.settings["metrics_listen"] = spec
    p.write_files()
    r = helpers.run_pooler_cmd([str(p.ini)], timeout=30)
    assert r.returncode != 0, r.stdout
    assert "metrics" in r.stdout, r.stdout
