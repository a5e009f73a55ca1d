"""Configuration: --check, -V, SIGHUP reload (good and broken files),
unknown keys, [sluice] main section."""

import re

import psycopg
import pytest

import helpers
from helpers import CAROL_PW, run_pooler_cmd


def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in config" % needle)


def test_version():
    r = run_pooler_cmd(["-V"], timeout=30)
    assert r.returncode == 0, r.stdout
    if helpers.IS_PGBOUNCER:
        assert "PgBouncer" in r.stdout
    else:
        ac = (helpers.REPO / "configure.ac").read_text()
        version = re.search(r"AC_INIT\(\[sluice\],\s*\[([^\]]+)\]", ac).group(1)
        assert "sluice" in r.stdout.lower() and version in r.stdout, r.stdout


@pytest.mark.sluice_only("1.18 has no --check")
def test_check_valid(make_pooler):
    p = make_pooler(start=False)
    p.write_files()
    r = run_pooler_cmd(["--check", str(p.ini)], timeout=30)
    assert r.returncode == 0, r.stdout


@pytest.mark.sluice_only("1.18 has no --check")
def test_check_valid_sluice_section(make_pooler):
    p = make_pooler(start=False, main_section="sluice")
    p.write_files()
    r = run_pooler_cmd(["--check", str(p.ini)], timeout=30)
    assert r.returncode == 0, r.stdout


BROKEN = {
    "syntax_error": "this line is not key = value ]",
    "bad_pool_mode": "pool_mode = bogus",
    "bad_integer": "default_pool_size = abc",
    "bad_auth_type": "auth_type = nonsense",
    "port_out_of_range": "listen_port = 99999999",
}


@pytest.mark.sluice_only("1.18 has no --check")
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_broken(make_pooler, name):
    p = make_pooler(start=False)
    text = p.ini_text()
    # append the bad line at the end of the main section (the last section)
    text += BROKEN[name] + "\n"
    p.write_raw_ini(text)
    line = line_of(text, BROKEN[name])
    r = run_pooler_cmd(["--check", str(p.ini)], timeout=30)
    assert r.returncode == 1, r.stdout
    assert "%s:%d" % (p.ini, line) in r.stdout, r.stdout


@pytest.mark.sluice_only("1.18 has no --check")
def test_check_broken_database_entry(make_pooler, pg):
    p = make_pooler(start=False, databases={"testdb": pg.dbentry("testdb"),
                                            "bad": "host=127.0.0.1 port=notaport dbname=x"})
    p.write_files()
    text = p.ini.read_text()
    r = run_pooler_cmd(["--check", str(p.ini)], timeout=30)
    assert r.returncode == 1, r.stdout
    assert "%s:%d" % (p.ini, line_of(text, "port=notaport")) in r.stdout, r.stdout


@pytest.mark.sluice_only("1.18 has no --check")
def test_check_missing_file(workdir):
    missing = workdir / "does-not-exist.ini"
    r = run_pooler_cmd(["--check", str(missing)], timeout=30)
    assert r.returncode == 1, r.stdout
    assert str(missing) in r.stdout


@pytest.mark.sluice_only("1.18 refuses to start on an unknown key")
def test_unknown_key_warns(make_pooler):
    p = make_pooler(start=False, settings={"no_such_setting": "1"})
    p.write_files()
    text = p.ini.read_text()
    where = "%s:%d" % (p.ini, line_of(text, "no_such_setting"))
    r = run_pooler_cmd(["--check", str(p.ini)], timeout=30)
    assert r.returncode == 0, r.stdout
    assert where in r.stdout and "no_such_setting" in r.stdout, r.stdout
    p.start()
    p.wait_log(re.escape(where), timeout=10)
    assert "no_such_setting" in p.log()
    with p.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


@pytest.mark.sluice_only("main section name [sluice]")
def test_sluice_main_section(make_pooler):
    # listen_port and unix_socket_dir come from the [sluice] section
    p = make_pooler(main_section="sluice")
    with p.connect() as a:
        assert a.execute("select 1").fetchone()[0] == 1
    assert p.sockdir.joinpath(".s.PGSQL.%d" % p.port).exists()
    with p.connect(unix=True) as c:
        assert c.execute("select 2").fetchone()[0] == 2


def try_connect(p, **kw):
    try:
        with p.connect(**kw) as c:
            return c.execute("select current_database()").fetchone()[0]
    except psycopg.OperationalError as e:
        return e


def test_reload_adds_database(make_pooler, pg):
    p = make_pooler()
    r = try_connect(p, dbname="newdb")
    assert isinstance(r, psycopg.OperationalError) and "no such database: newdb" in str(r)
    with p.connect() as held:
        p.databases["newdb"] = pg.dbentry("otherdb")
        p.write_files()
        p.reload()
        helpers.wait_for(lambda: try_connect(p, dbname="newdb") == "otherdb", 10, 0.1,
                         "newdb to become reachable after SIGHUP")
        # a client connected before the reload is unaffected
        assert held.execute("select 1").fetchone()[0] == 1
    assert p.running()


def test_reload_removes_database(make_pooler, pg):
    p = make_pooler(databases={"testdb": pg.dbentry("testdb"), "gone": pg.dbentry("otherdb")})
    assert try_connect(p, dbname="gone") == "otherdb"
    del p.databases["gone"]
    p.write_files()
    p.reload()
    helpers.wait_for(lambda: isinstance(try_connect(p, dbname="gone"), psycopg.OperationalError),
                     10, 0.1, "removed database to be refused")
    assert try_connect(p) == "testdb"


def test_reload_auth_file(make_pooler):
    p = make_pooler(settings={"auth_type": "md5"})
    r = try_connect(p, user="carol", password=CAROL_PW)
    assert isinstance(r, psycopg.OperationalError)
    p.auth_users["carol"] = CAROL_PW
    p.write_files()
    p.reload()
    helpers.wait_for(lambda: try_connect(p, user="carol", password=CAROL_PW) == "testdb", 10, 0.1,
                     "new auth_file user to be accepted after SIGHUP")
    assert try_connect(p, user="alice", password=helpers.ALICE_PW) == "testdb"


def broken_reload(p):
    good = p.ini.read_text()
    # the bad line comes first in the main section: a loader that applies
    # the lines before the error (or resets to defaults) changes behaviour
    header = "[%s]\n" % p.main_section
    assert header in good
    bad = good.replace(header, header + "this line is broken\n")
    n = len(p.log())
    p.write_raw_ini(bad)
    p.reload()
    where = "%s:%d" % (p.ini, line_of(bad, "this line is broken"))
    p.wait_log(re.escape(where), timeout=10, start=n)
    return good


def test_reload_broken_file_keeps_serving(make_pooler):
    p = make_pooler()
    with p.connect() as held:
        broken_reload(p)
        assert p.running()
        assert held.execute("select 1").fetchone()[0] == 1


@pytest.mark.sluice_only("1.18 resets settings to defaults before the failed load (auth_type becomes md5)")
def test_reload_broken_file_keeps_old_config(make_pooler, pg):
    p = make_pooler(databases={"testdb": pg.dbentry("testdb"), "alias": pg.dbentry("otherdb")})
    with p.connect() as held:
        good = broken_reload(p)
        assert held.execute("select 1").fetchone()[0] == 1
    # old config fully in effect: trust auth, both databases
    assert try_connect(p) == "testdb"
    assert try_connect(p, dbname="alias") == "otherdb"
    # and a later good reload still works
    p.write_raw_ini(good.replace("[databases]\n", "[databases]\nlater = %s\n" % pg.dbentry("benchdb")))
    p.reload()
    helpers.wait_for(lambda: try_connect(p, dbname="later") == "benchdb", 10, 0.1,
                     "good reload after a broken one")


def test_reload_unchanged_many_times(make_pooler):
    p = make_pooler()
    with p.connect() as held:
        for _ in range(10):
            p.reload()
        assert held.execute("select 1").fetchone()[0] == 1
        assert try_connect(p) == "testdb"
