/* tests/fuzz/fuzz_yaml.c - property fuzzing of the YAML reader and writer.
 *
 * Input: arbitrary bytes, parsed as YAML.  When the first byte has its top
 * bit set, the rest of the bytes instead pick tokens from a table of YAML
 * syntax (indicators, indentation, tags, anchors, tricky scalars), which
 * lets the standalone driver's random bytes reach deep into the grammar.
 * Properties checked:
 *  1. Parsing never crashes or leaks; a failure is RESIL_EPARSE (or -ENOMEM)
 *     with a 1-based line and column.
 *  2. A value that parses dumps without error, the dump parses, and gives
 *     back the same value (same types, key order and bit-identical reals).
 *  3. Dumping is deterministic: dumping the re-parsed value gives the same
 *     text.
 * Built as a libFuzzer target with clang (RESIL_FUZZ=ON), and otherwise with
 * tests/fuzz/standalone.c, which feeds it seeded pseudo-random inputs. */
#include "resil/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reported by the standalone driver: inputs that parsed, and those whose
 * value was a non-empty collection. */
long fuzz_inputs_valid, fuzz_inputs_deadline;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static const char *const tokens[] = {
    "a",    "b",     "key",  ": ",    ":",     "\n",   "\n  ",  "\n    ", "  ",  " ",   "- ",
    "-",    "[",     "]",    "{",     "}",     ", ",   ",",     "'",      "\"",  "\\",  "\\n",
    "\\0",  "\\x41", "#",    " #c",   "? ",    "?",    "|",     "|-\n",   ">\n", "|+\n", "---\n",
    "...\n", "--- ", "&a ",  "*a",    "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ",
    "!!map ", "!!seq ", "! ", "!foo ", "!<tag:yaml.org,2002:str> ", "%YAML 1.2\n",
    "%TAG !e! tag:yaml.org,2002:\n", "!e!str ", "0",  "1",   "-1",  "012", "0x1F", "0o17",
    "1e3",  ".5",    "1.",   "-0",    ".inf",  ".nan", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "1e400", "true", "False", "null", "~",
    "yes",  "off",   "<<",   "é",     "中",    "🎉",   "\t",    "\r\n",  "\xc2\x85",
    "\xef\xbb\xbf", "\x01", "\xff",
};

/* The same value: types, key order (keys compared with their lengths, as
 * jansson's json_equal does not for keys holding a NUL), bit-identical
 * reals. */
static int same_value(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_value(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        void *i = json_object_iter((json_t *)a), *j = json_object_iter((json_t *)b);
        for (; i && j; i = json_object_iter_next((json_t *)a, i),
                       j = json_object_iter_next((json_t *)b, j)) {
            size_t n = json_object_iter_key_len(i);
            if (n != json_object_iter_key_len(j) ||
                memcmp(json_object_iter_key(i), json_object_iter_key(j), n) != 0 ||
                !same_value(json_object_iter_value(i), json_object_iter_value(j)))
                return 0;
        }
        return !i && !j;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    default:
        return 1;
    }
}

static void check(const char *text, size_t len)
{
    json_t *v = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_yaml_parse(&v, text, len, "fuzz", &err);
    if (rc) {
        CHECK(rc == RESIL_EPARSE || rc == -ENOMEM);
        CHECK(v == NULL);
        CHECK(err.code == rc);
        if (rc == RESIL_EPARSE)
            CHECK(err.line >= 1 && err.column >= 1 && err.message[0]);
        return;
    }
    CHECK(v != NULL);
    fuzz_inputs_valid++;
    if ((json_is_object(v) && json_object_size(v)) || (json_is_array(v) && json_array_size(v)))
        fuzz_inputs_deadline++;

    char *yaml = NULL;
    rc = resil_yaml_dump(&yaml, v, &err);
    if (rc)
        fprintf(stderr, "dump failed: %s\n", err.message);
    CHECK(rc == 0 && yaml != NULL);
    size_t n = strlen(yaml);
    CHECK(n > 0 && yaml[n - 1] == '\n');

    json_t *w = NULL;
    rc = resil_yaml_parse(&w, yaml, n, "dump", &err);
    if (rc)
        fprintf(stderr, "re-parse failed at %d:%d: %s\n---\n%s---\n", err.line, err.column,
                err.message, yaml);
    CHECK(rc == 0);
    if (!same_value(v, w))
        fprintf(stderr, "round trip changed the value:\n---\n%s---\n", yaml);
    CHECK(same_value(v, w));

    char *again = NULL;
    CHECK(resil_yaml_dump(&again, w, &err) == 0);
    CHECK(strcmp(again, yaml) == 0);

    free(again);
    free(yaml);
    json_decref(w);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || !(data[0] & 0x80)) {
        check((const char *)data, size);
        return 0;
    }
    /* Token mode. */
    size_t cap = (size - 1) * 32 + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return 0;
    for (size_t i = 1; i < size; i++) {
        const char *t = tokens[data[i] % (sizeof tokens / sizeof tokens[0])];
        size_t tn = strlen(t);
        if (len + tn >= cap)
            break;
        memcpy(buf + len, t, tn);
        len += tn;
    }
    check(buf, len);
    free(buf);
    return 0;
}
