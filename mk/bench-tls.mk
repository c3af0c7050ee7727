# Cost of the TLS hooks on healthy handshakes (issue 6): `make bench-tls` (its default-settings row
# is also in `make bench`'s table). BENCH_TLS_ARGS: --rounds N, --handshakes N, --write FILE.
.PHONY: bench-tls
bench-tls: all $(BUILD)/clients/tls_bench
	@BUILD=$(BUILD) $(PYTHON) scripts/bench_tls.py $(BENCH_TLS_ARGS)
