# Leak tracking with Python stacks in a Python connect loop (issue 15): `make bench-py` alone,
# and as part of `make bench`. BENCH_PY_ARGS: --rounds N, --python PATH.
.PHONY: bench-py
bench-py: all $(BUILD)/clients/bench_loop
	@BUILD=$(BUILD) $(PYTHON) scripts/bench_py.py $(BENCH_PY_ARGS)

bench: bench-py
