"""Query cancellation through the pooler."""

import signal
import subprocess
import threading
import time

import psycopg
import psycopg2
import psycopg2.extensions
import pytest

import helpers
import pgproto


def wait_active_sleep(pg, n=1, timeout=15):
    """Wait until n backends are running pg_sleep; return their pids."""
    def active():
        with pg.connect() as c:
            r = c.execute(
                "select pid from pg_stat_activity where state = 'active' "
                "and query like 'select pg_sleep%%' and pid <> pg_backend_pid()"
            ).fetchall()
            return [x[0] for x in r] if len(r) >= n else None
    return helpers.wait_for(active, timeout, 0.1, "%d pg_sleep to be running" % n)


@pytest.mark.hard_timeout(60)
def test_cancel_psycopg3(pooler, pg):
    with pooler.connect() as c:
        errors = []

        def canceller():
            try:
                wait_active_sleep(pg)
                c.cancel()
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        t = threading.Thread(target=canceller)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as ei:
            c.execute("select pg_sleep(30)")
        elapsed = time.monotonic() - t0
        t.join(20)
        assert not errors, errors
        assert ei.value.sqlstate == "57014"
        assert elapsed < 20
        # The session survives the cancel.
        assert c.execute("select 7").fetchone()[0] == 7


@pytest.mark.hard_timeout(60)
def test_cancel_psycopg2(pooler, pg):
    c = pooler.connect2()
    try:
        t = threading.Thread(target=lambda: (wait_active_sleep(pg), c.cancel()))
        t.start()
        t0 = time.monotonic()
        cur = c.cursor()
        with pytest.raises(psycopg2.extensions.QueryCanceledError) as ei:
            cur.execute("select pg_sleep(30)")
        assert time.monotonic() - t0 < 20
        t.join(20)
        assert ei.value.pgcode == "57014"
        cur.execute("select 1")
        assert cur.fetchone()[0] == 1
    finally:
        c.close()


@pytest.mark.hard_timeout(60)
def test_cancel_psql_sigint(pooler, pg):
    # psql sends a CancelRequest when it gets SIGINT.
    argv = [helpers.PSQL, "-X", "-w", "-h", pooler.host, "-p", str(pooler.port), "-U", "app",
            "-d", "testdb", "-c", "select pg_sleep(30)"]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=helpers.clean_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_active_sleep(pg)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - t0 < 20
    assert proc.returncode != 0
    assert "canceling statement due to user request" in err, err


@pytest.mark.hard_timeout(60)
def test_cancel_raw_and_wrong_key(pooler, pg):
    with pooler.raw_login() as c:
        assert c.backend_key is not None, "no BackendKeyData from the pooler"
        pid, key = c.backend_key
        # A cancel with a wrong key must not cancel anything.
        c.send_msg("Q", b"select pg_sleep(2), 'done'\0")
        wait_active_sleep(pg)
        pgproto.cancel_request(pooler.host, pooler.port, pid, (key + 1) & 0xFFFFFFFF)
        pgproto.cancel_request(pooler.host, pooler.port, pid ^ 0x5A5A, key)
        rows = []
        while True:
            t, payload = c.recv_msg()
            assert t != "E", pgproto.parse_error_fields(payload)
            if t == "D":
                rows.append(payload)
            if t == "Z":
                break
        assert rows and b"done" in rows[0]
        # The right key cancels.
        c.send_msg("Q", b"select pg_sleep(30)\0")
        wait_active_sleep(pg)
        t0 = time.monotonic()
        pgproto.cancel_request(pooler.host, pooler.port, pid, key)
        with pytest.raises(pgproto.ServerError) as ei:
            while True:
                t, payload = c.recv_msg()
                if t == "E":
                    raise pgproto.ServerError(pgproto.parse_error_fields(payload))
                assert t != "Z", "query was not cancelled"
        assert ei.value.sqlstate == "57014"
        assert time.monotonic() - t0 < 20
        while c.recv_msg()[0] != "Z":
            pass
        assert c.scalar("select 1") == "1"


@pytest.mark.hard_timeout(60)
def test_cancel_only_hits_own_query(pooler, pg):
    # Two clients sleeping; cancelling one leaves the other alone.
    with pooler.connect() as a, pooler.connect() as b:
        b_pid = b.execute("select pg_backend_pid()").fetchone()[0]
        res = {}

        def run_b():
            try:
                res["b"] = b.execute("select pg_sleep(30), 'b-done'").fetchone()[1]
            except Exception as e:
                res["b"] = e

        tb = threading.Thread(target=run_b)
        tb.start()
        try:
            t = threading.Thread(target=lambda: (wait_active_sleep(pg, 2), a.cancel()))
            t.start()
            with pytest.raises(psycopg.errors.QueryCanceled):
                a.execute("select pg_sleep(30)")
            t.join(5)
            with pg.connect() as admin:
                state = admin.execute("select state from pg_stat_activity where pid = %s",
                                      (b_pid,)).fetchone()
            assert state == ("active",), "the other client's query was disturbed"
        finally:
            b.cancel()
            tb.join(30)
        assert isinstance(res.get("b"), psycopg.errors.QueryCanceled), res
