/* src/internal/json_text.h - resil's JSON text encoder (core layer; in
 * src/json.c).
 *
 * The same text as jansson's json_dumps() for the flags it takes (keys in
 * insertion order, jansson's escaping: '"', '\\' and control characters
 * escaped, \u00XX in upper-case hex for those without a short form, '/' and
 * non-ASCII characters written as they are), except for reals: each real is
 * written with the shortest of %.15g, %.16g and %.17g that reads back as the
 * same double, with ".0" added when it would look like an integer and the
 * exponent without '+' or leading zeros (1e300, 5e-324, 0.1, -0.0), where
 * jansson's JSON_REAL_PRECISION(17) writes 0.10000000000000001.  Used for
 * every JSON document resil writes (state files, NDJSON records, `resil json
 * get`).  Reentrant. */
#ifndef RESIL_INTERNAL_JSON_TEXT_H
#define RESIL_INTERNAL_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* The flags taken: JSON_INDENT(n) (0..31) and JSON_COMPACT, as jansson reads
 * them; any value may be encoded (JSON_ENCODE_ANY is implied); other flags
 * are ignored. */

/* Encodes v into a new malloc()ed NUL-terminated string (*len, if not NULL,
 * receives its length).  Returns NULL for a value that cannot be written
 * (a string or key that is not valid UTF-8, a non-finite real, nesting
 * deeper than 4096) or when out of memory. */
char *resil__json_dumps(const json_t *v, size_t flags, size_t *len);

/* Like json_dumpb: writes the text into buf when it fits in size bytes (no
 * NUL is added) and returns its length in any case, or 0 for a value that
 * cannot be written.  buf may be NULL with size 0 (to measure). */
size_t resil__json_dumpb(const json_t *v, char *buf, size_t size, size_t flags);

/* The text of a finite real, as above, into buf (NUL-terminated).  Returns
 * its length, or -1 (not finite, buffer too small). */
int resil__json_format_real(char *buf, size_t size, double d);

#endif
