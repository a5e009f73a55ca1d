# sluice build. ./configure (from ./autogen.sh) writes config.mk with the flags of the
# dependencies found through pkg-config; everything else is here.

ifeq ($(wildcard config.mk),)
$(error config.mk is missing: run ./autogen.sh && ./configure first)
endif
include config.mk

WARN = -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
       -Wno-unused-parameter -Wformat=2 $(WERROR)
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -g -O2 $(WARN) $(SAN_FLAGS) $(CFLAGS_USER) \
       $(OPENSSL_CFLAGS) $(CARES_CFLAGS) $(INIH_CFLAGS) -Isrc \
       -DSLUICE_VERSION='"$(PACKAGE_VERSION)"'
LDFLAGS_ALL = $(SAN_FLAGS) $(LDFLAGS_USER)
LIBS_ALL = $(OPENSSL_LIBS) $(CARES_LIBS) $(INIH_LIBS)

SRCS := $(sort $(wildcard src/*.c))
LIB_OBJS := $(patsubst %.c,%.o,$(filter-out src/main.c,$(SRCS)))
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(patsubst %.c,%,$(UNIT_SRCS))
TOOL_SRCS := $(sort $(wildcard test/tools/*.c))
TOOL_BINS := $(patsubst %.c,%,$(TOOL_SRCS))
PYTEST ?= /usr/bin/python3 -m pytest

.PHONY: all check check-core-sqlstate check-unit check-integration integration-deps fuzz-isolation bench bench-transaction bench-idle format format-check clean distclean

all: src/sluice

src/libsluice.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

src/sluice: src/main.o src/libsluice.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

src/%.o: src/%.c
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

test/unit/test_%: test/unit/test_%.c src/libsluice.a
	$(CC) $(CFLAGS_ALL) $(CHECK_CFLAGS) -MMD -MP -o $@ $< src/libsluice.a $(LIBS_ALL) $(CHECK_LIBS) $(LDFLAGS_ALL)

check: check-core-sqlstate check-unit check-integration

# the core names its errors by kind (src/errors.h): no SQLSTATE outside the pg_ files
check-core-sqlstate:
	@sh contrib/check-core-sqlstate.sh src

check-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; CK_FORK=yes ./$$t; done

# test clients built on libpq (never linked into sluice itself)
test/tools/%: test/tools/%.c
	$(CC) -std=c11 -D_GNU_SOURCE -g -O2 $(WARN) $(SAN_FLAGS) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS) $(LDFLAGS_ALL)

# what the integration tests run (contrib/test.sh builds it, then calls pytest itself)
integration-deps: src/sluice $(TOOL_BINS)

check-integration: integration-deps
	$(PYTEST) -q test/integration $(PYTEST_ARGS)

# the isolation fuzz test of the integration suite, run longer (60 s in check-integration)
FUZZ_ISOLATION_SECONDS ?= 600
fuzz-isolation: src/sluice
	SLUICE_ISOFUZZ_SECONDS=$(FUZZ_ISOLATION_SECONDS) $(PYTEST) -q test/integration/test_isolation_fuzz.py $(PYTEST_ARGS)

bench: src/sluice
	bench/run.sh $(BENCH_ARGS)

# transaction mode, pgbench -M simple/extended/prepared x 1/10/100 clients, pool 20
bench-transaction: src/sluice
	BENCH_PRESET=transaction bench/run.sh $(BENCH_ARGS)

# resident memory per idle client (10,000 clients by default), sluice and PgBouncer
bench-idle: src/sluice
	bench/idle_clients.sh $(BENCH_ARGS)

# libFuzzer targets (test/fuzz/README.md): src/*.c built again with clang under ASan and
# UBSan in build-fuzz/, linked with each target and the harness. `make fuzz` runs every
# target for FUZZ_SECONDS on a scratch copy of its seed corpus and fails on any crash,
# leak, timeout or UBSan report.
.PHONY: fuzz-build fuzz fuzz-seeds
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR = build-fuzz
FUZZ_TARGETS = login relay server config auth_file pg_pkt
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
       $(OPENSSL_CFLAGS) $(CARES_CFLAGS) $(INIH_CFLAGS) -Isrc -Itest/fuzz \
       -DSLUICE_VERSION='"$(PACKAGE_VERSION)"'
FUZZ_OBJS = $(patsubst src/%.c,$(FUZZ_DIR)/src/%.o,$(filter-out src/main.c,$(SRCS)))
FUZZ_BINS = $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))
# the longest input each target gets: room for a few messages, not for megabytes
FUZZ_MAXLEN_login = 4096
FUZZ_MAXLEN_relay = 8192
FUZZ_MAXLEN_server = 8192
FUZZ_MAXLEN_config = 4096
FUZZ_MAXLEN_auth_file = 4096
FUZZ_MAXLEN_pg_pkt = 2048

$(FUZZ_DIR)/src/%.o: src/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/libsluice.a: $(FUZZ_OBJS)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/harness.o: test/fuzz/harness.c test/fuzz/harness.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_DIR)/harness.o $(FUZZ_DIR)/libsluice.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_DIR)/harness.o \
	    $(FUZZ_DIR)/libsluice.a $(LIBS_ALL)

fuzz-build: $(FUZZ_BINS)

# the seed corpora are committed; this regenerates them from their description
fuzz-seeds:
	/usr/bin/python3 test/fuzz/make_seeds.py test/fuzz/corpus

fuzz: fuzz-build
	@rc=0; $(foreach t,$(FUZZ_TARGETS),test/fuzz/run.sh $(FUZZ_DIR) $(t) $(FUZZ_SECONDS) \
	    $(FUZZ_MAXLEN_$(t)) || rc=1;) exit $$rc

FORMAT_FILES = $(wildcard src/*.c src/*.h test/unit/*.c test/tools/*.c test/fuzz/*.c test/fuzz/*.h)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -f src/*.o src/*.d src/*.a src/sluice $(UNIT_BINS) test/unit/*.d $(TOOL_BINS)
	rm -rf $(FUZZ_DIR)
distclean: clean
	rm -rf config.mk config.log config.status configure autom4te.cache aclocal.m4

-include $(wildcard src/*.d test/unit/*.d $(FUZZ_DIR)/*.d $(FUZZ_DIR)/src/*.d)
