/* src/store_local.c - the in-process backend of the store interface: the
 * record lives in malloc'd memory, locked by a mutex.  See
 * src/internal/store.h and docs/store.md. */
#include "internal/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct local_store {
    resil__store base;
    pthread_mutex_t mu;
};

static int local_lock(resil__store *s)
{
    pthread_mutex_lock(&((struct local_store *)s)->mu);
    return 0;
}

static void local_unlock(resil__store *s)
{
    pthread_mutex_unlock(&((struct local_store *)s)->mu);
}

static void local_close(resil__store *s)
{
    struct local_store *l = (struct local_store *)s;
    pthread_mutex_destroy(&l->mu);
    free(s->rec);
    free(l);
}

static const resil__store_ops local_ops = {
    .kind = "local",
    .read = resil__rec_read,
    .apply = resil__rec_apply,
    .add = resil__rec_add,
    .lease_take = resil__rec_lease_take,
    .lease_return = resil__rec_lease_return,
    .close = local_close,
    .lock = local_lock,
    .unlock = local_unlock,
};

int resil__store_open_local(resil__store **out, const char *name)
{
    struct local_store *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    struct resil__cb_state *st = aligned_alloc(128, sizeof *st);
    if (!st) {
        free(l);
        return -ENOMEM;
    }
    memset(st, 0, sizeof *st);
    resil__cb_state_init(st, name);
    pthread_mutex_init(&l->mu, NULL);
    l->base.ops = &local_ops;
    l->base.caps = RESIL__STORE_CAP_RECORD;
    l->base.rec = l->base.st = st;
    snprintf(l->base.name, sizeof l->base.name, "%s", name);
    *out = &l->base;
    return 0;
}
