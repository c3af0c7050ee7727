# Unit tests and test clients share small headers in their own directories.
$(UNIT_BIN): $(wildcard tests/unit/*.h)
$(CLIENT_BIN): $(wildcard tests/clients/*.h)
# The top Makefile's HDRS misses shim/hooks/*.h: a change to hook.h must rebuild the hooks.
$(HOOK_OBJ): $(wildcard shim/hooks/*.h)
