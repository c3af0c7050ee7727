# test_stack's two look-alike libraries (tests/unit/stacklib.c), built next to it.
$(BUILD)/tests/libcgs%.so: tests/unit/stacklib.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -fPIC -shared -DLIBNAME='"$*"' -o $@ $<

# test_stack links the dlclose() hook too: the cache learns of unloads only through it.
$(BUILD)/tests/test_stack: tests/unit/test_stack.c $(BUILD)/obj/hooks/dlclose.o $(BUILD)/libcgcore.a $(HDRS) \
                           $(BUILD)/tests/libcgsa.so $(BUILD)/tests/libcgsb.so
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-shadow -pthread $(EXTRA_CFLAGS) -o $@ $< $(BUILD)/obj/hooks/dlclose.o $(BUILD)/libcgcore.a $$(pkg-config --cflags --libs check) -ldl $(EXTRA_LDFLAGS)
