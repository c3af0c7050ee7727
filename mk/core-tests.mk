# Unit tests and test clients share small headers in their own directories.
$(UNIT_BIN): $(wildcard tests/unit/*.h)
$(CLIENT_BIN): $(wildcard tests/clients/*.h)
# The top Makefile's HDRS misses shim/hooks/*.h: a change to hook.h must rebuild the hooks.
$(HOOK_OBJ): $(wildcard shim/hooks/*.h)

# Helper libraries for the robustness tests (tests/clients/lib/*.c -> build/clients/libNAME.so):
# cgctor (a DT_NEEDED library whose constructor connects), cgplant (preloaded after the shim,
# plants a leak in programs we cannot change) and cgspy (preloaded before the
# shim, counts calls the shim makes into its own exported names); tests/clients/lib/*.cc are
# C++ (g++): cgcxx (C++ exceptions in a library a C program dlopen()s late).
CG_TEST_LIBS := $(patsubst tests/clients/lib/%.c,$(BUILD)/clients/lib%.so,$(wildcard tests/clients/lib/*.c)) \
	$(patsubst tests/clients/lib/%.cc,$(BUILD)/clients/lib%.so,$(wildcard tests/clients/lib/*.cc))

$(BUILD)/clients/lib%.so: tests/clients/lib/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -fPIC -shared -o $@ $< -ldl

$(BUILD)/clients/lib%.so: tests/clients/lib/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CFLAGS) $(filter-out -Wstrict-prototypes,$(WARN)) -fPIC -shared -o $@ $< -ldl

$(BUILD)/clients/rb_ctor: tests/clients/rb_ctor.c $(BUILD)/clients/libcgctor.so
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< -L$(BUILD)/clients -lcgctor -Wl,-rpath,'$$ORIGIN'

integration: $(CG_TEST_LIBS)
