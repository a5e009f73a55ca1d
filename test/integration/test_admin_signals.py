"""PgBouncer's SIGUSR1 (PAUSE) and SIGUSR2 (RESUME) run the console's code."""

import signal

import admin_util as au
import helpers

pytestmark = au.sluice_only("SHOW STATE after signals is checked against sluice")


def state(adm):
    return {r[0]: r[1] for r in adm.execute("SHOW STATE").fetchall()}


def test_sigusr1_pauses_sigusr2_resumes(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    early = au.client(p)
    try:
        with au.console(p) as adm:
            p.signal(signal.SIGUSR1)
            helpers.wait_for(lambda: state(adm)["paused"] == "yes", 10, what="paused")
            t, r = au.run_in_thread(lambda: au.query_then_close(early, "select 'after'"))
            assert au.still_pending(t, r, 1.0), "query ran while paused: %r" % r
            p.signal(signal.SIGUSR2)
            assert au.finished(t, r, 10) and r["v"] == "after", r
            assert state(adm)["paused"] == "no"
    finally:
        early.close()
