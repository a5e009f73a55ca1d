"""A small raw PostgreSQL wire-protocol (v3) client for tests.

Real clients (libpq via psql/psycopg) hide details the tests need to see:
SQLSTATE of a login failure, the exact ParameterStatus messages, protocol
negotiation, malformed packets.  Everything here has a socket timeout, so a
broken pooler makes a test fail instead of hang.
"""

import base64
import hashlib
import hmac
import os
import socket
import struct

PROTO_3_0 = 3 << 16  # 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

DEFAULT_TIMEOUT = 15.0


class ProtocolError(Exception):
    pass


class ServerError(Exception):
    """An ErrorResponse. fields: dict keyed by the one-letter field code."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(
            "%s %s: %s" % (fields.get("S", "?"), fields.get("C", "?"), fields.get("M", "?"))
        )

    @property
    def sqlstate(self):
        return self.fields.get("C")

    @property
    def message(self):
        return self.fields.get("M", "")

    @property
    def severity(self):
        return self.fields.get("V") or self.fields.get("S")

    def all_text(self):
        return "\n".join(str(v) for v in self.fields.values())


def startup_packet(params, version=PROTO_3_0):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def parse_error_fields(payload):
    fields = {}
    for part in payload.split(b"\0"):
        if not part:
            continue
        fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def md5_password(password, user, salt=None):
    """md5 secret as stored by PostgreSQL/userlist ('md5' + md5(password+user)),
    or, with salt, the md5 auth response sent on the wire."""
    inner = hashlib.md5((password + user).encode()).hexdigest()
    if salt is None:
        return "md5" + inner
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


def scram_secret(password, salt=None, iterations=4096):
    """SCRAM-SHA-256 secret in PostgreSQL's pg_authid / userlist.txt format."""
    if salt is None:
        salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


class RawConn:
    """One connection speaking the v3 protocol by hand."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout
        if str(host).startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(os.path.join(str(host), ".s.PGSQL.%d" % port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.params = {}
        self.backend_key = None
        self.negotiate = None  # (newest_minor, [unrecognised options]) if 'v' seen
        self.notices = []
        self.auth_codes = []  # authentication request codes seen (0 ok, 3 clear, 5 md5, 10 SASL)

    # -- plumbing -------------------------------------------------------
    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by peer")
            self.buf += chunk

    def recv_byte(self):
        self._fill(1)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def recv_msg(self):
        """Return (type, payload). Raises EOFError on close, socket.timeout."""
        self._fill(5)
        mtype = self.buf[:1].decode("latin1")
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 64 * 1024 * 1024:
            raise ProtocolError("bad message length %d for type %r" % (length, mtype))
        self._fill(1 + length)
        payload = self.buf[5 : 1 + length]
        self.buf = self.buf[1 + length :]
        return mtype, payload

    def send_msg(self, mtype, payload=b""):
        self.send(mtype.encode() + struct.pack("!I", len(payload) + 4) + payload)

    def wait_closed(self, timeout=None):
        """Read until EOF (or reset); return the messages seen before it.
        Raises socket.timeout if the peer keeps the connection open."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        msgs = []
        try:
            while True:
                msgs.append(self.recv_msg())
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return msgs
        except ProtocolError:
            # not a v3 message stream (e.g. a single 'N' byte); drain to EOF
            while True:
                try:
                    if not self.sock.recv(65536):
                        return msgs
                except (ConnectionResetError, BrokenPipeError):
                    return msgs

    # -- login ----------------------------------------------------------
    def startup(self, user=None, database=None, password=None, params=None, version=PROTO_3_0):
        """Send a StartupMessage and run the login to ReadyForQuery.
        Raises ServerError on an ErrorResponse."""
        p = {}
        if user is not None:
            p["user"] = user
        if database is not None:
            p["database"] = database
        if params:
            p.update(params)
        self.send(startup_packet(p, version))
        self._login(user, password)
        return self

    def _login(self, user, password):
        scram = None
        while True:
            mtype, payload = self.recv_msg()
            if mtype == "E":
                raise ServerError(parse_error_fields(payload))
            if mtype == "v":
                (newest,) = struct.unpack("!I", payload[:4])
                (n,) = struct.unpack("!I", payload[4:8])
                opts = [o.decode() for o in payload[8:].split(b"\0")[:n]]
                self.negotiate = (newest, opts)
            elif mtype == "R":
                (code,) = struct.unpack("!I", payload[:4])
                self.auth_codes.append(code)
                if code == 0:
                    pass
                elif code == 3:
                    if password is None:
                        raise ProtocolError("server asked for a password; none given")
                    self.send_msg("p", password.encode() + b"\0")
                elif code == 5:
                    if password is None:
                        raise ProtocolError("server asked for a password; none given")
                    self.send_msg("p", md5_password(password, user, payload[4:8]).encode() + b"\0")
                elif code == 10:
                    mechs = payload[4:].split(b"\0")
                    if b"SCRAM-SHA-256" not in mechs:
                        raise ProtocolError("no SCRAM-SHA-256 in %r" % mechs)
                    if password is None:
                        raise ProtocolError("server asked for a password; none given")
                    scram = _ScramClient(password)
                    first = scram.client_first().encode()
                    self.send_msg(
                        "p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first
                    )
                elif code == 11:
                    self.send_msg("p", scram.client_final(payload[4:].decode()).encode())
                elif code == 12:
                    scram.verify_server_final(payload[4:].decode())
                else:
                    raise ProtocolError("unsupported auth request %d" % code)
            elif mtype == "S":
                k, v = payload.split(b"\0")[:2]
                self.params[k.decode()] = v.decode("utf-8", "replace")
            elif mtype == "K":
                self.backend_key = struct.unpack("!II", payload[:8])
            elif mtype == "N":
                self.notices.append(parse_error_fields(payload))
            elif mtype == "Z":
                return
            else:
                raise ProtocolError("unexpected message %r during login" % mtype)

    # -- queries --------------------------------------------------------
    def query(self, sql):
        """Simple query; returns list of rows (tuples of str/None) of the last
        result. Raises ServerError (after ReadyForQuery) on error."""
        self.send_msg("Q", sql.encode() + b"\0")
        rows, err = [], None
        while True:
            mtype, payload = self.recv_msg()
            if mtype == "T":
                rows = []
            elif mtype == "D":
                (n,) = struct.unpack("!H", payload[:2])
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", payload[pos : pos + 4])
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(payload[pos : pos + ln].decode("utf-8", "replace"))
                        pos += ln
                rows.append(tuple(row))
            elif mtype == "E":
                err = ServerError(parse_error_fields(payload))
            elif mtype == "S":
                k, v = payload.split(b"\0")[:2]
                self.params[k.decode()] = v.decode("utf-8", "replace")
            elif mtype == "N":
                self.notices.append(parse_error_fields(payload))
            elif mtype == "Z":
                if err:
                    raise err
                return rows

    def scalar(self, sql):
        return self.query(sql)[0][0]

    def terminate(self):
        try:
            self.send_msg("X")
        except OSError:
            pass
        self.close()


class _ScramClient:
    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = "n=,r=" + self.nonce

    def client_first(self):
        return "n,," + self.first_bare

    def client_final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ProtocolError("server nonce does not extend client nonce")
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        auth_msg = ",".join([self.first_bare, server_first, without_proof]).encode()
        sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected_server_sig = base64.b64encode(
            hmac.new(server_key, auth_msg, hashlib.sha256).digest()
        ).decode()
        return without_proof + ",p=" + base64.b64encode(proof).decode()

    def verify_server_final(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.split(","))
        if attrs.get("v") != self.expected_server_sig:
            raise ProtocolError("bad SCRAM server signature")


def cancel_request(host, port, pid, key, timeout=DEFAULT_TIMEOUT):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, key))
        try:
            s.recv(1)
        except OSError:
            pass
    finally:
        s.close()
