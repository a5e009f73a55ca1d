"""Wire protocol by configuration: protocol= in a [databases] entry and the
listen_protocol setting. postgresql is the default and the only protocol today;
mysql is reserved and refused with the line, by --check, at start and on RELOAD
(which keeps the old config)."""

import re

import psycopg
import pytest

import helpers
from admin_util import config_value, console, make_admin_pooler
from helpers import run_pooler_cmd

pytestmark = pytest.mark.sluice_only("protocol= and listen_protocol are sluice settings")

NOT_YET = "protocol mysql is not supported yet"


def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in config" % needle)


def check(p):
    p.write_files()
    return p.ini.read_text(), run_pooler_cmd(["--check", str(p.ini)], timeout=30)


def try_connect(p, **kw):
    try:
        with p.connect(**kw) as c:
            return c.execute("select current_database()").fetchone()[0]
    except psycopg.OperationalError as e:
        return e


def test_postgresql_accepted_and_served(make_pooler, pg):
    p = make_pooler(start=False, settings={"listen_protocol": "postgresql"},
                    databases={"testdb": pg.dbentry("testdb") + " protocol=postgresql",
                               "alias": pg.dbentry("otherdb") + " protocol=PostgreSQL"})
    _, r = check(p)
    assert r.returncode == 0, r.stdout
    assert "protocol" not in r.stdout, r.stdout  # not even an unknown-key warning
    p.start()
    assert try_connect(p) == "testdb"
    assert try_connect(p, dbname="alias") == "otherdb"


@pytest.mark.parametrize("value,reason", [("mysql", NOT_YET),
                                          ("oracle", "expected postgresql")])
def test_check_refuses_database_protocol(make_pooler, pg, value, reason):
    p = make_pooler(start=False, databases={"testdb": pg.dbentry("testdb"),
                                            "bad": "dbname=x protocol=%s" % value})
    text, r = check(p)
    assert r.returncode == 1, r.stdout
    where = "%s:%d" % (p.ini, line_of(text, "protocol=%s" % value))
    assert where in r.stdout and "database 'bad'" in r.stdout, r.stdout
    assert "invalid value for protocol: " + reason in r.stdout, r.stdout


@pytest.mark.parametrize("value,reason", [("mysql", NOT_YET),
                                          ("http", "expected postgresql")])
def test_check_refuses_listen_protocol(make_pooler, value, reason):
    p = make_pooler(start=False, settings={"listen_protocol": value})
    text, r = check(p)
    assert r.returncode == 1, r.stdout
    where = "%s:%d" % (p.ini, line_of(text, "listen_protocol"))
    assert where in r.stdout, r.stdout
    assert "invalid value for listen_protocol: " + reason in r.stdout, r.stdout


def test_start_refuses_listen_protocol_mysql(make_pooler):
    p = make_pooler(start=False, settings={"listen_protocol": "mysql"})
    p.write_files()
    r = run_pooler_cmd([str(p.ini)], timeout=30)
    assert r.returncode != 0
    assert NOT_YET in r.stdout, r.stdout


def test_show_config_lists_listen_protocol(make_pooler):
    p = make_admin_pooler(make_pooler)
    with console(p) as c:
        assert config_value(c, "listen_protocol") == "postgresql"


def test_reload_refusing_mysql_keeps_old_config(make_pooler, pg):
    p = make_pooler(databases={"testdb": pg.dbentry("testdb"),
                               "alias": pg.dbentry("otherdb")})
    with p.connect() as held:
        # the new entry and the changed one would both take effect on a good reload
        p.databases["testdb"] = pg.dbentry("testdb") + " protocol=mysql"
        p.databases["newdb"] = pg.dbentry("benchdb")
        p.write_files()
        text = p.ini.read_text()
        n = len(p.log())
        p.reload()
        where = "%s:%d" % (p.ini, line_of(text, "protocol=mysql"))
        p.wait_log(re.escape(where) + ".*" + re.escape(NOT_YET), timeout=10, start=n)
        assert held.execute("select 1").fetchone()[0] == 1
    assert p.running()
    assert try_connect(p) == "testdb"
    assert try_connect(p, dbname="alias") == "otherdb"
    r = try_connect(p, dbname="newdb")
    assert isinstance(r, psycopg.OperationalError) and "no such database" in str(r), r
    # fixed, the same change applies
    p.databases["testdb"] = pg.dbentry("testdb") + " protocol=postgresql"
    p.write_files()
    p.reload()
    helpers.wait_for(lambda: try_connect(p, dbname="newdb") == "benchdb", 10, 0.1,
                     "good reload after a refused protocol")
    assert try_connect(p) == "testdb"
