/* tests/unit/test_store.c - the store interface itself (src/internal/store.h),
 * every backend through the same table: compare-and-apply and its conflicts,
 * batches of counter deltas (from threads too), leases taken, returned,
 * expired and replaced, reopening; then what only a shared backend does:
 * list, and processes (fork) that apply, add and take leases at once, or die
 * holding the lock or a lease. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/store.h"
#include "internal/store_mmap.h"

#define S_NS INT64_C(1000000000)

static char dir[256];

/* ---- the backends ---------------------------------------------------------- */

struct backend {
    const char *kind;
    bool shared; /* other handles (and processes) see the same state */
    int (*open)(resil__store **out, const char *name);
};

static int open_local(resil__store **out, const char *name)
{
    resil__store_spec spec = {.name = name};
    return resil__store_open(out, &spec, NULL);
}

static int open_mmap(resil__store **out, const char *name)
{
    resil__store_spec spec = {.name = name, .dir = dir, .now_ns = S_NS, .wall_ns = S_NS};
    return resil__store_open(out, &spec, NULL);
}

static const struct backend backends[] = {
    {"local", false, open_local},
    {"mmap", true, open_mmap},
};
#define NBACKENDS (sizeof backends / sizeof backends[0])

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/resil-test-store-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static resil__store *must_open(const struct backend *be, const char *name)
{
    resil__store *s = NULL;
    assert_int_equal(be->open(&s, name), 0);
    assert_non_null(s);
    assert_string_equal(s->ops->kind, be->kind);
    return s;
}

static uint64_t word_of(resil__store *s)
{
    resil__store_view v;
    assert_int_equal(s->ops->read(s, 0, &v), 0);
    return v.word;
}

/* ---- transitions used by the tests ------------------------------------------- */

struct bump {
    int runs;      /* how often fn ran */
    int64_t saw;   /* consecutive_failures before */
    bool move;     /* also a new epoch */
};

/* Adds one to consecutive_failures (and, when asked, moves the epoch on). */
static int bump(struct resil__cb_state *st, void *arg)
{
    struct bump *b = arg;
    b->runs++;
    b->saw = atomic_load(&st->consecutive_failures);
    atomic_store(&st->consecutive_failures, b->saw + 1);
    if (b->move) {
        uint64_t w = atomic_load(&st->word);
        atomic_store(&st->word, (w & 0xffu) | ((RESIL__CB_EPOCH(w) + 1) << 8));
    }
    return 0;
}

static int refuse_fn(struct resil__cb_state *st, void *arg)
{
    (void)st;
    (void)arg;
    return -EDOM;
}

/* ---- the same table for every backend ------------------------------------------ */

static void fresh_state(const struct backend *be)
{
    resil__store *s = must_open(be, "fresh");
    assert_true(s->caps & RESIL__STORE_CAP_RECORD);
    assert_non_null(s->st); /* both give a fast-path record */
    assert_int_equal(!!(s->caps & RESIL__STORE_CAP_SHARED), be->shared);
    resil__store_view v;
    assert_int_equal(s->ops->read(s, RESIL__VIEW_COUNTS | RESIL__VIEW_LEASES, &v), 0);
    assert_int_equal(RESIL__CB_STATE(v.word), RESIL__CB_CLOSED);
    assert_int_equal(v.consecutive_failures, 0);
    for (int k = 0; k < 4; k++)
        assert_int_equal(v.counts[k], 0);
    for (int i = 0; i < RESIL__CB_SLOTS; i++)
        assert_int_equal(v.lease_expires[i], 0);
    resil__store_close(s);
}

static void apply_and_conflict(const struct backend *be)
{
    resil__store *s = must_open(be, "apply");
    uint64_t w0 = word_of(s);
    struct bump b = {0, 0, false};
    assert_int_equal(s->ops->apply(s, RESIL__STORE_ANY, bump, &b), 0);
    assert_int_equal(b.runs, 1);
    assert_int_equal(s->ops->apply(s, w0, bump, &b), 0); /* the word has not moved */
    assert_int_equal(b.runs, 2);
    assert_int_equal(b.saw, 1);
    b.move = true;
    assert_int_equal(s->ops->apply(s, w0, bump, &b), 0);
    uint64_t w1 = word_of(s);
    assert_int_equal(RESIL__CB_EPOCH(w1), RESIL__CB_EPOCH(w0) + 1);
    /* the old word no longer matches: fn does not run */
    b.runs = 0;
    assert_int_equal(s->ops->apply(s, w0, bump, &b), RESIL__STORE_CONFLICT);
    assert_int_equal(b.runs, 0);
    /* fn's error comes back */
    assert_int_equal(s->ops->apply(s, w1, refuse_fn, NULL), -EDOM);
    resil__store_view v;
    assert_int_equal(s->ops->read(s, 0, &v), 0);
    assert_int_equal(v.consecutive_failures, 3);
    resil__store_close(s);
}

struct adder {
    resil__store *s;
    int n;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    resil__store_delta d = {1, 2, 0, 3};
    for (int i = 0; i < a->n; i++)
        if (a->s->ops->add(a->s, &d) != 0)
            return (void *)1;
    return NULL;
}

static void deltas(const struct backend *be)
{
    resil__store *s = must_open(be, "deltas");
    resil__store_delta d = {5, 0, 7, 1};
    assert_int_equal(s->ops->add(s, &d), 0);
    resil__store_view v;
    assert_int_equal(s->ops->read(s, RESIL__VIEW_COUNTS, &v), 0);
    assert_int_equal(v.counts[0], 5);
    assert_int_equal(v.counts[1], 0);
    assert_int_equal(v.counts[2], 7);
    assert_int_equal(v.counts[3], 1);
    /* four threads (four stripes) at once: nothing lost */
    enum { T = 4, N = 20000 };
    pthread_t th[T];
    struct adder a = {s, N};
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&th[i], NULL, add_many, &a), 0);
    for (int i = 0; i < T; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    assert_int_equal(s->ops->read(s, RESIL__VIEW_COUNTS, &v), 0);
    assert_int_equal(v.counts[0], 5 + T * N);
    assert_int_equal(v.counts[1], 2 * T * N);
    assert_int_equal(v.counts[2], 7);
    assert_int_equal(v.counts[3], 1 + 3 * T * N);
    resil__store_close(s);
}

static void leases(const struct backend *be)
{
    resil__store *s = must_open(be, "leases");
    uint64_t w = word_of(s);
    int64_t now = 100 * S_NS, lease = 10 * S_NS;
    resil__store_lease a, b, c;
    assert_int_equal(s->ops->lease_take(s, w, 2, now, lease, &a), 0);
    assert_int_equal(s->ops->lease_take(s, w, 2, now, lease, &b), 0);
    assert_int_not_equal(a.slot, b.slot);
    assert_int_equal(a.word, w);
    /* both slots held */
    assert_int_equal(s->ops->lease_take(s, w, 2, now + 1, lease, &c), RESIL__STORE_BUSY);
    /* another word: a conflict, whatever the slots */
    assert_int_equal(s->ops->lease_take(s, w + 256, 3, now, lease, &c), RESIL__STORE_CONFLICT);
    resil__store_view v;
    assert_int_equal(s->ops->read(s, RESIL__VIEW_LEASES, &v), 0);
    assert_true(v.lease_expires[a.slot] >= now + lease);
    /* returned while live: 1, freed; twice: 0 */
    assert_int_equal(s->ops->lease_return(s, &a, now + 5 * S_NS, NULL, NULL), 1);
    assert_int_equal(s->ops->lease_return(s, &a, now + 5 * S_NS, NULL, NULL), 0);
    assert_int_equal(s->ops->read(s, RESIL__VIEW_LEASES, &v), 0);
    assert_int_equal(v.lease_expires[a.slot], 0);
    /* b expires: a new lease takes its slot with a new generation, and b's
     * return changes nothing */
    int64_t later = now + lease + S_NS;
    assert_int_equal(s->ops->lease_take(s, w, 1, later, lease, &c), 0);
    assert_int_equal(s->ops->lease_take(s, w, 2, later, lease, &c), 0);
    assert_int_equal(c.slot, b.slot);
    assert_int_not_equal(c.gen, b.gen);
    assert_int_equal(s->ops->lease_return(s, &b, later, NULL, NULL), 0);
    /* an expired lease is not live either, even before it is replaced (an
     * expiry is made odd, so never 0: just past it) */
    resil__store_lease d;
    assert_int_equal(s->ops->lease_take(s, w, 3, later, lease, &d), 0);
    assert_int_equal(s->ops->lease_return(s, &d, later + lease + 1, NULL, NULL), 0);
    /* the outcome runs with the return, only for a live lease of the current word */
    struct bump bb = {0, 0, false};
    assert_int_equal(s->ops->lease_return(s, &c, later + 1, bump, &bb), 1);
    assert_int_equal(bb.runs, 1);
    resil__store_lease e;
    assert_int_equal(s->ops->lease_take(s, w, 3, later, lease, &e), 0);
    bb.move = true;
    assert_int_equal(s->ops->apply(s, w, bump, &bb), 0); /* a transition */
    bb.runs = 0;
    assert_int_equal(s->ops->lease_return(s, &e, later + 1, bump, &bb), 1);
    assert_int_equal(bb.runs, 0); /* live, but of another epoch */
    /* bad arguments */
    assert_int_equal(s->ops->lease_take(s, w, 0, now, lease, &e), RESIL_EINVAL);
    assert_int_equal(s->ops->lease_take(s, w, RESIL__CB_SLOTS + 1, now, lease, &e), RESIL_EINVAL);
    resil__store_close(s);
}

static void reopen(const struct backend *be)
{
    resil__store *s = must_open(be, "reopen");
    struct bump b = {0, 0, true};
    assert_int_equal(s->ops->apply(s, RESIL__STORE_ANY, bump, &b), 0);
    resil__store_delta d = {3, 0, 0, 0};
    assert_int_equal(s->ops->add(s, &d), 0);
    uint64_t w = word_of(s);
    resil__store *t = must_open(be, "reopen"); /* a second handle, open at once */
    resil__store_view v;
    assert_int_equal(t->ops->read(t, RESIL__VIEW_COUNTS, &v), 0);
    if (be->shared) {
        assert_int_equal(v.word, w);
        assert_int_equal(v.counts[0], 3);
        assert_int_equal(v.consecutive_failures, 1);
        /* a change through one handle is seen through the other */
        assert_int_equal(t->ops->apply(t, w, bump, &b), 0);
        assert_int_equal(word_of(s), word_of(t));
    } else {
        assert_int_equal(v.counts[0], 0); /* one state per open */
        assert_int_equal(v.consecutive_failures, 0);
    }
    resil__store_close(t);
    resil__store_close(s);
    s = must_open(be, "reopen");
    assert_int_equal(s->ops->read(s, RESIL__VIEW_COUNTS, &v), 0);
    if (be->shared) {
        assert_true(s->caps & RESIL__STORE_CAP_PERSISTENT);
        assert_int_equal(v.counts[0], 3);
        assert_int_equal(v.consecutive_failures, 2);
    } else {
        assert_false(s->caps & RESIL__STORE_CAP_PERSISTENT);
        assert_int_equal(v.counts[0], 0);
    }
    resil__store_close(s);
}

static void (*const table[])(const struct backend *be) = {
    fresh_state, apply_and_conflict, deltas, leases, reopen,
};

static void every_backend(void **state)
{
    (void)state;
    for (size_t k = 0; k < NBACKENDS; k++)
        for (size_t t = 0; t < sizeof table / sizeof table[0]; t++)
            table[t](&backends[k]);
}

/* ---- what only the mmap backend does ---------------------------------------------- */

static int collect(const char *name, void *arg)
{
    char *buf = arg;
    strcat(buf, name);
    strcat(buf, ",");
    return 0;
}

static int stop_at_b(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "b/2") == 0 ? 42 : 0;
}

static void list_states(void **state)
{
    (void)state;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/list", dir);
    const char *names[] = {"c", "a", "b/2"};
    for (int i = 0; i < 3; i++) {
        resil__store *s;
        resil__store_spec spec = {.name = names[i], .dir = sub, .now_ns = S_NS, .wall_ns = S_NS};
        assert_int_equal(resil__store_open(&s, &spec, NULL), 0);
        resil__store_close(s);
    }
    char buf[64] = "";
    assert_int_equal(resil__store_list(sub, collect, buf, NULL), 0);
    assert_string_equal(buf, "a,b/2,c,");
    assert_int_equal(resil__store_list(sub, stop_at_b, NULL, NULL), 42);
    resil_error e;
    char missing[320];
    snprintf(missing, sizeof missing, "%s/none", dir);
    assert_int_equal(resil__store_list(missing, collect, buf, &e), -ENOENT);
    assert_string_equal(e.path, missing);
    /* reset: the state starts afresh, whatever it held */
    resil__store *s;
    resil__store_spec spec = {.name = "a", .dir = sub, .now_ns = S_NS, .wall_ns = S_NS};
    assert_int_equal(resil__store_open(&s, &spec, NULL), 0);
    resil__store_delta d = {9, 0, 0, 0};
    assert_int_equal(s->ops->add(s, &d), 0);
    resil__store_cfg cfg = {0};
    assert_int_equal(resil__store_reset(sub, "a", &cfg, NULL), 0);
    resil__store_view v;
    assert_int_equal(s->ops->read(s, RESIL__VIEW_COUNTS, &v), 0);
    assert_int_equal(v.counts[0], 0); /* seen at once through the mapping */
    resil__store_close(s);
}

/* A guarded store gives no fast-path record: the operations still work. */
static void guarded_has_no_record(void **state)
{
    (void)state;
    resil__store *s;
    resil__store_spec spec = {.name = "guarded", .dir = dir, .guard_every_call = true,
                              .now_ns = S_NS, .wall_ns = S_NS};
    assert_int_equal(resil__store_open(&s, &spec, NULL), 0);
    assert_true(s->guarded);
    assert_null(s->st);
    struct bump b = {0, 0, true};
    assert_int_equal(s->ops->apply(s, RESIL__STORE_ANY, bump, &b), 0);
    resil__store_delta d = {1, 1, 1, 1};
    assert_int_equal(s->ops->add(s, &d), 0);
    resil__store_view v;
    assert_int_equal(s->ops->read(s, RESIL__VIEW_COUNTS, &v), 0);
    assert_int_equal(v.counts[3], 1);
    assert_int_equal(v.consecutive_failures, 1);
    resil__store_close(s);
}

static int wait_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return st;
}

/* Processes apply and add at once, each on a handle of its own: every apply
 * is atomic (no increment lost) and every delta counted. */
static void processes_apply_and_add(void **state)
{
    (void)state;
    enum { P = 3, N = 300 };
    pid_t pids[P];
    for (int i = 0; i < P; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            resil__store *s;
            if (open_mmap(&s, "procs") != 0)
                _exit(2);
            struct bump b = {0, 0, false};
            resil__store_delta d = {1, 0, 0, 0};
            for (int k = 0; k < N; k++)
                if (s->ops->apply(s, RESIL__STORE_ANY, bump, &b) != 0 ||
                    s->ops->add(s, &d) != 0)
                    _exit(3);
            resil__store_close(s);
            _exit(0);
        }
    }
    for (int i = 0; i < P; i++) {
        int st = wait_child(pids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    resil__store *s = must_open(&backends[1], "procs");
    resil__store_view v;
    assert_int_equal(s->ops->read(s, RESIL__VIEW_COUNTS, &v), 0);
    assert_int_equal(v.consecutive_failures, P * N);
    assert_int_equal(v.counts[0], P * N);
    resil__store_close(s);
}

/* Dies inside an apply, after changing the record (dirty set, lock held). */
static int die_mid_apply(struct resil__cb_state *st, void *arg)
{
    (void)arg;
    atomic_store(&st->window_count, 12345); /* impossible: window_size is 0 */
    _exit(0);
}

/* A holder that dies: its lock is released by the kernel and the record
 * repaired by the next holder; its lease stays held until it expires. */
static void holder_dies(void **state)
{
    (void)state;
    resil__store *s = must_open(&backends[1], "dies");
    uint64_t w = word_of(s);
    int64_t now = 50 * S_NS, lease = 5 * S_NS;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        resil__store *c;
        resil__store_lease l;
        if (open_mmap(&c, "dies") != 0 || c->ops->lease_take(c, w, 1, now, lease, &l) != 0)
            _exit(2);
        c->ops->apply(c, RESIL__STORE_ANY, die_mid_apply, NULL);
        _exit(3);
    }
    int st = wait_child(pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(atomic_load(&s->st->dirty), 1); /* it died mid-update */
    /* the next apply gets the lock at once and sees a repaired record */
    struct bump b = {0, 0, false};
    assert_int_equal(s->ops->apply(s, RESIL__STORE_ANY, bump, &b), 0);
    assert_null(resil__cb_state_check(s->st));
    assert_int_equal(atomic_load(&s->st->window_count), 0);
    assert_int_equal(atomic_load(&s->st->dirty), 0);
    /* the dead child's lease: held until it expires, then free */
    resil__store_lease l;
    assert_int_equal(s->ops->lease_take(s, w, 1, now + 1, lease, &l), RESIL__STORE_BUSY);
    assert_int_equal(s->ops->lease_take(s, w, 1, now + lease + 1, lease, &l), 0);
    assert_int_equal(l.slot, 0);
    resil__store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_backend),
        cmocka_unit_test(list_states),
        cmocka_unit_test(guarded_has_no_record),
        cmocka_unit_test(processes_apply_and_add),
        cmocka_unit_test(holder_dies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
