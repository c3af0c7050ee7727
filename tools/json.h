/* A small strict JSON reader and writer for connguard's own log records (one object per
 * line). Bounded: nesting depth and sizes are limited, every error is reported with its
 * position, nothing in the input can crash it. Object member order is kept, so a record
 * written back out reads like the original. */
#ifndef CG_TOOL_JSON_H
#define CG_TOOL_JSON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
  enum json_type type;
  int boolean;
  double number;
  char *text;             /* string value (decoded, NUL-terminated) or the number as written */
  size_t len;             /* bytes in text (strings may hold \u0000) */
  size_t n;               /* items / members */
  struct json *items;     /* array items, or object member values */
  char **keys;            /* object member names */
};

#define JSON_MAX_DEPTH 32

/* Parses exactly one value (surrounding whitespace allowed). Returns NULL on error with a
 * message like "unexpected end of input at byte 57" in err. */
struct json *json_parse(const char *s, size_t len, char *err, size_t errcap);
void json_free(struct json *v);

/* Member of an object (first match), or NULL. */
const struct json *json_get(const struct json *obj, const char *key);
/* The member as a string / integer; NULL / 0 with *ok = 0 when absent or another type. */
const char *json_str(const struct json *obj, const char *key);
int json_int(const struct json *obj, const char *key, int64_t *out);

/* Appends a member to an object (key and value copied / taken over). -1 on allocation failure. */
int json_add_str(struct json *obj, const char *key, const char *val);
int json_add_int(struct json *obj, const char *key, int64_t val);

/* Writes compactly, as the shim does. */
void json_write(FILE *f, const struct json *v);
void json_write_str(FILE *f, const char *s, size_t len);

#endif
