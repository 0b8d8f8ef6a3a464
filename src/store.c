/* src/store.c - the store interface's entry points: which backend a spec
 * opens, lists and resets.  A network backend (Redis) is one more case
 * here; its callers do not change.  See src/internal/store.h. */
#include "internal/store.h"

#include <errno.h>

#include "internal/store_mmap.h"

int resil__store_open(resil__store **out, const resil__store_spec *spec, resil_error *err)
{
    if (!spec->dir) {
        int rc = resil__store_open_local(out, spec->name);
        if (rc)
            resil_error_set(err, rc, NULL, "out of memory");
        return rc;
    }
    int rc = resil__store_open_file_cfg(out, spec->dir, spec->name, spec->attach_only,
                                        &spec->cfg, spec->now_ns, spec->wall_ns, err);
    if (rc == 0 && spec->guard_every_call && !(*out)->readonly) {
        (*out)->guarded = true;
        (*out)->st = NULL; /* every access through the operations */
    }
    return rc;
}

int resil__store_list(const char *dir, int (*fn)(const char *name, void *arg), void *arg,
                      resil_error *err)
{
    return resil__store_mmap_list(dir, fn, arg, err);
}

int resil__store_reset(const char *dir, const char *name, const resil__store_cfg *cfg,
                       resil_error *err)
{
    return resil__cb_reset_file(dir, name, cfg, err);
}
