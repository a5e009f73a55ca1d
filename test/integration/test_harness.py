"""Self-checks of the harness itself (cheap; catch a broken environment early)."""

import base64

import helpers
import pgproto


def test_postgres_up(pg):
    with pg.connect() as c:
        assert c.execute("select current_setting('server_version_num')::int / 10000").fetchone()[0] == 15


def test_scram_secret_matches_postgres(pg):
    # helpers' SCRAM secret computation must agree with PostgreSQL's.
    stored = pg.authid["srv_scram"]
    iters_salt = stored.split("$")[1]
    iters, salt = iters_salt.split(":")
    mine = pgproto.scram_secret(helpers.SRV_SCRAM_PW, base64.b64decode(salt), int(iters))
    assert mine == stored


def test_md5_secret_matches_postgres(pg):
    assert pg.authid["srv_md5"] == pgproto.md5_password(helpers.SRV_MD5_PW, "srv_md5")


def test_pooler_binary_exists(basedir):
    import os
    assert os.access(helpers.POOLER_BIN, os.X_OK), "%s is not an executable (set SLUICE_BIN)" % helpers.POOLER_BIN
    assert os.access(helpers.RUN_BIN, os.X_OK)
