# Sanitizer runs of the unit and integration tests (issue 6).
#
#   make check-asan      ASan+UBSan build of everything (shim, core, unit tests, clients, tool)
#                        into build-asan/; unit tests, then every integration test with the ASan
#                        runtime preloaded before the instrumented shim. Programs that hang with
#                        the ASan runtime preloaded even without the shim (curl, wget, psql:
#                        setlocale deadlock) are skipped, by a probe, with the reason printed.
#   make check-tsan      TSan build into build-tsan/; unit tests, then the stress tests
#                        (test_stress_*), whose C clients are TSan-instrumented themselves.
#                        A TSan runtime preloaded into foreign programs is no use: its blocking
#                        interceptors (poll, epoll_wait, select...) sit above our hooks and turn
#                        off atomics' synchronisation there, so every lock of ours would be
#                        reported as a race. Stacks are off (CONNGUARD_STACK_DEPTH=0), as since the
#                        libunwind days (its thread-exit destructor crashed under TSan).
#                        die_after_fork=0: a fork child that makes a blocking connect starts its own
#                        watchdog thread, which TSan refuses after a multi-threaded fork by default.
#                        Thread-leak reports are off: a forked child of a threaded client
#                        "leaks" every thread of its parent, with or without the shim. The fork
#                        storms are left out: in a child, the shim's after-fork lock resets
#                        cannot be modelled, and TSan reports races with the parent's threads
#                        (which do not exist in the child); check-asan and make check run them.
#   make check-valgrind  memcheck on a threaded client against a late server, shim preloaded;
#                        fails on any error (tests/valgrind.supp: known loader noise only).
# Reports go to BUILD/san/: a run fails when any report file is there.

SAN_ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_TSAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
SAN_ASAN_RT = $(shell $(CC) -print-file-name=libasan.so)

# $(call san_reports,DIR): fails, listing them, when a sanitizer wrote any report.
define san_reports
	@if ls $(1)/* >/dev/null 2>&1; then \
	  for f in $(1)/*; do echo "===== $$f"; head -60 "$$f"; done; \
	  echo "sanitizer reports in $(1)/ (above)"; exit 1; \
	else echo "no sanitizer report"; fi
endef

.PHONY: check-asan check-tsan check-valgrind

check-asan:
	@scripts/deps.sh test
	@rm -rf build-asan/san && mkdir -p build-asan/san
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS="$(SAN_ASAN_CFLAGS)" all \
	  $(patsubst $(BUILD)/%,build-asan/%,$(CLIENT_BIN) $(UNIT_BIN))
	@echo "== unit tests (ASan+UBSan)"
	@ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:log_path=$(CURDIR)/build-asan/san/asan \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(CURDIR)/build-asan/san/ubsan \
	  $(MAKE) --no-print-directory BUILD=build-asan CFLAGS="$(SAN_ASAN_CFLAGS)" unit
	@echo "== integration tests (ASan runtime preloaded before build-asan/libconnguard.so)"
	@CG_SAN_PRELOAD=$(SAN_ASAN_RT) CG_TEST_SLOW=3 \
	  ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:halt_on_error=1:log_path=$(CURDIR)/build-asan/san/asan \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(CURDIR)/build-asan/san/ubsan \
	  $(MAKE) --no-print-directory BUILD=build-asan CFLAGS="$(SAN_ASAN_CFLAGS)" integration
	$(call san_reports,build-asan/san)

check-tsan:
	@scripts/deps.sh test
	@rm -rf build-tsan/san && mkdir -p build-tsan/san
	@$(MAKE) --no-print-directory BUILD=build-tsan CFLAGS="$(SAN_TSAN_CFLAGS)" all \
	  $(patsubst $(BUILD)/%,build-tsan/%,$(CLIENT_BIN) $(UNIT_BIN))
	@echo "== unit tests (TSan)"
	@TSAN_OPTIONS=halt_on_error=0:report_thread_leaks=0:die_after_fork=0:log_path=$(CURDIR)/build-tsan/san/tsan \
	  $(MAKE) --no-print-directory BUILD=build-tsan CFLAGS="$(SAN_TSAN_CFLAGS)" unit
	@echo "== stress tests (TSan clients, TSan shim preloaded)"
	@CG_SAN_ENV="CONNGUARD_STACK_DEPTH=0" CG_TEST_SLOW=5 TSAN_OPTIONS=halt_on_error=0:report_thread_leaks=0:die_after_fork=0:log_path=$(CURDIR)/build-tsan/san/tsan \
	  $(MAKE) --no-print-directory BUILD=build-tsan CFLAGS="$(SAN_TSAN_CFLAGS)" integration \
	    TESTS="test_stress_connect test_stress_exec test_stress_signal test_stress_closeall"
	$(call san_reports,build-tsan/san)

check-valgrind: all $(BUILD)/clients/stress_connect
	@scripts/deps.sh hostile
	@BUILD=$(BUILD) $(PYTHON) tests/sanitize/valgrind_run.py
