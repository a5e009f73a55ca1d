"""Integration-test harness: a throw-away PostgreSQL 15 server and pooler
processes (sluice, or PgBouncer with SLUICE_TEST_POOLER=pgbouncer).

Everything that can block has a timeout: subprocesses, sockets, psycopg
connect_timeout, and a per-test watchdog in conftest.py that SIGKILLs the
test's poolers (so clients blocked on them get an error) if a test overruns.
"""

import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg

import pgproto

REPO = Path(__file__).resolve().parents[2]
PG_BINDIR = Path(os.environ.get("SLUICE_TEST_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PSQL = str(PG_BINDIR / "psql")
PGBENCH = str(PG_BINDIR / "pgbench")

POOLER_KIND = os.environ.get("SLUICE_TEST_POOLER", "sluice")
if POOLER_KIND not in ("sluice", "pgbouncer"):
    raise RuntimeError("SLUICE_TEST_POOLER must be 'sluice' or 'pgbouncer', not %r" % POOLER_KIND)
IS_PGBOUNCER = POOLER_KIND == "pgbouncer"
if IS_PGBOUNCER:
    POOLER_BIN = os.environ.get("PGBOUNCER_BIN", "/usr/sbin/pgbouncer")
else:
    POOLER_BIN = os.environ.get("SLUICE_BIN", str(REPO / "src" / "sluice"))

# The binary actually run: a copy of POOLER_BIN in the session's temp dir (see
# install_pooler_bin), so that the postgres user can execute it even when the
# checkout lives somewhere it cannot enter (e.g. /root), and so a rebuild
# during the run does not change the binary under test.
RUN_BIN = POOLER_BIN

CONNECT_TIMEOUT = 10  # seconds, for every client connection
SUBPROCESS_TIMEOUT = 60
READY_TIMEOUT = 30  # pooler start (sanitizer builds are slow)

# ---------------------------------------------------------------------------
# Users and secrets.  Every password used anywhere goes into SECRETS; the
# pooler's stderr and logfile are checked after each test never to contain
# any of them (nor their md5 / SCRAM-derived forms).
# ---------------------------------------------------------------------------

SECRETS = set()


def secret(s):
    SECRETS.add(s)
    return s


def register_derived_secrets(user, password):
    secret(password)
    secret(pgproto.md5_password(password, user))


# Client-side users (server side: trust).  Passwords are distinctive strings
# so that a grep of the logs cannot match by accident.
ALICE_PW = secret("Alice-pw-7fK3qX9v")
BOB_PW = secret("Bob-pw-Hq42mZ8d")
CAROL_PW = secret("Carol-pw-Ty6rW2pL")
WRONG_PW = secret("Wrong-pw-Zq93XrT5")
# Server-side roles with a password-based pg_hba method.
SRV_PASSWORD_PW = secret("SrvPassword-9xZ2LkQe")
SRV_MD5_PW = secret("SrvMd5-4hT8wPn3")
SRV_SCRAM_PW = secret("SrvScram-Qm71zVb6")
SRV_WRONG_PW = secret("SrvWrong-Jd82nBv4")
for _u, _p in [
    ("alice", ALICE_PW),
    ("bob", BOB_PW),
    ("carol", CAROL_PW),
    ("srv_password", SRV_PASSWORD_PW),
    ("srv_md5", SRV_MD5_PW),
    ("srv_scram", SRV_SCRAM_PW),
]:
    register_derived_secrets(_u, _p)
for _u in ("alice", "bob", "carol", "nobody", "srv_md5", "srv_password", "srv_scram"):
    secret(pgproto.md5_password(WRONG_PW, _u))
    secret(pgproto.md5_password(SRV_WRONG_PW, _u))


def register_scram_secret(s):
    """Register a SCRAM secret and its StoredKey/ServerKey parts."""
    secret(s)
    m = re.match(r"SCRAM-SHA-256\$\d+:[^$]+\$([^:]+):(.+)$", s)
    if m:
        secret(m.group(1))
        secret(m.group(2))
    return s


# ---------------------------------------------------------------------------
# Running things as the postgres OS user (PostgreSQL and PgBouncer refuse root)
# ---------------------------------------------------------------------------

IS_ROOT = os.geteuid() == 0
RUN_USER = "postgres" if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name


def _chown_run_user(path):
    if IS_ROOT:
        pw = pwd.getpwnam(RUN_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def runuser_prefix():
    return ["runuser", "-u", RUN_USER, "--"] if IS_ROOT else []


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def popen_as_run_user(argv, deathsig=signal.SIGKILL, **kw):
    """Popen the command directly (no runuser in between: signals sent to the
    returned pid reach the program itself) as the postgres user if root.
    The child gets deathsig when the test run ends, even if pytest is killed."""
    if IS_ROOT:
        pw = pwd.getpwnam(RUN_USER)
        kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])

    def child_setup():
        # runs after the uid switch (which would clear the setting)
        _libc.prctl(_PR_SET_PDEATHSIG, int(deathsig), 0, 0, 0)

    return subprocess.Popen(argv, preexec_fn=child_setup, **kw)


def clean_env(**extra):
    """Environment for client programs and the pooler: no stray PG* settings,
    no ~/.pgpass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = "/nonexistent/pgpass"
    env["PGCONNECT_TIMEOUT"] = str(CONNECT_TIMEOUT)
    env["LC_ALL"] = "C.UTF-8"
    env.pop("LANG", None)
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_dir(path, mode=0o755):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    _chown_run_user(path)
    return path


def write_file(path, text, mode=0o644):
    path = Path(path)
    path.write_text(text)
    os.chmod(path, mode)
    _chown_run_user(path)
    return path


def wait_for(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

HBA = """\
# generated by the sluice integration tests
local   all  all                          trust
host    all  srv_password  127.0.0.1/32   password
host    all  srv_md5       127.0.0.1/32   md5
host    all  srv_scram     127.0.0.1/32   scram-sha-256
host    all  all           127.0.0.1/32   trust
"""

PG_CONF = """
# added by the sluice integration tests
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
datestyle = 'ISO, MDY'
log_timezone = 'UTC'
password_encryption = 'scram-sha-256'
log_connections = on
log_min_messages = warning
"""


class PgServer:
    def __init__(self, basedir):
        self.base = make_dir(Path(basedir) / "pg", 0o700)
        self.datadir = self.base / "data"
        self.sockdir = self.base
        self.logfile = self.base / "postgres.log"
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.started = False

    def _run(self, argv, timeout=SUBPROCESS_TIMEOUT):
        r = subprocess.run(
            runuser_prefix() + argv,
            cwd=str(self.base),
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise RuntimeError(
                "%s failed (%d):\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr)
            )
        return r

    def start(self):
        for exe in ("initdb", "postgres", "psql", "pgbench"):
            if not (PG_BINDIR / exe).exists():
                raise RuntimeError("%s not found in %s (install postgresql-15)" % (exe, PG_BINDIR))
        self._run(
            [
                str(PG_BINDIR / "initdb"),
                "-D", str(self.datadir),
                "-U", "postgres",
                "-A", "trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )
        base_conf = (self.datadir / "postgresql.conf").read_text()
        for attempt in range(5):
            self.port = free_port()
            write_file(
                self.datadir / "postgresql.conf",
                base_conf + PG_CONF.format(port=self.port, sockdir=self.sockdir),
                0o600,
            )
            write_file(self.datadir / "pg_hba.conf", HBA, 0o600)
            self._spawn_postmaster()
            try:
                wait_for(self._ready, 60, 0.1, "PostgreSQL to accept connections")
                self.started = True
                break
            except AssertionError:
                log = self.logfile.read_text() if self.logfile.exists() else ""
                self.kill()
                if "already in use" in log and attempt < 4:
                    continue
                raise RuntimeError("PostgreSQL failed to start; log:\n" + log[-4000:])
        self.setup_roles()
        return self

    def _spawn_postmaster(self):
        # The postmaster runs as our child (not daemonized by pg_ctl) with a
        # parent-death signal of SIGQUIT: even if pytest is killed hard, no
        # PostgreSQL is left behind.
        logf = open(self.logfile, "ab")
        self.proc = popen_as_run_user(
            [str(PG_BINDIR / "postgres"), "-D", str(self.datadir)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=clean_env(),
            cwd=str(self.base), deathsig=signal.SIGQUIT,
        )
        logf.close()

    def stop_fast(self, timeout=60):
        """Fast shutdown, as `pg_ctl stop -m fast` (the first half of `pg_ctl restart
        -m fast`): sessions are ended with an error, then the postmaster exits."""
        self.started = False
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=timeout)

    def start_again(self, timeout=60):
        """Starts the postmaster again on the same data directory and port (after
        stop_fast) and waits until it accepts connections."""
        self._spawn_postmaster()
        wait_for(self._ready, timeout, 0.05, "PostgreSQL to accept connections again")
        self.started = True

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("postgres exited with %s" % self.proc.returncode)
        try:
            with psycopg.connect(host=self.host, port=self.port, dbname="postgres",
                                 user="postgres", connect_timeout=5) as c:
                c.execute("select 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.started = False
        # SIGINT = fast shutdown; SIGQUIT = immediate
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return

    def kill(self):
        """Immediate shutdown (signal handlers, atexit)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait(timeout=10)
            except Exception:
                try:
                    self.proc.kill()
                except Exception:
                    pass

    def connect(self, dbname="postgres", user="postgres", **kw):
        """Direct (not through the pooler) superuser connection."""
        kw.setdefault("autocommit", True)
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=dbname,
            user=user,
            connect_timeout=CONNECT_TIMEOUT,
            options="-c statement_timeout=60s",
            **kw,
        )

    def dbentry(self, dbname, **kw):
        """A [databases] value pointing at this server."""
        parts = ["host=%s" % self.host, "port=%d" % self.port]
        if dbname is not None:
            parts.append("dbname=%s" % dbname)
        parts += ["%s=%s" % (k, v) for k, v in kw.items()]
        return " ".join(parts)

    def setup_roles(self):
        with self.connect() as c:
            for role in ("app", "alice", "bob", "carol", "srv_trust"):
                c.execute("CREATE ROLE %s LOGIN" % role)
            c.execute("ALTER ROLE app SUPERUSER")
            c.execute("CREATE ROLE srv_password LOGIN PASSWORD '%s'" % SRV_PASSWORD_PW)
            c.execute("SET password_encryption = 'md5'")
            c.execute("CREATE ROLE srv_md5 LOGIN PASSWORD '%s'" % SRV_MD5_PW)
            c.execute("SET password_encryption = 'scram-sha-256'")
            c.execute("CREATE ROLE srv_scram LOGIN PASSWORD '%s'" % SRV_SCRAM_PW)
            for db in ("testdb", "otherdb", "benchdb"):
                c.execute("CREATE DATABASE %s OWNER app" % db)
            rows = c.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL"
            ).fetchall()
            self.authid = dict(rows)
        for role, pw in self.authid.items():
            if pw.startswith("SCRAM"):
                register_scram_secret(pw)
            else:
                secret(pw)

    def backend_pids(self, dbname=None, user=None):
        q = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        args = []
        if dbname:
            q += " AND datname = %s"
            args.append(dbname)
        if user:
            q += " AND usename = %s"
            args.append(user)
        with self.connect() as c:
            return [r[0] for r in c.execute(q, args).fetchall()]


# ---------------------------------------------------------------------------
# Pooler (sluice or PgBouncer)
# ---------------------------------------------------------------------------

SANITIZER_RE = re.compile(
    r"runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|AddressSanitizer:DEADLYSIGNAL"
    r"|LeakSanitizer has encountered|UndefinedBehaviorSanitizer|WARNING: AddressSanitizer"
)
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE}

# Poolers started by the current test; the watchdog kills them on overrun.
LIVE_POOLERS = []
_live_lock = threading.Lock()


def check_output_problems(text, what):
    """Return a list of problems (sanitizer reports, leaked secrets) in text."""
    problems = []
    m = SANITIZER_RE.search(text)
    if m:
        start = max(0, m.start() - 2000)
        problems.append("sanitizer report in %s:\n%s" % (what, text[start : m.start() + 6000]))
    for s in sorted(SECRETS):
        if s and s in text:
            problems.append("secret %r appears in %s" % (s, what))
    return problems


def install_pooler_bin(basedir):
    global RUN_BIN
    if IS_PGBOUNCER or not os.path.isfile(POOLER_BIN):
        RUN_BIN = POOLER_BIN
        return RUN_BIN
    bindir = make_dir(Path(basedir) / "bin", 0o755)
    dst = bindir / os.path.basename(POOLER_BIN)
    shutil.copy2(POOLER_BIN, dst)
    os.chmod(dst, 0o755)
    RUN_BIN = str(dst)
    return RUN_BIN


def run_pooler_cmd(args, timeout=SUBPROCESS_TIMEOUT):
    """Run the pooler binary to completion (e.g. --check, -V) as the run user;
    returns CompletedProcess with combined output in .stdout."""
    p = popen_as_run_user(
        [RUN_BIN] + list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=clean_env(),
        cwd="/",
    )
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("%s %s did not finish in %ss" % (RUN_BIN, " ".join(args), timeout))
    out = out.decode("utf-8", "replace")
    problems = check_output_problems(out, "output of %s" % " ".join(args))
    if problems:
        raise AssertionError("\n".join(problems))
    return subprocess.CompletedProcess(p.args, p.returncode, out, "")


class Pooler:
    """One pooler process with its own ini, auth_file, port and socket dir."""

    def __init__(self, pg, workdir, databases=None, settings=None, auth_users=None,
                 users=None, main_section="pgbouncer", extra_args=None, nofile=None):
        self.pg = pg
        self.nofile = nofile  # RLIMIT_NOFILE to start with: n, or (soft, hard)
        self.dir = make_dir(workdir, 0o755)
        self.ini = self.dir / "pooler.ini"
        self.auth_file = self.dir / "userlist.txt"
        self.logfile = self.dir / "pooler.log"
        self.stderr_path = self.dir / "stderr.log"
        self.sockdir = self.dir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc = None
        self.main_section = main_section
        if extra_args is None:
            # sluice runs verbose: its debug log must not contain secrets either.
            # (PgBouncer's debug log prints SCRAM secrets and passwords, so it
            # runs at default verbosity.)
            extra_args = [] if IS_PGBOUNCER else ["-v"]
        self.extra_args = list(extra_args)
        self.signalled = []  # signals the test sent on purpose
        if databases is None:
            databases = {"testdb": pg.dbentry("testdb")}
        self.databases = dict(databases)
        self.users = dict(users or {})
        self.settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": None,  # filled in at write time
            "unix_socket_dir": str(self.sockdir),
            "auth_type": "trust",
            "auth_file": str(self.auth_file),
            "pool_mode": "session",
            "default_pool_size": "5",
            "max_client_conn": "100",
            "server_reset_query": "DISCARD ALL",
            "logfile": str(self.logfile),
            "log_connections": "1",
            "log_disconnections": "1",
            "server_connect_timeout": "5",
            "server_login_retry": "1",
            "client_login_timeout": "20",
        }
        if IS_PGBOUNCER:
            # PgBouncer rejects the 'options' startup parameter otherwise.
            self.settings["ignore_startup_parameters"] = "extra_float_digits"
        for k, v in (settings or {}).items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = str(v)
        if auth_users is None:
            auth_users = {"app": "", "alice": ALICE_PW, "bob": BOB_PW, "postgres": ""}
        self.auth_users = dict(auth_users)

    # -- files ----------------------------------------------------------
    def ini_text(self):
        lines = ["[databases]"]
        lines += ["%s = %s" % (k, v) for k, v in self.databases.items()]
        lines.append("")
        if self.users:
            lines.append("[users]")
            lines += ["%s = %s" % (k, v) for k, v in self.users.items()]
            lines.append("")
        lines.append("[%s]" % self.main_section)
        for k, v in self.settings.items():
            if k == "listen_port":
                v = str(self.port)
            lines.append("%s = %s" % (k, v))
        return "\n".join(lines) + "\n"

    def write_files(self):
        write_file(self.ini, self.ini_text(), 0o644)
        text = "".join('"%s" "%s"\n' % (u, s) for u, s in self.auth_users.items())
        write_file(self.auth_file, text, 0o600)

    def write_raw_ini(self, text):
        write_file(self.ini, text, 0o644)

    # -- process --------------------------------------------------------
    def start(self, wait=True):
        for attempt in range(3):
            self.write_files()
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except AssertionError:
                out = self.output()
                if attempt < 2 and self.proc.poll() is not None and "in use" in out:
                    self.port = free_port()
                    continue
                raise
        return self

    def _spawn(self, args=None):
        errf = open(self.stderr_path, "ab")
        argv = [RUN_BIN] + self.extra_args + list(args or []) + [str(self.ini)]
        if self.nofile:
            # prlimit sets the limit and execs the pooler: the pid stays the pooler's
            soft, hard = self.nofile if isinstance(self.nofile, tuple) else (self.nofile,) * 2
            argv = ["prlimit", "--nofile=%d:%d" % (soft, hard), "--"] + argv
        if not os.path.exists(RUN_BIN):
            raise AssertionError("pooler binary %s does not exist (build it, or set SLUICE_BIN)" % RUN_BIN)
        self.proc = popen_as_run_user(
            argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, env=clean_env(), cwd=str(self.dir)
        )
        errf.close()
        with _live_lock:
            LIVE_POOLERS.append(self)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        sock_path = self.sockdir / (".s.PGSQL.%d" % self.port)
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "pooler exited with %s before accepting connections:\n%s"
                    % (self.proc.returncode, self.output()[-5000:])
                )
            ok = False
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    ok = True
            except OSError:
                pass
            if ok and "unix_socket_dir" in self.settings and sock_path.exists():
                # the file appears at bind(), before listen(): connect to be sure
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
                        u.settimeout(1)
                        u.connect(str(sock_path))
                except OSError:
                    ok = False
            if ok and ("unix_socket_dir" not in self.settings or sock_path.exists()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    "pooler not accepting connections on %s:%d after %ss:\n%s"
                    % (self.host, self.port, timeout, self.output()[-5000:])
                )
            time.sleep(0.05)

    def signal(self, sig):
        self.signalled.append(sig)
        self.proc.send_signal(sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """Graceful stop at test end: SIGTERM, then harder signals if needed.
        Returns the signal that made it exit (None if it had already exited)."""
        stopped_by = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGINT, 3), (signal.SIGQUIT, 3), (signal.SIGKILL, 10)):
                self.signalled.append(sig)
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
                if self.wait_exit(wait) is not None:
                    stopped_by = sig
                    break
        with _live_lock:
            if self in LIVE_POOLERS:
                LIVE_POOLERS.remove(self)
        return stopped_by

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.signalled.append(signal.SIGKILL)
            self.proc.kill()

    def problems(self):
        """Sanitizer reports, leaked secrets, crashes: list of strings."""
        out = []
        for path in (self.stderr_path, self.logfile):
            if path.exists():
                out += check_output_problems(path.read_text(errors="replace"), path.name)
        rc = self.proc.returncode if self.proc else None
        if rc is not None and rc < 0 and -rc in CRASH_SIGNALS and -rc not in self.signalled:
            out.append("pooler died of signal %s" % signal.Signals(-rc).name)
        return out

    # -- logs -----------------------------------------------------------
    def output(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def log(self):
        """stderr plus logfile (PgBouncer and sluice write both)."""
        text = self.output()
        if self.logfile.exists():
            text += self.logfile.read_text(errors="replace")
        return text

    def wait_log(self, pattern, timeout=10, start=0):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log()[start:]), timeout, 0.1, "log line /%s/" % pattern)

    # -- clients --------------------------------------------------------
    def connect(self, dbname="testdb", user="app", password=None, unix=False, **kw):
        """psycopg 3 connection through the pooler (autocommit by default)."""
        kw.setdefault("autocommit", True)
        kw.setdefault("connect_timeout", CONNECT_TIMEOUT)
        if password is not None:
            kw["password"] = password
        return psycopg.connect(
            host=str(self.sockdir) if unix else self.host,
            port=self.port,
            dbname=dbname,
            user=user,
            **kw,
        )

    def connect2(self, dbname="testdb", user="app", password=None, **kw):
        import psycopg2

        kw.setdefault("connect_timeout", CONNECT_TIMEOUT)
        if password is not None:
            kw["password"] = password
        c = psycopg2.connect(host=self.host, port=self.port, dbname=dbname, user=user, **kw)
        c.autocommit = True
        return c

    def raw(self, timeout=pgproto.DEFAULT_TIMEOUT):
        return pgproto.RawConn(self.host, self.port, timeout=timeout)

    def raw_login(self, user="app", database="testdb", password=None, params=None, timeout=pgproto.DEFAULT_TIMEOUT):
        c = self.raw(timeout)
        try:
            return c.startup(user=user, database=database, password=password, params=params)
        except BaseException:
            c.close()
            raise

    def psql(self, sql, dbname="testdb", user="app", password=None, host=None, env=None,
             timeout=SUBPROCESS_TIMEOUT, check=False):
        e = clean_env(PGPASSWORD=password, **(env or {}))
        argv = [PSQL, "-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
                "-h", host or self.host, "-p", str(self.port), "-U", user, "-d", dbname, "-c", sql]
        r = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("psql failed (%d): %s" % (r.returncode, r.stderr))
        return r

    def pgbench(self, args, dbname="benchdb", user="app", timeout=SUBPROCESS_TIMEOUT):
        argv = [PGBENCH, "-h", self.host, "-p", str(self.port), "-U", user] + list(args) + [dbname]
        return subprocess.run(argv, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)


def auth_failed_texts(user):
    """Accepted client-visible messages for a failed login."""
    texts = ['password authentication failed for user "%s"' % user]
    if IS_PGBOUNCER:
        # PgBouncer 1.18: 'password authentication failed' / 'SASL authentication failed'
        texts += ["password authentication failed", "SASL authentication failed"]
    return texts


AUTH_FAILED_SQLSTATES = ("28P01", "08P01") if IS_PGBOUNCER else ("28P01",)


def error_text(exc):
    """All text a client would show for a psycopg/psycopg2 error."""
    parts = [str(exc)]
    diag = getattr(exc, "diag", None)
    if diag is not None:
        for attr in ("message_primary", "message_detail", "message_hint", "context"):
            v = getattr(diag, attr, None)
            if v:
                parts.append(v)
    return "\n".join(parts)
