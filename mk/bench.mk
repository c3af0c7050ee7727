# `make bench`: one table of what the shim costs a healthy program (issue 12), each row without and
# with the shim in the same run. BENCH_ROUNDS=N (default 7), BENCH_ARGS=--quick (3 rounds, shorter
# loops), BENCH_WRITE=docs/benchmarks.md appends the table with the machine and date.
# Tools it drives (ab, curl, strace, valgrind) come from `scripts/deps.sh bench`; one that cannot be
# installed skips its row, and no figure fails the build: speed is reported here, not tested.
BENCH_BIN := $(addprefix $(BUILD)/clients/,bench_loop bench_httpd bench_spawn bench_sockmem \
               bench_connect bench_openclose tls_bench libcgempty.so)

bench: all $(BENCH_BIN)
	@scripts/deps.sh bench || echo "make bench: going on without them; their rows are skipped" >&2
	@BUILD=$(BUILD) $(PYTHON) scripts/bench.py $(if $(BENCH_ROUNDS),--rounds $(BENCH_ROUNDS)) \
	  $(if $(BENCH_WRITE),--write $(BENCH_WRITE)) $(BENCH_ARGS)

$(BENCH_BIN): tests/clients/bench_common.h
