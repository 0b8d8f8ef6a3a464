/* src/json.c - RFC 6901 JSON Pointers on jansson values. */
#define _GNU_SOURCE
#include "resil/json.h"

#include <errno.h>
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
