# Unit tests and test clients share small headers in their own directories.
$(UNIT_BIN): $(wildcard tests/unit/*.h)
$(CLIENT_BIN): $(wildcard tests/clients/*.h)
