/* src/json.c - RFC 6901 JSON Pointers on jansson values, and resil's JSON
 * text encoder (internal/json_text.h). */
#define _GNU_SOURCE
#include "resil/json.h"
#include "internal/json_text.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jptr {
    size_t n;    /* reference tokens (0: the whole document) */
    char **tok;  /* unescaped */
    size_t *end; /* token k ends at text[end[k]] */
    const char *text;
    char *store;
} jptr;

static void jptr_free(jptr *p)
{
    free(p->tok);
    free(p->end);
    free(p->store);
    memset(p, 0, sizeof *p);
}

static int jptr_parse(jptr *p, const char *s, resil_error *err)
{
    memset(p, 0, sizeof *p);
    if (!s)
        return resil_error_set(err, RESIL_EINVAL, NULL, "the JSON Pointer is NULL");
    p->text = s;
    if (s[0] == '\0')
        return 0;
    if (s[0] != '/')
        return resil_error_set(err, RESIL_EINVAL, s,
                               "bad JSON Pointer '%s': it must be empty or start with '/'", s);
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++)
        p->n += s[i] == '/';
    p->tok = calloc(p->n, sizeof *p->tok);
    p->end = calloc(p->n, sizeof *p->end);
    p->store = malloc(len + 1);
    if (!p->tok || !p->end || !p->store) {
        jptr_free(p);
        return resil_error_set(err, -ENOMEM, s, "out of memory");
    }
    char *w = p->store;
    size_t i = 1;
    for (size_t k = 0; k < p->n; k++) {
        p->tok[k] = w;
        for (; i < len && s[i] != '/'; i++) {
            if (s[i] != '~') {
                *w++ = s[i];
            } else if (s[i + 1] == '0') {
                *w++ = '~';
                i++;
            } else if (s[i + 1] == '1') {
                *w++ = '/';
                i++;
            } else {
                jptr_free(p);
                return resil_error_set(err, RESIL_EINVAL, s,
                                       "bad JSON Pointer '%s': '~' must be followed by 0 or 1 "
                                       "(~0 is '~', ~1 is '/')",
                                       s);
            }
        }
        *w++ = '\0';
        p->end[k] = i;
        i++;
    }
    return 0;
}

/* "/a/b" for the first k tokens, "the document" for k == 0. */
static const char *jptr_prefix(const jptr *p, size_t k, char *buf, size_t size)
{
    if (k == 0)
        snprintf(buf, size, "the document");
    else
        snprintf(buf, size, "%.*s", (int)(p->end[k - 1] < 400 ? p->end[k - 1] : 400), p->text);
    return buf;
}

/* An array index: "0" or digits without a leading zero. */
static bool array_index(const char *t, size_t *out)
{
    if (t[0] < '0' || t[0] > '9' || (t[0] == '0' && t[1] != '\0'))
        return false;
    size_t v = 0;
    for (const char *q = t; *q; q++) {
        if (*q < '0' || *q > '9' || v > (SIZE_MAX - 9) / 10)
            return false;
        v = v * 10 + (size_t)(*q - '0');
    }
    *out = v;
    return true;
}

static json_t *child_of(json_t *v, const char *tok)
{
    if (json_is_object(v))
        return json_object_get(v, tok);
    size_t i;
    if (json_is_array(v) && array_index(tok, &i))
        return json_array_get(v, i);
    return NULL;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Walks the first `upto` tokens.  Returns the value or NULL with -ENOENT
 * set in err, naming the first prefix that has no value. */
static json_t *walk(json_t *doc, const jptr *p, size_t upto, int *rc, resil_error *err)
{
    json_t *v = doc;
    for (size_t k = 0; k < upto; k++) {
        json_t *next = v ? child_of(v, p->tok[k]) : NULL;
        if (!next) {
            char buf[450];
            *rc = resil_error_set(err, -ENOENT, p->text, "no value at %s",
                                  jptr_prefix(p, k + 1, buf, sizeof buf));
            return NULL;
        }
        v = next;
    }
    *rc = 0;
    return v;
}

int resil_json_pointer_get(json_t **out, json_t *doc, const char *pointer, resil_error *err)
{
    jptr p;
    int rc = jptr_parse(&p, pointer, err);
    if (rc)
        return rc;
    json_t *v = walk(doc, &p, p.n, &rc, err);
    if (!v && rc == 0)
        rc = resil_error_set(err, -ENOENT, pointer, "no document");
    if (rc == 0)
        *out = v;
    jptr_free(&p);
    return rc;
}

int resil_json_pointer_set(json_t **doc, const char *pointer, json_t *value, resil_error *err)
{
    if (!doc || !value)
        return resil_error_set(err, RESIL_EINVAL, pointer, "resil_json_pointer_set: bad arguments");
    jptr p;
    int rc = jptr_parse(&p, pointer, err);
    if (rc)
        return rc;
    if (p.n == 0) {
        json_t *old = *doc;
        *doc = json_incref(value); /* first: value may be *doc itself */
        json_decref(old);
        jptr_free(&p);
        return 0;
    }
    char buf[450], why[512] = "";
    json_t *parent = *doc ? walk(*doc, &p, p.n - 1, &rc, err) : NULL;
    if (rc && err)
        snprintf(why, sizeof why, "%s", err->message);
    if (!*doc)
        rc = resil_error_set(err, RESIL_EINVAL, pointer,
                             "cannot set %s: there is no document (only the pointer \"\" can "
                             "create it)",
                             pointer);
    else if (!parent)
        rc = resil_error_set(err, RESIL_EINVAL, pointer,
                             "cannot set %s: %s (the parent must exist)", pointer,
                             why[0] ? why : "no value at its parent");
    else if (!json_is_object(parent) && !json_is_array(parent))
        rc = resil_error_set(err, RESIL_EINVAL, pointer,
                             "cannot set %s: %s is %s, not an object or an array", pointer,
                             jptr_prefix(&p, p.n - 1, buf, sizeof buf), type_name(parent));
    if (rc) {
        jptr_free(&p);
        return rc;
    }
    const char *last = p.tok[p.n - 1];
    int r;
    if (json_is_object(parent)) {
        r = json_object_set(parent, last, value);
    } else {
        size_t i = 0, size = json_array_size(parent);
        if (strcmp(last, "-") == 0) {
            i = size;
        } else if (!array_index(last, &i)) {
            rc = resil_error_set(err, RESIL_EINVAL, pointer,
                                 "cannot set %s: '%s' is not an array index (0, 1, ... or - to "
                                 "append)",
                                 pointer, last);
        } else if (i > size) {
            rc = resil_error_set(err, RESIL_EINVAL, pointer,
                                 "cannot set %s: index %zu is past the end of the array (%zu "
                                 "element%s; use - to append)",
                                 pointer, i, size, size == 1 ? "" : "s");
        }
        if (rc) {
            jptr_free(&p);
            return rc;
        }
        r = i == size ? json_array_append(parent, value) : json_array_set(parent, i, value);
    }
    jptr_free(&p);
    if (r != 0)
        return resil_error_set(err, -ENOMEM, pointer, "cannot set %s: out of memory", pointer);
    return 0;
}

int resil_json_pointer_del(json_t *doc, const char *pointer, resil_error *err)
{
    jptr p;
    int rc = jptr_parse(&p, pointer, err);
    if (rc)
        return rc;
    if (p.n == 0) {
        jptr_free(&p);
        return resil_error_set(err, RESIL_EINVAL, pointer,
                               "the whole document (pointer \"\") cannot be deleted");
    }
    json_t *parent = doc ? walk(doc, &p, p.n - 1, &rc, err) : NULL;
    const char *last = p.tok[p.n - 1];
    size_t i = 0;
    bool found = false;
    if (json_is_object(parent))
        found = json_object_get(parent, last) != NULL;
    else if (json_is_array(parent))
        found = array_index(last, &i) && i < json_array_size(parent);
    if (!found) {
        jptr_free(&p);
        return resil_error_set(err, -ENOENT, pointer, "no value at %s", pointer);
    }
    if (json_is_object(parent))
        json_object_del(parent, last);
    else
        json_array_remove(parent, i);
    jptr_free(&p);
    return 0;
}

/* ---- the JSON text encoder ------------------------------------------------------- */

#define ENC_MAX_DEPTH 4096

typedef struct enc {
    char *buf;     /* where the text goes (NULL: only count) */
    size_t size;   /* capacity of buf */
    size_t len;    /* length of the whole text so far (may exceed size) */
    bool grow;     /* buf is ours: realloc() it */
    bool failed;   /* out of memory, or a value that cannot be written */
    size_t flags;
} enc;

static void put(enc *e, const char *p, size_t n)
{
    if (e->failed)
        return;
    if (e->grow && e->len + n + 1 > e->size) {
        size_t cap = e->size ? e->size : 256;
        while (cap < e->len + n + 1)
            cap *= 2;
        char *nb = realloc(e->buf, cap);
        if (!nb) {
            e->failed = true;
            return;
        }
        e->buf = nb;
        e->size = cap;
    }
    if (e->buf && e->len + n <= e->size)
        memcpy(e->buf + e->len, p, n);
    e->len += n;
}

/* The length of the UTF-8 sequence at p (at most n bytes), 0 if invalid:
 * jansson's rules (no overlong forms, no surrogates, at most U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n, int32_t *cp)
{
    unsigned c = p[0];
    size_t k;
    int32_t v;
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    } else if (c < 0xC2) {
        return 0;
    } else if (c < 0xE0) {
        k = 2;
        v = (int32_t)(c & 0x1F);
    } else if (c < 0xF0) {
        k = 3;
        v = (int32_t)(c & 0x0F);
    } else if (c < 0xF5) {
        k = 4;
        v = (int32_t)(c & 0x07);
    } else {
        return 0;
    }
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (int32_t)(p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (k == 3 && v < 0x800) ||
        (k == 4 && v < 0x10000))
        return 0;
    *cp = v;
    return k;
}

static void put_string(enc *e, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    put(e, "\"", 1);
    size_t run = 0; /* start of the bytes not yet written */
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        size_t k = utf8_seq(p + i, n - i, &cp);
        if (k == 0) {
            e->failed = true;
            return;
        }
        if (cp == '"' || cp == '\\' || cp < 0x20) {
            put(e, s + run, i - run);
            char seq[8];
            const char *t = seq;
            size_t tn = 2;
            switch (cp) {
            case '"': t = "\\\""; break;
            case '\\': t = "\\\\"; break;
            case '\b': t = "\\b"; break;
            case '\f': t = "\\f"; break;
            case '\n': t = "\\n"; break;
            case '\r': t = "\\r"; break;
            case '\t': t = "\\t"; break;
            default:
                snprintf(seq, sizeof seq, "\\u%04X", (unsigned)cp & 0xffffu); /* cp < 0x20 here */
                tn = 6;
                break;
            }
            put(e, t, tn);
            run = i + k;
        }
        i += k;
    }
    put(e, s + run, n - run);
    put(e, "\"", 1);
}

static void put_indent(enc *e, int depth, bool space)
{
    unsigned ws = (unsigned)(e->flags & 0x1F);
    if (ws > 0) {
        put(e, "\n", 1);
        static const char spaces[] = "                                ";
        size_t left = (size_t)depth * ws;
        while (left > 0) {
            size_t c = left < sizeof spaces - 1 ? left : sizeof spaces - 1;
            put(e, spaces, c);
            left -= c;
        }
    } else if (space && !(e->flags & JSON_COMPACT)) {
        put(e, " ", 1);
    }
}

int resil__json_format_real(char *buf, size_t size, double d)
{
    if (!isfinite(d) || size < 8)
        return -1;
    char tmp[64];
    int prec = 15;
    for (; prec <= 17; prec++) {
        if (snprintf(tmp, sizeof tmp, "%.*g", prec, d) >= (int)sizeof tmp)
            return -1;
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    /* A normal double that %.15g writes is already in its shortest text
     * (%g drops trailing zeros, and 15 digits always read back unchanged);
     * a subnormal one has fewer significant bits, so fewer digits may do
     * (5e-324): the shortest precision that reads back, by bisection. */
    if (prec == 15 && d != 0 && fabs(d) < DBL_MIN) {
        int lo = 1, hi = 15;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            char t[64];
            int tn = snprintf(t, sizeof t, "%.*g", mid, d);
            if (tn > 0 && tn < (int)sizeof t && strtod(t, NULL) == d)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (snprintf(tmp, sizeof tmp, "%.*g", lo, d) >= (int)sizeof tmp)
            return -1;
    }
    /* '.' whatever the locale */
    const char *dp = localeconv()->decimal_point;
    size_t dpn = dp ? strlen(dp) : 0;
    size_t k = 0;
    for (const char *q = tmp; *q;) {
        if (k + 1 >= size)
            return -1;
        if (dpn && !(dpn == 1 && dp[0] == '.') && strncmp(q, dp, dpn) == 0) {
            buf[k++] = '.';
            q += dpn;
        } else {
            buf[k++] = *q++;
        }
    }
    buf[k] = '\0';
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        if (k + 3 > size)
            return -1;
        memcpy(buf + k, ".0", 3);
        k += 2;
    }
    /* jansson's exponent: no '+', no leading zeros */
    char *x = strchr(buf, 'e');
    if (x) {
        char *start = x + 1, *end = x + 2;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, strlen(end) + 1);
            k = strlen(buf);
        }
    }
    return (int)k;
}

static void put_value(enc *e, const json_t *v, int depth)
{
    if (e->failed)
        return;
    if (!v || depth > ENC_MAX_DEPTH) {
        e->failed = true;
        return;
    }
    char num[64];
    switch (json_typeof(v)) {
    case JSON_NULL: put(e, "null", 4); break;
    case JSON_TRUE: put(e, "true", 4); break;
    case JSON_FALSE: put(e, "false", 5); break;
    case JSON_INTEGER: {
        int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put(e, num, (size_t)n);
        break;
    }
    case JSON_REAL: {
        int n = resil__json_format_real(num, sizeof num, json_real_value(v));
        if (n < 0)
            e->failed = true;
        else
            put(e, num, (size_t)n);
        break;
    }
    case JSON_STRING: put_string(e, json_string_value(v), json_string_length(v)); break;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        put(e, "[", 1);
        if (n == 0) {
            put(e, "]", 1);
            break;
        }
        put_indent(e, depth + 1, false);
        for (size_t i = 0; i < n && !e->failed; i++) {
            put_value(e, json_array_get(v, i), depth + 1);
            if (i + 1 < n) {
                put(e, ",", 1);
                put_indent(e, depth + 1, true);
            } else {
                put_indent(e, depth, false);
            }
        }
        put(e, "]", 1);
        break;
    }
    case JSON_OBJECT: {
        const char *sep = (e->flags & JSON_COMPACT) ? ":" : ": ";
        size_t sepn = strlen(sep);
        void *it = json_object_iter((json_t *)v);
        put(e, "{", 1);
        if (!it) {
            put(e, "}", 1);
            break;
        }
        put_indent(e, depth + 1, false);
        while (it && !e->failed) {
            void *next = json_object_iter_next((json_t *)v, it);
            put_string(e, json_object_iter_key(it), json_object_iter_key_len(it));
            put(e, sep, sepn);
            put_value(e, json_object_iter_value(it), depth + 1);
            if (next) {
                put(e, ",", 1);
                put_indent(e, depth + 1, true);
            } else {
                put_indent(e, depth, false);
            }
            it = next;
        }
        put(e, "}", 1);
        break;
    }
    default: e->failed = true; break;
    }
}

char *resil__json_dumps(const json_t *v, size_t flags, size_t *len)
{
    enc e = {.grow = true, .flags = flags};
    put_value(&e, v, 0);
    put(&e, "", 0);
    if (!e.failed && !e.buf) { /* cannot happen: every value writes something */
        e.failed = true;
    }
    if (e.failed) {
        free(e.buf);
        return NULL;
    }
    e.buf[e.len] = '\0'; /* put() keeps one byte spare */
    if (len)
        *len = e.len;
    return e.buf;
}

size_t resil__json_dumpb(const json_t *v, char *buf, size_t size, size_t flags)
{
    enc e = {.buf = size ? buf : NULL, .size = size, .flags = flags};
    put_value(&e, v, 0);
    return e.failed ? 0 : e.len;
}
