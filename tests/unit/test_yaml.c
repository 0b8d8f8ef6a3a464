/* YAML <-> json_t: the core-schema resolver, tags, errors with line and
 * column, the safety limits (aliases, anchors, custom tags, depth), the
 * dump format, and the round-trip property parse(dump(v)) == v over a table
 * of tricky values and 2000 seeded random ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resil/clock.h"
#include "resil/files.h"

/* ---- helpers ---------------------------------------------------------------- */

/* parse(dump(v)) must equal v: same types, same key order, bit-identical
 * reals.  (jansson 2.14's json_equal looks keys up by C string, so it calls
 * two equal objects with a key holding a NUL unequal: compare by hand.) */
static bool same_value(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_value(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *i = json_object_iter((json_t *)a), *j = json_object_iter((json_t *)b);
        for (; i && j; i = json_object_iter_next((json_t *)a, i),
                       j = json_object_iter_next((json_t *)b, j)) {
            size_t n = json_object_iter_key_len(i);
            if (n != json_object_iter_key_len(j) ||
                memcmp(json_object_iter_key(i), json_object_iter_key(j), n) != 0 ||
                !same_value(json_object_iter_value(i), json_object_iter_value(j)))
                return false;
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
        return true;
    }
}

static json_t *parse_ok(const char *yaml)
{
    json_t *v = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_yaml_parse(&v, yaml, strlen(yaml), "t.yaml", &err);
    if (rc)
        fail_msg("parse of [%s] failed: %d %s", yaml, rc, err.message);
    assert_non_null(v);
    return v;
}

/* Asserts that yaml parses to the value that JSON text `json` denotes. */
static void expect_parse(const char *yaml, const char *json)
{
    json_error_t jerr;
    json_t *want = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!want)
        fail_msg("bad expected JSON %s: %s", json, jerr.text);
    json_t *got = parse_ok(yaml);
    if (!same_value(got, want)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY);
        fail_msg("[%s]: got %s, want %s", yaml, g, json);
    }
    json_decref(got);
    json_decref(want);
}

/* Asserts a RESIL_EPARSE with the given position and a message containing
 * `needle`. */
static void expect_error(const char *yaml, int line, int column, const char *needle)
{
    json_t *v = (json_t *)0x1;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_yaml_parse(&v, yaml, strlen(yaml), "bad.yaml", &err);
    if (rc != RESIL_EPARSE)
        fail_msg("[%s]: rc %d, want RESIL_EPARSE", yaml, rc);
    assert_null(v);
    assert_int_equal(err.code, RESIL_EPARSE);
    assert_string_equal(err.path, "bad.yaml");
    if (!strstr(err.message, needle))
        fail_msg("[%s]: message '%s' lacks '%s'", yaml, err.message, needle);
    if (line && (err.line != line || err.column != column))
        fail_msg("[%s]: error at %d:%d, want %d:%d (%s)", yaml, err.line, err.column, line,
                 column, err.message);
    assert_true(err.line >= 1 && err.column >= 1);
}

static char *dump_ok(const json_t *v)
{
    char *out = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_yaml_dump(&out, v, &err);
    if (rc)
        fail_msg("dump failed: %d %s", rc, err.message);
    assert_non_null(out);
    size_t n = strlen(out);
    assert_true(n > 0 && out[n - 1] == '\n');
    return out;
}

static void check_roundtrip(const json_t *v)
{
    char *yaml = dump_ok(v);
    json_t *back = NULL;
    resil_error err;
    memset(&err, 0, sizeof err);
    int rc = resil_yaml_parse(&back, yaml, strlen(yaml), "dump", &err);
    if (rc) {
        char *j = json_dumps(v, JSON_ENCODE_ANY);
        fail_msg("dump of %s does not parse: %s at %d:%d\n---\n%s", j, err.message, err.line,
                 err.column, yaml);
    }
    if (!same_value(v, back)) {
        char *j = json_dumps(v, JSON_ENCODE_ANY);
        char *k = json_dumps(back, JSON_ENCODE_ANY);
        fail_msg("round trip changed %s into %s\n---\n%s", j, k, yaml);
    }
    json_decref(back);
    free(yaml);
}

/* ---- parsing ---------------------------------------------------------------- */

static void test_parse_null_and_bool(void **state)
{
    (void)state;
    const char *nulls[] = {"null", "Null", "NULL", "~", "", "---\n", "# only a comment\n",
                           "--- ~\n...\n", "a:", "!!null", "!!null ''", "!!null ~"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
        json_t *v = parse_ok(nulls[i]);
        if (i == 8) {
            assert_true(json_is_null(json_object_get(v, "a")));
        } else {
            assert_true(json_is_null(v));
        }
        json_decref(v);
    }
    expect_parse("true", "true");
    expect_parse("True", "true");
    expect_parse("TRUE", "true");
    expect_parse("false", "false");
    expect_parse("False", "false");
    expect_parse("FALSE", "false");
    expect_parse("!!bool true", "true");
    expect_parse("!!bool 'False'", "false");
    /* Case variants outside the schema are strings. */
    expect_parse("tRUE", "\"tRUE\"");
    expect_parse("nULL", "\"nULL\"");
}

static void test_parse_yaml11_words_are_strings(void **state)
{
    (void)state;
    const char *words[] = {"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON",
                           "off", "Off", "OFF", "y", "n", "Y", "N", "<<", "="};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        json_t *v = parse_ok(words[i]);
        assert_true(json_is_string(v));
        assert_string_equal(json_string_value(v), words[i]);
        json_decref(v);
    }
    /* YAML 1.1 number forms are strings too. */
    expect_parse("0b101", "\"0b101\"");
    expect_parse("1_000", "\"1_000\"");
    expect_parse("1:20", "\"1:20\"");
}

static void test_parse_integers(void **state)
{
    (void)state;
    expect_parse("0", "0");
    expect_parse("-0", "0");
    expect_parse("+17", "17");
    expect_parse("-42", "-42");
    expect_parse("012", "12"); /* 1.2: decimal, not octal */
    expect_parse("0o17", "15");
    expect_parse("0x1F", "31");
    expect_parse("0xff", "255");
    expect_parse("9223372036854775807", "9223372036854775807");
    expect_parse("-9223372036854775808", "-9223372036854775808");
    expect_parse("0x7fffffffffffffff", "9223372036854775807");
    expect_parse("0o777777777777777777777", "9223372036854775807");
    expect_parse("!!int '42'", "42");
    expect_parse("!!int 0x10", "16");
    /* Not integers. */
    expect_parse("0x", "\"0x\"");
    expect_parse("0o8", "\"0o8\"");
    expect_parse("-0x1", "\"-0x1\"");
    expect_parse("0X1F", "\"0X1F\"");
    expect_parse("1 2", "\"1 2\"");
    expect_parse("+", "\"+\"");
}

static void test_parse_floats(void **state)
{
    (void)state;
    expect_parse("1.0", "1.0");
    expect_parse("0.1", "0.1");
    expect_parse(".5", "0.5");
    expect_parse("-.5", "-0.5");
    expect_parse("+.5", "0.5");
    expect_parse("1.", "1.0");
    expect_parse("1e3", "1000.0");
    expect_parse("1E+3", "1000.0");
    expect_parse("2.5e-3", "0.0025");
    expect_parse("-1.5", "-1.5");
    expect_parse("1e300", "1e300");
    expect_parse("5e-324", "5e-324");
    expect_parse("1e-400", "0.0"); /* underflows to zero: representable */
    expect_parse("!!float 1", "1.0");
    expect_parse("!!float '2.5'", "2.5");
    expect_parse("!!float -3", "-3.0");
    /* Not floats. */
    expect_parse(".", "\".\"");
    expect_parse("1e", "\"1e\"");
    expect_parse("e3", "\"e3\"");
    expect_parse("1.2.3", "\"1.2.3\"");
    expect_parse("inf", "\"inf\"");
    expect_parse("nan", "\"nan\"");
    expect_parse("0x1p3", "\"0x1p3\"");
    expect_parse(".infinity", "\".infinity\"");
    json_t *v = parse_ok("-0.0");
    assert_true(json_is_real(v));
    assert_true(signbit(json_real_value(v)));
    json_decref(v);
}

static void test_parse_strings(void **state)
{
    (void)state;
    expect_parse("hello world", "\"hello world\"");
    expect_parse("'123'", "\"123\"");
    expect_parse("\"true\"", "\"true\"");
    expect_parse("\"null\"", "\"null\"");
    expect_parse("''", "\"\"");
    expect_parse("\"a\\tb\\n\\u00e9\\x41\"", "\"a\\tb\\n\\u00e9A\"");
    expect_parse("'it''s'", "\"it's\"");
    expect_parse("!!str 123", "\"123\"");
    expect_parse("!!str true", "\"true\"");
    expect_parse("!!str", "\"\"");
    expect_parse("! 12", "\"12\""); /* the non-specific tag: not resolved */
    expect_parse("!<tag:yaml.org,2002:str> 5", "\"5\"");
    expect_parse("tag:yaml.org,2002:int", "\"tag:yaml.org,2002:int\"");
    expect_parse("a: |\n  line1\n  line2\n", "{\"a\": \"line1\\nline2\\n\"}");
    expect_parse("a: |-\n  x\n", "{\"a\": \"x\"}");
    expect_parse("a: |+\n  x\n\n", "{\"a\": \"x\\n\\n\"}");
    expect_parse("a: >\n  folded\n  text\n", "{\"a\": \"folded text\\n\"}");
    expect_parse("a: |\n  123\n", "{\"a\": \"123\\n\"}");
    expect_parse("é ü 中文 🎉", "\"é ü 中文 🎉\"");
    expect_parse("\"nul\\0byte\"", "\"nul\\u0000byte\"");
    expect_parse("a:b", "\"a:b\"");
    expect_parse("a #comment", "\"a\"");
    expect_parse("- a", "[\"a\"]");
    json_t *v = parse_ok("\"x\\0y\"");
    assert_int_equal(json_string_length(v), 3);
    json_decref(v);
}

static void test_parse_collections(void **state)
{
    (void)state;
    expect_parse("a: 1\nb: [x, 2.5, {c: null}]\nd:\n  - true\n  - e: f\n    g: ''\n",
                 "{\"a\": 1, \"b\": [\"x\", 2.5, {\"c\": null}], "
                 "\"d\": [true, {\"e\": \"f\", \"g\": \"\"}]}");
    expect_parse("{}", "{}");
    expect_parse("[]", "[]");
    expect_parse("- []\n- {}\n- - - 1\n", "[[], {}, [[1]]]");
    expect_parse("!!map {a: 1}", "{\"a\": 1}");
    expect_parse("!!seq [1]", "[1]");
    expect_parse("! {a: 1}", "{\"a\": 1}");
    /* Keys are taken verbatim as text, whatever they would resolve to. */
    expect_parse("1: a\ntrue: b\n~: c\n0x10: d\n'': e\n? x\n: f\n",
                 "{\"1\": \"a\", \"true\": \"b\", \"~\": \"c\", \"0x10\": \"d\", \"\": \"e\", "
                 "\"x\": \"f\"}");
    expect_parse("!!str 1: a", "{\"1\": \"a\"}");
    /* Key order is document order. */
    json_t *v = parse_ok("z: 1\na: 2\nm: 3\n");
    const char *order[] = {"z", "a", "m"};
    size_t i = 0;
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        (void)x;
        assert_string_equal(k, order[i++]);
    }
    assert_int_equal(i, 3);
    json_decref(v);
    /* Depth 512 is allowed. */
    char deep[2 * 512 + 1];
    memset(deep, '[', 512);
    memset(deep + 512, ']', 512);
    deep[1024] = '\0';
    v = parse_ok(deep);
    json_decref(v);
}

/* ---- errors ----------------------------------------------------------------- */

static void test_errors_aliases_anchors_tags(void **state)
{
    (void)state;
    expect_error("a: &x 1\nb: *x", 1, 4, "anchor '&x'");
    expect_error("a: 1\nb: *x", 2, 4, "alias '*x'");
    expect_error("- *ref\n", 1, 3, "alias");
    expect_error("*k : 1\n", 1, 1, "alias");
    expect_error("a: &m {b: 1}", 1, 4, "anchor '&m'");
    expect_error("a: &s [1]", 1, 4, "anchor '&s'");
    expect_error("&k a: 1", 1, 1, "anchor '&k'");
    expect_error("a: !foo 1", 1, 4, "tag '!foo' is not allowed");
    expect_error("!foo x", 1, 1, "'!foo'");
    expect_error("a: !!binary aGk=", 1, 4, "tag:yaml.org,2002:binary");
    expect_error("a: !!set {x}", 1, 4, "not allowed");
    expect_error("%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n", 3, 4, "not allowed");
    expect_error("!foo a: 1", 1, 1, "not allowed");
    expect_error("!!int abc", 1, 1, "not a valid !!int");
    expect_error("!!int 1.5", 1, 1, "not a valid !!int");
    expect_error("!!bool yes", 1, 1, "not a valid !!bool");
    expect_error("!!null 0", 1, 1, "not a valid !!null");
    expect_error("!!float abc", 1, 1, "not a valid !!float");
    expect_error("!!map 1", 1, 1, "cannot be used on a scalar");
    expect_error("!!str [1]", 1, 1, "cannot be used on a sequence");
    expect_error("!!seq {a: 1}", 1, 1, "cannot be used on a mapping");
    expect_error("!!map x: 1", 1, 1, "cannot be used on a scalar");
}

static void test_errors_duplicates_and_keys(void **state)
{
    (void)state;
    expect_error("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a'");
    expect_error("x:\n  k: 1\n  k: 2\n", 3, 3, "duplicate key 'k'");
    expect_error("{a: 1, a: 2}", 1, 8, "duplicate key 'a'");
    expect_error("1: a\n'1': b\n", 2, 1, "duplicate key '1'");
    expect_error("? [a]\n: 1\n", 1, 3, "keys must be scalars");
    expect_error("? {a: 1}\n: 1\n", 1, 3, "keys must be scalars");
}

static void test_errors_syntax(void **state)
{
    (void)state;
    expect_error("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed");
    expect_error("a:\n  - 1\n - 2\n", 3, 2, "");
    expect_error("[1, 2", 0, 0, "");
    expect_error("a: \"open\n", 0, 0, "");
    expect_error("{a: 1", 0, 0, "");
    expect_error("a: 'x\n\nb", 0, 0, "");
    expect_error("\tkey: value\n", 0, 0, "");
    expect_error("a: \"\\ud800\"\n", 0, 0, "");
    /* Invalid UTF-8: the position is computed from the byte offset. */
    expect_error("ok: 1\nbad: \xff\n", 2, 6, "invalid input");
    expect_error("a: \x01\n", 1, 4, "invalid input");
    /* Line and column of a syntax error. */
    resil_error err;
    json_t *v = NULL;
    const char *y = "a: 1\nb: [1, 2\nc: 3\n";
    assert_int_equal(resil_yaml_parse(&v, y, strlen(y), NULL, &err), RESIL_EPARSE);
    assert_true(err.line >= 2);
    assert_string_equal(err.path, "");
    /* err may be NULL. */
    assert_int_equal(resil_yaml_parse(&v, y, strlen(y), NULL, NULL), RESIL_EPARSE);
    assert_int_equal(resil_yaml_parse(&v, "*a", 2, NULL, NULL), RESIL_EPARSE);
    assert_int_equal(resil_yaml_parse(NULL, y, strlen(y), NULL, &err), RESIL_EINVAL);
    assert_int_equal(resil_yaml_parse(&v, NULL, 3, NULL, &err), RESIL_EINVAL);
    assert_int_equal(resil_yaml_parse(&v, NULL, 0, NULL, &err), 0);
    assert_true(json_is_null(v));
    /* The length is honoured: text need not be NUL-terminated. */
    assert_int_equal(resil_yaml_parse(&v, "a: 1\nb: *x", 4, NULL, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
}

static void test_errors_documents(void **state)
{
    (void)state;
    expect_error("a: 1\n---\nb: 2\n", 2, 1, "more than one document");
    expect_error("--- 1\n--- 2\n", 2, 1, "more than one document");
    expect_error("a\n...\n---\nb\n", 3, 1, "more than one document");
    expect_error("x\n...\n# c\n--- y\n", 4, 1, "more than one document");
    /* One document with explicit markers is fine. */
    expect_parse("%YAML 1.2\n---\na: 1\n...\n", "{\"a\": 1}");
}

static void test_errors_depth(void **state)
{
    (void)state;
    char deep[2 * 513 + 1];
    memset(deep, '[', 513);
    memset(deep + 513, ']', 513);
    deep[1026] = '\0';
    expect_error(deep, 1, 513, "nesting is too deep");
    /* A block-style tower of mappings, and an unterminated flow one. */
    size_t n = 600, cap = n * (n + 4) + 16, k = 0;
    char *block = malloc(cap);
    assert_non_null(block);
    for (size_t i = 0; i < n; i++) {
        memset(block + k, ' ', i);
        k += i;
        memcpy(block + k, "k:\n", 3);
        k += 3;
    }
    block[k] = '\0';
    expect_error(block, 513, 513, "nesting is too deep");
    free(block);
    char *flow = malloc(100001);
    assert_non_null(flow);
    memset(flow, '[', 100000);
    flow[100000] = '\0';
    expect_error(flow, 1, 513, "nesting is too deep");
    free(flow);
}

static void test_errors_not_representable(void **state)
{
    (void)state;
    const char *bad[] = {".inf", "-.inf", "+.Inf", ".INF", ".nan", ".NaN", ".NAN", "1e999",
                         "-1e400", "!!float .inf", "!!float 1e309"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(bad[i], 1, 1, "not representable in JSON");
    expect_error("a: .nan", 1, 4, "not representable in JSON");
    expect_error("9223372036854775808", 1, 1, "out of range");
    expect_error("-9223372036854775809", 1, 1, "out of range");
    expect_error("x: 0x8000000000000000", 1, 4, "out of range");
    expect_error("0o1000000000000000000000", 1, 1, "out of range");
    expect_error("!!int 99999999999999999999", 1, 1, "out of range");
    /* Quoted, they are just strings. */
    expect_parse("'.inf'", "\".inf\"");
    expect_parse("\"99999999999999999999\"", "\"99999999999999999999\"");
}

/* ---- dumping ---------------------------------------------------------------- */

static void expect_dump(const char *json, const char *yaml)
{
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("bad JSON %s: %s", json, jerr.text);
    char *out = dump_ok(v);
    if (strcmp(out, yaml) != 0)
        fail_msg("dump of %s:\n%s\nwant:\n%s", json, out, yaml);
    free(out);
    json_decref(v);
}

static void test_dump_format(void **state)
{
    (void)state;
    expect_dump("{\"name\": \"svc\", \"retries\": 3, \"ratio\": 0.5, \"on\": true, \"x\": null, "
                "\"tags\": [\"a\", \"b\"], \"nested\": {\"k\": {\"deep\": 1}}, "
                "\"empty_obj\": {}, \"empty_arr\": []}",
                "name: svc\nretries: 3\nratio: 0.5\n\"on\": true\nx: null\ntags:\n- a\n- b\n"
                "nested:\n  k:\n    deep: 1\nempty_obj: {}\nempty_arr: []\n");
    expect_dump("{}", "{}\n");
    expect_dump("[]", "[]\n");
    expect_dump("1", "1\n");
    expect_dump("1.0", "1.0\n");
    expect_dump("-0.0", "-0.0\n");
    expect_dump("0.1", "0.1\n");
    expect_dump("1e300", "1e+300\n");
    expect_dump("100000000000000000000.0", "1e+20\n");
    expect_dump("123456789.0", "123456789.0\n");
    expect_dump("true", "true\n");
    expect_dump("null", "null\n");
    expect_dump("\"plain text\"", "plain text\n");
    expect_dump("\"yes\"", "\"yes\"\n");
    expect_dump("\"123\"", "\"123\"\n");
    expect_dump("\"\"", "\"\"\n");
    expect_dump("\"a\\nb\"", "\"a\\nb\"\n");
    expect_dump("\"é 中文\"", "é 中文\n");
    expect_dump("[[1, 2], {\"a\": [3]}]", "- - 1\n  - 2\n- a:\n  - 3\n");
    expect_dump("{\"a: b\": 1, \"\": 2, \"1\": 3}", "\"a: b\": 1\n\"\": 2\n\"1\": 3\n");
    /* Reals come back as reals: integers-looking ones get ".0". */
    json_t *r = json_real(3.0);
    char *out = dump_ok(r);
    assert_string_equal(out, "3.0\n");
    free(out);
    json_decref(r);
}

static void test_dump_errors(void **state)
{
    (void)state;
    char *out = (char *)0x1;
    resil_error err;
    assert_int_equal(resil_yaml_dump(NULL, json_null(), &err), RESIL_EINVAL);
    assert_int_equal(resil_yaml_dump(&out, NULL, &err), RESIL_EINVAL);
    /* Deeper than the parser would accept: refused rather than written. */
    json_t *root = json_array(), *cur = root;
    for (int i = 1; i < 512; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    out = NULL;
    assert_int_equal(resil_yaml_dump(&out, root, &err), 0);
    free(out);
    json_array_append_new(cur, json_array());
    assert_int_equal(resil_yaml_dump(&out, root, &err), RESIL_EINVAL);
    assert_null(out);
    assert_int_equal(err.code, RESIL_EINVAL);
    assert_non_null(strstr(err.message, "too deep"));
    json_decref(root);
}

/* ---- round trips -------------------------------------------------------------- */

static const char *const tricky_strings[] = {
    "", " a", "a ", " ", "  ", "yes", "No", "on", "OFF", "y", "n", "null", "Null", "~", "012",
    "0x1F", "0o17", "1e3", "1E3", "-", "--", "---", "...", "- a", "-a", "a: b", "a:", "a:b",
    "a #b", "a#b", "#x", "@x", "`x", "line1\nline2", "trailing\n", "\n", "\n\n", "a\n\n",
    " \n ", "tab\there", "\ttab", "tab\t", "\x01" "ctl", "\x7f", "\x1b[0m", "\r\n", "a\rb",
    "é ü 中文 🎉", "123", "-0", "-0.0", ".5", "+1", "+", "true", "TRUE", "false", "[1]", "{a}",
    "'q'", "\"dq\"", "%x", "!tag", "!!str", "&a", "*a", "|", ">", "?", ":", "? a", ": a", ",",
    "a, b", "a,b", "x]", "x}", "\\", "\\n", "a\\", ".inf", "-.inf", ".nan", ".NaN", "inf",
    "nan", "1_000", "0b1", "1:20", "<<", "=", "\xc2\x85", "a\xc2\x85" "b", "\xe2\x80\xa8",
    "\xef\xbb\xbf" "bom", "\xef\xbf\xbf", "\xc2\xa0", "x\xc2\xa0", "a  b", "a\t#b", "a\"b",
    "a'b", "--- x", "... x", "%YAML 1.2", "#", "a # b # c", "key: value: more",
    "long long long long long long long long long long long long long long long long long "
    "long long long long long long long long long long long long long long long long long",
};

static void test_roundtrip_table(void **state)
{
    (void)state;
    size_t n = sizeof tricky_strings / sizeof tricky_strings[0];
    json_t *all_vals = json_object(), *all_keys = json_object(), *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_string(tricky_strings[i]);
        assert_non_null(s);
        check_roundtrip(s);
        /* As a key, in a mapping, in a sequence. */
        json_t *o = json_object();
        json_object_set_new(o, tricky_strings[i], json_string(tricky_strings[i]));
        check_roundtrip(o);
        json_decref(o);
        json_array_append(arr, s);
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        json_object_set(all_vals, key, s);
        json_object_set_new(all_keys, tricky_strings[i], json_integer((json_int_t)i));
        json_decref(s);
    }
    check_roundtrip(arr);
    check_roundtrip(all_vals);
    check_roundtrip(all_keys);
    json_decref(arr);
    json_decref(all_vals);
    json_decref(all_keys);

    /* Embedded NUL, in values and keys. */
    json_t *nul = json_stringn("a\0b", 3);
    check_roundtrip(nul);
    json_t *o = json_object();
    json_object_setn_new(o, "k\0", 2, nul);
    json_object_set_new(o, "k", json_integer(1));
    check_roundtrip(o);
    json_decref(o);

    const json_int_t ints[] = {0, -1, 1, 42, INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1,
                               1000000000000LL};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        json_t *v = json_integer(ints[i]);
        check_roundtrip(v);
        json_decref(v);
    }
    const double reals[] = {0.0, -0.0, 0.1, 1.0, -1.0, 0.5, 1e300, -1e300, 5e-324, 1e-310,
                            2.2250738585072014e-308, 1.7976931348623157e308, 3.141592653589793,
                            1.0 / 3.0, 123456789012345678.0, 9007199254740993.0, 1e15, 1e16,
                            1e17, 1e21, 1e-5, 100.0, 0.30000000000000004};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        json_t *v = json_real(reals[i]);
        check_roundtrip(v);
        char *y = dump_ok(v);
        json_t *back = parse_ok(y);
        /* Exactly the same double, not merely json_equal. */
        assert_true(json_is_real(back));
        assert_memory_equal(&reals[i], &(double){json_real_value(back)}, sizeof(double));
        json_decref(back);
        free(y);
        json_decref(v);
    }

    json_error_t jerr;
    json_t *nested = json_loads(
        "{\"1\": {\"true\": [null, {\"\": {\"a: b\": [[], {}, [[[\"x\"]]]]}}]},"
        " \"null\": [1, 1.0, \"1\", \"1.0\", true, \"true\"], \"~\": {\"-\": {\"?\": 0}},"
        " \"list\": [[1, [2, [3, {\"k\": [4]}]]], {\"a\": {}, \"b\": []}]}",
        0, &jerr);
    assert_non_null(nested);
    check_roundtrip(nested);
    json_decref(nested);
}

/* ---- randomized round trip ------------------------------------------------------- */

static const char *const pieces[] = {
    "a", "b", "z", "key", " ", "  ", "\t", "\n", "\r", ":", ": ", " :", " #", "#", "-", "- ",
    "?", "'", "\"", "\\", "{", "}", "[", "]", ",", "&", "*", "!", "!!", "|", ">", "%", "@", "`",
    "~", "yes", "no", "on", "off", "null", "true", "False", "1", "0", "-1", "0x1F", "0o7", ".5",
    "1e3", ".inf", ".nan", ".", "---", "...", "é", "中", "🎉", "\x01", "\x1f", "\x7f",
    "\xc2\x85", "\xe2\x80\xa8", "\xef\xbb\xbf", "\xc2\xa0", "\xef\xbf\xbe", "<<", "=", "\\n",
};

static json_t *random_string(resil_rng *rng)
{
    char buf[512];
    size_t len = 0;
    uint64_t r = resil_rng_next(rng);
    int count = (int)(r % 8);
    if (r % 53 == 0)
        count = 40; /* sometimes long: keys over 128 bytes become "? " keys */
    for (int i = 0; i < count; i++) {
        const char *p = pieces[resil_rng_next(rng) % (sizeof pieces / sizeof pieces[0])];
        size_t pn = strlen(p);
        if (len + pn + 1 >= sizeof buf)
            break;
        memcpy(buf + len, p, pn);
        len += pn;
    }
    if (resil_rng_next(rng) % 40 == 0 && len + 1 < sizeof buf)
        buf[len++] = '\0'; /* an embedded NUL */
    return json_stringn(buf, len);
}

static json_t *random_value(resil_rng *rng, int depth)
{
    uint64_t r = resil_rng_next(rng);
    int kind = (int)(r % (depth < 5 ? 9 : 7));
    switch (kind) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(r & 0x100);
    case 2: {
        uint64_t x = resil_rng_next(rng);
        switch (r % 5) {
        case 0:
            return json_integer((json_int_t)(x % 2001) - 1000);
        case 1:
            return json_integer(INT64_MIN + (json_int_t)(x % 3));
        case 2:
            return json_integer(INT64_MAX - (json_int_t)(x % 3));
        default:
            return json_integer((json_int_t)x);
        }
    }
    case 3: {
        double d;
        if (r % 3 == 0) {
            uint64_t bits = resil_rng_next(rng);
            memcpy(&d, &bits, sizeof d);
            if (!isfinite(d))
                d = 0.0;
        } else {
            d = (double)((int64_t)(resil_rng_next(rng) % 2000001) - 1000000) /
                (double)(1 + resil_rng_next(rng) % 1000);
        }
        return json_real(d);
    }
    case 4:
    case 5:
    case 6:
        return random_string(rng);
    case 7: {
        json_t *a = json_array();
        int n = (int)(resil_rng_next(rng) % 5);
        for (int i = 0; i < n; i++)
            json_array_append_new(a, random_value(rng, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        int n = (int)(resil_rng_next(rng) % 5);
        for (int i = 0; i < n; i++) {
            json_t *k = random_string(rng);
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(rng, depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    resil_rng rng;
    resil_rng_seed(&rng, 20240611);
    for (int i = 0; i < 2000; i++) {
        /* Mostly collections, so that keys and nesting get exercised. */
        json_t *v = i % 4 == 0 ? random_value(&rng, 0) : json_object();
        if (i % 4 != 0) {
            for (int k = 0; k < 4; k++) {
                json_t *key = random_string(&rng);
                json_object_setn_new(v, json_string_value(key), json_string_length(key),
                                     random_value(&rng, 1));
                json_decref(key);
            }
        }
        assert_non_null(v);
        check_roundtrip(v);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_null_and_bool),
        cmocka_unit_test(test_parse_yaml11_words_are_strings),
        cmocka_unit_test(test_parse_integers),
        cmocka_unit_test(test_parse_floats),
        cmocka_unit_test(test_parse_strings),
        cmocka_unit_test(test_parse_collections),
        cmocka_unit_test(test_errors_aliases_anchors_tags),
        cmocka_unit_test(test_errors_duplicates_and_keys),
        cmocka_unit_test(test_errors_syntax),
        cmocka_unit_test(test_errors_documents),
        cmocka_unit_test(test_errors_depth),
        cmocka_unit_test(test_errors_not_representable),
        cmocka_unit_test(test_dump_format),
        cmocka_unit_test(test_dump_errors),
        cmocka_unit_test(test_roundtrip_table),
        cmocka_unit_test(test_roundtrip_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
