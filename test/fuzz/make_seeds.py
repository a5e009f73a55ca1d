#!/usr/bin/python3
"""Writes the seed corpora of the libFuzzer targets (test/fuzz/README.md).

    /usr/bin/python3 test/fuzz/make_seeds.py test/fuzz/corpus

Each seed is a valid (or deliberately near-valid) stream in the target's input format:
a settings byte, then bytes cut into separate writes at SPLIT. Seeds are named after
what they hold, so a rerun rewrites the same files; reproducers of fixed crashes live
next to them as regress-* files, which this script leaves alone.
"""
import os
import struct
import sys

SPLIT = b"\xfe\xed\xfa\xce"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def startup(params, version=0x00030000):
    body = struct.pack("!I", version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def query(sql):
    return msg(b"Q", cstr(sql))


def parse(name, sql, types=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(types)) +
               b"".join(struct.pack("!I", t) for t in types))


def bind(portal, stmt, params=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        body += struct.pack("!i", len(p)) + p
    return msg(b"B", body + struct.pack("!H", 0))


def describe(kind, name):
    return msg(b"D", kind + cstr(name))


def execute(portal="", rows=0):
    return msg(b"E", cstr(portal) + struct.pack("!I", rows))


def close(kind, name):
    return msg(b"C", kind + cstr(name))


SYNC = msg(b"S")
FLUSH = msg(b"H")
TERMINATE = msg(b"X")
SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSS_REQUEST = struct.pack("!II", 8, 80877104)

# fuzz_login: settings byte = auth_type index (any, trust, plain, md5, scram, hba)
# plus pool mode << 4
ANY, TRUST, PLAIN, MD5, SCRAM, HBA = range(6)


def login_seeds():
    app = startup([("user", "app"), ("database", "db1")])
    s = {
        "any-query": bytes([ANY]) + app + query("SELECT 1") + TERMINATE,
        "any-split-startup": bytes([ANY]) + app[:7] + SPLIT + app[7:] + SPLIT + query("SELECT 1"),
        "ssl-then-startup": bytes([ANY]) + SSL_REQUEST + SPLIT + app,
        "gss-then-ssl": bytes([ANY]) + GSS_REQUEST + SPLIT + SSL_REQUEST + SPLIT + app,
        "cancel": bytes([ANY]) + struct.pack("!IIII", 16, 80877102, 1234, 5678),
        "trust-unknown": bytes([TRUST]) + startup([("user", "nobody"), ("database", "db1")]),
        "plain-ok": bytes([PLAIN]) + startup([("user", "stats"), ("database", "db1")]) + SPLIT +
        msg(b"p", cstr("stats-password")) + SPLIT + query("SELECT 1"),
        "plain-wrong": bytes([PLAIN]) + startup([("user", "stats")]) + SPLIT + msg(b"p", cstr("x")),
        "md5": bytes([MD5]) + startup([("user", "admin"), ("database", "db1")]) + SPLIT +
        msg(b"p", cstr("md5" + "0" * 32)),
        "md5-scram-user": bytes([MD5]) + startup([("user", "app"), ("database", "db1")]) + SPLIT +
        msg(b"p", cstr("SCRAM-SHA-256") + struct.pack("!I", 32) + b"n,,n=,r=abcdefghijklmnopqrstuvwx"),
        "hba": bytes([HBA]) + app,
    }
    first = b"n,,n=,r=abcdefghijklmnopqrstuvwx"
    final = b"c=biws,r=abcdefghijklmnopqrstuvwxYZYZYZYZYZYZYZYZYZYZYZYZ,p=" + b"A" * 43 + b"="
    for user in ("app", "stats", "nobody"):
        s["scram-" + user] = (bytes([SCRAM]) + startup([("user", user), ("database", "db1")]) +
                              SPLIT + msg(b"p", cstr("SCRAM-SHA-256") + struct.pack("!I", len(first)) +
                                          first) + SPLIT + msg(b"p", final))
    s["scram-bad-mech"] = (bytes([SCRAM]) + startup([("user", "app")]) + SPLIT +
                           msg(b"p", cstr("SCRAM-SHA-256-PLUS") + struct.pack("!I", 3) + b"p=x"))
    s["params"] = bytes([ANY | 0x10]) + startup([
        ("user", "app"), ("database", "db1"), ("application_name", "psql"),
        ("client_encoding", "UTF8"), ("DateStyle", "ISO"), ("TimeZone", "UTC"),
        ("IntervalStyle", "iso_8601"), ("search_path", "s1, public"),
        ("standard_conforming_strings", "on"), ("extra_float_digits", "3"),
        ("replication", "false"), ("_pq_.foo", "1")], version=0x00030002) + query("SHOW search_path")
    s["options"] = bytes([ANY | 0x10]) + startup([
        ("user", "app"), ("database", "db1"),
        ("options", "-c search_path=s1,public --DateStyle=ISO -capplication_name=a\\ b -c")])
    s["unsupported-param"] = bytes([ANY]) + startup([("user", "app"), ("bogus", "1")])
    s["old-protocol"] = bytes([ANY]) + startup([("user", "app")], version=0x00020000)
    s["no-user"] = bytes([ANY]) + startup([("database", "db1")])
    s["bad-length"] = bytes([ANY]) + struct.pack("!II", 3, 0x00030000)
    s["fallback-db"] = bytes([ANY | 0x20]) + startup([("user", "x\n\x01y"), ("database", "other\xff")])
    s["forced-user"] = bytes([ANY]) + startup([("user", "app"), ("database", "dbpw")]) + query("SELECT 1")
    console = bytes([ANY]) + startup([("user", "admin"), ("database", "pgbouncer")])
    for cmd in ("SHOW POOLS", "SHOW CLIENTS; SHOW SERVERS", "SHOW CONFIG", "SHOW STATS",
                "SHOW HELP", "SET default_pool_size = 3", "PAUSE db1", "RESUME db1",
                "SHOW DATABASES", "SHOW MEM", "SHOW FDS", "SHOW VERSION", "RELOAD"):
        s["console-" + cmd.split()[0].lower() + "-" + cmd.split()[-1].lower().strip(";")] = (
            console + SPLIT + query(cmd))
    s["console-stats-user"] = (bytes([ANY]) + startup([("user", "stats"), ("database", "sluice")]) +
                               SPLIT + query("SHOW LISTS") + parse("", "SHOW POOLS") + SYNC)
    return s


# fuzz_relay: settings byte = pool mode (0 session, 1 transaction, 2 statement),
# 0x04 prepared statements off, 0x08 pool of one, 0x10 a second client
def relay_seeds():
    ext = parse("s1", "SELECT $1", [23]) + bind("", "s1", [b"1"]) + describe(b"P", "") + execute() + SYNC
    s = {
        "simple": query("SELECT 1"),
        "txn": query("BEGIN") + query("SELECT 1") + query("COMMIT"),
        "set": query("SET application_name = 'x'") + query("SHOW application_name"),
        "extended": ext,
        "extended-twice": ext + SPLIT + ext + close(b"S", "s1") + SYNC,
        "unnamed": parse("", "SELECT 2") + bind("", "") + execute() + SYNC,
        "describe-stmt": parse("s2", "SELECT 1") + describe(b"S", "s2") + FLUSH + SYNC,
        "many-stmts": b"".join(parse("q%d" % i, "SELECT %d" % i) for i in range(8)) + SYNC +
        b"".join(bind("", "q%d" % i) + execute() for i in range(8)) + SYNC,
        "duplicate-name": parse("d", "SELECT 1") + parse("d", "SELECT 2") + SYNC,
        "deallocate": parse("s1", "SELECT 1") + SYNC + query("DEALLOCATE s1") + query("DEALLOCATE ALL") +
        query("DISCARD ALL"),
        "split-body": ext[:3] + SPLIT + ext[3:11] + SPLIT + ext[11:],
        "copy": query("COPY t FROM STDIN") + msg(b"d", b"1\n" * 10) + msg(b"c"),
        "copy-fail": query("COPY t FROM STDIN") + msg(b"d", b"x") + msg(b"f", cstr("abort")),
        "function": msg(b"F", struct.pack("!IHHH", 1234, 0, 0, 0)),
        "terminate": query("SELECT 1") + TERMINATE,
        "bad-length": b"Q" + struct.pack("!I", 2),
        "unknown-type": msg(b"z", b"abc") + query("SELECT 1"),
        "pipeline-no-sync": ext[:-5] + FLUSH,
    }
    out = {}
    for name, body in s.items():
        out[name + "-txn"] = bytes([1 | 0x10]) + body
    for name in ("simple", "txn", "extended", "copy", "set"):
        out[name + "-session"] = bytes([0]) + s[name]
        out[name + "-statement"] = bytes([2 | 0x08]) + s[name]
    out["extended-noprep"] = bytes([1 | 0x04]) + ext
    return out


# fuzz_server: settings byte = bit 0 relay (else login), bits 1-2 the user (stats,
# admin, forced user, connect_query db), 0x08 the client's query is extended,
# pool mode << 4
def param(k, v):
    return msg(b"S", cstr(k) + cstr(v))


def server_seeds():
    ok = msg(b"R", struct.pack("!I", 0))
    welcome = (param("server_version", "15.0") + param("client_encoding", "UTF8") +
               param("in_hot_standby", "off") + param("default_transaction_read_only", "off") +
               msg(b"K", struct.pack("!II", 1, 2)) + msg(b"Z", b"I"))
    sasl = msg(b"R", struct.pack("!I", 10) + cstr("SCRAM-SHA-256") + b"\0")
    cont = msg(b"R", struct.pack("!I", 11) + b"r=" + b"@" * 24 + b"abcdefghijklmnop,s=c2FsdHNhbHQ=,i=4096")
    final = msg(b"R", struct.pack("!I", 12) + b"v=" + b"A" * 43 + b"=")
    err = msg(b"E", b"SFATAL\0C28P01\0Mpassword authentication failed\0\0")
    s = {
        "login-ok": bytes([0]) + ok + welcome,
        "login-split": bytes([0]) + ok + SPLIT + welcome[:9] + SPLIT + welcome[9:],
        "login-cleartext": bytes([0]) + msg(b"R", struct.pack("!I", 3)) + SPLIT + ok + welcome,
        "login-md5": bytes([2]) + msg(b"R", struct.pack("!I", 5) + b"salt") + SPLIT + ok + welcome,
        "login-md5-plain": bytes([0]) + msg(b"R", struct.pack("!I", 5) + b"salt") + SPLIT + ok + welcome,
        "login-scram": bytes([0]) + sasl + SPLIT + cont + SPLIT + final + ok + welcome,
        "login-scram-forced": bytes([4]) + sasl + SPLIT + cont + SPLIT + final + ok + welcome,
        "login-error": bytes([0]) + err,
        "login-notice-v": bytes([0]) + msg(b"v", struct.pack("!II", 0, 0)) +
        msg(b"N", b"SNOTICE\0Mhello\0\0") + ok + welcome,
        "login-unknown-auth": bytes([0]) + msg(b"R", struct.pack("!I", 7)),
        "login-standby": bytes([0]) + ok + param("in_hot_standby", "on") + welcome,
        "login-connect-query": bytes([6]) + ok + welcome + SPLIT + msg(b"C", cstr("SELECT 1")) +
        msg(b"Z", b"I"),
    }
    row = (msg(b"T", struct.pack("!H", 1) + cstr("x") + struct.pack("!IHIhih", 0, 0, 23, 4, -1, 0)) +
           msg(b"D", struct.pack("!H", 1) + struct.pack("!i", 1) + b"1"))
    done = msg(b"C", cstr("SELECT 1")) + msg(b"Z", b"I")
    relay = {
        "relay-simple": row + done,
        "relay-split": row[:3] + SPLIT + row[3:] + SPLIT + done,
        "relay-error": msg(b"E", b"SERROR\0C42601\0Msyntax error\0\0") + msg(b"Z", b"I"),
        "relay-in-txn": msg(b"C", cstr("BEGIN")) + msg(b"Z", b"T"),
        "relay-failed-txn": msg(b"E", b"SERROR\0C22012\0Mdivision\0\0") + msg(b"Z", b"E"),
        "relay-param": param("application_name", "evil") + param("TimeZone", "Mars") + done,
        "relay-notify": msg(b"A", struct.pack("!I", 9) + cstr("chan") + cstr("payload")) + done,
        "relay-set": msg(b"C", cstr("SET")) + msg(b"Z", b"I"),
        "relay-copy-in": msg(b"G", struct.pack("!bH", 0, 0)),
        "relay-copy-out": msg(b"H", struct.pack("!bH", 0, 0)) + msg(b"d", b"1\n") + msg(b"c") + done,
        "relay-empty": msg(b"I") + msg(b"Z", b"I"),
        "relay-deallocate": msg(b"C", cstr("DEALLOCATE ALL")) + msg(b"Z", b"I"),
    }
    ext = {
        "relay-extended": msg(b"1") + msg(b"2") + row[:row.index(b"D")] + msg(b"D", struct.pack("!H", 1) +
                                                                      struct.pack("!i", 1) + b"1") + done,
        "relay-extended-nodata": msg(b"1") + msg(b"2") + msg(b"n") + msg(b"C", cstr("SELECT 0")) + msg(b"Z", b"I"),
        "relay-extended-error": msg(b"E", b"SERROR\0C26000\0Mno such statement\0\0") + msg(b"Z", b"I"),
        "relay-extended-split": msg(b"1") + SPLIT + msg(b"2") + SPLIT + msg(b"n") + done,
    }
    for name, body in relay.items():
        s[name] = bytes([1 | 0x10]) + body
    for name, body in ext.items():
        s[name] = bytes([1 | 0x08 | 0x10]) + body
    s["relay-session"] = bytes([1]) + relay["relay-simple"]
    s["relay-statement-txn"] = bytes([1 | 0x20]) + relay["relay-in-txn"]
    return s


def config_seeds():
    with open(os.path.join(REPO, "etc", "sluice.ini"), "rb") as f:
        example = f.read()
    return {
        "example": example,
        "small": b"[databases]\ndb1 = host=/tmp port=5432 dbname=db1 pool_size=5\n"
                 b"* = host=localhost\n[sluice]\nlisten_port = 6432\nauth_type = md5\n"
                 b"pool_mode = transaction\nquery_timeout = 1.5s\nserver_lifetime = 1h\n",
        "quoted": b"[databases]\n\"my db\" = host=a,b port=1,2 dbname=x password='p a''ss' "
                  b"connect_query='SELECT 1' target_session_attrs=read-write "
                  b"load_balance_hosts=least-busy\n",
        "users": b"[users]\nbob = pool_mode=session max_user_connections=3 query_timeout=250ms\n"
                 b"[pgbouncer]\nadmin_users = a, b\nignore_startup_parameters = extra_float_digits\n",
        "include": b"%include missing.ini\n[sluice]\nlisten_addr = *\n",
        "bad": b"[sluice]\nlisten_port = many\nunknown_key = 1\nclient_tls_sslmode = require\n",
    }


def auth_seeds():
    with open(os.path.join(REPO, "etc", "userlist.txt"), "rb") as f:
        example = f.read()
    return {
        "example": example,
        "simple": b'"a" "b"\n"c" "md5' + b"0" * 32 + b'"\n',
        "quotes": b'"x""y" "p""w" "ignored"\n; comment\n# comment\n\n"e" ""\n',
        "scram": b'"s" "SCRAM-SHA-256$1:c2FsdA==$' + b"A" * 43 + b"=:" + b"B" * 43 + b'="\n',
    }


def pkt_seeds():
    return {
        "headers": bytes([0]) + query("SELECT 1") + msg(b"E", b"SERROR\0C42000\0Mm\0\0") + SYNC,
        "cursor": bytes([1, 0b11100100]) + b"\x01" + struct.pack("!I", 5) + b"abc\0" +
        struct.pack("!I", 2) + b"zz",
        "startup": bytes([2]) + startup([("user", "u"), ("database", "d")])[8:],
        "error": bytes([3]) + b"SFATAL\0VFATAL\0C08P01\0Mbad\0Dmore\0\0",
    }


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "test", "fuzz", "corpus")
    sets = {"login": login_seeds(), "relay": relay_seeds(), "server": server_seeds(),
            "config": config_seeds(), "auth_file": auth_seeds(), "pg_pkt": pkt_seeds()}
    for target, seeds in sets.items():
        d = os.path.join(root, "fuzz_" + target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name.replace(" ", "_")), "wb") as f:
                f.write(data)
    print("seeds written under", root)


if __name__ == "__main__":
    main()
