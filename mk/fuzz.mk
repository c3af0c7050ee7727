# libFuzzer targets (clang -fsanitize=fuzzer,address,undefined): tests/fuzz/fuzz_*.c.
#
#   make fuzz                 runs every target for FUZZ_SECONDS (default 30) each, one job,
#                             starting from tests/fuzz/corpus/NAME and tests/fuzz/regress/NAME;
#                             new inputs go to build-fuzz/corpus/NAME, crashes to
#                             build-fuzz/crash-NAME-*. Fails when any target crashed.
#   make fuzz FUZZ=json       one target (NAME without the fuzz_ prefix)
#   make fuzz-build           only builds them
# A crash becomes a regression: copy the input into tests/fuzz/regress/NAME/ (a short name
# saying what it found). `make check` replays the corpus and the regressions through the
# same targets compiled with cc (tests/unit/test_fuzz_replay.c), no clang needed.

FUZZ_SECONDS ?= 30
FUZZ_CC      ?= clang
FUZZ_DIR     := build-fuzz
FUZZ_SAN     := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_ALL     := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ         ?= $(FUZZ_ALL)
FUZZ_CORE_OBJ := $(patsubst shim/core/%.c,$(FUZZ_DIR)/obj/%.o,$(CORE_SRC))
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ))

.PHONY: fuzz fuzz-build

$(FUZZ_DIR)/obj/%.o: shim/core/%.c $(HDRS) | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/libcgcore.a: $(FUZZ_CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_DIR)/libcgcore.a | fuzz-deps
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libcgcore.a -ldl -pthread

fuzz-build: fuzz-deps $(FUZZ_BINS)

.PHONY: fuzz-deps
fuzz-deps:
	@scripts/deps.sh hostile

fuzz: fuzz-build
	@fail=0; for t in $(FUZZ); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t; \
	  seeds="tests/fuzz/corpus/$$t"; [ -d tests/fuzz/regress/$$t ] && seeds="$$seeds tests/fuzz/regress/$$t"; \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS) s)"; \
	  if $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=20000 \
	       -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crash-$$t- $(FUZZ_DIR)/corpus/$$t $$seeds \
	       > $(FUZZ_DIR)/fuzz_$$t.log 2>&1; then \
	    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" $(FUZZ_DIR)/fuzz_$$t.log | tr '\n' ' '; \
	    echo "corpus $$(ls $(FUZZ_DIR)/corpus/$$t | wc -l)"; \
	  else \
	    fail=1; tail -40 $(FUZZ_DIR)/fuzz_$$t.log; echo "fuzz_$$t CRASHED: $$(ls $(FUZZ_DIR)/crash-$$t-* 2>/dev/null)"; \
	  fi; \
	done; exit $$fail

# The replay unit test compiles the targets' sources.
$(BUILD)/tests/test_fuzz_replay: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)
