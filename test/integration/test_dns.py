"""Host names in [databases] resolved with c-ares in the event loop: the cache
(dns_max_ttl), negative caching (dns_nxdomain_ttl), address changes closing the
servers of the old address, SOA serial polling (dns_zone_check_period), and the
SHOW DNS_HOSTS / DNS_ZONES / LISTS rows.

Most tests run their own DNS server: FakeDNS answers UDP queries on a random
127.53.x.y:53 (c-ares reads the port only as 53 from a resolv.conf, so the
address is what varies), and the pooler gets resolv_conf pointing at it. It needs
root to bind port 53; without it those tests are skipped. Every query it gets is
counted, which is how the tests see whether the pooler asked again or answered
from its cache. "localhost" comes from /etc/hosts through c-ares (its "files"
lookup) and needs no DNS server.

Nothing waits for a ttl to run out: a ttl is made to expire with SET."""

import random
import socket
import struct
import threading
from collections import Counter

import psycopg
import pytest

import admin_util as au
import helpers

ZONE = "sluice.test"
NAME = "db1." + ZONE

sluice_only = au.sluice_only


# ---------------------------------------------------------------------------
# a DNS server and a TCP relay, both on loopback addresses of their own
# ---------------------------------------------------------------------------

def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _parse_question(pkt):
    """(name, qtype, end offset of the question) of a query's first question."""
    pos, labels = 12, []
    while pkt[pos]:
        n = pkt[pos]
        labels.append(pkt[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    pos += 1
    qtype, _qclass = struct.unpack("!HH", pkt[pos:pos + 4])
    return ".".join(labels).lower(), qtype, pos + 4


class FakeDNS:
    """Answers A queries from self.a (name -> list of IPv4), SOA queries from
    self.soa (zone -> serial); AAAA of a known name gets an empty answer, any
    other name NXDOMAIN. self.queries counts (name, type) pairs."""

    A, SOA, AAAA = 1, 6, 28

    def __init__(self, workdir):
        self.a = {}
        self.soa = {}
        self.queries = Counter()
        self.lock = threading.Lock()
        self.sock = None
        for _ in range(20):
            ip = "127.53.%d.%d" % (random.randint(1, 254), random.randint(1, 254))
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((ip, 53))
            except PermissionError:
                s.close()
                pytest.skip("binding port 53 for a test DNS server needs root")
            except OSError:
                s.close()
                continue
            self.sock, self.ip = s, ip
            break
        if self.sock is None:
            pytest.skip("no free loopback address for a test DNS server")
        self.sock.settimeout(0.2)
        self.resolv_conf = helpers.write_file(
            workdir / "resolv.conf", "nameserver %s\noptions timeout:1 attempts:2\n" % self.ip)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def count(self, name, qtype=A):
        with self.lock:
            return self.queries[(name, qtype)]

    def set_a(self, name, *ips):
        with self.lock:
            self.a[name] = list(ips)

    def set_soa(self, zone, serial):
        with self.lock:
            self.soa[zone] = serial

    def _answer(self, pkt):
        qid, flags = struct.unpack("!HH", pkt[:4])
        name, qtype, qend = _parse_question(pkt)
        with self.lock:
            self.queries[(name, qtype)] += 1
            ips = self.a.get(name)
            serial = self.soa.get(name)
        rrs = []
        if qtype == self.A and ips:
            for ip in ips:
                rrs.append(struct.pack("!HHHIH", 0xC00C, self.A, 1, 1, 4) + socket.inet_aton(ip))
        elif qtype == self.SOA and serial is not None:
            rdata = (_encode_name("ns." + name) + _encode_name("admin." + name)
                     + struct.pack("!IIIII", serial, 60, 60, 600, 1))
            rrs.append(struct.pack("!HHHIH", 0xC00C, self.SOA, 1, 1, len(rdata)) + rdata)
        known = ips is not None or serial is not None
        rcode = 0 if known else 3  # NXDOMAIN
        hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode,
                          1, len(rrs), 0, 0)
        return hdr + pkt[12:qend] + b"".join(rrs)

    def _serve(self):
        while not self.stop.is_set():
            try:
                pkt, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(pkt), peer)
            except (IndexError, struct.error, OSError):
                pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class Relay:
    """TCP relay from ip:port to 127.0.0.1:port, so PostgreSQL (listening on
    127.0.0.1 only) is reachable on a second address."""

    def __init__(self, ip, port):
        self.ip, self.port = ip, port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((ip, port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.stop = threading.Event()
        self.socks = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                c.close()
                continue
            s.settimeout(None)
            self.socks += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.lsock.close()
        for s in self.socks:
            # shutdown first: a close() alone neither wakes a pump blocked in recv()
            # nor ends the connection while that recv() holds the socket open
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def fake_dns(workdir):
    d = FakeDNS(workdir)
    yield d
    d.close()


def relay_ip(dns_ip):
    """Another loopback address, next to the DNS server's."""
    a, b, c, d = dns_ip.split(".")
    return "127.54.%s.%s" % (c, d)


def dns_pooler(make_pooler, fake_dns, databases, settings=None):
    s = {"resolv_conf": str(fake_dns.resolv_conf), "dns_max_ttl": 3600,
         "dns_nxdomain_ttl": 3600, "query_wait_timeout": 30}
    s.update(settings or {})
    return au.make_admin_pooler(make_pooler, databases=databases, settings=s)


def host_row(adm, name):
    return au.row_for(adm, "SHOW DNS_HOSTS", hostname=name)


def host_ips(adm, name):
    """The addresses SHOW DNS_HOSTS lists for name ("ip:port" or "[ip]:port",
    comma separated, as PgBouncer writes them), without the ports."""
    text = host_row(adm, name)["addrs"] or ""
    return [a.rsplit(":", 1)[0].strip("[]") for a in text.split(",") if a]


def select_one(p, dbname="testdb"):
    with au.client(p, dbname=dbname) as c:
        return c.execute("select 1").fetchone()[0]


def server_addrs(adm, database):
    return [r["addr"] for r in au.rows_for(adm, "SHOW SERVERS", database=database)]


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------

def test_localhost_resolved_through_cares(make_pooler, pg):
    """host=localhost: the name is looked up by c-ares (from /etc/hosts) and
    cached; SHOW DNS_HOSTS lists it with its address and the time left."""
    p = au.make_admin_pooler(
        make_pooler, databases={"testdb": "host=localhost port=%d dbname=testdb" % pg.port},
        settings={"dns_max_ttl": 3600})
    assert select_one(p) == 1
    with au.console(p) as adm:
        cols, rows = au.show(adm, "DNS_HOSTS")
        assert cols[:3] == ["hostname", "ttl", "addrs"]
        r = host_row(adm, "localhost")
        assert r is not None, rows
        assert "127.0.0.1" in host_ips(adm, "localhost")
        assert 0 < au.as_int(r["ttl"]) <= 3600
        lists = {x["list"]: au.as_int(x["items"]) for x in au.show(adm, "LISTS")[1]}
        assert lists["dns_names"] >= 1
        assert server_addrs(adm, "testdb") == ["127.0.0.1"]


@sluice_only("the client's error text and resolv_conf handling are sluice's")
def test_unknown_host_fails_at_once_and_is_cached(make_pooler, pg, fake_dns):
    name = "nonexistent." + ZONE
    entry = "host=%s port=%d dbname=testdb" % (name, pg.port)
    # two databases on the same name: the second asks the cache, not the pool's
    # own memory of its last failure (server_login_retry)
    p = dns_pooler(make_pooler, fake_dns,
                   {"testdb": pg.dbentry("testdb"), "nohost1": entry, "nohost2": entry})
    for db in ("nohost1", "nohost2"):
        with pytest.raises(psycopg.OperationalError) as ei:
            au.client(p, dbname=db)
        msg = helpers.error_text(ei.value)
        assert "could not resolve host name" in msg and name in msg, msg
        assert "not found" in msg, msg
    # the second database got the cached failure: one lookup in all
    assert fake_dns.count(name) == 1
    with au.console(p) as adm:
        r = host_row(adm, name)
        assert r is not None
        assert host_ips(adm, name) == []
        assert 0 < au.as_int(r["ttl"]) <= 3600
        # once dns_nxdomain_ttl has passed the name is asked for again
        assert au.command(adm, "SET dns_nxdomain_ttl = 0") == "SET"
        assert host_row(adm, name)["ttl"] in (0, "0")

        def try_again():
            with pytest.raises(psycopg.OperationalError):
                au.client(p, dbname="nohost1")
            return fake_dns.count(name) >= 2
        # (within server_login_retry the pool answers with its last error itself)
        helpers.wait_for(try_again, 20, interval=0.2, what="a second lookup")
    # the other database was never affected
    assert select_one(p) == 1


@sluice_only("lookup counts through sluice's resolv_conf handling")
def test_answer_cached_until_ttl_then_refreshed(make_pooler, pg, fake_dns):
    fake_dns.set_a(NAME, "127.0.0.1")
    p = dns_pooler(make_pooler, fake_dns,
                   {"dnsdb": "host=%s port=%d dbname=testdb" % (NAME, pg.port)})
    # session mode: each client keeps its server, so each one here opens a new one
    held = []
    try:
        held.append(au.client(p, dbname="dnsdb"))
        assert held[-1].execute("select 1").fetchone()[0] == 1
        assert fake_dns.count(NAME) == 1
        # a second server for the same name: the cached answer, no query
        held.append(au.client(p, dbname="dnsdb"))
        assert held[-1].execute("select 1").fetchone()[0] == 1
        assert fake_dns.count(NAME) == 1
        with au.console(p) as adm:
            assert host_ips(adm, NAME) == ["127.0.0.1"]
            assert au.command(adm, "SET dns_max_ttl = 0") == "SET"
            assert host_row(adm, NAME)["ttl"] in (0, "0")
            # expired: the next server connect asks again (and uses the last
            # answer meanwhile, so it does not wait)
            held.append(au.client(p, dbname="dnsdb"))
            assert held[-1].execute("select 1").fetchone()[0] == 1
            helpers.wait_for(lambda: fake_dns.count(NAME) == 2, 10, what="a second lookup")
            assert len(server_addrs(adm, "dnsdb")) == 3
    finally:
        for c in held:
            c.close()


@sluice_only("PgBouncer 1.18 marks the servers of a vanished address but keeps serving the old "
             "answer differently; the log line and close reason are sluice's")
@pytest.mark.hard_timeout(90)
def test_address_change_closes_servers_of_old_address(make_pooler, pg, fake_dns):
    new_ip = relay_ip(fake_dns.ip)
    try:
        relay = Relay(new_ip, pg.port)
    except OSError as e:
        pytest.skip("cannot listen on %s: %s" % (new_ip, e))
    try:
        fake_dns.set_a(NAME, "127.0.0.1")
        entry = "host=%s port=%d dbname=testdb" % (NAME, pg.port)
        # dns_max_ttl=0: every new server connection refreshes the answer
        p = dns_pooler(make_pooler, fake_dns, {"dnsa": entry, "dnsb": entry},
                       settings={"dns_max_ttl": 0})
        assert select_one(p, "dnsb") == 1  # leaves an idle server in dnsb's pool
        holder = au.client(p, dbname="dnsa")
        with au.console(p) as adm:
            try:
                assert holder.execute("select 1").fetchone()[0] == 1
                assert server_addrs(adm, "dnsb") == ["127.0.0.1"]
                assert server_addrs(adm, "dnsa") == ["127.0.0.1"]
                fake_dns.set_a(NAME, new_ip)
                # a new server for dnsa refreshes the answer; the change closes the
                # idle server of dnsb and marks the busy one of dnsa
                asked = fake_dns.count(NAME)
                c2 = au.client(p, dbname="dnsa")
                try:
                    assert c2.execute("select 1").fetchone()[0] == 1
                    helpers.wait_for(lambda: fake_dns.count(NAME) > asked, 10,
                                     what="the refresh")
                    helpers.wait_for(lambda: server_addrs(adm, "dnsb") == [], 10,
                                     what="dnsb's idle server to close")
                    assert host_ips(adm, NAME) == [new_ip]
                    marked = [au.as_int(x["close_needed"])
                              for x in au.rows_for(adm, "SHOW SERVERS", database="dnsa")
                              if x["addr"] == "127.0.0.1"]
                    assert marked and all(marked), au.show(adm, "SHOW SERVERS")[1]
                finally:
                    c2.close()
            finally:
                holder.close()
            # released, the marked servers close instead of going idle
            helpers.wait_for(lambda: "127.0.0.1" not in server_addrs(adm, "dnsa"), 10,
                             what="dnsa's old servers to close")
            # new servers go to the new address
            assert select_one(p, "dnsa") == 1
            assert server_addrs(adm, "dnsa") == [new_ip]
        assert "now resolves to %s (was 127.0.0.1)" % new_ip in p.log()
        assert "host address changed" in p.log()
    finally:
        relay.close()


@sluice_only("dns_zone_check_period with sluice's resolv_conf handling")
@pytest.mark.hard_timeout(60)
def test_zone_serial_change_looks_names_up_again(make_pooler, pg, fake_dns):
    fake_dns.set_a(NAME, "127.0.0.1")
    fake_dns.set_soa(ZONE, 1)
    p = dns_pooler(make_pooler, fake_dns,
                   {"dnsdb": "host=%s port=%d dbname=testdb" % (NAME, pg.port)},
                   settings={"dns_zone_check_period": 0.2})
    assert select_one(p, "dnsdb") == 1
    with au.console(p) as adm:
        zone = lambda: au.row_for(adm, "SHOW DNS_ZONES", zonename=ZONE)  # noqa: E731
        helpers.wait_for(lambda: zone() and au.as_int(zone()["serial"]) == 1, 10,
                         what="the zone's serial")
        assert au.as_int(zone()["count"]) == 1
        assert fake_dns.count(NAME) == 1  # dns_max_ttl is an hour: no refresh so far
        fake_dns.set_a(NAME, "127.0.0.2")
        fake_dns.set_soa(ZONE, 2)
        helpers.wait_for(lambda: au.as_int(zone()["serial"]) == 2, 10, what="serial 2")
        helpers.wait_for(lambda: host_ips(adm, NAME) == ["127.0.0.2"], 10,
                         what="the name looked up again")
        assert fake_dns.count(NAME) == 2
        # the idle server of the old address is gone
        helpers.wait_for(lambda: server_addrs(adm, "dnsdb") == [], 10,
                         what="the old server to close")


@sluice_only("sluice's resolv_conf check at start")
def test_missing_resolv_conf_refuses_to_start(make_pooler, workdir):
    p = make_pooler(start=False, settings={"resolv_conf": str(workdir / "no-such-resolv.conf")})
    p.write_files()
    r = helpers.run_pooler_cmd([str(p.ini)], timeout=30)
    assert r.returncode != 0
    assert "resolv_conf" in r.stdout and "No such file" in r.stdout, r.stdout


@sluice_only("host lists with load_balance_hosts are sluice's")
def test_host_list_waits_for_the_name_it_uses(make_pooler, pg, fake_dns):
    """host=a,b where a does not resolve: the pool goes on to b, waits for b's
    answer (b is not the first name of the list) and connects there."""
    bad, good = "gone." + ZONE, NAME
    fake_dns.set_a(good, "127.0.0.1")
    p = dns_pooler(make_pooler, fake_dns,
                   {"dnsdb": "host=%s,%s port=%d dbname=testdb load_balance_hosts=disable"
                             % (bad, good, pg.port)})
    assert select_one(p, "dnsdb") == 1
    assert fake_dns.count(bad) == 1 and fake_dns.count(good) == 1
    with au.console(p) as adm:
        assert server_addrs(adm, "dnsdb") == ["127.0.0.1"]
        assert host_ips(adm, bad) == []
        assert host_ips(adm, good) == ["127.0.0.1"]
