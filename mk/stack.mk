# test_stack's two look-alike libraries (tests/unit/stacklib.c), built next to it.
$(BUILD)/tests/libcgs%.so: tests/unit/stacklib.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -fPIC -shared -DLIBNAME='"$*"' -o $@ $<

$(BUILD)/tests/test_stack: $(BUILD)/tests/libcgsa.so $(BUILD)/tests/libcgsb.so
