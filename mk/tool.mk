# The tool's unit test compiles tools/json.c and tools/logrec.c in: rebuild it when they change.
$(BUILD)/tests/test_tool_json: tools/json.c tools/json.h tools/logrec.c tools/logrec.h
