/* src/yaml.c - YAML <-> json_t with a safe YAML 1.2 core schema.
 *
 * Parsing walks libyaml's event stream and builds jansson values:
 *   - exactly one document (an empty stream or document is null);
 *   - mappings become objects (keys are scalars, taken verbatim as text; a
 *     duplicate key is an error), sequences become arrays;
 *   - no anchors, no aliases (so no "billion laughs"), no tags other than the
 *     core ones (!!str !!int !!float !!bool !!null !!map !!seq, in short or
 *     full form) and the non-specific tag "!" (which makes a scalar a
 *     string, as the YAML spec says);
 *   - plain scalars are resolved with the YAML 1.2 core schema (yes/no/on/off
 *     are strings); quoted and block scalars are strings;
 *   - integers outside int64, and .inf / .nan (or floats that overflow to
 *     infinity), are errors: JSON cannot hold them;
 *   - nesting deeper than RESIL__YAML_MAX_DEPTH collections is an error.
 *
 * Dumping emits block style with 2-space indentation through libyaml's
 * emitter, and quotes (double-quoted style) every string that a core-schema
 * or YAML 1.1 reader could take for something else, so that for every JSON
 * value v, parse(dump(v)) equals v.
 *
 * Floats are converted with strtod/snprintf; the C library's decimal point
 * follows LC_NUMERIC, so both directions translate it to and from '.'. */
#include "resil/files.h"
#include "internal/json_text.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Most collections nested in one another, in both directions. */
#define RESIL__YAML_MAX_DEPTH 512

#define CORE_TAG_PREFIX "tag:yaml.org,2002:"

#if defined(__GNUC__) || defined(__clang__)
#define YAML_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define YAML_PRINTF(f, a)
#endif

/* ---- scalar syntax (YAML 1.2 core schema) ------------------------------------ */

static bool eq(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    return n == w && memcmp(s, word, n) == 0;
}

static bool is_null_word(const char *s, size_t n)
{
    return n == 0 || eq(s, n, "null") || eq(s, n, "Null") || eq(s, n, "NULL") || eq(s, n, "~");
}

/* 1 true, 0 false, -1 not a boolean. */
static int bool_word(const char *s, size_t n)
{
    if (eq(s, n, "true") || eq(s, n, "True") || eq(s, n, "TRUE"))
        return 1;
    if (eq(s, n, "false") || eq(s, n, "False") || eq(s, n, "FALSE"))
        return 0;
    return -1;
}

/* Words that YAML 1.1 readers take for booleans (strings in the core schema). */
static bool is_yaml11_word(const char *s, size_t n)
{
    static const char *const words[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",
                                        "no", "No", "NO",  "on",  "On",  "ON",  "off",
                                        "Off", "OFF", "<<", "="};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (eq(s, n, words[i]))
            return true;
    return false;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum int_match { INT_NO = 0, INT_OK, INT_RANGE };

/* Matches [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ and converts to int64. */
static enum int_match match_int(const char *s, size_t n, json_int_t *out)
{
    if (n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
        unsigned base = s[1] == 'o' ? 8 : 16;
        uint64_t v = 0;
        bool range = false;
        for (size_t i = 2; i < n; i++) {
            int d = hex_value(s[i]);
            if (d < 0 || (unsigned)d >= base)
                return INT_NO;
            if (v > ((uint64_t)INT64_MAX - (uint64_t)d) / base)
                range = true;
            else
                v = v * base + (uint64_t)d;
        }
        if (range)
            return INT_RANGE;
        *out = (json_int_t)v;
        return INT_OK;
    }
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i == n)
        return INT_NO;
    /* Accumulate the magnitude in uint64: INT64_MIN's is INT64_MAX + 1. */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    bool range = false;
    for (; i < n; i++) {
        if (!is_digit(s[i]))
            return INT_NO;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (limit - d) / 10)
            range = true;
        else
            v = v * 10 + d;
    }
    if (range)
        return INT_RANGE;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? (json_int_t)INT64_MIN : -(json_int_t)v;
    else
        *out = (json_int_t)v;
    return INT_OK;
}

static size_t skip_digits(const char *s, size_t n, size_t *i)
{
    size_t start = *i;
    while (*i < n && is_digit(s[*i]))
        (*i)++;
    return *i - start;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool match_float(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    size_t whole = skip_digits(s, n, &i);
    if (i < n && s[i] == '.') {
        i++;
        size_t frac = skip_digits(s, n, &i);
        if (whole == 0 && frac == 0)
            return false;
    } else if (whole == 0) {
        return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        if (skip_digits(s, n, &i) == 0)
            return false;
    }
    return i == n;
}

/* [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN) */
static bool match_inf_nan(const char *s, size_t n)
{
    if (eq(s, n, ".nan") || eq(s, n, ".NaN") || eq(s, n, ".NAN"))
        return true;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        s++;
        n--;
    }
    return eq(s, n, ".inf") || eq(s, n, ".Inf") || eq(s, n, ".INF");
}

/* The C library's decimal point (LC_NUMERIC), "." in the C locale. */
static const char *decimal_point(void)
{
    const struct lconv *lc = localeconv();
    return lc && lc->decimal_point && lc->decimal_point[0] ? lc->decimal_point : ".";
}

/* Converts text that match_float accepted.  Returns 0, -ENOMEM, or
 * RESIL_EPARSE for a value that overflows to infinity. */
static int to_double(const char *s, size_t n, double *out)
{
    const char *dp = decimal_point();
    size_t dpn = strlen(dp);
    char small[64];
    size_t need = n * (dpn > 1 ? dpn : 1) + 1;
    char *buf = need <= sizeof small ? small : malloc(need);
    if (!buf)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            memcpy(buf + k, dp, dpn);
            k += dpn;
        } else {
            buf[k++] = s[i];
        }
    }
    buf[k] = '\0';
    char *end;
    double d = strtod(buf, &end);
    bool whole = *end == '\0';
    if (buf != small)
        free(buf);
    if (!whole || !isfinite(d))
        return RESIL_EPARSE;
    *out = d;
    return 0;
}

/* Decodes one UTF-8 sequence at s[0..n) (n >= 1).  Returns its length and
 * stores the code point, or returns 0 for an invalid sequence (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_decode(p + i, n - i, &cp);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

/* ---- parsing ---------------------------------------------------------------- */

struct pctx {
    yaml_parser_t parser;
    const char *text;
    size_t len;
    const char *name;
    resil_error *err;
};

/* Reports RESIL_EPARSE at a libyaml mark (0-based line and column). */
YAML_PRINTF(3, 4)
static int perr(struct pctx *c, yaml_mark_t mark, const char *fmt, ...)
{
    if (!c->err)
        return RESIL_EPARSE;
    char msg[sizeof c->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resil_error_set(c->err, RESIL_EPARSE, c->name, "%s", msg);
    c->err->line = mark.line < INT_MAX ? (int)mark.line + 1 : INT_MAX;
    c->err->column = mark.column < INT_MAX ? (int)mark.column + 1 : INT_MAX;
    return RESIL_EPARSE;
}

static int nomem(struct pctx *c)
{
    return resil_error_set(c->err, -ENOMEM, c->name, "out of memory while parsing YAML");
}

/* Turns the parser's error state into a resil error. */
static int parser_error(struct pctx *c)
{
    yaml_parser_t *p = &c->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return nomem(c);
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark: count lines. */
        yaml_mark_t m = {0, 0, 0};
        size_t off = p->problem_offset < c->len ? p->problem_offset : c->len;
        size_t bol = 0;
        for (size_t i = 0; i < off; i++) {
            if (c->text[i] == '\n') {
                m.line++;
                bol = i + 1;
            }
        }
        m.column = off - bol;
        if (p->problem_value >= 0)
            return perr(c, m, "invalid input: %s (#x%X at byte %zu)", problem,
                        (unsigned)p->problem_value, p->problem_offset);
        return perr(c, m, "invalid input: %s (at byte %zu)", problem, p->problem_offset);
    }
    if (p->context)
        return perr(c, p->problem_mark, "%s %s (line %zu, column %zu)", problem, p->context,
                    p->context_mark.line + 1, p->context_mark.column + 1);
    return perr(c, p->problem_mark, "%s", problem);
}

static int next_event(struct pctx *c, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&c->parser, ev))
        return parser_error(c);
    return 0;
}

/* Copies at most ~60 bytes of s into buf for a message, control characters
 * shown as '?'. */
static const char *excerpt(char *buf, size_t size, const char *s, size_t n)
{
    size_t max = size - 4 < 60 ? size - 4 : 60;
    size_t k = n < max ? n : max;
    /* Do not cut a UTF-8 sequence in half. */
    while (k < n && k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    for (size_t i = 0; i < k; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (k < n) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

enum kind { KIND_AUTO, KIND_STR, KIND_INT, KIND_FLOAT, KIND_BOOL, KIND_NULL, KIND_MAP, KIND_SEQ };

/* Classifies a tag.  Returns 0, or RESIL_EPARSE for a tag outside the core
 * schema.  NULL (no tag) gives KIND_AUTO, "!" gives KIND_STR. */
static int tag_kind(struct pctx *c, const yaml_char_t *tag, yaml_mark_t mark, enum kind *out)
{
    static const struct {
        const char *name;
        enum kind kind;
    } core[] = {{"str", KIND_STR},   {"int", KIND_INT}, {"float", KIND_FLOAT},
                {"bool", KIND_BOOL}, {"null", KIND_NULL}, {"map", KIND_MAP},
                {"seq", KIND_SEQ}};
    if (!tag) {
        *out = KIND_AUTO;
        return 0;
    }
    const char *t = (const char *)tag;
    if (strcmp(t, "!") == 0) {
        *out = KIND_STR;
        return 0;
    }
    size_t pn = sizeof CORE_TAG_PREFIX - 1;
    if (strncmp(t, CORE_TAG_PREFIX, pn) == 0) {
        for (size_t i = 0; i < sizeof core / sizeof core[0]; i++) {
            if (strcmp(t + pn, core[i].name) == 0) {
                *out = core[i].kind;
                return 0;
            }
        }
    }
    char buf[80];
    return perr(c, mark,
                "tag '%s' is not allowed (only the core schema tags !!str, !!int, !!float, "
                "!!bool, !!null, !!map and !!seq are)",
                excerpt(buf, sizeof buf, t, strlen(t)));
}

static int anchor_error(struct pctx *c, const yaml_char_t *anchor, yaml_mark_t mark)
{
    char buf[80];
    const char *a = (const char *)anchor;
    return perr(c, mark, "anchor '&%s' is not allowed (anchors and aliases are disabled)",
                excerpt(buf, sizeof buf, a, strlen(a)));
}

static int alias_error(struct pctx *c, const yaml_event_t *ev)
{
    char buf[80];
    const char *a = (const char *)ev->data.alias.anchor;
    return perr(c, ev->start_mark, "alias '*%s' is not allowed (anchors and aliases are disabled)",
                excerpt(buf, sizeof buf, a, strlen(a)));
}

static int make_string(struct pctx *c, const char *s, size_t n, yaml_mark_t mark, json_t **out)
{
    if (!utf8_valid(s, n))
        return perr(c, mark, "string is not valid UTF-8");
    *out = json_stringn_nocheck(s, n);
    return *out ? 0 : nomem(c);
}

/* A scalar event to a value, by tag and (for plain scalars) the core schema. */
static int parse_scalar(struct pctx *c, const yaml_event_t *ev, json_t **out)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    yaml_mark_t mark = ev->start_mark;
    enum kind kind;
    int rc = tag_kind(c, ev->data.scalar.tag, mark, &kind);
    if (rc)
        return rc;
    if (kind == KIND_AUTO && ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        kind = KIND_STR;
    char buf[80];
    json_int_t iv = 0;
    double dv = 0;
    switch (kind) {
    case KIND_STR:
        return make_string(c, s, n, mark, out);
    case KIND_MAP:
    case KIND_SEQ:
        return perr(c, mark, "tag '%s' cannot be used on a scalar",
                    (const char *)ev->data.scalar.tag);
    case KIND_NULL:
        if (!is_null_word(s, n))
            return perr(c, mark, "'%s' is not a valid !!null value",
                        excerpt(buf, sizeof buf, s, n));
        break;
    case KIND_BOOL:
        if (bool_word(s, n) < 0)
            return perr(c, mark, "'%s' is not a valid !!bool value",
                        excerpt(buf, sizeof buf, s, n));
        break;
    case KIND_INT:
    case KIND_FLOAT:
    case KIND_AUTO:
        break;
    }

    if (kind == KIND_NULL || (kind == KIND_AUTO && is_null_word(s, n))) {
        *out = json_null();
        return 0;
    }
    int b = bool_word(s, n);
    if (kind == KIND_BOOL || (kind == KIND_AUTO && b >= 0)) {
        *out = json_boolean(b);
        return 0;
    }
    if (kind == KIND_INT || kind == KIND_AUTO) {
        enum int_match m = match_int(s, n, &iv);
        if (m == INT_RANGE)
            return perr(c, mark, "integer %s is out of range (JSON integers are 64-bit)",
                        excerpt(buf, sizeof buf, s, n));
        if (m == INT_OK) {
            *out = json_integer(iv);
            return *out ? 0 : nomem(c);
        }
        if (kind == KIND_INT)
            return perr(c, mark, "'%s' is not a valid !!int value",
                        excerpt(buf, sizeof buf, s, n));
    }
    /* KIND_FLOAT or KIND_AUTO from here. */
    if (match_inf_nan(s, n))
        return perr(c, mark, "value '%s' is not representable in JSON (no infinities or NaN)",
                    excerpt(buf, sizeof buf, s, n));
    if (match_float(s, n)) {
        rc = to_double(s, n, &dv);
        if (rc == -ENOMEM)
            return nomem(c);
        if (rc)
            return perr(c, mark, "value '%s' is not representable in JSON (float out of range)",
                        excerpt(buf, sizeof buf, s, n));
        *out = json_real(dv);
        return *out ? 0 : nomem(c);
    }
    if (kind == KIND_FLOAT)
        return perr(c, mark, "'%s' is not a valid !!float value", excerpt(buf, sizeof buf, s, n));
    return make_string(c, s, n, mark, out);
}

static int parse_node(struct pctx *c, const yaml_event_t *ev, int depth, json_t **out);

static int collection_start(struct pctx *c, const yaml_event_t *ev, int depth, enum kind want)
{
    const yaml_char_t *anchor, *tag;
    if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    } else {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    }
    if (anchor)
        return anchor_error(c, anchor, ev->start_mark);
    enum kind kind;
    int rc = tag_kind(c, tag, ev->start_mark, &kind);
    if (rc)
        return rc;
    if (kind != KIND_AUTO && kind != want && !(kind == KIND_STR && strcmp((const char *)tag, "!") == 0))
        return perr(c, ev->start_mark, "tag '%s' cannot be used on a %s", (const char *)tag,
                    want == KIND_MAP ? "mapping" : "sequence");
    if (depth > RESIL__YAML_MAX_DEPTH)
        return perr(c, ev->start_mark, "nesting is too deep (more than %d levels)",
                    RESIL__YAML_MAX_DEPTH);
    return 0;
}

static int parse_sequence(struct pctx *c, int depth, json_t **out)
{
    json_t *arr = json_array();
    if (!arr)
        return nomem(c);
    for (;;) {
        yaml_event_t ev;
        int rc = next_event(c, &ev);
        if (rc) {
            json_decref(arr);
            return rc;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        json_t *v = NULL;
        rc = parse_node(c, &ev, depth, &v);
        yaml_event_delete(&ev);
        if (!rc && json_array_append_new(arr, v))
            rc = nomem(c);
        if (rc) {
            json_decref(arr);
            return rc;
        }
    }
    *out = arr;
    return 0;
}

/* Reads a key event and stores the key's text. */
static int parse_key(struct pctx *c, const yaml_event_t *ev, json_t *obj)
{
    if (ev->type == YAML_ALIAS_EVENT)
        return alias_error(c, ev);
    if (ev->type != YAML_SCALAR_EVENT)
        return perr(c, ev->start_mark, "mapping keys must be scalars, not %s",
                    ev->type == YAML_MAPPING_START_EVENT ? "mappings" : "sequences");
    if (ev->data.scalar.anchor)
        return anchor_error(c, ev->data.scalar.anchor, ev->start_mark);
    enum kind kind;
    int rc = tag_kind(c, ev->data.scalar.tag, ev->start_mark, &kind);
    if (rc)
        return rc;
    if (kind == KIND_MAP || kind == KIND_SEQ)
        return perr(c, ev->start_mark, "tag '%s' cannot be used on a scalar",
                    (const char *)ev->data.scalar.tag);
    const char *k = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (!utf8_valid(k, n))
        return perr(c, ev->start_mark, "key is not valid UTF-8");
    if (json_object_getn(obj, k, n)) {
        char buf[80];
        return perr(c, ev->start_mark, "duplicate key '%s'", excerpt(buf, sizeof buf, k, n));
    }
    return 0;
}

static int parse_mapping(struct pctx *c, int depth, json_t **out)
{
    json_t *obj = json_object();
    if (!obj)
        return nomem(c);
    for (;;) {
        yaml_event_t kev, vev;
        int rc = next_event(c, &kev);
        if (rc) {
            json_decref(obj);
            return rc;
        }
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        rc = parse_key(c, &kev, obj);
        if (!rc)
            rc = next_event(c, &vev);
        if (rc) {
            yaml_event_delete(&kev);
            json_decref(obj);
            return rc;
        }
        json_t *v = NULL;
        rc = parse_node(c, &vev, depth, &v);
        yaml_event_delete(&vev);
        if (!rc && json_object_setn_new_nocheck(obj, (const char *)kev.data.scalar.value,
                                                kev.data.scalar.length, v))
            rc = nomem(c);
        yaml_event_delete(&kev);
        if (rc) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return 0;
}

/* Builds the value that starts with event ev (borrowed); depth is the number
 * of collections around it. */
static int parse_node(struct pctx *c, const yaml_event_t *ev, int depth, json_t **out)
{
    int rc;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return alias_error(c, ev);
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor)
            return anchor_error(c, ev->data.scalar.anchor, ev->start_mark);
        return parse_scalar(c, ev, out);
    case YAML_SEQUENCE_START_EVENT:
        rc = collection_start(c, ev, depth + 1, KIND_SEQ);
        return rc ? rc : parse_sequence(c, depth + 1, out);
    case YAML_MAPPING_START_EVENT:
        rc = collection_start(c, ev, depth + 1, KIND_MAP);
        return rc ? rc : parse_mapping(c, depth + 1, out);
    default:
        return perr(c, ev->start_mark, "unexpected YAML event %d", (int)ev->type);
    }
}

/* STREAM-START (DOCUMENT-START node DOCUMENT-END)? STREAM-END */
static int parse_stream(struct pctx *c, json_t **out)
{
    yaml_event_t ev;
    int rc = next_event(c, &ev);
    if (rc)
        return rc;
    yaml_event_type_t t = ev.type;
    yaml_event_delete(&ev);
    if (t != YAML_STREAM_START_EVENT)
        return perr(c, c->parser.mark, "unexpected YAML event %d", (int)t);

    if ((rc = next_event(c, &ev)))
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        *out = json_null();
        return 0;
    }
    t = ev.type;
    yaml_event_delete(&ev);
    if (t != YAML_DOCUMENT_START_EVENT)
        return perr(c, c->parser.mark, "unexpected YAML event %d", (int)t);

    if ((rc = next_event(c, &ev)))
        return rc;
    json_t *value = NULL;
    rc = parse_node(c, &ev, 0, &value);
    yaml_event_delete(&ev);
    if (rc)
        return rc;

    if ((rc = next_event(c, &ev)))
        goto fail;
    t = ev.type;
    yaml_event_delete(&ev);
    if (t != YAML_DOCUMENT_END_EVENT) {
        rc = perr(c, c->parser.mark, "unexpected YAML event %d", (int)t);
        goto fail;
    }
    if ((rc = next_event(c, &ev)))
        goto fail;
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        rc = perr(c, ev.start_mark, "more than one document (a file holds exactly one)");
        yaml_event_delete(&ev);
        goto fail;
    }
    t = ev.type;
    yaml_event_delete(&ev);
    if (t != YAML_STREAM_END_EVENT) {
        rc = perr(c, c->parser.mark, "unexpected YAML event %d", (int)t);
        goto fail;
    }
    *out = value;
    return 0;
fail:
    json_decref(value);
    return rc;
}

int resil_yaml_parse(json_t **out, const char *text, size_t len, const char *name,
                     resil_error *err)
{
    if (!out || (!text && len))
        return resil_error_set(err, RESIL_EINVAL, name, "resil_yaml_parse: NULL argument");
    *out = NULL;
    struct pctx c = {.text = text ? text : "", .len = len, .name = name, .err = err};
    if (!yaml_parser_initialize(&c.parser))
        return nomem(&c);
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)c.text, len);
    json_t *value = NULL;
    int rc = parse_stream(&c, &value);
    yaml_parser_delete(&c.parser);
    if (rc)
        return rc;
    *out = value;
    return 0;
}

/* ---- dumping ---------------------------------------------------------------- */

struct obuf {
    char *p;
    size_t len, cap;
    bool nomem;
};

static int write_out(void *data, unsigned char *bytes, size_t size)
{
    struct obuf *b = data;
    if (size > SIZE_MAX - 1 - b->len) {
        b->nomem = true;
        return 0;
    }
    if (b->len + size + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + size + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + size + 1 : cap * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->nomem = true;
            return 0;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, bytes, size);
    b->len += size;
    b->p[b->len] = '\0';
    return 1;
}

struct ectx {
    yaml_emitter_t em;
    struct obuf out;
    resil_error *err;
};

/* Emits an event (the emitter owns it from here on, even on failure). */
static int emit(struct ectx *c, yaml_event_t *ev)
{
    if (yaml_emitter_emit(&c->em, ev))
        return 0;
    if (c->em.error == YAML_MEMORY_ERROR || c->out.nomem)
        return resil_error_set(c->err, -ENOMEM, NULL, "out of memory while writing YAML");
    return resil_error_set(c->err, RESIL_EINVAL, NULL, "cannot write YAML: %s",
                           c->em.problem ? c->em.problem : "emitter error");
}

static int event_nomem(struct ectx *c)
{
    return resil_error_set(c->err, -ENOMEM, NULL, "out of memory while writing YAML");
}

/* True when the string can be written as a plain scalar and would be read
 * back as the same string, by a core-schema reader and by a YAML 1.1 one. */
static bool plain_safe(const char *s, size_t n)
{
    if (n == 0)
        return false;
    /* Indicators, and what could start a number, null or document marker. */
    if (strchr("-?:,[]{}#&*!|>'\"%@`.+~ \t", s[0]) || is_digit(s[0]) || s[0] == '\0')
        return false;
    if (s[n - 1] == ' ' || s[n - 1] == ':')
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch < 0x80) {
            if (ch < 0x20 || ch == 0x7f)
                return false;
            if (ch == ':' && (i + 1 == n || p[i + 1] == ' '))
                return false;
            if (ch == '#' && i > 0 && p[i - 1] == ' ')
                return false;
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = utf8_decode(p + i, n - i, &cp);
        /* C1 controls, line/paragraph separators, BOM, non-characters. */
        if (!l || cp < 0xa0 || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe ||
            cp == 0xffff)
            return false;
        i += l;
    }
    json_int_t iv;
    if (is_null_word(s, n) || bool_word(s, n) >= 0 || is_yaml11_word(s, n) ||
        match_int(s, n, &iv) != INT_NO || match_float(s, n) || match_inf_nan(s, n))
        return false;
    return true;
}

static int emit_scalar(struct ectx *c, const char *s, size_t n, yaml_scalar_style_t style)
{
    if (n > INT_MAX)
        return resil_error_set(c->err, RESIL_EINVAL, NULL, "string too long for YAML");
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style))
        return event_nomem(c);
    return emit(c, &ev);
}

static int emit_string(struct ectx *c, const char *s, size_t n)
{
    return emit_scalar(c, s, n,
                       plain_safe(s, n) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

/* Formats a finite double so that it reads back as the same float: the
 * digits JSON writes (resil__json_format_real: the shortest text that
 * round-trips, ".0" when it would look like an integer), with YAML's usual
 * signed exponent ("1e+300", "5e-324"). */
static int format_real(char *buf, size_t size, double d)
{
    char tmp[64];
    int n = resil__json_format_real(tmp, sizeof tmp, d);
    if (n < 0)
        return RESIL_EINVAL;
    char *x = strchr(tmp, 'e');
    size_t k = (size_t)n;
    if (x && x[1] != '-') {
        if (k + 2 > sizeof tmp)
            return RESIL_EINVAL;
        memmove(x + 2, x + 1, strlen(x + 1) + 1);
        x[1] = '+';
        k++;
    }
    if (k + 1 > size || !match_float(tmp, k))
        return RESIL_EINVAL;
    memcpy(buf, tmp, k + 1);
    return 0;
}

static int dump_value(struct ectx *c, const json_t *v, int depth)
{
    char num[80];
    yaml_event_t ev;
    int rc;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY: {
        bool obj = json_is_object(v);
        size_t size = obj ? json_object_size(v) : json_array_size(v);
        if (depth + 1 > RESIL__YAML_MAX_DEPTH)
            return resil_error_set(c->err, RESIL_EINVAL, NULL,
                                   "value nested too deep for YAML (more than %d levels)",
                                   RESIL__YAML_MAX_DEPTH);
        int ok;
        if (obj)
            ok = yaml_mapping_start_event_initialize(
                &ev, NULL, NULL, 1, size ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE);
        else
            ok = yaml_sequence_start_event_initialize(
                &ev, NULL, NULL, 1, size ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE);
        if (!ok)
            return event_nomem(c);
        if ((rc = emit(c, &ev)))
            return rc;
        if (obj) {
            /* Iteration order is insertion order (jansson >= 2.13). */
            for (void *it = json_object_iter((json_t *)v); it;
                 it = json_object_iter_next((json_t *)v, it)) {
                if ((rc = emit_string(c, json_object_iter_key(it), json_object_iter_key_len(it))))
                    return rc;
                if ((rc = dump_value(c, json_object_iter_value(it), depth + 1)))
                    return rc;
            }
            ok = yaml_mapping_end_event_initialize(&ev);
        } else {
            for (size_t i = 0; i < size; i++)
                if ((rc = dump_value(c, json_array_get(v, i), depth + 1)))
                    return rc;
            ok = yaml_sequence_end_event_initialize(&ev);
        }
        if (!ok)
            return event_nomem(c);
        return emit(c, &ev);
    }
    case JSON_STRING:
        return emit_string(c, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return emit_scalar(c, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
    case JSON_REAL: {
        double d = json_real_value(v);
        if (!isfinite(d) || format_real(num, sizeof num, d))
            return resil_error_set(c->err, RESIL_EINVAL, NULL,
                                   "real %g cannot be written as YAML", d);
        return emit_scalar(c, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
    }
    case JSON_TRUE:
        return emit_scalar(c, "true", 4, YAML_PLAIN_SCALAR_STYLE);
    case JSON_FALSE:
        return emit_scalar(c, "false", 5, YAML_PLAIN_SCALAR_STYLE);
    case JSON_NULL:
        return emit_scalar(c, "null", 4, YAML_PLAIN_SCALAR_STYLE);
    }
    return resil_error_set(c->err, RESIL_EINVAL, NULL, "unknown JSON type");
}

static int dump_document(struct ectx *c, const json_t *value)
{
    yaml_event_t ev;
    int rc;
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING))
        return event_nomem(c);
    if ((rc = emit(c, &ev)))
        return rc;
    if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1))
        return event_nomem(c);
    if ((rc = emit(c, &ev)))
        return rc;
    if ((rc = dump_value(c, value, 0)))
        return rc;
    if (!yaml_document_end_event_initialize(&ev, 1))
        return event_nomem(c);
    if ((rc = emit(c, &ev)))
        return rc;
    if (!yaml_stream_end_event_initialize(&ev))
        return event_nomem(c);
    if ((rc = emit(c, &ev)))
        return rc;
    if (!yaml_emitter_flush(&c->em))
        return c->out.nomem ? event_nomem(c)
                            : resil_error_set(c->err, RESIL_EINVAL, NULL, "cannot write YAML");
    return 0;
}

int resil_yaml_dump(char **out, const json_t *value, resil_error *err)
{
    if (!out || !value)
        return resil_error_set(err, RESIL_EINVAL, NULL, "resil_yaml_dump: NULL argument");
    *out = NULL;
    struct ectx c = {.err = err};
    if (!yaml_emitter_initialize(&c.em))
        return event_nomem(&c);
    yaml_emitter_set_output(&c.em, write_out, &c.out);
    yaml_emitter_set_unicode(&c.em, 1);
    yaml_emitter_set_indent(&c.em, 2);
    yaml_emitter_set_width(&c.em, -1);
    yaml_emitter_set_break(&c.em, YAML_LN_BREAK);
    int rc = dump_document(&c, value);
    yaml_emitter_delete(&c.em);
    if (!rc && !c.out.p && !write_out(&c.out, (unsigned char *)"", 0))
        rc = event_nomem(&c);
    if (rc) {
        free(c.out.p);
        return rc;
    }
    *out = c.out.p;
    return 0;
}
