# pgcapture-c: one non-recursive build for src/, tests/, bench/ and examples/; the
# extension is built with PGXS in ext/. Objects go to build/<variant>/ so that
# `make asan` never clobbers the normal build. `V=1` shows commands.

# `make` alone builds everything (the protoc-c rules below come first otherwise).
.DEFAULT_GOAL := all
VARIANT ?= release
B := build/$(VARIANT)
GEN := build/gen

CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif
# C++ only for the shim over RE2 (src/core/saferegex.cc).
ifeq ($(origin CXX),default)
CXX := g++
endif
PKGS := libpq libnats libprotobuf-c grpc gpr openssl re2 libmicrohttpd

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) | sed 's/-I/-isystem /g')
PKG_LIBS := $(shell pkg-config --libs $(PKGS))

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g -fno-strict-aliasing $(WARN) -MMD -MP \
  -Iinclude -Isrc -Itests -isystem $(GEN) $(PKG_CFLAGS)
CXXFLAGS_COMMON := -std=c++17 -D_GNU_SOURCE -g -Wall -Wextra -Werror -MMD -MP -Iinclude -Isrc \
  $(PKG_CFLAGS)
LDLIBS := $(PKG_LIBS) -lstdc++ -lpthread -lm

ifeq ($(VARIANT),asan)
CFLAGS_VARIANT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS_VARIANT := -fsanitize=address,undefined
else
CFLAGS_VARIANT := -O2
LDFLAGS_VARIANT :=
endif

ALL_CFLAGS := $(CFLAGS_COMMON) $(CFLAGS_VARIANT) $(CFLAGS)
ALL_CXXFLAGS := $(CXXFLAGS_COMMON) $(CFLAGS_VARIANT) $(CXXFLAGS)
ALL_LDFLAGS := $(LDFLAGS_VARIANT) $(LDFLAGS)

# --- generated protobuf-c code (never committed) -----------------------------------------
PROTO_INCLUDE := $(shell pkg-config --variable=includedir protobuf 2>/dev/null || echo /usr/include)
GEN_SRCS := $(GEN)/pgcapture.pb-c.c $(GEN)/google/protobuf/struct.pb-c.c \
  $(GEN)/google/protobuf/duration.pb-c.c
# grpc.health.v1, served by the daemons only (not part of libpgcapture).
SERVER_GEN_SRCS := $(GEN)/health.pb-c.c
GEN_HDRS := $(GEN_SRCS:.c=.h) $(SERVER_GEN_SRCS:.c=.h)

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	$(Q)protoc-c --c_out=$(GEN) -Iproto -I$(PROTO_INCLUDE) $<
$(GEN)/google/protobuf/%.pb-c.c $(GEN)/google/protobuf/%.pb-c.h: $(PROTO_INCLUDE)/google/protobuf/%.proto
	@mkdir -p $(GEN)
	$(Q)protoc-c --c_out=$(GEN) -I$(PROTO_INCLUDE) google/protobuf/$*.proto

# The SQL-only install (sql/pgcapture-setup.sql) as a C string for `pgcapture setup`:
# backslashes, quotes and question marks (trigraphs) escaped, one literal per line.
$(GEN)/setup_sql.c: sql/pgcapture-setup.sql
	@mkdir -p $(GEN)
	$(Q){ echo '/* Generated from sql/pgcapture-setup.sql: do not edit. */'; \
	  echo 'const char pgsetup_sql[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo '    "";'; } >$@.tmp && mv $@.tmp $@

# --- the library of everything but the CLI -----------------------------------------------
LIB_SRCS := $(sort $(wildcard src/core/*.c src/codec/*.c src/pg/*.c src/jetstream/*.c \
  src/rpc/*.c src/roles/*/*.c src/client/*.c src/core/*.cc))
CLI_SRCS := $(sort $(wildcard src/cli/*.c))
LIB_OBJS := $(patsubst %.cc,$(B)/%.o,$(LIB_SRCS:%.c=$(B)/%.o)) $(GEN_SRCS:$(GEN)/%.c=$(B)/gen/%.o) \
  $(B)/gen/setup_sql.o $(SERVER_GEN_SRCS:$(GEN)/%.c=$(B)/gen/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(B)/%.o)
LIB := $(B)/libpgcapture-all.a
BIN := $(B)/pgcapture

# --- tests ---------------------------------------------------------------------------------
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:%.c=$(B)/%)
INTEG_SRCS := $(sort $(wildcard tests/integration/test_*.c))
INTEG_BINS := $(INTEG_SRCS:%.c=$(B)/%)
# Every test binary gets the runner, the test certificates and the freezing proxy.
RUNNER_OBJ := $(B)/tests/harness/runner.o $(B)/tests/harness/certs.o $(B)/tests/harness/proxy.o
HARNESS_OBJ := $(patsubst %.c,$(B)/%.o,$(filter-out tests/harness/runner.c tests/harness/certs.c tests/harness/proxy.c,$(wildcard tests/harness/*.c)))
# The chaos run's programs (tests/chaos/chaos_*.c, driven by tests/chaos/run) and their helpers.
CHAOS_PROG_SRCS := $(sort $(wildcard tests/chaos/chaos_*.c))
CHAOS_BINS := $(CHAOS_PROG_SRCS:%.c=$(B)/%)
CHAOS_OBJ := $(patsubst %.c,$(B)/%.o,$(filter-out $(CHAOS_PROG_SRCS),$(wildcard tests/chaos/*.c)))

.PHONY: all ext ext-install tests unit-tests test asan fuzz clean format lint demo bench
all: $(BIN) tests ext

# Every object depends on the generated headers as a real prerequisite: -MMD leaves them
# out of the .d files (they are included as system headers), and a proto change must
# rebuild whatever uses the structs.
$(B)/%.o: %.c $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/%.o: %.cc | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	$(Q)$(CXX) $(ALL_CXXFLAGS) -c -o $@ $<

# Generated code is compiled with the same warnings, minus the one protoc-c trips.
$(B)/gen/%.o: $(GEN)/%.c $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Wno-missing-braces -I$(GEN) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJS) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJS) $(LIB) $(LDLIBS)

$(B)/tests/unit/test_%: $(B)/tests/unit/test_%.o $(RUNNER_OBJ) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/integration/test_%: $(B)/tests/integration/test_%.o $(HARNESS_OBJ) $(RUNNER_OBJ) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/chaos/chaos_%: $(B)/tests/chaos/chaos_%.o $(CHAOS_OBJ) $(HARNESS_OBJ) $(RUNNER_OBJ) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# --- examples: every examples/NAME.c is a program linked against the library ------------------
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(B)/examples/%)
.PHONY: examples
examples: $(EXAMPLE_BINS)
all: examples
$(B)/examples/%: $(B)/examples/%.o $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# --- libpgcapture: the consumer API as an installable shared and static library --------------
# Only what the consumer needs (src/client, status codes, the gRPC client, the generated
# protobuf-c code), compiled -fPIC -fvisibility=hidden: the .so exports only the pgc_
# functions the header marks PGC_EXPORT (tests/unit/test_library checks it). The daemons
# and tests keep linking $(LIB), which has everything.
PGC_VERSION := $(shell sed -n 's/^\#define PGC_VERSION_STRING "\(.*\)"/\1/p' include/pgcapture.h)
PGC_SOVERSION := $(firstword $(subst ., ,$(PGC_VERSION)))
SOLIB_SRCS := $(sort $(wildcard src/client/*.c)) src/codec/logpos.c src/core/status.c src/core/strbuf.c src/core/clock.c \
  src/core/textfile.c src/rpc/client.c src/rpc/bytes.c src/rpc/tls.c
SOLIB_OBJS := $(SOLIB_SRCS:%.c=$(B)/pic/%.o) $(GEN_SRCS:$(GEN)/%.c=$(B)/pic/gen/%.o)
SOLIB_REAL := $(B)/libpgcapture.so.$(PGC_VERSION)
SOLIB := $(B)/libpgcapture.so
STLIB := $(B)/libpgcapture.a
SOLIB_PKGS := libprotobuf-c grpc gpr openssl
.PHONY: lib install uninstall
lib: $(SOLIB) $(STLIB)
all: lib

$(B)/pic/%.o: %.c $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC [so] $<"
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<
$(B)/pic/gen/%.o: $(GEN)/%.c $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC [so] $<"
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -Wno-missing-prototypes \
	  -Wno-missing-braces -I$(GEN) -c -o $@ $<
$(SOLIB_REAL): $(SOLIB_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libpgcapture.so.$(PGC_SOVERSION) \
	  -Wl,--no-undefined -o $@ $^ $(shell pkg-config --libs $(SOLIB_PKGS)) -lpthread -lm
$(SOLIB): $(SOLIB_REAL)
	$(Q)ln -sf $(notdir $<) $(B)/libpgcapture.so.$(PGC_SOVERSION) && ln -sf $(notdir $<) $@
$(STLIB): $(SOLIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# --- libpgcapture-gateway: the gateway embedding API (include/pgcapture/gateway.h) ------------
# The gateway role with what it stands on (core, codec, pg but the SQL install, jetstream,
# rpc), compiled like libpgcapture: it exports only the pgc_ functions of its header.
# Embedders get the status codes from pgcapture.h and pgc_status_describe from libpgcapture
# (pkg-config Requires). The metrics endpoint is the daemons' (an embedder serves its own).
GWLIB_SRCS := $(sort $(filter-out src/pg/pgsetup.c src/core/metrics_http.c,$(wildcard \
  src/core/*.c src/codec/*.c src/pg/*.c src/jetstream/*.c src/rpc/*.c src/roles/gateway/*.c \
  src/core/*.cc)))
GWLIB_OBJS := $(patsubst %.cc,$(B)/pic/%.o,$(GWLIB_SRCS:%.c=$(B)/pic/%.o)) \
  $(GEN_SRCS:$(GEN)/%.c=$(B)/pic/gen/%.o) $(SERVER_GEN_SRCS:$(GEN)/%.c=$(B)/pic/gen/%.o)
GWLIB_REAL := $(B)/libpgcapture-gateway.so.$(PGC_VERSION)
GWLIB := $(B)/libpgcapture-gateway.so
GWLIB_PKGS := libpq libnats libprotobuf-c grpc gpr openssl re2
lib: $(GWLIB)
$(B)/pic/%.o: %.cc | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CXX [so] $<"
	$(Q)$(CXX) $(ALL_CXXFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<
$(GWLIB_REAL): $(GWLIB_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libpgcapture-gateway.so.$(PGC_SOVERSION) \
	  -Wl,--no-undefined -o $@ $^ $(shell pkg-config --libs $(GWLIB_PKGS)) -lstdc++ -lpthread -lm
$(GWLIB): $(GWLIB_REAL)
	$(Q)ln -sf $(notdir $<) $(B)/libpgcapture-gateway.so.$(PGC_SOVERSION) && ln -sf $(notdir $<) $@
$(B)/tests/unit/test_library: | $(SOLIB) $(GWLIB)

# `make install PREFIX=/usr/local` (DESTDIR for staging): the binary, the two libraries,
# their headers and pkg-config files. The extension installs with `make ext-install` (into
# PostgreSQL's own directories).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
  -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(PGC_VERSION)|g'
install: $(BIN) $(SOLIB) $(STLIB) $(GWLIB) pgcapture.pc.in pgcapture-gateway.pc.in
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/pgcapture \
	  $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/pgcapture
	install -m 755 $(SOLIB_REAL) $(GWLIB_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SOLIB_REAL)) $(DESTDIR)$(LIBDIR)/libpgcapture.so.$(PGC_SOVERSION)
	ln -sf libpgcapture.so.$(PGC_SOVERSION) $(DESTDIR)$(LIBDIR)/libpgcapture.so
	ln -sf $(notdir $(GWLIB_REAL)) $(DESTDIR)$(LIBDIR)/libpgcapture-gateway.so.$(PGC_SOVERSION)
	ln -sf libpgcapture-gateway.so.$(PGC_SOVERSION) $(DESTDIR)$(LIBDIR)/libpgcapture-gateway.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 include/pgcapture.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/pgcapture/gateway.h $(DESTDIR)$(INCLUDEDIR)/pgcapture/
	$(PC_SED) -e 's|@REQUIRES@|$(SOLIB_PKGS)|g' pgcapture.pc.in \
	  >$(DESTDIR)$(PKGCONFIGDIR)/pgcapture.pc
	$(PC_SED) -e 's|@REQUIRES@|$(GWLIB_PKGS)|g' pgcapture-gateway.pc.in \
	  >$(DESTDIR)$(PKGCONFIGDIR)/pgcapture-gateway.pc
	$(if $(DESTDIR),,-ldconfig)
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pgcapture $(DESTDIR)$(LIBDIR)/libpgcapture.so \
	  $(DESTDIR)$(LIBDIR)/libpgcapture.so.$(PGC_SOVERSION) \
	  $(DESTDIR)$(LIBDIR)/$(notdir $(SOLIB_REAL)) $(DESTDIR)$(LIBDIR)/libpgcapture.a \
	  $(DESTDIR)$(LIBDIR)/libpgcapture-gateway.so \
	  $(DESTDIR)$(LIBDIR)/libpgcapture-gateway.so.$(PGC_SOVERSION) \
	  $(DESTDIR)$(LIBDIR)/$(notdir $(GWLIB_REAL)) \
	  $(DESTDIR)$(INCLUDEDIR)/pgcapture.h $(DESTDIR)$(INCLUDEDIR)/pgcapture/gateway.h \
	  $(DESTDIR)$(PKGCONFIGDIR)/pgcapture.pc $(DESTDIR)$(PKGCONFIGDIR)/pgcapture-gateway.pc
	-rmdir $(DESTDIR)$(INCLUDEDIR)/pgcapture
	$(if $(DESTDIR),,-ldconfig)

unit-tests: $(UNIT_BINS)
tests: $(UNIT_BINS) $(INTEG_BINS) $(CHAOS_BINS)

# --- the extension (PGXS, built with gcc: clang rejects PG 15's gnu_printf under -Werror) ---
ext:
	$(Q)$(MAKE) -C ext USE_PGXS=1 CC=gcc --no-print-directory
ext-install: ext
	$(Q)$(MAKE) -C ext USE_PGXS=1 CC=gcc --no-print-directory install

# --- entry points ----------------------------------------------------------------------------
# `make test` runs everything (unit, extension regression, integration); T=name runs one.
test: all ext-install
	$(Q)tests/run $(if $(T),--only $(T))

asan:
	$(Q)$(MAKE) --no-print-directory VARIANT=asan unit-tests
	$(Q)tests/run --variant asan --unit-only $(if $(T),--only $(T))

FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIB_SRCS := $(sort $(wildcard src/core/*.c src/codec/*.c)) $(GEN_SRCS)
# libpgcapture's decoders and renderers have no I/O (the consumer itself needs gRPC).
FUZZ_LIB_SRCS += $(filter-out src/client/consumer.c src/client/ack_queue.c,$(sort $(wildcard src/client/*.c)))
# The pure decoders of the roles' inputs: Capture requests, controller requests and their
# queue, the resolver and ACL files, NATS URL lists.
FUZZ_LIB_SRCS += src/roles/gateway/capture_request.c src/roles/gateway/resolver_file.c \
  src/roles/gateway/uri_target.c src/roles/controller/controller_parse.c \
  src/roles/controller/dump_queue.c src/roles/controller/queue_kv.c \
  src/roles/controller/controller_acl.c src/jetstream/jsurl.c
fuzz: $(FUZZ_BINS)
build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined $(WARN) \
	  -Wno-missing-prototypes -Iinclude -Isrc -isystem $(GEN) -I$(GEN) $(PKG_CFLAGS) \
	  -o $@ $(filter %.c,$^) $(LDLIBS)

# Writes the seed corpora of the message-path targets with the project's encoders.
.PHONY: fuzz-seeds
fuzz-seeds: build/fuzz/mkseeds
	$(Q)build/fuzz/mkseeds tests/fuzz/corpus
build/fuzz/mkseeds: tests/fuzz/mkseeds.c $(FUZZ_LIB_SRCS) $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(Q)clang -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -Wno-missing-prototypes -Iinclude -Isrc \
	  -isystem $(GEN) -I$(GEN) $(PKG_CFLAGS) -o $@ $(filter %.c,$^) $(LDLIBS)

# The README's first command: everything built, the extension installed, then the demo.
demo: all ext-install
	$(Q)BIN=$(CURDIR)/$(BIN) scripts/demo

# Debian packages in build/deb/ (see scripts/build-deb), checked by lintian.
.PHONY: deb
deb: all
	$(Q)B=$(B) scripts/build-deb
	$(Q)lintian --fail-on error $(if $(filter 0,$(shell id -u)),--allow-root) build/deb/*.deb

bench: $(BIN)

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --suppress=missingIncludeSystem -Iinclude -Isrc src

clean:
	rm -rf build
	$(Q)$(MAKE) -C ext USE_PGXS=1 --no-print-directory clean

.SECONDARY:

-include $(shell find build -name '*.d' 2>/dev/null)
