# The stress clients share tests/clients/stress.h; the generic client rule only knows the .c.
$(filter $(BUILD)/clients/stress_%,$(CLIENT_BIN)): tests/clients/stress.h
