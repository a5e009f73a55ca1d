"""Command-line flags PgBouncer users' units and scripts pass: -d, -u, -q, -v, -h."""

import os
import pwd
import signal
import subprocess

import pytest

import helpers

pytestmark = pytest.mark.sluice_only("exercises sluice's own command line")


def _proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_help_lists_flags():
    r = helpers.run_pooler_cmd(["-h"], timeout=30)
    assert r.returncode == 0, r.stdout
    for flag in ("-d", "-q", "-v", "-u", "-V", "--check"):
        assert flag in r.stdout, r.stdout


def test_unknown_flag_fails():
    r = helpers.run_pooler_cmd(["--no-such-flag", "x.ini"], timeout=30)
    assert r.returncode != 0


def test_daemon_with_pidfile(make_pooler):
    p = make_pooler(start=False, settings={"pidfile": None})
    pidfile = p.dir / "sluice.pid"
    p.settings["pidfile"] = str(pidfile)
    p.write_files()
    helpers._chown_run_user(p.dir)
    # -d returns at once; the daemon lives on with the pid in the pidfile
    r = helpers.run_pooler_cmd(["-d", str(p.ini)], timeout=30)
    assert r.returncode == 0, r.stdout
    helpers.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10,
                     what="pidfile")
    pid = int(pidfile.read_text())
    try:
        assert _pid_alive(pid)
        with p.connect() as c:
            assert c.execute("select 41 + 1").fetchone()[0] == 42
        assert "login ok" in p.log()  # a daemon logs to logfile, not the closed stderr
    finally:
        os.kill(pid, signal.SIGTERM)
    helpers.wait_for(lambda: not _pid_alive(pid), 10, what="daemon exit")
    assert not pidfile.exists(), "pidfile left behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="-u needs root")
def test_user_flag_drops_privileges(make_pooler, pg):
    p = make_pooler(start=False)
    p.write_files()
    target = pwd.getpwnam("nobody")
    proc = subprocess.Popen([helpers.RUN_BIN, "-q", "-u", "nobody", str(p.ini)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=helpers.clean_env(),
                            cwd=str(p.dir))
    try:
        helpers.wait_for(lambda: p.log() and "started" in p.log(), 10, what="start")
        assert _proc_uid(proc.pid) == target.pw_uid
        with p.connect() as c:
            assert c.execute("select current_user").fetchone()[0] == "app"
    finally:
        proc.send_signal(signal.SIGQUIT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    # -q: nothing on stderr, the log file has it all
    assert out == b"", out


def test_verbose_adds_debug_lines(make_pooler):
    quiet = make_pooler(extra_args=["-q"])
    with quiet.connect() as c:
        c.execute("select 1")
    loud = make_pooler(extra_args=["-q", "-v"])
    with loud.connect() as c:
        c.execute("select 1")
    helpers.wait_for(lambda: " DEBUG " in loud.log(), 10, what="debug lines with -v")
    helpers.wait_for(lambda: "closing because" in quiet.log(), 10, what="quiet log")
    assert " DEBUG " not in quiet.log()


@pytest.mark.parametrize("keep", [None, "syslog"])
def test_daemon_needs_a_log_destination(make_pooler, keep):
    # without logfile or syslog a daemon would discard every log line: refused,
    # unless syslog takes them
    settings = {"logfile": None, "pidfile": None}
    if keep == "syslog":
        settings["syslog"] = 1
    p = make_pooler(start=False, settings=settings)
    pidfile = p.dir / "sluice.pid"
    p.settings["pidfile"] = str(pidfile)
    p.write_files()
    helpers._chown_run_user(p.dir)
    r = helpers.run_pooler_cmd(["-d", str(p.ini)], timeout=30)
    started = r.returncode == 0
    try:
        if keep is None:
            assert not started, r.stdout
            assert "-d needs logfile or syslog" in r.stdout, r.stdout
        else:
            assert started, r.stdout
    finally:
        if started:  # stop the daemon, whether it was meant to run or not
            helpers.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10,
                             what="pidfile")
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            helpers.wait_for(lambda: not _pid_alive(pid), 10, what="daemon exit")
