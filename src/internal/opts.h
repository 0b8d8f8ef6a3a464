/* src/internal/opts.h - the version check of option structs (docs/abi.md).
 *
 * An option struct's first member is `unsigned version`, set by its *_INIT
 * macro.  The library accepts 1 .. newest, reads 0 as 1 (a zeroed struct),
 * and refuses anything newer with RESIL_EINVAL and a message naming the
 * struct.  Not exported from the shared library. */
#ifndef RESIL_INTERNAL_OPTS_H
#define RESIL_INTERNAL_OPTS_H

#include "resil/common.h"

/* Returns 0 when `version` is one this library knows (0 .. newest), else
 * fills err (path "version") and returns RESIL_EINVAL.  `type` names the
 * struct in the message ("resil_file_opts"). */
int resil__opts_version_check(resil_error *err, const char *type, unsigned version,
                              unsigned newest);

#endif
