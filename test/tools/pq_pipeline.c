/*
 * pq_pipeline: a libpq client for the integration tests. It runs a pipeline of
 * parameterised queries (libpq pipeline mode: several Syncs in flight before any
 * result is read) against the conninfo given, checks every result, and exits 0 only
 * if all were right. Usage: pq_pipeline CONNINFO [N]
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(PGconn *conn, const char *what)
{
	fprintf(stderr, "pq_pipeline: %s: %s\n", what, conn ? PQerrorMessage(conn) : "");
	if (conn)
		PQfinish(conn);
	return 1;
}

/* One query per Sync, so the pooler sees n transactions pipelined. */
static int send_all(PGconn *conn, int n)
{
	for (int i = 0; i < n; i++) {
		char v[16];
		const char *params[1] = {v};
		snprintf(v, sizeof(v), "%d", i);
		if (!PQsendQueryParams(conn, "select $1::int * 2", 1, NULL, params, NULL, NULL, 0))
			return -1;
		if (!PQpipelineSync(conn))
			return -1;
	}
	return 0;
}

static int read_all(PGconn *conn, int n)
{
	for (int i = 0; i < n; i++) {
		PGresult *r = PQgetResult(conn);
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK ||
		    atoi(PQgetvalue(r, 0, 0)) != 2 * i) {
			fprintf(stderr, "pq_pipeline: result %d wrong: %s\n", i,
			        r ? PQresStatus(PQresultStatus(r)) : "none");
			PQclear(r);
			return -1;
		}
		PQclear(r);
		r = PQgetResult(conn); /* NULL ends the query's results */
		if (r) {
			PQclear(r);
			return -1;
		}
		r = PQgetResult(conn); /* the Sync */
		if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pq_pipeline CONNINFO [N]\n");
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 50;
	PGconn *conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
		return fail(conn, "connect");
	if (!PQenterPipelineMode(conn))
		return fail(conn, "enter pipeline mode");
	if (send_all(conn, n) < 0)
		return fail(conn, "send");
	if (read_all(conn, n) < 0)
		return fail(conn, "read");
	if (!PQexitPipelineMode(conn))
		return fail(conn, "exit pipeline mode");
	PQfinish(conn);
	printf("pq_pipeline: %d pipelined queries ok\n", n);
	return 0;
}
