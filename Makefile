# connguard build. `make` builds build/libconnguard.so; `make check` runs every test.
# Sources are globbed (shim/core, shim/hooks, tools, tests/*) so new files need no edits here.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
PYTHON  ?= /usr/bin/python3

WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wformat=2 -Wstrict-prototypes
CFLAGS  ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Ishim -Ishim/core
# initial-exec TLS: the shim is loaded at start-up, and its few thread-locals are read on every hook.
# Start-up (docs/design.md, "Start-up"): every page a process first writes costs it a page fault,
# ~25 us on these VMs, and so does each extra mapping. -fdata-sections + --sort-section=alignment
# put the configuration first in .data and the variables start-up writes (startup.h) after it,
# on the page the loader writes anyway; the big tables go first in .bss, never touched before the
# first socket. -z noseparate-code: two mappings instead of four (text and read-only data share
# one). -z norelro: relocated data and .data on one written page instead of two, and no mprotect;
# what RELRO would guard here is a handful of pointers, next to the writable table of the real
# functions and the lazily bound PLT entries that stay writable under RELRO anyway.
# -nostartfiles: no crtbegin/crtend, whose exit-time destructor writes a flag at the very end of
# .bss (a page fault at every exit); constructors still run from .init_array, and hooks/init.c
# defines the __dso_handle that crtbegin would.
SHIM_CFLAGS := $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden -ftls-model=initial-exec -pthread -fdata-sections $(EXTRA_CFLAGS)
# The shim links nothing but libc/libdl, and libgcc's unwinder statically (-static-libgcc; its names
# kept local with --exclude-libs, so a program's own C++ code binds to libgcc_s as without the shim):
# no library loaded at the first stack capture. libssl is resolved at run time.
SHIM_LDFLAGS := -shared -Wl,-z,defs -Wl,--no-undefined -Wl,-z,nodelete -Wl,--sort-section=alignment \
                -Wl,-z,noseparate-code -Wl,-z,norelro -nostartfiles $(EXTRA_LDFLAGS)
SHIM_LIBS := -ldl -pthread -static-libgcc -Wl,--exclude-libs,ALL

CORE_SRC  := $(sort $(wildcard shim/core/*.c))
HOOK_SRC  := $(sort $(wildcard shim/hooks/*.c))
CORE_OBJ  := $(patsubst shim/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
HOOK_OBJ  := $(patsubst shim/%.c,$(BUILD)/obj/%.o,$(HOOK_SRC))
HDRS      := $(wildcard shim/*.h shim/core/*.h)

TOOL_SRC  := $(sort $(wildcard tools/*.c))
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
CLIENT_SRC := $(sort $(wildcard tests/clients/*.c))
CLIENT_BIN := $(patsubst tests/clients/%.c,$(BUILD)/clients/%,$(CLIENT_SRC))

.PHONY: all deps check unit integration demo bench install uninstall clean check-asan check-tsan fuzz

all: deps $(BUILD)/libconnguard.so $(BUILD)/libcgcore.a $(if $(TOOL_SRC),$(BUILD)/connguard)

# Installs missing Debian packages when root; otherwise names them in one error.
deps:
	@scripts/deps.sh build

$(BUILD)/obj/%.o: shim/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(SHIM_CFLAGS) -c -o $@ $<

$(BUILD)/libconnguard.so: $(CORE_OBJ) $(HOOK_OBJ)
	$(CC) $(SHIM_CFLAGS) $(SHIM_LDFLAGS) -Wl,-soname,libconnguard.so -o $@ $^ $(SHIM_LIBS)

# The core as a static archive that unit tests and fuzzers link directly (no hooks inside).
$(BUILD)/libcgcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The tool links the core's parsers (config, patterns, errno names) so that it accepts and
# refuses exactly what the shim does.
$(BUILD)/connguard: $(TOOL_SRC) $(wildcard tools/*.h) $(HDRS) $(BUILD)/libcgcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itools $(CFLAGS) $(WARN) -o $@ $(TOOL_SRC) $(BUILD)/libcgcore.a

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcgcore.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-shadow -pthread $(EXTRA_CFLAGS) -o $@ $< $(BUILD)/libcgcore.a $$(pkg-config --cflags --libs check) -ldl $(EXTRA_LDFLAGS)

$(BUILD)/clients/%: tests/clients/%.c $(HDRS) $(wildcard tests/clients/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -pthread -o $@ $< -ldl $$(case $* in tls*) pkg-config --libs openssl;; esac)

# Ends with one line totalling unit and integration results (scripts/check_total.sh).
check: all
	@scripts/deps.sh test
	@scripts/check_total.sh $(BUILD)/check.log $(MAKE) -k --no-print-directory unit integration

# A unit test binary that dies before Check's summary line gets a line of its own, so that
# make check's total counts it. What else a passing binary prints (its tests' own lines, the
# warnings they provoke on purpose) is not shown: all of it when it fails, or CG_TEST_OUTPUT=1.
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do CK_FORK=yes $$t >$$t.out 2>&1; rc=$$?; \
	  if [ $$rc != 0 ] || [ "$$CG_TEST_OUTPUT" = 1 ]; then cat $$t.out; \
	  else grep -E '^(Running suite|[0-9]+%: Checks: )' $$t.out; fi; \
	  if [ $$rc != 0 ] && ! grep -q '^[0-9]*%: Checks: ' $$t.out; then \
	    echo "unit: $$t exited with status $$rc before its summary"; fi; \
	  rm -f $$t.out; [ $$rc = 0 ] || fail=1; done; exit $$fail

integration: all $(CLIENT_BIN)
	@BUILD=$(BUILD) $(PYTHON) tests/integration/run.py $(TESTS)

demo: all
	@scripts/deps.sh demo
	@BUILD=$(BUILD) scripts/demo.sh

# bench: mk/bench.mk

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 0755 $(BUILD)/libconnguard.so $(DESTDIR)$(PREFIX)/lib/libconnguard.so
	if [ -f $(BUILD)/connguard ]; then install -m 0755 $(BUILD)/connguard $(DESTDIR)$(PREFIX)/bin/connguard; fi
	for m in docs/*.1; do [ -f "$$m" ] && install -m 0644 "$$m" $(DESTDIR)$(PREFIX)/share/man/man1/ || true; done
	for m in docs/*.7; do [ -f "$$m" ] && install -m 0644 "$$m" $(DESTDIR)$(PREFIX)/share/man/man7/ || true; done
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  if ! grep -rqsx "$(PREFIX)/lib" /etc/ld.so.conf /etc/ld.so.conf.d/; then \
	    echo "$(PREFIX)/lib" > /etc/ld.so.conf.d/connguard.conf; fi; \
	  ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libconnguard.so $(DESTDIR)$(PREFIX)/bin/connguard
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/connguard.1 $(DESTDIR)$(PREFIX)/share/man/man7/libconnguard.7

clean:
	rm -rf $(BUILD)

-include mk/*.mk
