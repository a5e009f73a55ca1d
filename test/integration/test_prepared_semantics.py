"""Prepared statements behave as PostgreSQL does through transaction pooling (issue 9,
item 9).

sluice keeps each client's protocol-level statement names itself (pg_prep.c), so two
things PostgreSQL decides must be decided by sluice too:
- a named Parse of a name the client already uses fails with 42P05, whatever the
  text, in its place in the pipeline, and the rest up to Sync is skipped (the server
  never sees the client's names, so it cannot say so itself);
- SQL DEALLOCATE of such a name (psycopg 3.1 with libpq 15 sends `DEALLOCATE _pg3_<n>`
  when its cache of 100 evicts) must forget it and answer as PostgreSQL would; the
  server, which prepared it under sluice's own name, would say "does not exist".

Each raw-protocol script runs once against PostgreSQL directly and once through sluice,
and the replies (message types, command tags, SQLSTATEs and messages, transaction
status) must be the same.
"""

import struct
import threading

import pytest

import admin_util as au
import pgproto
from test_prepared import SYNC, Bind, Close, Describe, Execute, Parse, Query, prep_pooler

sluice_only = au.sluice_only("PgBouncer keeps no client statement names in transaction pooling")


class Reply:
    def __init__(self):
        self.types = ""
        self.tags = []
        self.rows = []
        self.errors = []
        self.status = None

    def key(self):
        return (self.types, self.tags, self.rows, self.errors, self.status)

    def __repr__(self):
        return "Reply%r" % (self.key(),)


def _data_row(payload):
    (n,) = struct.unpack("!H", payload[:2])
    pos, row = 2, []
    for _ in range(n):
        (ln,) = struct.unpack("!i", payload[pos:pos + 4])
        pos += 4
        row.append(None if ln < 0 else payload[pos:pos + ln].decode())
        pos += max(ln, 0)
    return tuple(row)


def send(conn, *msgs):
    """Sends the messages and reads every reply up to as many ReadyForQuery as there are
    Sync and Query messages among them."""
    conn.send(b"".join(msgs))
    want = sum(1 for m in msgs if m[:1] in (b"S", b"Q"))
    r = Reply()
    while want:
        mtype, payload = conn.recv_msg()
        if mtype in ("S", "N"):
            continue
        r.types += mtype
        if mtype == "C":
            r.tags.append(payload.rstrip(b"\0").decode())
        elif mtype == "D":
            r.rows.append(_data_row(payload))
        elif mtype == "E":
            f = pgproto.parse_error_fields(payload)
            r.errors.append((f.get("C"), f.get("M")))
        elif mtype == "Z":
            r.status = (r.status or "") + payload[:1].decode()
            want -= 1
    return r


def direct(pg):
    return pgproto.RawConn(pg.host, pg.port).startup(user="app", database="testdb")


def same_as_postgresql(pg, p, script):
    """Runs script(conn) -> list of Reply on PostgreSQL and through sluice."""
    with direct(pg) as d:
        want = [r.key() for r in script(d)]
    a = p.raw_login()
    try:
        got = [r.key() for r in script(a)]
    finally:
        a.close()
    for i, (w, g) in enumerate(zip(want, got)):
        assert g == w, "step %d: sluice %r, PostgreSQL %r" % (i, g, w)
    assert len(got) == len(want)
    return got


DUP = ("42P05", 'prepared statement "s1" already exists')


# ---------------------------------------------------------------------------
# a Parse of a name in use
# ---------------------------------------------------------------------------


def _duplicate_script(c):
    out = [send(c, Parse("s1", "select 1"), SYNC)]
    # a different text, then the same text again: both refused
    out.append(send(c, Parse("s1", "select 2"), SYNC))
    out.append(send(c, Parse("s1", "select 1"), SYNC))
    # in the middle of a pipeline: what came before runs, the rest up to Sync is skipped
    out.append(send(c, Parse("p", "select 'before'"), Bind("p"), Execute(),
                    Parse("s1", "select 3"), Bind("s1"), Execute(), Parse("q", "select 'after'"),
                    SYNC))
    # the statement is still the first one; p was prepared, q (skipped) was not
    out.append(send(c, Bind("s1"), Execute(), Bind("p"), Execute(), SYNC))
    out.append(send(c, Parse("q", "select 'q'"), Bind("q"), Execute(), SYNC))
    # inside a transaction the error aborts it
    out.append(send(c, Query("begin")))
    out.append(send(c, Parse("s1", "select 4"), SYNC))
    out.append(send(c, Query("select 1")))
    out.append(send(c, Query("rollback")))
    # in a transaction already aborted, the abort is what PostgreSQL reports
    out.append(send(c, Query("begin"), Query("select 1/0")))
    out.append(send(c, Parse("s1", "select 4"), SYNC))
    out.append(send(c, Query("rollback")))
    # errors PostgreSQL finds before it looks at the name come first
    out.append(send(c, Parse("s1", "selec broken"), SYNC))
    out.append(send(c, Parse("s1", "select * from no_such_table"), SYNC))
    out.append(send(c, Parse("s1", "select $1::int", [23, 23]), SYNC))
    # a statement that ends an aborted transaction is parsed there: the name is refused
    out.append(send(c, Query("begin"), Query("select 1/0")))
    out.append(send(c, Parse("s1", "rollback"), SYNC))
    out.append(send(c, Query("rollback")))
    # a pipeline of two Syncs: only the first part is skipped
    out.append(send(c, Parse("s1", "select 5"), Bind("s1"), Execute(), SYNC,
                    Bind("s1"), Execute(), SYNC))
    # after a Close the name is free again
    out.append(send(c, Close("S", "s1"), Parse("s1", "select 6"), Bind("s1"), Execute(), SYNC))
    return out


@sluice_only
def test_duplicate_parse_name_as_postgresql(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    got = same_as_postgresql(pg, p, _duplicate_script)
    assert got[1] == ("EZ", [], [], [DUP], "I")
    assert got[2] == ("EZ", [], [], [DUP], "I")
    assert got[3] == ("12DCEZ", ["SELECT 1"], [("before",)], [DUP], "I")
    assert got[7][3] == [DUP] and got[7][4] == "E"
    assert got[11][3][0][0] == "25P02" and got[11][4] == "E"
    assert got[13][3][0][0] == "42601" and got[14][3][0][0] == "42P01"
    assert got[17][3] == [DUP] and got[17][4] == "E"


def _failed_parse_script(c):
    # a Parse the server refuses, or skips after an error, binds no name
    return [
        send(c, Parse("n1", "selec broken"), SYNC),
        send(c, Parse("n1", "select 'n1'"), SYNC),
        send(c, Parse("", "selec broken"), Parse("n2", "select 'n2'"), SYNC),
        send(c, Parse("n2", "select 'n2 again'"), Bind("n2"), Execute(), SYNC),
        # a ParseComplete sluice makes up (the text is on the server already), skipped
        send(c, Parse("", "selec broken"), Parse("n3", "select 'n1'"), SYNC),
        send(c, Parse("n3", "select 'n3'"), Bind("n3"), Execute(), SYNC),
        # and one before the error: it was not skipped, the name is taken
        send(c, Parse("n4", "select 'n1'"), Parse("", "selec broken"), SYNC),
        send(c, Parse("n4", "select 'n4'"), SYNC),
        # a Close skipped after an error closes nothing
        send(c, Parse("c1", "select 'c1'"), SYNC),
        send(c, Parse("", "selec broken"), Close("S", "c1"), SYNC),
        send(c, Bind("c1"), Execute(), SYNC),
    ]


@sluice_only
def test_failed_or_skipped_parse_leaves_name_free(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    got = same_as_postgresql(pg, p, _failed_parse_script)
    assert got[3][2] == [("n2 again",)] and got[5][2] == [("n3",)]
    assert got[7][3] == [("42P05", 'prepared statement "n4" already exists')]
    assert got[10][2] == [("c1",)]


@sluice_only
def test_duplicate_parse_between_transactions_and_other_clients(make_pooler, pg):
    # the name is checked per client: another client's s1 is no duplicate, and a text
    # some server has validated (answered without a server) is still refused
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        assert send(a, Parse("s1", "select 'a'"), SYNC).types == "1Z"
        assert send(b, Parse("s1", "select 'b'"), SYNC).types == "1Z"
        assert send(b, Parse("t", "select 'a'"), SYNC).types == "1Z"
        r = send(a, Parse("s1", "select 'b'"), SYNC)
        assert r.key() == ("EZ", [], [], [DUP], "I"), r
        r = send(a, Parse("s1", "select 'a'"), SYNC)
        assert r.key() == ("EZ", [], [], [DUP], "I"), r
        assert send(a, Bind("s1"), Execute(), SYNC).rows == [("a",)]
        assert send(b, Bind("s1"), Execute(), Bind("t"), Execute(), SYNC).rows == [("b",), ("a",)]
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------
# SQL DEALLOCATE
# ---------------------------------------------------------------------------

# (protocol-level name, DEALLOCATE query naming it)
DEALLOCATE_FORMS = [
    ("s1", "DEALLOCATE s1"),
    ("s1", "deallocate prepare s1;"),
    ("mixed", "  DeAllocate\tPREPARE\n MIXED ; \n"),
    ("Mixed", 'DEALLOCATE "Mixed"'),
    ('we"ird name', 'DEALLOCATE PREPARE "we""ird name";'),
    ("prepare", "DEALLOCATE prepare"),
    ("_pg3_0", "DEALLOCATE _pg3_0"),
]


def _deallocate_script(name, sql):
    def script(c):
        out = [send(c, Parse(name, "select 'x'"), SYNC)]
        # between transactions
        out.append(send(c, Query(sql)))
        out.append(send(c, Bind(name), Execute(), SYNC))  # 26000
        out.append(send(c, Query(sql)))  # 26000: unknown now
        # inside a transaction, and in a pipeline behind other work
        out.append(send(c, Parse(name, "select 'y'"), SYNC))
        out.append(send(c, Query("begin"), Query("select 1"), Query(sql), Query("select 2")))
        out.append(send(c, Bind(name), Execute(), SYNC))  # 26000, aborts
        out.append(send(c, Query("rollback")))
        # in an aborted transaction it fails and the statement stays
        out.append(send(c, Parse(name, "select 'z'"), SYNC))
        out.append(send(c, Query("begin"), Query("select 1/0"), Query(sql), Query("rollback")))
        out.append(send(c, Bind(name), Execute(), SYNC))
        # through the extended protocol, as psycopg 3.1 sends it
        out.append(send(c, Parse("", sql), Bind(""), Describe("P", ""), Execute(), SYNC))
        out.append(send(c, Parse(name, "select 'w'"), Bind(name), Execute(), SYNC))
        out.append(send(c, Query("begin")))
        out.append(send(c, Parse("", sql), Bind(""), Describe("P", ""), Execute(), SYNC))
        out.append(send(c, Query("commit")))
        out.append(send(c, Parse("", sql), Bind(""), Execute(), SYNC))  # 26000
        return out
    return script


@sluice_only
@pytest.mark.parametrize("name,sql", DEALLOCATE_FORMS, ids=[s for _, s in DEALLOCATE_FORMS])
def test_deallocate_as_postgresql(make_pooler, pg, name, sql):
    p = prep_pooler(make_pooler, pg, size=1)
    got = same_as_postgresql(pg, p, _deallocate_script(name, sql))
    assert got[1] == ("CZ", ["DEALLOCATE"], [], [], "I")
    assert got[3][3][0][0] == "26000"
    assert got[5][:2] == ("CZTDCZCZTDCZ", ["BEGIN", "SELECT 1", "DEALLOCATE", "SELECT 1"])
    assert got[5][4] == "TTTT"
    assert got[9][3][0][0] == "22012" and got[9][3][1][0] == "25P02"
    assert got[10][2] == [("z",)]
    assert got[11][:2] == ("12nCZ", ["DEALLOCATE"])


# queries that name another statement, or are no DEALLOCATE sluice may answer: the
# statement s1 stays, and the error is the server's
NOT_S1 = ['DEALLOCATE "S1"', "DEALLOCATE s1x", 'DEALLOCATE "s1 "', 'DEALLOCATE "all"',
          "DEALLOCATE PREPARE PREPARE s1", "DEALLOCATE ALL s1", "DEALLOCATE s1 s1",
          "DEALLOCATE"]


def _not_s1_script(c):
    out = [send(c, Parse("s1", "select 's1'"), SYNC)]
    for sql in NOT_S1:
        out.append(send(c, Query(sql)))
        out.append(send(c, Query("begin"), Query(sql), Query("rollback")))
        out.append(send(c, Parse("", sql), Bind(""), Execute(), SYNC))
    out.append(send(c, Bind("s1"), Execute(), SYNC))
    return out


@sluice_only
def test_deallocate_of_other_names_as_postgresql(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    got = same_as_postgresql(pg, p, _not_s1_script)
    assert all(r[3] for r in got[1:-1]), got
    assert got[-1][2] == [("s1",)]


def _deallocate_all_script(c):
    return [
        send(c, Parse("a", "select 'a'"), Parse("b", "select 'b'"), SYNC),
        send(c, Query("DEALLOCATE ALL")),
        send(c, Bind("a"), Execute(), SYNC),
        send(c, Parse("a", "select 'a2'"), Parse("b", "select 'b2'"), SYNC),
        send(c, Query("begin"), Query("deallocate prepare all ;"), Query("commit")),
        send(c, Bind("b"), Execute(), SYNC),
        send(c, Parse("a", "select 'a3'"), Bind("a"), Execute(), SYNC),
    ]


@sluice_only
def test_deallocate_all_as_postgresql(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=1)
    got = same_as_postgresql(pg, p, _deallocate_all_script)
    assert got[1] == ("CZ", ["DEALLOCATE ALL"], [], [], "I")
    assert got[6][2] == [("a3",)]


@sluice_only
def test_deallocate_between_transactions_needs_no_server(make_pooler, pg):
    # the only server is held by another client's open transaction
    p = prep_pooler(make_pooler, pg, size=1)
    a, holder = p.raw_login(), p.raw_login()
    try:
        assert send(a, Parse("d1", "select 1"), Parse("d2", "select 2"), SYNC).types == "11Z"
        assert send(holder, Query("begin")).status == "T"
        t, res = au.run_in_thread(lambda: send(a, Query("DEALLOCATE d1")))
        assert au.finished(t, res, 10), res
        assert res["v"].key() == ("CZ", ["DEALLOCATE"], [], [], "I"), res
        t, res = au.run_in_thread(lambda: send(a, Query("DEALLOCATE ALL")))
        assert au.finished(t, res, 10), res
        assert res["v"].key() == ("CZ", ["DEALLOCATE ALL"], [], [], "I"), res
        # psycopg 3's form (libpq PQsendQueryParams), with and without Describe
        assert send(a, Parse("d1", "select 1"), Parse("d2", "select 2"), SYNC).types == "11Z"
        t, res = au.run_in_thread(lambda: send(a, Parse("", "DEALLOCATE d1"), Bind(""),
                                               Describe("P", ""), Execute(), SYNC))
        assert au.finished(t, res, 10), res
        assert res["v"].key() == ("12nCZ", ["DEALLOCATE"], [], [], "I"), res
        t, res = au.run_in_thread(lambda: send(a, Parse("", "DEALLOCATE ALL"), Bind(""), Execute(), SYNC))
        assert au.finished(t, res, 10), res
        assert res["v"].key() == ("12CZ", ["DEALLOCATE ALL"], [], [], "I"), res
        # a Parse of a name in use is not answered here, although its text is known:
        # its error comes in the server's place
        assert send(a, Parse("d3", "select 1"), SYNC).types == "1Z"
        t, res = au.run_in_thread(lambda: send(a, Parse("d3", "select 1"), SYNC))
        assert au.still_pending(t, res, 0.5), res
        send(holder, Query("commit"))
        assert au.finished(t, res, 10), res
        assert res["v"].errors == [("42P05", 'prepared statement "d3" already exists')], res
        r = send(a, Bind("d2"), Execute(), SYNC)
        assert r.errors == [("26000", 'prepared statement "d2" does not exist')], r
    finally:
        a.close()
        holder.close()


@sluice_only
def test_deallocate_leaves_other_clients_alone(make_pooler, pg):
    # b has the same text on the same server (one server-side statement for both)
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        assert send(a, Parse("s", "select 'shared'"), SYNC).types == "1Z"
        assert send(b, Parse("s", "select 'shared'"), SYNC).types == "1Z"
        assert send(a, Query("DEALLOCATE s")).tags == ["DEALLOCATE"]
        assert send(a, Query("begin"), Parse("", "DEALLOCATE s"), Bind(""), Execute(), SYNC,
                    Query("commit")).errors[0][0] == "26000"
        assert send(b, Bind("s"), Execute(), SYNC).rows == [("shared",)]
        # what sluice cannot read is forwarded as it is (the server has no such name)
        r = send(b, Query("DEALLOCATE s; select 1"))
        assert r.types == "EZ" and r.errors[0][0] == "26000", r
        assert send(b, Bind("s"), Execute(), SYNC).rows == [("shared",)]
    finally:
        a.close()
        b.close()


@sluice_only
def test_deallocate_in_unnamed_statement_stays_with_its_client(make_pooler, pg):
    # a parses an extended DEALLOCATE of its x and leaves; b, on the same server, binds
    # the unnamed statement without a Parse of its own (whatever it runs, b's x stays)
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        assert send(a, Parse("x", "select 'a'"), SYNC).types == "1Z"
        assert send(b, Parse("x", "select 'b'"), SYNC).types == "1Z"
        # (a simple Query would drop the unnamed statement: the commit is a named one)
        r = send(a, Query("begin"), Parse("", "DEALLOCATE x"), Parse("c", "commit"), Bind("c"),
                 Execute(), SYNC)
        assert r.types == "CZ112CZ" and r.status == "TI", r
        send(b, Bind(""), Execute(), SYNC)
        assert send(b, Bind("x"), Execute(), SYNC).rows == [("b",)]
    finally:
        a.close()
        b.close()


@sluice_only
def test_sql_prepare_and_deallocate_stay_with_their_client(make_pooler, pg):
    # On a pool of one server: a's DEALLOCATE of the name sluice gave b's statement on
    # the server must not break b's statement, and a's SQL PREPARE must not be left
    # on the server for b.
    p = prep_pooler(make_pooler, pg, size=1)
    a, b = p.raw_login(), p.raw_login()
    try:
        assert send(b, Parse("s", "select 'from b'"), SYNC).types == "1Z"
        r = send(a, Query("select name from pg_prepared_statements where statement = 'select ''from b'''"))
        assert len(r.rows) == 1 and r.rows[0][0].startswith("sluice_"), r
        r = send(a, Query("DEALLOCATE %s" % r.rows[0][0]))
        assert r.tags == ["DEALLOCATE"], r
        r = send(b, Bind("s"), Execute(), SYNC)
        assert r.key() == ("2DCZ", ["SELECT 1"], [("from b",)], [], "I"), r
        assert send(a, Query("PREPARE mine AS select 'from a'")).tags == ["PREPARE"]
        r = send(b, Query("EXECUTE mine"))
        assert r.errors and r.errors[0][0] == "26000", r
        assert send(b, Query("PREPARE mine AS select 'b again'")).tags == ["PREPARE"]
        assert send(b, Bind("s"), Execute(), SYNC).rows == [("from b",)]
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------
# psycopg 3.1: 150 distinct statements, a prepared cache of 100
# ---------------------------------------------------------------------------

N_STATEMENTS = 150


def _psycopg_worker(conn, k, rounds):
    for n in range(rounds):
        for i in range(N_STATEMENTS):
            sql = "select %%s::int + %d, %d" % (i, k)
            row = conn.execute(sql, (n,)).fetchone()
            assert row == (n + i, k), (k, n, i, row)
        if not conn.autocommit:
            conn.commit()


@sluice_only
@pytest.mark.hard_timeout(180)
def test_psycopg_150_distinct_statements_transaction_mode(make_pooler, pg):
    p = prep_pooler(make_pooler, pg, size=2)
    # half in autocommit (DEALLOCATE between transactions), half not (inside them)
    conns = [p.connect(prepare_threshold=0, autocommit=bool(k % 2)) for k in range(4)]
    errors = []

    def worker(k):
        try:
            _psycopg_worker(conns[k], k, 2)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append((k, repr(e)))

    try:
        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        # psycopg deallocated what it evicted: each client keeps at most its 100
        with au.console(p) as adm:
            counts = [int(r["prepared_statements"]) for r in au.rows_for(adm, "CLIENTS", database="testdb")]
        assert sorted(counts)[-4:] == [100] * 4, counts
    finally:
        for c in conns:
            c.close()
