"""Fixtures for the sluice integration tests.

  pg           session-scoped PostgreSQL 15 (helpers.PgServer)
  make_pooler  factory: make_pooler(databases=..., settings=..., auth_users=...,
               start=True) -> helpers.Pooler; stopped and checked after the test
  pooler       a started default pooler (trust auth, session mode, db testdb)

Environment:
  SLUICE_BIN            sluice binary (default <repo>/src/sluice)
  SLUICE_TEST_POOLER    'sluice' (default) or 'pgbouncer' (uses PGBOUNCER_BIN,
                        default /usr/sbin/pgbouncer)
  SLUICE_TEST_KEEP=1    keep the temporary directory (logs, configs)
  SLUICE_TEST_NO_SKIP=1 do not skip sluice_only tests under PgBouncer
  SLUICE_TEST_PG_BINDIR PostgreSQL binaries (default /usr/lib/postgresql/15/bin)

Markers:
  @pytest.mark.sluice_only("why")  skipped when testing PgBouncer
  @pytest.mark.hard_timeout(secs)  per-test watchdog (default 120 s)
"""

import atexit
import gc
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import helpers  # noqa: E402

# No stray libpq settings from the environment of whoever runs the tests:
# in-process psycopg reads os.environ.
for _k in list(os.environ):
    if _k.startswith("PG"):
        del os.environ[_k]
os.environ["PGPASSFILE"] = "/nonexistent/pgpass"
os.environ["PGCONNECT_TIMEOUT"] = str(helpers.CONNECT_TIMEOUT)

DEFAULT_HARD_TIMEOUT = 120


def pytest_configure(config):
    config.addinivalue_line("markers", "sluice_only(reason): skip when SLUICE_TEST_POOLER=pgbouncer")
    config.addinivalue_line("markers", "hard_timeout(seconds): per-test watchdog")


def pytest_report_header(config):
    return "pooler under test: %s (%s)" % (helpers.POOLER_KIND, helpers.POOLER_BIN)


def pytest_collection_modifyitems(config, items):
    # SLUICE_TEST_NO_SKIP=1 runs sluice_only tests against PgBouncer too (to see
    # that they fail for the documented reason, not because of the harness).
    if not helpers.IS_PGBOUNCER or os.environ.get("SLUICE_TEST_NO_SKIP"):
        return
    for item in items:
        m = item.get_closest_marker("sluice_only")
        if m:
            reason = m.args[0] if m.args else "sluice-only behaviour"
            item.add_marker(pytest.mark.skip(reason="PgBouncer: " + reason))


# SIGTERM (CI cancelling) and SIGINT (^C): kill our poolers and PostgreSQL
# right away, then stop the run.  The KeyboardInterrupt alone is not enough:
# raised inside a finalizer (e.g. during gc) it is swallowed, so the flag makes
# the next test start call pytest.exit().
_interrupted = []
_servers = []


def _on_signal(signum, frame):
    first = not _interrupted
    _interrupted.append(signum)
    if first:
        with helpers._live_lock:
            victims = list(helpers.LIVE_POOLERS)
        for p in victims:
            p.kill()
        for s in _servers:
            s.kill()
    raise KeyboardInterrupt(signal.Signals(signum).name)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_signal)


def pytest_runtest_setup(item):
    if _interrupted:
        pytest.exit("interrupted by %s" % signal.Signals(_interrupted[0]).name, returncode=2)


@pytest.fixture(scope="session", autouse=True)
def basedir():
    d = Path(tempfile.mkdtemp(prefix="sluice-it-", dir="/tmp"))
    helpers.make_dir(d, 0o755)
    helpers.install_pooler_bin(d)
    yield d
    if os.environ.get("SLUICE_TEST_KEEP"):
        sys.stderr.write("\nkept test directory %s\n" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(basedir):
    server = helpers.PgServer(basedir)
    atexit.register(server.kill)
    _servers.append(server)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


_counter = [0]


@pytest.fixture
def workdir(basedir, request):
    _counter[0] += 1
    return helpers.make_dir(basedir / ("t%03d" % _counter[0]), 0o755)


@pytest.fixture(autouse=True)
def _watchdog(request):
    """Kill this test's poolers if it overruns, so blocked clients error out."""
    m = request.node.get_closest_marker("hard_timeout")
    limit = m.args[0] if m else DEFAULT_HARD_TIMEOUT
    fired = []

    def fire():
        fired.append(True)
        with helpers._live_lock:
            victims = list(helpers.LIVE_POOLERS)
        for p in victims:
            p.kill()

    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()
    yield
    t.cancel()
    if fired:
        pytest.fail("test exceeded its hard timeout of %ss; poolers were killed" % limit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


@pytest.fixture
def make_pooler(pg, workdir, request):
    made = []

    def factory(start=True, **kw):
        p = helpers.Pooler(pg, workdir / ("p%d" % len(made)), **kw)
        made.append(p)
        if start:
            p.start()
        return p

    yield factory
    # Client objects kept alive only by reference cycles (e.g. an exception
    # caught by pytest.raises holding a failed libpq connection) go now, so
    # their sockets are closed before the pooler is asked to stop.
    gc.collect()
    rep = getattr(request.node, "rep_call", None)
    test_passed = rep is not None and rep.passed
    problems = []
    for p in made:
        was_running = p.running()
        signalled_by_test = list(p.signalled)
        how = p.stop()
        problems += p.problems()
        if p.proc is not None and not was_running and not signalled_by_test:
            problems.append("pooler exited on its own during the test (status %s); log tail:\n%s"
                            % (p.proc.returncode, p.output()[-3000:]))
        if how == signal.SIGTERM and p.proc.returncode != 0 and not helpers.IS_PGBOUNCER:
            problems.append("pooler exited with status %s on SIGTERM; log tail:\n%s"
                            % (p.proc.returncode, p.output()[-3000:]))
        if (was_running and how not in (None, signal.SIGTERM) and test_passed
                and not helpers.IS_PGBOUNCER):
            problems.append(
                "pooler did not exit within 10 s of SIGTERM although the test had closed all "
                "its clients; log tail:\n" + p.output()[-3000:])
    if problems:
        pytest.fail("pooler problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def pooler(make_pooler):
    return make_pooler()


@pytest.fixture(scope="session", autouse=True)
def _kill_leftover_poolers():
    yield
    for p in list(helpers.LIVE_POOLERS):
        p.kill()
