/* resil/json.h - JSON helpers shared by the modules and the command:
 * RFC 6901 JSON Pointers on jansson values.
 *
 * Thread safety: the functions are reentrant; a json_t must not be changed by
 * two threads at once (jansson's rule).
 */
#ifndef RESIL_JSON_H
#define RESIL_JSON_H

#include <jansson.h>

#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The value at `pointer` in doc ("" is doc itself; "/a/0/b~1c" is member
 * "b/c" of element 0 of member "a").  *out is borrowed from doc.
 * Errors: RESIL_EINVAL for a malformed pointer (err->message says why);
 * -ENOENT when there is no value there (the message names the longest prefix
 * that exists... or the first one that does not). */
RESIL_EXPORT int resil_json_pointer_get(json_t **out, json_t *doc, const char *pointer,
                                        resil_error *err);

/* Sets the value at `pointer` to `value` (borrowed: a reference is taken).
 * "" replaces the whole document (*doc is decref'd and replaced; *doc may be
 * NULL then).  In an array, "-" or an index equal to its size appends; other
 * indexes replace.  The parent must exist and be an object or an array.
 * Errors: RESIL_EINVAL (malformed pointer, missing parent, bad index: the
 * message says which), -ENOMEM. */
RESIL_EXPORT int resil_json_pointer_set(json_t **doc, const char *pointer, json_t *value,
                                        resil_error *err);

/* Removes the value at `pointer` ("" cannot be removed: RESIL_EINVAL).
 * Errors: RESIL_EINVAL for a malformed pointer, -ENOENT when nothing is
 * there. */
RESIL_EXPORT int resil_json_pointer_del(json_t *doc, const char *pointer, resil_error *err);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_JSON_H */
