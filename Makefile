# outbound-milter - build, test, run, install.
#   make            build build/outbound-milter
#   make run        run it in the foreground on conf/outbound-milter.conf
#   make check      build and run every test (starts its own Redis and Postfix)
#   make check-asan unit, integration and milter tests under ASan+UBSan
#   make check-faults  fault, load and bad-input tests (Redis outages, kills, 10,000 messages)
#   make check-debian  the package and the README's deployment steps in a stock
#                   Debian 12 root (debootstrap, cached in /var/cache/outbound-milter-tests)
#   make fuzz       run every fuzz target for FUZZ_SECONDS (default 600) each
#   make lint       cppcheck and clang-tidy over milter/
#   make bench      benchmarks (not tests): ratios against Postfix alone and an accept-all filter
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        the Debian package build/outbound-milter_VERSION_ARCH.deb
#   make golden     regenerate tests/golden/ from outboundctl's output and print the diff
#                   (debhelper in a scratch copy, checked by lintian)

PREFIX   ?= /usr/local
DESTDIR  ?=
SBINDIR  ?= $(PREFIX)/sbin
BINDIR   ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system
DOCDIR   ?= $(PREFIX)/share/doc/outbound-milter

CC       ?= cc
PKGS     := milter hiredis libconfuse libpsl libidn2 libcares
B        ?= build
VERSION  := 0.1.0

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Debian's milter.pc does not list pthread
LIBS     := $(PKG_LIBS) -lpthread

WARN     := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes
HARDEN   := -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS   ?= $(HARDEN) -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -Iinclude -I$(B)/gen $(PKG_CFLAGS) \
	      -DOBM_VERSION=\"$(VERSION)\"
LDFLAGS  ?= -pie -Wl,-z,relro,-z,now

LUA      := $(wildcard milter/lua/*.lua)
PROGS    := main outboundctl
LIB_SRC  := $(filter-out $(PROGS:%=milter/%.c),$(wildcard milter/*.c))
LIB_OBJ  := $(LIB_SRC:milter/%.c=$(B)/obj/%.o) $(B)/obj/lua_scripts.o
BINS     := $(B)/outbound-milter $(if $(wildcard milter/outboundctl.c),$(B)/outboundctl)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
INTG_SRC := $(wildcard tests/integration/test_*.c)
TEST_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%) \
	     $(INTG_SRC:tests/integration/%.c=$(B)/tests/integration/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRC:tests/tools/%.c=$(B)/tests/tools/%)

.PHONY: all deps run check check-asan check-faults check-debian tests install clean bench fuzz lint deb golden
all: $(BINS)

deps:
	@contrib/install-deps

$(B)/gen/lua_scripts.c: $(LUA) milter/lua/embed.sh
	@mkdir -p $(@D)
	milter/lua/embed.sh $@ $(LUA)

$(B)/obj/lua_scripts.o: $(B)/gen/lua_scripts.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/obj/%.o: milter/%.c $(wildcard include/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libobm.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(B)/outbound-milter: $(B)/obj/main.o $(B)/libobm.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/outboundctl: $(B)/obj/outboundctl.o $(B)/libobm.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/unit/%: tests/unit/%.c $(B)/libobm.a $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libobm.a $(LIBS) -lcmocka

$(B)/tests/integration/%: tests/integration/%.c $(B)/libobm.a $(wildcard tests/integration/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libobm.a $(LIBS) -lcmocka

$(B)/tests/tools/%: tests/tools/%.c $(B)/libobm.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libobm.a $(LIBS)

tests: $(BINS) $(TEST_BINS) $(TOOL_BINS)

run: deps all
	contrib/run-dev $(B)

check: deps
	$(MAKE) tests
	tests/run-all $(B)

# Sanitizer build in its own folder; runs the suites that do not need Postfix.
check-asan: deps
	$(MAKE) B=build/asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		tests/run-all build/asan unit integration milter

check-faults: deps
	$(MAKE) tests
	tests/run-all $(B) faults

# tests/debian/*.sh: root, the Debian mirror (apt, debootstrap) and the
# package of `make deb`; OBM_DEBROOT_CACHE moves the cache.
check-debian: deps deb
	tests/run-all $(B) debian

lint: deps
	tests/lint

bench: deps
	contrib/install-deps --bench
	$(MAKE) all
	tests/bench/run $(B) $(BENCH_ARGS)

# Longer fuzzing runs: FUZZ_SECONDS per target (make check runs 30 s each).
FUZZ_SECONDS ?= 600
fuzz: deps
	tests/fuzz/run $(B) $(FUZZ_SECONDS)

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/outbound-milter
	install -m 0755 $(B)/outbound-milter $(DESTDIR)$(SBINDIR)/
	$(if $(wildcard $(B)/outboundctl),install -d $(DESTDIR)$(BINDIR) && install -m 0755 $(B)/outboundctl $(DESTDIR)$(BINDIR)/)
	test -e $(DESTDIR)$(SYSCONFDIR)/outbound-milter/outbound-milter.conf || \
		install -m 0644 conf/outbound-milter.conf $(DESTDIR)$(SYSCONFDIR)/outbound-milter/
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0644 doc/outboundctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 doc/outbound-milter.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 doc/outbound-milter.8 $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples
	sed -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/etc/outbound-milter/|$(SYSCONFDIR)/outbound-milter/|g' \
		contrib/outbound-milter.service >$(DESTDIR)$(UNITDIR)/outbound-milter.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/outbound-milter.service
	install -m 0644 contrib/postfix/main.cf.snippet contrib/postfix/master.cf.snippet \
		contrib/postfix/master.cf.postqueue.snippet \
		contrib/sendmail/outbound-milter.mc doc/REDIS.md $(DESTDIR)$(DOCDIR)/examples/

# The version is VERSION above; debian/changelog must say the same.
# The only way tests/golden/ changes: the outboundctl test writes its tables
# to a folder of the build, they replace the golden files, the diff is shown.
golden: deps
	$(MAKE) tests
	rm -rf $(B)/golden-new
	-OBM_GOLDEN_OUT=$(abspath $(B))/golden-new OBM_TEST_FILTER='^integration/outboundctl$$' \
		tests/run-all $(B) integration
	@test -d $(B)/golden-new || { echo "golden: the test wrote no table" >&2; exit 1; }
	-diff -ru tests/golden $(B)/golden-new
	cp $(B)/golden-new/*.txt tests/golden/

deb:
	@contrib/install-deps --deb
	contrib/build-deb $(B)

clean:
	rm -rf build
