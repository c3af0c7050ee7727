# Cost of the TLS hooks on healthy handshakes (issue 6): `make bench-tls` alone, and as part of
# `make bench`. BENCH_TLS_ARGS: --rounds N, --handshakes N, --write FILE.
.PHONY: bench-tls
bench-tls: all $(BUILD)/clients/tls_bench
	@BUILD=$(BUILD) $(PYTHON) scripts/bench_tls.py $(BENCH_TLS_ARGS)

bench: bench-tls
