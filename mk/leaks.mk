# Leak tracking overhead (issue 3): open/close of regular files <= 1.02x, connect path <= 1.03x.
# `make bench-leaks` (its rows are also in `make bench`'s table). BENCH_LEAKS_ARGS=--quick for a short run.
LEAK_BENCH_BIN := $(BUILD)/clients/bench_openclose $(BUILD)/clients/bench_connect $(BUILD)/clients/bench_socket

.PHONY: bench-leaks
bench-leaks: all $(LEAK_BENCH_BIN)
	@BUILD=$(BUILD) $(PYTHON) scripts/bench_leaks.py $(BENCH_LEAKS_ARGS)

$(LEAK_BENCH_BIN): tests/clients/bench_common.h

# shm_layout prints the stats segment layout for the live test: rebuild when the header changes.
$(BUILD)/clients/shm_layout: shim/core/stats.h
