/* Circuit breakers shared across processes through their state file.
 *
 * Every test gets a fresh state directory (mkdtemp; RESIL_STATE_DIR is never
 * used) and one fake clock in a MAP_SHARED | MAP_ANONYMOUS mapping made
 * before any fork, so the parent and its children share one fake time and
 * nothing sleeps for real.  Children never call cmocka: they check with CK()
 * and report through their exit status; the parent reaps them with a
 * deadline, so a wedged child fails the test instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal/store.h"
#include "internal/store_mmap.h"
#include "internal/sys.h"
#include "resil/breaker.h"

#define S_NS 1000000000LL
#define START_MONO (1000 * S_NS)
#define START_WALL (1700000000LL * S_NS)

/* ---- per-test fixture: a state directory and a shared fake clock ---------------- */

struct shared {
    resil_fake_clock fc;
};

static char dir[256];
static struct shared *sh;

/* Children still running when a test fails: teardown kills them. */
static pid_t live[64];
static int nlive;

static void forget(pid_t pid)
{
    for (int i = 0; i < nlive; i++)
        if (live[i] == pid) {
            live[i] = live[--nlive];
            return;
        }
}

static void kill_live(void)
{
    for (int i = 0; i < nlive; i++) {
        kill(live[i], SIGKILL);
        waitpid(live[i], NULL, 0);
    }
    nlive = 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/resil-cbsh-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return -1;
    resil_fake_clock_init(&sh->fc, START_MONO, START_WALL);
    return 0;
}

/* A test that changes directory saves the old one here (teardown goes back). */
static int saved_cwd = -1;

static int teardown(void **state)
{
    (void)state;
    kill_live();
    resil__sys_reset();
    resil__cb_lock_wait_ns = 5 * S_NS;
    if (saved_cwd >= 0) {
        if (fchdir(saved_cwd) != 0)
            return -1;
        close(saved_cwd);
        saved_cwd = -1;
    }
    munmap(sh, sizeof *sh);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void advance(int64_t ns)
{
    resil_fake_clock_advance(&sh->fc, ns);
}

static resil_breaker_opts base_opts(void)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.state_dir = dir;
    o.clock = &sh->fc.clock;
    o.failure_threshold = 3;
    o.recovery_timeout_s = 30;
    o.seed = 1;
    return o;
}

/* The state file of `name` (a static buffer per call, 4 in rotation). */
static const char *cb_file(const char *name)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    char *p = resil__cb_path(dir, name);
    snprintf(buf[i], sizeof buf[i], "%s", p ? p : "?");
    free(p);
    return buf[i];
}

static resil_breaker *open_b(const char *name, const resil_breaker_opts *o)
{
    resil_breaker *b = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_breaker_new(&b, name, o, &e);
    if (rc != 0)
        fail_msg("resil_breaker_new(%s): %s: %s", name, resil_err_name(rc), e.message);
    return b;
}

static resil_breaker_snapshot snap(resil_breaker *b)
{
    resil_breaker_snapshot s;
    assert_int_equal(resil_breaker_snapshot_get(b, &s), 0);
    return s;
}

/* One call through acquire + record; returns acquire's code. */
static int call_v(resil_breaker *b, resil_breaker_verdict v)
{
    resil_breaker_permit p;
    int rc = resil_breaker_acquire(b, &p, NULL);
    if (rc == 0)
        rc = resil_breaker_record(b, &p, v, 0);
    return rc;
}

/* Maps the state file of `name` read-write, as a foreign writer would. */
static struct resil__cb_state *map_file(const char *name)
{
    int fd = open(cb_file(name), O_RDWR);
    assert_true(fd >= 0);
    void *m = mmap(NULL, sizeof(struct resil__cb_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(m != MAP_FAILED);
    return m;
}

static void unmap_file(struct resil__cb_state *st)
{
    munmap(st, sizeof *st);
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* ---- children ------------------------------------------------------------------- */

#define CK(cond)                                                                           \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "child %d: %s:%d: check failed: %s\n", (int)getpid(), __FILE__, \
                    __LINE__, #cond);                                                      \
            _exit(10);                                                                     \
        }                                                                                  \
    } while (0)

static resil_breaker *child_open(const char *name, const resil_breaker_opts *o)
{
    resil_breaker *b = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_breaker_new(&b, name, o, &e);
    if (rc != 0) {
        fprintf(stderr, "child %d: resil_breaker_new(%s): %s: %s\n", (int)getpid(), name,
                resil_err_name(rc), e.message);
        _exit(11);
    }
    return b;
}

/* Lock-step phases: children say "ready" on one pipe and wait for the end
 * of the current phase's pipe (EOF: the parent closed its end), so no child
 * can run ahead into the next phase. */
#define PHASES 4

struct gate {
    int ready[2];
    int go[PHASES][2];
    int phase;
};

static void gate_init(struct gate *g)
{
    g->phase = 0;
    assert_int_equal(pipe(g->ready), 0);
    for (int k = 0; k < PHASES; k++)
        assert_int_equal(pipe(g->go[k]), 0);
}

static void gate_child_enter(struct gate *g)
{
    close(g->ready[0]);
    for (int k = 0; k < PHASES; k++)
        close(g->go[k][1]);
}

static void gate_child_ready(struct gate *g)
{
    CK(write(g->ready[1], "r", 1) == 1);
}

/* Waits until the parent ends the current phase. */
static void gate_child_wait(struct gate *g)
{
    CK(g->phase < PHASES);
    char c;
    for (;;) {
        ssize_t r = read(g->go[g->phase][0], &c, 1);
        if (r == 0)
            break;
        CK(r < 0 && errno == EINTR);
    }
    g->phase++;
}

static void gate_parent_enter(struct gate *g)
{
    close(g->ready[1]);
    for (int k = 0; k < PHASES; k++)
        close(g->go[k][0]);
}

/* Waits (at most 60 s) until n children said ready. */
static void gate_parent_wait(struct gate *g, int n)
{
    for (int got = 0; got < n;) {
        struct pollfd pf = {.fd = g->ready[0], .events = POLLIN};
        int pr = poll(&pf, 1, 60000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            fail_msg("only %d of %d children got ready within 60 s", got, n);
        char buf[64];
        ssize_t r = read(g->ready[0], buf, (size_t)(n - got) < sizeof buf ? (size_t)(n - got)
                                                                        : sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail_msg("only %d of %d children got ready (the others died)", got, n);
        got += (int)r;
    }
}

/* Ends the current phase: every child waiting in it goes on. */
static void gate_parent_release(struct gate *g)
{
    assert_true(g->phase < PHASES);
    close(g->go[g->phase][1]);
    g->go[g->phase][1] = -1;
    g->phase++;
}

static void gate_close(struct gate *g)
{
    close(g->ready[0]);
    for (int k = 0; k < PHASES; k++)
        if (g->go[k][1] >= 0)
            close(g->go[k][1]);
}

static pid_t spawn(int (*fn)(void *arg, int i), void *arg, int i)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(arg, i));
    if (nlive < 64)
        live[nlive++] = pid;
    return pid;
}

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* waitpid with a deadline (real time: this waits for processes, it does not
 * stand in for the breaker's time).  Returns the raw status. */
static int reap(pid_t pid, double timeout_s)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            forget(pid);
            return st;
        }
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid(%d): %s", (int)pid, strerror(errno));
        if (since(&t0) > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            forget(pid);
            fail_msg("child %d still running after %.0f s (wedged?)", (int)pid, timeout_s);
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

static void reap_ok(pid_t pid)
{
    int st = reap(pid, 60);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child %d failed (status 0x%x: %s %d)", (int)pid, (unsigned)st,
                 WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static int ok_op(void *arg)
{
    (void)arg;
    return 0;
}

static int fail_op(void *arg)
{
    (void)arg;
    return 1;
}

/* ---- (a) one process trips it, every other sees it open at once ------------------- */

static int observer_main(void *arg, int i)
{
    struct gate *g = arg;
    gate_child_enter(g);
    resil_breaker_opts o = base_opts();
    /* Another configuration: what is shared is the state, not the config. */
    o.recovery_timeout_s = 99 + i;
    o.failure_threshold = 50;
    resil_breaker *b = child_open("svc", &o);
    CK(resil_breaker_get_state(b) == RESIL_BREAKER_CLOSED);
    gate_child_ready(g);
    gate_child_wait(g);

    /* The parent tripped it 5 s of fake time ago (recovery 30 s). */
    resil_breaker_snapshot s;
    CK(resil_breaker_snapshot_get(b, &s) == 0);
    CK(s.state == RESIL_BREAKER_OPEN);
    CK(s.time_until_half_open_s == 25.0);
    CK(resil_breaker_time_until_half_open(b) == 25.0);
    CK(s.open_duration_s == 30.0);
    CK(s.open_streak == 1);
    CK(s.consecutive_failures == 3);
    CK(s.failed == 3);
    CK(s.shared);
    resil_breaker_permit p;
    double wait_s = -7;
    CK(resil_breaker_acquire(b, &p, &wait_s) == RESIL_ECIRCUIT_OPEN);
    CK(wait_s == 25.0);
    CK(resil_breaker_call(b, ok_op, NULL) == RESIL_ECIRCUIT_OPEN);
    gate_child_ready(g);
    gate_child_wait(g);

    /* 25 s later: half-open for everyone. */
    CK(resil_breaker_get_state(b) == RESIL_BREAKER_HALF_OPEN);
    CK(resil_breaker_time_until_half_open(b) == 0);
    resil_breaker_free(b);
    return 0;
}

static void test_trip_seen_by_all(void **state)
{
    (void)state;
    enum { N = 6 };
    struct gate g;
    gate_init(&g);
    pid_t kids[N];
    for (int i = 0; i < N; i++)
        kids[i] = spawn(observer_main, &g, i);
    gate_parent_enter(&g);
    gate_parent_wait(&g, N);

    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_OPEN);
    advance(5 * S_NS);
    gate_parent_release(&g);
    gate_parent_wait(&g, N);
    advance(25 * S_NS);
    gate_parent_release(&g);
    for (int i = 0; i < N; i++)
        reap_ok(kids[i]);
    gate_close(&g);

    /* Every child's two refusals were counted in the shared totals. */
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.not_permitted, 2 * N);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    resil_breaker_free(b);
}

/* ---- (b) N processes x M calls: exact totals -------------------------------------- */

struct hammer {
    struct gate g;
    const char *name;
    int phase; /* 0 successes + ignores, 1 failures, 2 window: alternating */
    int m;
    int threshold;
    int window;
};

static int hammer_main(void *arg, int i)
{
    struct hammer *h = arg;
    gate_child_enter(&h->g);
    resil_breaker_opts o = base_opts();
    o.failure_threshold = h->threshold;
    o.window_size = h->window;
    if (h->window)
        o.failure_rate_threshold = 1.0;
    resil_breaker *b = child_open(h->name, &o);
    gate_child_ready(&h->g);
    gate_child_wait(&h->g);
    for (int k = 0; k < h->m; k++) {
        resil_breaker_permit p;
        if (h->phase == 0) {
            if ((k + i) % 2) {
                CK(resil_breaker_acquire(b, &p, NULL) == 0);
                CK(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1) == 0);
            } else {
                CK(resil_breaker_call(b, ok_op, NULL) == 0);
            }
            CK(resil_breaker_acquire(b, &p, NULL) == 0);
            CK(resil_breaker_record(b, &p, RESIL_BREAKER_IGNORE, -1) == 0);
        } else if (h->phase == 1) {
            if ((k + i) % 2) {
                CK(resil_breaker_acquire(b, &p, NULL) == 0);
                CK(resil_breaker_report(b, &p, 1, -1) == 0);
            } else {
                CK(resil_breaker_call(b, fail_op, NULL) == 1);
            }
        } else {
            CK(resil_breaker_acquire(b, &p, NULL) == 0);
            CK(resil_breaker_record(b, &p, k % 2 ? RESIL_BREAKER_FAILURE : RESIL_BREAKER_SUCCESS,
                                    -1) == 0);
        }
    }
    resil_breaker_free(b);
    return 0;
}

static void run_hammer(struct hammer *h, int n)
{
    gate_init(&h->g);
    pid_t kids[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        kids[i] = spawn(hammer_main, h, i);
    gate_parent_enter(&h->g);
    gate_parent_wait(&h->g, n);
    gate_parent_release(&h->g);
    for (int i = 0; i < n; i++)
        reap_ok(kids[i]);
    gate_close(&h->g);
}

static void test_exact_totals(void **state)
{
    (void)state;
    enum { N = 4, M = 2000 };
    struct hammer h = {.name = "svc", .phase = 0, .m = M, .threshold = 1000000};
    run_hammer(&h, N);
    resil_breaker_opts o = base_opts();
    o.failure_threshold = 1000000;
    resil_breaker *b = open_b("svc", &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.successful, N * M);
    assert_int_equal(s.ignored, N * M);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.not_permitted, 0);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.consecutive_failures, 0);

    /* Failures take the lock: the consecutive count is exact too. */
    h.phase = 1;
    run_hammer(&h, N);
    s = snap(b);
    assert_int_equal(s.failed, N * M);
    assert_int_equal(s.consecutive_failures, N * M);
    assert_int_equal(s.successful, N * M);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);

    /* The window's ring and counts, updated by every process under the lock. */
    struct hammer w = {.name = "win", .phase = 2, .m = M / 2, .threshold = -1, .window = 10000};
    run_hammer(&w, N);
    o.failure_threshold = -1;
    o.window_size = 10000;
    o.failure_rate_threshold = 1.0;
    b = open_b("win", &o);
    s = snap(b);
    assert_int_equal(s.window_calls, N * M / 2);
    assert_true(s.failure_rate == 0.5);
    assert_int_equal(s.failed, N * M / 4);
    assert_int_equal(s.successful, N * M / 4);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* ---- (c) many processes create one new name at once -------------------------------- */

struct creators {
    int go[2];
    char name[32];
    int n;
};

static int creator_main(void *arg, int i)
{
    (void)i;
    struct creators *c = arg;
    close(c->go[1]);
    char ch;
    while (read(c->go[0], &ch, 1) < 0 && errno == EINTR) {
    }
    resil_breaker_opts o = base_opts();
    o.failure_threshold = c->n;
    resil_breaker *b = child_open(c->name, &o);
    resil_breaker_permit p;
    /* Nobody can trip it before all n failures are in. */
    CK(resil_breaker_acquire(b, &p, NULL) == 0);
    CK(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, 0) == 0);
    resil_breaker_free(b);
    return 0;
}

static int count_dir_entries(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_concurrent_create(void **state)
{
    (void)state;
    enum { N = 16, ROUNDS = 4 };
    for (int r = 0; r < ROUNDS; r++) {
        struct creators c = {.n = N};
        snprintf(c.name, sizeof c.name, "fresh-%d", r);
        assert_int_equal(pipe(c.go), 0);
        pid_t kids[N];
        for (int i = 0; i < N; i++)
            kids[i] = spawn(creator_main, &c, i);
        close(c.go[0]);
        close(c.go[1]); /* EOF: all start at once */
        for (int i = 0; i < N; i++)
            reap_ok(kids[i]);
        resil_breaker_opts o = base_opts();
        o.failure_threshold = N;
        resil_breaker *b = open_b(c.name, &o);
        resil_breaker_snapshot s = snap(b);
        assert_int_equal(s.failed, N);
        assert_int_equal(s.consecutive_failures, N);
        assert_int_equal(s.state, RESIL_BREAKER_OPEN);
        assert_int_equal(s.open_streak, 1);
        resil_breaker_free(b);
        assert_int_equal(count_dir_entries(), r + 1);
        struct stat sb;
        assert_int_equal(stat(cb_file(c.name), &sb), 0);
        assert_int_equal(sb.st_size, (off_t)sizeof(struct resil__cb_state));
    }
}

/* ---- (d) a trial permit's holder is SIGKILLed: the lease expires ------------------- */

static int trial_holder_main(void *arg, int i)
{
    (void)i;
    int *fds = arg;
    close(fds[0]);
    resil_breaker_opts o = base_opts();
    o.half_open_max_calls = 1;
    o.half_open_lease_s = 10;
    resil_breaker *b = child_open("svc", &o);
    resil_breaker_permit p;
    CK(resil_breaker_acquire(b, &p, NULL) == 0);
    CK(write(fds[1], "p", 1) == 1);
    for (;;)
        pause(); /* killed here, permit in hand */
}

static void test_trial_holder_killed(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    o.half_open_max_calls = 1;
    o.half_open_lease_s = 10;
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_OPEN);
    advance(30 * S_NS);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t kid = spawn(trial_holder_main, fds, 0);
    close(fds[1]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    assert_int_equal(kill(kid, SIGKILL), 0);
    int st = reap(kid, 30);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(s.half_open_in_flight, 1);

    resil_breaker_permit p;
    double wait_s = -7;
    assert_int_equal(resil_breaker_acquire(b, &p, &wait_s), RESIL_ECIRCUIT_OPEN);
    assert_true(wait_s == 0); /* half-open, all trials taken */
    advance(10 * S_NS - 1000);
    assert_int_equal(resil_breaker_acquire(b, &p, &wait_s), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(resil_breaker_call(b, ok_op, NULL), RESIL_ECIRCUIT_OPEN);
    advance(2000); /* the dead child's lease is over */
    assert_int_equal(snap(b).half_open_in_flight, 0);
    assert_int_equal(resil_breaker_acquire(b, &p, &wait_s), 0);
    assert_int_equal(snap(b).half_open_in_flight, 1);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1), 0);
    s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.open_streak, 0);
    assert_int_equal(s.consecutive_failures, 0);
    assert_int_equal(s.not_permitted, 3);
    assert_int_equal(s.successful, 1);
    resil_breaker_free(b);
}

/* A trial whose lease expired reports late, from another process: counted,
 * but it does not move the state (the slot belongs to a newer trial). */
static int late_trial_main(void *arg, int i)
{
    (void)i;
    struct gate *g = arg;
    gate_child_enter(g);
    resil_breaker_opts o = base_opts();
    o.half_open_max_calls = 1;
    o.half_open_lease_s = 10;
    resil_breaker *b = child_open("svc", &o);
    resil_breaker_permit p;
    CK(resil_breaker_acquire(b, &p, NULL) == 0);
    gate_child_ready(g);
    gate_child_wait(g); /* the parent let the lease expire and took the slot */
    CK(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1) == 0);
    CK(resil_breaker_get_state(b) == RESIL_BREAKER_HALF_OPEN);
    resil_breaker_free(b);
    return 0;
}

static void test_expired_lease_report_ignored(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    o.half_open_max_calls = 1;
    o.half_open_lease_s = 10;
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    advance(30 * S_NS);
    struct gate g;
    gate_init(&g);
    pid_t kid = spawn(late_trial_main, &g, 0);
    gate_parent_enter(&g);
    gate_parent_wait(&g, 1);
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), RESIL_ECIRCUIT_OPEN);
    advance(10 * S_NS + 1000);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0); /* the same slot, anew */
    gate_parent_release(&g);
    reap_ok(kid);
    gate_close(&g);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(s.failed, 4); /* the late report is counted */
    assert_int_equal(s.half_open_in_flight, 1); /* ours is still live */
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* ---- (e) the state survives every handle being closed ----------------------------- */

static int survivor_writer_main(void *arg, int i)
{
    (void)arg;
    (void)i;
    resil_breaker_opts o = base_opts();
    o.recovery_timeout_s = 10;
    o.open_multiplier = 2;
    resil_breaker *b = child_open("svc", &o);
    for (int k = 0; k < 5; k++)
        CK(resil_breaker_call(b, ok_op, NULL) == 0);
    for (int k = 0; k < 3; k++)
        CK(resil_breaker_call(b, fail_op, NULL) == 1);
    CK(resil_breaker_get_state(b) == RESIL_BREAKER_OPEN);
    resil_breaker_free(b);
    return 0;
}

static int survivor_reader_main(void *arg, int i)
{
    (void)i;
    const resil_breaker_snapshot *want = arg;
    resil_breaker_opts o = base_opts();
    o.failure_threshold = 10; /* this process's own config */
    resil_breaker *b = child_open("svc", &o);
    resil_breaker_snapshot s;
    CK(resil_breaker_snapshot_get(b, &s) == 0);
    CK(s.state == want->state);
    CK(s.time_until_half_open_s == want->time_until_half_open_s);
    CK(s.successful == want->successful && s.failed == want->failed);
    CK(s.not_permitted == want->not_permitted);
    CK(s.open_streak == want->open_streak);
    CK(s.open_duration_s == want->open_duration_s);
    CK(s.consecutive_failures == want->consecutive_failures);
    CK(s.epoch == want->epoch);
    CK(s.failure_threshold == 10);
    resil_breaker_free(b);
    return 0;
}

static void test_state_survives(void **state)
{
    (void)state;
    reap_ok(spawn(survivor_writer_main, NULL, 0)); /* 5 ok, 3 failed: open 10 s */
    resil_breaker_opts o = base_opts();
    o.recovery_timeout_s = 10;
    o.open_multiplier = 2;
    resil_breaker *b = open_b("svc", &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.open_streak, 1);
    advance(10 * S_NS);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0); /* the trial fails: 20 s */
    advance(4 * S_NS);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), RESIL_ECIRCUIT_OPEN);
    resil_breaker_snapshot before = snap(b);
    assert_int_equal(before.state, RESIL_BREAKER_OPEN);
    assert_int_equal(before.open_streak, 2);
    assert_true(before.open_duration_s == 20.0);
    assert_true(before.time_until_half_open_s == 16.0);
    assert_int_equal(before.successful, 5);
    assert_int_equal(before.failed, 4);
    assert_int_equal(before.not_permitted, 1);
    assert_int_equal(before.consecutive_failures, 4);
    resil_breaker_free(b);

    /* No handle open anywhere: another process, then this one, find it. */
    reap_ok(spawn(survivor_reader_main, &before, 0));
    b = open_b("svc", &o);
    resil_breaker_snapshot after = snap(b);
    assert_int_equal(after.state, before.state);
    assert_true(after.time_until_half_open_s == before.time_until_half_open_s);
    assert_int_equal(after.successful, before.successful);
    assert_int_equal(after.failed, before.failed);
    assert_int_equal(after.not_permitted, before.not_permitted);
    assert_int_equal(after.open_streak, before.open_streak);
    assert_true(after.open_duration_s == before.open_duration_s);
    assert_int_equal(after.consecutive_failures, before.consecutive_failures);
    assert_int_equal(after.epoch, before.epoch);
    /* ...and it goes on from there: the trial after 16 s closes it. */
    advance(16 * S_NS);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.open_streak, 0);
    resil_breaker_free(b);

    /* The window survives too (same size), and restarts at a new size. */
    resil_breaker_opts w = base_opts();
    w.failure_threshold = -1;
    w.window_size = 10;
    b = open_b("win", &w);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    resil_breaker_free(b);
    b = open_b("win", &w);
    s = snap(b);
    assert_int_equal(s.window_calls, 3);
    assert_true(s.failure_rate > 0.666 && s.failure_rate < 0.667);
    resil_breaker_free(b);
    w.window_size = 20;
    b = open_b("win", &w);
    assert_int_equal(snap(b).window_calls, 0);
    resil_breaker_free(b);
}

/* ---- (f) corrupt files are refused, named, and reset_file mends them --------------- */

static void expect_eparse(const char *name, const char *defect)
{
    resil_breaker_opts o = base_opts();
    resil_breaker *b = NULL;
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_breaker_new(&b, name, &o, &e);
    if (rc != RESIL_EPARSE)
        fail_msg("%s: expected RESIL_EPARSE (%s), got %s: %s", name, defect, resil_err_name(rc),
                 e.message);
    assert_null(b);
    assert_int_equal(e.code, RESIL_EPARSE);
    assert_string_equal(e.path, cb_file(name));
    if (!strstr(e.message, defect))
        fail_msg("%s: the message does not name the defect '%s': %s", name, defect, e.message);
    if (!strstr(e.message, cb_file(name)))
        fail_msg("%s: the message does not name the file: %s", name, e.message);
    /* attach_only refuses it the same way. */
    o.attach_only = true;
    assert_int_equal(resil_breaker_new(&b, name, &o, NULL), RESIL_EPARSE);
}

static void expect_mended(const char *name)
{
    resil_error e;
    resil_error_clear(&e);
    int rc = resil_breaker_reset_file(dir, name, &e);
    if (rc != 0)
        fail_msg("reset_file(%s): %s", name, e.message);
    struct stat sb;
    assert_int_equal(stat(cb_file(name), &sb), 0);
    assert_int_equal(sb.st_size, (off_t)sizeof(struct resil__cb_state));
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b(name, &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.successful + s.failed + s.ignored + s.not_permitted, 0);
    assert_int_equal(s.consecutive_failures, 0);
    assert_int_equal(s.open_streak, 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(snap(b).successful, 1);
    resil_breaker_free(b);
}

/* Creates a healthy record for name, then lets fn damage it through a mapping. */
static void damage(const char *name, void (*fn)(struct resil__cb_state *st))
{
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b(name, &o);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    resil_breaker_free(b);
    struct resil__cb_state *st = map_file(name);
    fn(st);
    unmap_file(st);
}

static void bad_state(struct resil__cb_state *st)
{
    uint64_t w = atomic_load(&st->word);
    atomic_store(&st->word, (RESIL__CB_EPOCH(w) << 8) | 9u);
}

static void bad_version(struct resil__cb_state *st)
{
    st->version = RESIL__CB_VERSION + 1;
}

static void bad_window(struct resil__cb_state *st)
{
    atomic_store(&st->window_size, 10);
    atomic_store(&st->window_head, 3);
    atomic_store(&st->window_count, 11);
}

static void bad_counter(struct resil__cb_state *st)
{
    atomic_store(&st->stripes[5].failed, -4);
}

static void test_corrupt_files(void **state)
{
    (void)state;
    size_t size = sizeof(struct resil__cb_state);
    /* The record's atomics want its alignment (UBSan checks it). */
    unsigned char *buf = aligned_alloc(64, size);
    assert_non_null(buf);

    /* Random garbage of the right size. */
    resil_rng rng;
    resil_rng_seed(&rng, 42);
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)resil_rng_next(&rng);
    write_bytes(cb_file("garbage"), buf, size);
    expect_eparse("garbage", "bad magic");
    expect_mended("garbage");

    /* Truncated. */
    write_bytes(cb_file("short"), buf, 100);
    expect_eparse("short", "100 bytes");
    expect_mended("short");

    /* The right size, a bad magic, the rest a valid record. */
    struct resil__cb_state *st = (struct resil__cb_state *)(void *)buf;
    memset(buf, 0, size);
    resil__cb_state_init(st, "magic");
    assert_null(resil__cb_state_check(st));
    st->magic ^= 0x0101;
    write_bytes(cb_file("magic"), buf, size);
    expect_eparse("magic", "bad magic");
    expect_mended("magic");

    /* Values out of range, written through the record's own layout. */
    damage("state", bad_state);
    expect_eparse("state", "impossible state");
    expect_mended("state");
    damage("version", bad_version);
    expect_eparse("version", "another version");
    expect_mended("version");
    damage("window", bad_window);
    expect_eparse("window", "window position out of range");
    expect_mended("window");
    damage("counter", bad_counter);
    expect_eparse("counter", "call counter out of range");
    expect_mended("counter");

    /* Another breaker's state under this name. */
    memset(buf, 0, size);
    resil__cb_state_init(st, "someone-else");
    write_bytes(cb_file("mine"), buf, size);
    expect_eparse("mine", "another breaker");
    expect_mended("mine");
    free(buf);

    /* attach_only on a name that has no file. */
    resil_breaker_opts o = base_opts();
    o.attach_only = true;
    resil_breaker *b = NULL;
    resil_error e;
    resil_error_clear(&e);
    assert_int_equal(resil_breaker_new(&b, "nobody", &o, &e), -ENOENT);
    assert_null(b);
    assert_string_equal(e.path, cb_file("nobody"));
    assert_int_equal(access(cb_file("nobody"), F_OK), -1);
    /* ...nor a directory that does not exist (none is created). */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/not-there", dir);
    o.state_dir = missing;
    assert_int_equal(resil_breaker_new(&b, "nobody", &o, NULL), -ENOENT);
    assert_int_equal(access(missing, F_OK), -1);
    /* attach_only on an existing one shares it. */
    o.state_dir = dir;
    b = open_b("garbage", &o);
    assert_int_equal(snap(b).successful, 1);
    resil_breaker_free(b);
}

/* reset_file is seen at once by a process that has the breaker mapped. */
static void test_reset_file_seen_by_holders(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), RESIL_ECIRCUIT_OPEN);
    assert_int_equal(resil_breaker_reset_file(dir, "svc", NULL), 0);
    resil_breaker_snapshot r = snap(b);
    assert_int_equal(r.state, RESIL_BREAKER_CLOSED);
    assert_true(r.epoch > s.epoch);
    assert_int_equal(r.failed + r.not_permitted, 0);
    assert_int_equal(r.open_streak, 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(snap(b).successful, 1);
    resil_breaker_free(b);
}

/* ---- (g) a dirty record is repaired, not refused ----------------------------------- */

static void test_dirty_repaired(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    o.failure_threshold = 100;
    o.window_size = 10;
    resil_breaker *b = open_b("svc", &o);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_true(snap(b).failure_rate == 0.25);
    resil_breaker_free(b);

    /* A holder died mid-update: dirty, and counts that an undamaged record
     * could not have (more failures than calls): the next open repairs. */
    struct resil__cb_state *st = map_file("svc");
    atomic_store(&st->window_failures, 7);
    atomic_store(&st->window_slow, 5);
    atomic_store(&st->dirty, 1);
    assert_non_null(resil__cb_state_check(st));
    unmap_file(st);
    b = open_b("svc", &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.window_calls, 4);
    assert_true(s.failure_rate == 0.25);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.successful, 3);
    st = map_file("svc");
    assert_int_equal(atomic_load(&st->dirty), 0);
    assert_int_equal(atomic_load(&st->window_slow), 0);

    /* The same while a process has it open: plausible but wrong counts, dirty;
     * its next locked operation recounts from the ring first. */
    atomic_store(&st->window_failures, 4);
    atomic_store(&st->dirty, 1);
    assert_null(resil__cb_state_check(st));
    assert_true(snap(b).failure_rate == 1.0); /* lock-free readers see it as it is */
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    s = snap(b);
    assert_int_equal(s.window_calls, 5);
    assert_true(s.failure_rate == 0.4); /* (1 + 1) / 5, not (4 + 1) / 5 */
    assert_int_equal(atomic_load(&st->dirty), 0);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    unmap_file(st);
    resil_breaker_free(b);
}

/* ---- (h) listing a state directory ------------------------------------------------ */

struct names {
    int n;
    char v[16][64];
    int stop_at;
};

static int collect(const char *name, void *arg)
{
    struct names *ns = arg;
    if (ns->n < 16)
        snprintf(ns->v[ns->n], sizeof ns->v[0], "%s", name);
    ns->n++;
    return ns->stop_at && ns->n == ns->stop_at ? 7 : 0;
}

static void test_list_dir(void **state)
{
    (void)state;
    const char *names[] = {"zeta", "a/b", ".hidden", "a-c", "my svc", "Beta", "x%y"};
    resil_breaker_opts o = base_opts();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        resil_breaker_free(open_b(names[i], &o));
    /* The encoding on disk. */
    const char *files[] = {"zeta.cb", "a%2Fb.cb", "%2Ehidden.cb", "a-c.cb",
                           "my%20svc.cb", "Beta.cb", "x%25y.cb"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (access(p, F_OK) != 0)
            fail_msg("no file %s", p);
    }
    /* Files that are not breaker states are skipped. */
    char p[600];
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/x.cb.tmp", dir);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/bad%%zz.cb", dir);
    write_bytes(p, "x", 1);

    struct names ns = {0};
    resil_error e;
    assert_int_equal(resil_breaker_list_dir(dir, collect, &ns, &e), 0);
    /* Sorted by name (not by file name: "a%2Fb" < "a-c" but "a-c" < "a/b"). */
    const char *want[] = {".hidden", "Beta", "a-c", "a/b", "my svc", "x%y", "zeta"};
    assert_int_equal(ns.n, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(ns.v[i], want[i]);
    /* Every listed name opens its breaker (attach_only). */
    o.attach_only = true;
    for (int i = 0; i < 7; i++)
        resil_breaker_free(open_b(ns.v[i], &o));

    /* fn's non-zero return stops the walk and is returned. */
    struct names stop = {.stop_at = 2};
    assert_int_equal(resil_breaker_list_dir(dir, collect, &stop, NULL), 7);
    assert_int_equal(stop.n, 2);

    /* A missing directory: -ENOENT naming it. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", dir);
    resil_error_clear(&e);
    assert_int_equal(resil_breaker_list_dir(missing, collect, &ns, &e), -ENOENT);
    assert_string_equal(e.path, missing);
}

/* A file name that is not how resil writes a name (lower-case hex, a byte
 * that needs no escape, a plain leading '.') would list a name whose state
 * file is another one: resil_breaker_new(name) would not find it.  Every
 * listed name must lead back to the file it was read from. */
static int check_round_trip(const char *name, void *arg)
{
    struct names *ns = arg;
    char *p = resil__cb_path(dir, name);
    bool ok = p && access(p, F_OK) == 0;
    if (!ok && ns->n < 16)
        snprintf(ns->v[ns->n++], sizeof ns->v[0], "%s", name);
    free(p);
    return 0;
}

static void test_list_dir_round_trip(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker_free(open_b("c/d", &o)); /* c%2Fd.cb: fine */
    const char *odd[] = {"a%2fb.cb", "%41bc.cb", ".dot.cb", "x%2D.cb"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, odd[i]);
        write_bytes(p, "x", 1);
    }
    struct names bad = {0};
    assert_int_equal(resil_breaker_list_dir(dir, check_round_trip, &bad, NULL), 0);
    for (int i = 0; i < bad.n; i++)
        print_message("listed, but its file is not %s: '%s'\n", "where resil_breaker_new looks",
                      bad.v[i]);
    assert_int_equal(bad.n, 0);
}

/* ---- (i) two handles on one name in one process ----------------------------------- */

struct worker {
    resil_breaker *b;
    int m;
    resil_breaker_verdict v;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int k = 0; k < w->m; k++) {
        resil_breaker_permit p;
        if (resil_breaker_acquire(w->b, &p, NULL) != 0 ||
            resil_breaker_record(w->b, &p, w->v, -1) != 0)
            return (void *)1;
    }
    return NULL;
}

static void run_workers(resil_breaker *b1, resil_breaker *b2, int m, resil_breaker_verdict v)
{
    enum { T = 4 };
    pthread_t t[T];
    struct worker w[T];
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){i % 2 ? b2 : b1, m, v};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
}

static void test_two_handles_one_process(void **state)
{
    (void)state;
    enum { M = 2000 };
    resil_breaker_opts o = base_opts();
    o.failure_threshold = 1000000;
    o.window_size = 10000;
    o.failure_rate_threshold = 1.0;
    resil_breaker *b1 = open_b("svc", &o);
    resil_breaker *b2 = open_b("svc", &o);
    run_workers(b1, b2, M, RESIL_BREAKER_FAILURE);
    resil_breaker_snapshot s1 = snap(b1), s2 = snap(b2);
    assert_int_equal(s1.failed, 4 * M);
    assert_int_equal(s1.consecutive_failures, 4 * M);
    assert_int_equal(s1.window_calls, 4 * M);
    assert_true(s1.failure_rate == 1.0);
    assert_int_equal(s2.consecutive_failures, 4 * M);
    assert_int_equal(s2.window_calls, 4 * M);
    run_workers(b1, b2, M / 4, RESIL_BREAKER_SUCCESS);
    s2 = snap(b2);
    assert_int_equal(s2.successful, M);
    assert_int_equal(s2.consecutive_failures, 0);
    assert_int_equal(s2.window_calls, 5 * M);
    assert_true(s2.failure_rate == 0.8);
    resil_breaker_free(b1);
    resil_breaker_free(b2);

    /* The lock of one store conflicts with the other store's: OFD locks belong
     * to the open file description, not to the process. */
    resil__store *a, *c;
    assert_int_equal(resil__store_open_file(&a, dir, "svc", false, START_MONO, START_WALL, NULL),
                     0);
    assert_int_equal(resil__store_open_file(&c, dir, "svc", false, START_MONO, START_WALL, NULL),
                     0);
    assert_int_equal(resil__store_lock(a), 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(resil__store_mmap_fd(c), F_OFD_GETLK, &fl), 0);
    assert_int_equal(fl.l_type, F_WRLCK);
    resil__store_unlock(a);
    fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(resil__store_mmap_fd(c), F_OFD_GETLK, &fl), 0);
    assert_int_equal(fl.l_type, F_UNLCK);
    resil__store_close(a);
    resil__store_close(c);
}

/* ---- (j) the machine rebooted: times are re-based from the wall clock -------------- */

static bool have_boot_id(void)
{
    return access("/proc/sys/kernel/random/boot_id", R_OK) == 0;
}

static void set_foreign_boot(const char *name)
{
    struct resil__cb_state *st = map_file(name);
    memset(st->boot_id, 0, sizeof st->boot_id);
    snprintf(st->boot_id, sizeof st->boot_id, "00000000-0000-0000-0000-another-boot");
    unmap_file(st);
}

static void test_reboot_rebases(void **state)
{
    (void)state;
    if (!have_boot_id())
        skip();
    resil_breaker_opts o = base_opts();
    o.recovery_timeout_s = 60;
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_true(resil_breaker_time_until_half_open(b) == 60.0);
    resil_breaker_free(b);
    set_foreign_boot("svc");

    /* After the "reboot" the monotonic clock starts again near 0, and 15 s of
     * wall time have passed: 45 s of the open time are left. */
    resil_fake_clock after;
    resil_fake_clock_init(&after, 7 * S_NS, START_WALL + 15 * S_NS);
    o.clock = &after.clock;
    b = open_b("svc", &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_true(s.time_until_half_open_s == 45.0);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.open_streak, 1);
    /* The file now carries this boot's id: a second open does not re-base. */
    struct resil__cb_state *st = map_file("svc");
    char boot[64] = {0};
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    assert_non_null(f);
    assert_non_null(fgets(boot, sizeof boot, f));
    fclose(f);
    boot[strcspn(boot, "\n")] = 0;
    assert_string_equal(st->boot_id, boot);
    unmap_file(st);
    resil_fake_clock_advance(&after, 45 * S_NS - 1);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), RESIL_ECIRCUIT_OPEN);
    resil_fake_clock_advance(&after, 1);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);

    /* Open longer ago than its open duration: half-open at once. */
    o.clock = &sh->fc.clock;
    b = open_b("late", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    resil_breaker_free(b);
    set_foreign_boot("late");
    resil_fake_clock_init(&after, 3 * S_NS, START_WALL + 3600 * S_NS);
    o.clock = &after.clock;
    b = open_b("late", &o);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_HALF_OPEN);
    resil_breaker_free(b);

    /* A wall clock set back: never longer than the open duration. */
    o.clock = &sh->fc.clock;
    b = open_b("back", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    resil_breaker_free(b);
    set_foreign_boot("back");
    resil_fake_clock_init(&after, 3 * S_NS, START_WALL - 3600 * S_NS);
    o.clock = &after.clock;
    b = open_b("back", &o);
    assert_true(resil_breaker_time_until_half_open(b) == 60.0);
    resil_breaker_free(b);
}

static void test_reboot_clears_leases(void **state)
{
    (void)state;
    if (!have_boot_id())
        skip();
    resil_breaker_opts o = base_opts();
    o.half_open_max_calls = 1;
    o.half_open_lease_s = 3600;
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    advance(30 * S_NS);
    resil_breaker_permit held;
    assert_int_equal(resil_breaker_acquire(b, &held, NULL), 0); /* never reported */
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), RESIL_ECIRCUIT_OPEN);
    resil_breaker_free(b);
    set_foreign_boot("svc");

    /* The lease's expiry is a time of the old boot's monotonic clock, far in
     * the future of the new one: it must not block the new boot's trials. */
    resil_fake_clock after;
    resil_fake_clock_init(&after, 2 * S_NS, START_WALL + 40 * S_NS);
    o.clock = &after.clock;
    b = open_b("svc", &o);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(s.half_open_in_flight, 0);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* ---- (k) a holder killed in the middle of a transition ----------------------------- */

/* A clock that kills its process on its first wall-clock read once armed:
 * the breaker reads the wall clock inside go_open, with the lock held and the
 * record half updated. */
struct killer_clock {
    resil_clock clock;
    int armed;
};

static int64_t kc_mono(void *ctx)
{
    (void)ctx;
    return resil_clock_monotonic_ns(&sh->fc.clock);
}

static int64_t kc_wall(void *ctx)
{
    struct killer_clock *k = ctx;
    if (k->armed)
        raise(SIGKILL);
    return resil_clock_wall_ns(&sh->fc.clock);
}

static int kc_sleep(void *ctx, int64_t ns, resil_cancel *cancel)
{
    (void)ctx;
    return resil_clock_sleep_ns(&sh->fc.clock, ns, cancel);
}

static int dies_in_trip_main(void *arg, int i)
{
    (void)arg;
    (void)i;
    struct killer_clock kc = {{kc_mono, kc_wall, kc_sleep, NULL}, 0};
    kc.clock.ctx = &kc;
    resil_breaker_opts o = base_opts();
    o.clock = &kc.clock;
    o.window_size = 10;
    o.window_min_calls = 10;
    resil_breaker *b = child_open("svc", &o);
    CK(resil_breaker_call(b, fail_op, NULL) == 1);
    CK(resil_breaker_call(b, fail_op, NULL) == 1);
    kc.armed = 1;
    resil_breaker_call(b, fail_op, NULL); /* trips: dies in go_open */
    return 12;
}

static void test_killed_mid_transition(void **state)
{
    (void)state;
    pid_t kid = spawn(dies_in_trip_main, NULL, 0);
    int st = reap(kid, 30);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    /* It died holding the lock, with the record marked dirty. */
    struct resil__cb_state *raw = map_file("svc");
    assert_int_equal(atomic_load(&raw->dirty), 1);
    unmap_file(raw);

    resil_breaker_opts o = base_opts();
    o.window_size = 10;
    o.window_min_calls = 10;
    resil_breaker *b = open_b("svc", &o); /* neither blocks nor refuses */
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.failed, 3);
    raw = map_file("svc");
    assert_int_equal(atomic_load(&raw->dirty), 0);
    assert_null(resil__cb_state_check(raw));
    unmap_file(raw);
    /* Usable: whatever the dead trip left, calls go through the lock and the
     * next failure trips it. */
    if (s.state == RESIL_BREAKER_CLOSED) {
        assert_int_equal(resil_breaker_call(b, fail_op, NULL), 1);
        assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_OPEN);
    }
    advance(30 * S_NS);
    assert_int_equal(resil_breaker_call(b, ok_op, NULL), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    assert_int_equal(resil_breaker_call(b, ok_op, NULL), 0);
    resil_breaker_free(b);
}

/* The trip the dead holder was making never landed (the record says CLOSED),
 * so it must not count in the open streak: the next real trip is a first one
 * and opens for recovery_timeout_s, not recovery_timeout_s * multiplier. */
static int dies_in_growing_trip_main(void *arg, int i)
{
    (void)arg;
    (void)i;
    struct killer_clock kc = {{kc_mono, kc_wall, kc_sleep, NULL}, 0};
    kc.clock.ctx = &kc;
    resil_breaker_opts o = base_opts();
    o.clock = &kc.clock;
    o.open_multiplier = 2;
    resil_breaker *b = child_open("svc", &o);
    CK(resil_breaker_call(b, fail_op, NULL) == 1);
    CK(resil_breaker_call(b, fail_op, NULL) == 1);
    kc.armed = 1;
    resil_breaker_call(b, fail_op, NULL); /* dies in go_open */
    return 12;
}

static void test_dead_trip_not_in_streak(void **state)
{
    (void)state;
    pid_t kid = spawn(dies_in_growing_trip_main, NULL, 0);
    int st = reap(kid, 30);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    resil_breaker_opts o = base_opts();
    o.open_multiplier = 2;
    resil_breaker *b = open_b("svc", &o);
    resil_breaker_snapshot before = snap(b);
    int rc = resil_breaker_call(b, fail_op, NULL);
    resil_breaker_snapshot s = snap(b);
    resil_breaker_free(b);
    assert_int_equal(before.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(before.open_streak, 0);
    assert_int_equal(rc, 1);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.open_streak, 1);
    assert_true(s.open_duration_s == 30.0);
}

/* ---- (l) a creator killed between sizing the file and writing the record ---------- */

static struct resil__sys_table real_sys;

static int ftruncate_then_die(int fd, off_t len)
{
    int rc = real_sys.ftruncate(fd, len);
    raise(SIGKILL);
    return rc;
}

static int dies_creating_main(void *arg, int i)
{
    (void)arg;
    (void)i;
    real_sys = resil__sys;
    resil__sys.ftruncate = ftruncate_then_die;
    resil_breaker_opts o = base_opts();
    resil_breaker *b;
    resil_breaker_new(&b, "svc", &o, NULL);
    return 12;
}

static void test_creator_killed(void **state)
{
    (void)state;
    pid_t kid = spawn(dies_creating_main, NULL, 0);
    int st = reap(kid, 30);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    struct stat sb;
    assert_int_equal(stat(cb_file("svc"), &sb), 0);
    assert_int_equal(sb.st_size, (off_t)sizeof(struct resil__cb_state));

    /* "A process killed at any point leaves it usable": the next opener
     * finishes the creation instead of calling the file corrupt. */
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    resil_breaker_free(b);
}

/* resil__cb_state_init writes the magic number last: a record of the right
 * size whose magic is 0 is one whose creation (or reset) did not finish, even
 * when the stores before it (version, size) landed. */
static void test_creator_killed_before_magic(void **state)
{
    (void)state;
    size_t size = sizeof(struct resil__cb_state);
    struct resil__cb_state *st = aligned_alloc(64, size);
    assert_non_null(st);
    memset(st, 0, size);
    resil__cb_state_init(st, "svc");
    st->magic = 0; /* killed before the last store */
    write_bytes(cb_file("svc"), st, size);
    free(st);
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    resil_breaker_free(b);
}

/* A handle opened before fork() and used in the children (a pre-fork server,
 * or the registry's breakers): the children share the parent's open file
 * description, so its OFD lock does not exclude them from each other. */
static int inherited_main(void *arg, int i)
{
    (void)i;
    resil_breaker *b = arg;
    for (int k = 0; k < 2000; k++) {
        resil_breaker_permit p;
        CK(resil_breaker_acquire(b, &p, NULL) == 0);
        CK(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1) == 0);
    }
    return 0;
}

static void test_inherited_handle(void **state)
{
    (void)state;
    enum { N = 4 };
    resil_breaker_opts o = base_opts();
    o.failure_threshold = 1000000;
    o.window_size = 10000;
    o.failure_rate_threshold = 1.0;
    resil_breaker *b = open_b("svc", &o);
    pid_t kids[N];
    for (int i = 0; i < N; i++)
        kids[i] = spawn(inherited_main, b, i);
    for (int i = 0; i < N; i++)
        reap_ok(kids[i]);
    resil_breaker_snapshot s = snap(b);
    resil_breaker_free(b);
    assert_int_equal(s.failed, N * 2000);
    assert_int_equal(s.consecutive_failures, N * 2000);
    assert_int_equal(s.window_calls, N * 2000);
}

/* ---- (m) a header damaged under a process that has the breaker open ---------------- */

static void test_header_wiped_while_open(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    /* What a reset_file killed in its first store leaves: magic 0. */
    struct resil__cb_state *st = map_file("svc");
    st->magic = 0;
    unmap_file(st);
    /* The next locked operation starts a fresh record... */
    assert_int_equal(resil_breaker_reset(b), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    /* ...that is still this breaker's: others open it by name. */
    st = map_file("svc");
    assert_null(resil__cb_state_check(st));
    assert_string_equal(st->name, "svc");
    unmap_file(st);
    resil_breaker *b2 = open_b("svc", &o);
    assert_int_equal(snap(b2).failed, 1);
    resil_breaker_free(b2);
    resil_breaker_free(b);
}

/* ---- (n) the review fixes ---------------------------------------------------------- */

/* A handle whose only trip rule is the window keeps working after
 * resil_breaker_reset_file: the reset keeps the shared window's size (a record
 * with window_size 0 has no window, and such a handle would never trip again),
 * and a handle with a window re-arms a record that lost its size anyway. */
static resil_breaker_opts window_only_opts(void)
{
    resil_breaker_opts o = base_opts();
    o.failure_threshold = -1;
    o.window_size = 10;
    o.window_min_calls = 5;
    return o;
}

static void test_reset_file_keeps_window(void **state)
{
    (void)state;
    resil_breaker_opts o = window_only_opts();
    resil_breaker *b = open_b("svc", &o);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(resil_breaker_reset_file(dir, "svc", NULL), 0);
    struct resil__cb_state *st = map_file("svc");
    assert_int_equal(atomic_load(&st->window_size), 10); /* kept */
    assert_int_equal(atomic_load(&st->window_count), 0); /* emptied */
    unmap_file(st);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED); /* 4 < min 5 */
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.failed, 5);
    resil_breaker_free(b);

    /* A reset that starts from a record whose header is gone (a reset_file
     * killed in its first store left magic 0) cannot know the size: the
     * window handle's next call puts its own back. */
    b = open_b("svc2", &o);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    st = map_file("svc2");
    st->magic = 0;
    unmap_file(st);
    assert_int_equal(resil_breaker_reset_file(dir, "svc2", NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.window_calls, 0); /* cleared by the trip */
    resil_breaker_free(b);
}

/* Only handles with a window feed it.  A handle without one (consecutive rule
 * only) takes its successes on the lock-free path, so the window would see its
 * failures and only the successes right after them: A would judge a 4% real
 * failure rate as 5 of 11. */
static void test_windowless_handle_does_not_feed_window(void **state)
{
    (void)state;
    resil_breaker_opts oa = base_opts();
    oa.failure_threshold = -1;
    oa.window_size = 20;
    oa.window_min_calls = 10;
    oa.failure_rate_threshold = 0.3;
    resil_breaker *a = open_b("svc", &oa);
    resil_breaker_opts ob = base_opts();
    ob.failure_threshold = 1000;
    resil_breaker *b = open_b("svc", &ob);
    int failures = 0;
    for (int i = 0; i < 95; i++) {
        bool fail = i % 19 == 9;
        failures += fail;
        assert_int_equal(resil_breaker_call(b, fail ? fail_op : ok_op, NULL), fail ? 1 : 0);
    }
    assert_int_equal(failures, 5);
    for (int i = 0; i < 20; i++)
        assert_int_equal(resil_breaker_call(a, ok_op, NULL), 0);
    resil_breaker_snapshot s = snap(a);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.window_calls, 20);
    assert_true(s.failure_rate == 0.0);
    assert_int_equal(s.successful, 110);
    assert_int_equal(s.failed, 5);
    resil_breaker_free(b);
    resil_breaker_free(a);
}

/* A handle opened with a relative state directory, used in a child that
 * changed directory: the child's own lock must be on the same file (it
 * re-opens it through its inherited descriptor, not through the path). */
static int relative_child_main(void *arg, int i)
{
    (void)i;
    resil_breaker *b = arg;
    CK(chdir("/") == 0);
    CK(access("rel-state", F_OK) != 0);
    for (int k = 0; k < 3; k++)
        CK(resil_breaker_call(b, fail_op, NULL) == 1);
    CK(resil_breaker_get_state(b) == RESIL_BREAKER_OPEN);
    CK(resil_breaker_call(b, ok_op, NULL) == RESIL_ECIRCUIT_OPEN);
    return 0;
}

static void test_fork_chdir_relative_dir(void **state)
{
    (void)state;
    saved_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(saved_cwd >= 0);
    assert_int_equal(chdir(dir), 0);
    resil_breaker_opts o = base_opts();
    o.state_dir = "rel-state";
    resil_breaker *b = open_b("svc", &o);
    assert_true(resil_breaker_is_shared(b));
    reap_ok(spawn(relative_child_main, b, 0));
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.consecutive_failures, 3);
    resil_breaker_free(b);
}

/* A child that closed the handle's fd, which now is another file: the
 * re-open through /proc/self/fd sees another inode and the lock fails with
 * -ESTALE instead of locking the wrong file. */
static int stale_child_main(void *arg, int i)
{
    (void)i;
    resil_breaker *b = arg;
    /* find the fd of the state file, and put another file in its place */
    char want[PATH_MAX], link[PATH_MAX], fdp[64];
    snprintf(want, sizeof want, "%s/svc.cb", dir);
    int n = -1;
    for (int fd = 3; fd < 1024 && n < 0; fd++) {
        snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(fdp, link, sizeof link - 1);
        if (l > 0) {
            link[l] = 0;
            if (strcmp(link, want) == 0)
                n = fd;
        }
    }
    CK(n >= 0);
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/other", dir);
    int ofd = open(other, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CK(ofd >= 0);
    CK(dup2(ofd, n) == n);
    close(ofd);
    CK(resil_breaker_call(b, fail_op, NULL) == 1); /* op's result, not the error */
    CK(resil_breaker_trip(b) == -ESTALE);
    return 0;
}

static void test_fork_fd_replaced(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o);
    reap_ok(spawn(stale_child_main, b, 0));
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    assert_int_equal(s.consecutive_failures, 0);
    resil_breaker_free(b);
}

/* A trial permit granted before resil_breaker_reset_file is not the lease of
 * a trial granted after it in the same slot: lease generations move on. */
static void test_lease_generation_across_reset_file(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    o.half_open_max_calls = 1;
    o.half_open_lease_s = 3600;
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    advance(30 * S_NS);
    resil_breaker_permit old;
    assert_int_equal(resil_breaker_acquire(b, &old, NULL), 0);
    assert_int_equal(resil_breaker_reset_file(dir, "svc", NULL), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_OPEN);
    advance(30 * S_NS);
    resil_breaker_permit now;
    assert_int_equal(resil_breaker_acquire(b, &now, NULL), 0);
    assert_int_equal(snap(b).half_open_in_flight, 1);
    /* The stale permit: counted, but it frees nothing and moves nothing. */
    assert_int_equal(resil_breaker_record(b, &old, RESIL_BREAKER_SUCCESS, -1), 0);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(s.half_open_in_flight, 1);
    resil_breaker_permit p;
    double wait_s = -7;
    assert_int_equal(resil_breaker_acquire(b, &p, &wait_s), RESIL_ECIRCUIT_OPEN);
    assert_true(wait_s == 0);
    assert_int_equal(resil_breaker_record(b, &now, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* resil_breaker_call returns op's result whenever op ran, even when the
 * outcome could not be recorded; an acquire whose lock failed spends the
 * permit; a half-open refusal needs no lock. */
static int enolck_lock(int fd, int cmd, struct flock *fl)
{
    (void)fd;
    (void)cmd;
    (void)fl;
    errno = ENOLCK;
    return -1;
}

static int op_42(void *arg)
{
    (void)arg;
    return 42;
}

static void inject_enolck(void)
{
    resil__sys.fcntl_lock = enolck_lock;
}

/* A permit as an uninitialised stack variable may hold it. */
static void garbage_permit(resil_breaker_permit *p)
{
    memset(p, 0xA5, sizeof *p);
}

static void assert_same_snap(const resil_breaker_snapshot *a, const resil_breaker_snapshot *b)
{
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->successful, b->successful);
    assert_int_equal(a->failed, b->failed);
    assert_int_equal(a->ignored, b->ignored);
    assert_int_equal(a->not_permitted, b->not_permitted);
    assert_int_equal(a->consecutive_failures, b->consecutive_failures);
    assert_int_equal(a->half_open_in_flight, b->half_open_in_flight);
}

static void test_call_result_when_record_fails(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o); /* the lock-free closed path */
    o.window_size = 10;
    resil_breaker *w = open_b("win", &o); /* acquire + report */
    inject_enolck();
    assert_int_equal(resil_breaker_call(b, op_42, NULL), 42);
    assert_int_equal(resil_breaker_call(w, op_42, NULL), 42);
    /* The two-step form does see the failure to record. */
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1), -ENOLCK);
    resil__sys_reset();
    resil_breaker_free(w);

    /* OPEN whose time is over: acquire needs the lock. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    advance(30 * S_NS);
    inject_enolck();
    garbage_permit(&p);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), -ENOLCK);
    resil__sys_reset();
    resil_breaker_snapshot before = snap(b);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1), 0);
    resil_breaker_snapshot after = snap(b);
    assert_same_snap(&before, &after);

    /* HALF_OPEN, every trial slot leased: refused without the lock. */
    resil_breaker_permit t1;
    assert_int_equal(resil_breaker_acquire(b, &t1, NULL), 0);
    inject_enolck();
    double wait_s = -7;
    assert_int_equal(resil_breaker_acquire(b, &p, &wait_s), RESIL_ECIRCUIT_OPEN);
    assert_true(wait_s == 0);
    assert_int_equal(resil_breaker_call(b, op_42, NULL), RESIL_ECIRCUIT_OPEN);
    resil__sys_reset();
    assert_int_equal(resil_breaker_record(b, &t1, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);

    /* HALF_OPEN with a free slot: acquire needs the lock. */
    o = base_opts();
    o.half_open_max_calls = 2;
    resil_breaker *h = open_b("ho", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(h, RESIL_BREAKER_FAILURE), 0);
    advance(30 * S_NS);
    assert_int_equal(resil_breaker_acquire(h, &t1, NULL), 0);
    assert_int_equal(snap(h).state, RESIL_BREAKER_HALF_OPEN);
    inject_enolck();
    garbage_permit(&p);
    assert_int_equal(resil_breaker_acquire(h, &p, NULL), -ENOLCK);
    resil__sys_reset();
    before = snap(h);
    assert_int_equal(resil_breaker_record(h, &p, RESIL_BREAKER_FAILURE, -1), 0);
    after = snap(h);
    assert_same_snap(&before, &after);
    assert_int_equal(resil_breaker_record(h, &t1, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_int_equal(resil_breaker_get_state(h), RESIL_BREAKER_CLOSED);
    resil_breaker_free(h);
}

/* A lock holder that stopped (SIGSTOP, a debugger): a lock wait ends with
 * RESIL_ETIMEDOUT instead of blocking for ever.  The holder here takes the
 * OFD lock on the state file itself and sits on it; it lets go by itself
 * after 3 s, so that a library that still blocks fails this test instead of
 * hanging it. */
static int lock_sitter_main(void *arg, int i)
{
    (void)i;
    int *fds = arg; /* [0..1] "locked", [2..3] "let go" */
    close(fds[0]);
    close(fds[3]);
    int fd = open(cb_file("svc"), O_RDWR | O_CLOEXEC);
    CK(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    CK(fcntl(fd, F_OFD_SETLKW, &fl) == 0);
    CK(write(fds[1], "l", 1) == 1);
    struct pollfd pf = {.fd = fds[2], .events = POLLIN};
    (void)poll(&pf, 1, 3000);
    return 0;
}

static pid_t start_lock_sitter(int fds[4])
{
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(pipe(fds + 2), 0);
    pid_t kid = spawn(lock_sitter_main, fds, 0);
    close(fds[1]);
    close(fds[2]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    return kid;
}

static void stop_lock_sitter(pid_t kid, int fds[4])
{
    close(fds[3]);
    kill(kid, SIGKILL);
    reap(kid, 30);
}

static void test_stopped_lock_holder(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    advance(30 * S_NS); /* OPEN whose time is over: acquire needs the lock */
    resil__cb_lock_wait_ns = 200 * 1000000LL;
    int fds[4];
    pid_t kid = start_lock_sitter(fds);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    resil_breaker_permit p;
    int rc = resil_breaker_acquire(b, &p, NULL);
    double took = since(&t0);
    stop_lock_sitter(kid, fds);
    resil__cb_lock_wait_ns = 5 * S_NS;
    if (rc != RESIL_ETIMEDOUT)
        fail_msg("acquire with the lock held elsewhere: %s after %.2f s, expected "
                 "RESIL_ETIMEDOUT", resil_err_name(rc), took);
    assert_true(took >= 0.15 && took < 1.0);
    /* The refused permit is spent; the holder gone, the lock is free again. */
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1), 0);
    assert_int_equal(snap(b).failed, 3);
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_SUCCESS, -1), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* A lock wait that timed out names itself in the error: "timed out", not
 * "Unknown error 1001" (strerror of a resil code). */
static void test_lock_timeout_message(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker_free(open_b("svc", &o));
    resil__cb_lock_wait_ns = 100 * 1000000LL;
    int fds[4];
    pid_t kid = start_lock_sitter(fds);
    resil_breaker *b = NULL;
    resil_error e1, e2;
    resil_error_clear(&e1);
    resil_error_clear(&e2);
    int rc1 = resil_breaker_new(&b, "svc", &o, &e1);
    int rc2 = resil_breaker_reset_file(dir, "svc", &e2);
    stop_lock_sitter(kid, fds);
    resil__cb_lock_wait_ns = 5 * S_NS;
    assert_null(b);
    assert_int_equal(rc1, RESIL_ETIMEDOUT);
    assert_int_equal(rc2, RESIL_ETIMEDOUT);
    assert_int_equal(e1.code, RESIL_ETIMEDOUT);
    assert_int_equal(e2.code, RESIL_ETIMEDOUT);
    if (!strstr(e1.message, resil_strerror(RESIL_ETIMEDOUT)) ||
        !strstr(e2.message, resil_strerror(RESIL_ETIMEDOUT)))
        fail_msg("a lock timeout's message does not say '%s':\n  new: %s\n  reset_file: %s",
                 resil_strerror(RESIL_ETIMEDOUT), e1.message, e2.message);
}

/* Long names: one whose file name would be 600 bytes (200 '/'), one of 198
 * bytes of UTF-8 (594), two of 200 bytes that differ in the last one. */
struct long_names {
    int n;
    char v[8][RESIL__CB_NAME_MAX + 1];
};

static int collect_long(const char *name, void *arg)
{
    struct long_names *ln = arg;
    if (ln->n < 8)
        snprintf(ln->v[ln->n], sizeof ln->v[0], "%s", name);
    ln->n++;
    return 0;
}

static void test_long_names(void **state)
{
    (void)state;
    char slash[201], utf8[199], la[201], lb[201];
    memset(slash, '/', 200);
    slash[200] = 0;
    for (int i = 0; i < 99; i++) {
        utf8[2 * i] = (char)0xC3; /* U+00E9 */
        utf8[2 * i + 1] = (char)0xA9;
    }
    utf8[198] = 0;
    memset(la, 'a', 199);
    la[199] = 'x';
    la[200] = 0;
    memcpy(lb, la, sizeof la);
    lb[199] = 'y';
    const char *names[] = {slash, la, lb, utf8}; /* in strcmp order */
    resil_breaker_opts o = base_opts();
    for (int k = 0; k < 4; k++) {
        const char *name = names[k];
        resil_breaker *b = open_b(name, &o);
        bool trip = name != lb;
        for (int i = 0; trip && i < 3; i++)
            assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
        resil_breaker *b2 = open_b(name, &o);
        assert_int_equal(resil_breaker_get_state(b2),
                         trip ? RESIL_BREAKER_OPEN : RESIL_BREAKER_CLOSED);
        assert_int_equal(snap(b2).failed, trip ? 3 : 0);
        assert_string_equal(resil_breaker_name(b2), name);
        resil_breaker_free(b2);
        resil_breaker_free(b);
        const char *f = cb_file(name);
        assert_int_equal(access(f, F_OK), 0);
        assert_true(strlen(strrchr(f, '/') + 1) <= 255);
    }
    assert_string_not_equal(cb_file(la), cb_file(lb));
    assert_int_equal(count_dir_entries(), 4);

    struct long_names ln = {0};
    resil_error e;
    resil_error_clear(&e);
    assert_int_equal(resil_breaker_list_dir(dir, collect_long, &ln, &e), 0);
    assert_int_equal(ln.n, 4);
    for (int k = 0; k < 4; k++)
        assert_string_equal(ln.v[k], names[k]);
    /* ...and every listed name leads back to its breaker. */
    o.attach_only = true;
    for (int k = 0; k < 4; k++) {
        resil_breaker *b = open_b(ln.v[k], &o);
        assert_int_equal(resil_breaker_get_state(b),
                         names[k] == lb ? RESIL_BREAKER_CLOSED : RESIL_BREAKER_OPEN);
        resil_breaker_free(b);
    }
}

/* A state file that is a symbolic link is refused, never followed: neither
 * opened nor rewritten, nor (dangling) created at its target. */
static void read_file(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    assert_true(r >= 0);
    buf[r] = 0;
}

static void expect_eloop(int rc, const resil_error *e, const char *name)
{
    if (rc != -ELOOP)
        fail_msg("%s: expected -ELOOP, got %s: %s", name, resil_err_name(rc), e->message);
    if (!strstr(e->message, "symbolic link"))
        fail_msg("%s: the message does not say 'symbolic link': %s", name, e->message);
}

static void test_symlinked_state_file(void **state)
{
    (void)state;
    char victim[600], nowhere[600], buf[64];
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    snprintf(nowhere, sizeof nowhere, "%s/nowhere", dir);
    write_bytes(victim, "precious", 8);
    assert_int_equal(symlink(victim, cb_file("svc")), 0);
    assert_int_equal(symlink(nowhere, cb_file("dangling")), 0);
    resil_breaker_opts o = base_opts();
    for (int attach = 0; attach < 2; attach++) {
        o.attach_only = attach;
        const char *names[] = {"svc", "dangling"};
        for (int k = 0; k < 2; k++) {
            resil_breaker *b = NULL;
            resil_error e;
            resil_error_clear(&e);
            expect_eloop(resil_breaker_new(&b, names[k], &o, &e), &e, names[k]);
            assert_null(b);
            assert_string_equal(e.path, cb_file(names[k]));
        }
    }
    const char *names[] = {"svc", "dangling"};
    for (int k = 0; k < 2; k++) {
        resil_error e;
        resil_error_clear(&e);
        expect_eloop(resil_breaker_reset_file(dir, names[k], &e), &e, names[k]);
    }
    read_file(victim, buf, sizeof buf);
    assert_string_equal(buf, "precious");
    assert_int_equal(access(nowhere, F_OK), -1);
}

/* Values no resil process writes, large enough to make arithmetic on them
 * overflow, are refused like negative ones; a dirty record is repaired. */
static void cf_max(struct resil__cb_state *st)
{
    atomic_store(&st->consecutive_failures, INT64_MAX);
}

static void streak_max(struct resil__cb_state *st)
{
    atomic_store(&st->open_streak, INT32_MAX);
}

static void wall_max(struct resil__cb_state *st)
{
    atomic_store(&st->open_until_wall_ns, INT64_MAX);
}

static void counter_max(struct resil__cb_state *st)
{
    atomic_store(&st->stripes[7].successful, INT64_MAX);
}

static void cf_max_dirty(struct resil__cb_state *st)
{
    atomic_store(&st->consecutive_failures, INT64_MAX);
    atomic_store(&st->dirty, 1);
}

static void test_out_of_range_values(void **state)
{
    (void)state;
    damage("cf", cf_max);
    expect_eparse("cf", "consecutive failure count out of range");
    expect_mended("cf");
    damage("streak", streak_max);
    expect_eparse("streak", "open streak or half-open count out of range");
    expect_mended("streak");
    damage("wall", wall_max);
    expect_eparse("wall", "open time out of range");
    expect_mended("wall");
    damage("counter", counter_max);
    expect_eparse("counter", "call counter out of range");
    expect_mended("counter");

    /* A holder died mid-update (dirty): repaired on open, not refused. */
    damage("dirty", cf_max_dirty);
    resil_breaker_opts o = base_opts();
    resil_breaker *b = open_b("dirty", &o);
    assert_int_equal(snap(b).consecutive_failures, 0);
    resil_breaker_free(b);

    /* Scribbled under a process that has it open: its next locked operation
     * repairs before counting on. */
    o.window_size = 10;
    b = open_b("open", &o);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    assert_int_equal(call_v(b, RESIL_BREAKER_SUCCESS), 0);
    struct resil__cb_state *st = map_file("open");
    atomic_store(&st->consecutive_failures, INT64_MAX);
    /* ...and lock-free readers see sums and rates that stay in range. */
    atomic_store(&st->stripes[0].failed, INT64_MAX);
    atomic_store(&st->stripes[1].failed, INT64_MAX);
    atomic_store(&st->window_failures, 5); /* > window_count (2) */
    resil_breaker_snapshot s = snap(b);
    assert_true(s.failed == INT64_MAX);
    assert_true(s.failure_rate == 1.0);
    atomic_store(&st->stripes[0].failed, 0);
    atomic_store(&st->stripes[1].failed, 0);
    atomic_store(&st->window_failures, 0);
    unmap_file(st);
    assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    s = snap(b);
    assert_int_equal(s.consecutive_failures, 1);
    assert_int_equal(s.state, RESIL_BREAKER_CLOSED);
    resil_breaker_free(b);
}

/* attach_only needs a state directory, and an empty state file (a creation
 * in progress, or its creator died) is not a breaker to attach to. */
static void test_attach_only_edges(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    o.attach_only = true;
    o.state_dir = "";
    resil_breaker *b = NULL;
    resil_error e;
    resil_error_clear(&e);
    assert_int_equal(resil_breaker_new(&b, "svc", &o, &e), RESIL_EINVAL);
    assert_null(b);
    assert_string_equal(e.path, "attach_only");

    o.state_dir = dir;
    write_bytes(cb_file("empty"), "", 0);
    resil_error_clear(&e);
    assert_int_equal(resil_breaker_new(&b, "empty", &o, &e), -ENOENT);
    assert_null(b);
    assert_string_equal(e.path, cb_file("empty"));
    struct stat sb;
    assert_int_equal(stat(cb_file("empty"), &sb), 0);
    assert_int_equal(sb.st_size, 0); /* left as it was */
    /* A plain open makes it a breaker; then it attaches. */
    o.attach_only = false;
    resil_breaker_free(open_b("empty", &o));
    o.attach_only = true;
    resil_breaker_free(open_b("empty", &o));
}

/* A failed trial whose holder died inside go_open (from HALF_OPEN): that
 * trip never happened, so the next one is the streak's second, not third. */
static int dies_in_retrip_main(void *arg, int i)
{
    (void)arg;
    (void)i;
    struct killer_clock kc = {{kc_mono, kc_wall, kc_sleep, NULL}, 0};
    kc.clock.ctx = &kc;
    resil_breaker_opts o = base_opts();
    o.clock = &kc.clock;
    o.open_multiplier = 2;
    resil_breaker *b = child_open("svc", &o);
    resil_breaker_permit p;
    CK(resil_breaker_acquire(b, &p, NULL) == 0); /* the trial */
    kc.armed = 1;
    resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1); /* dies in go_open */
    return 12;
}

static void test_dead_retrip_not_in_streak(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    o.open_multiplier = 2;
    resil_breaker *b = open_b("svc", &o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_v(b, RESIL_BREAKER_FAILURE), 0);
    assert_int_equal(snap(b).open_streak, 1);
    resil_breaker_free(b);
    advance(30 * S_NS);
    pid_t kid = spawn(dies_in_retrip_main, NULL, 0);
    int st = reap(kid, 30);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    struct resil__cb_state *raw = map_file("svc");
    assert_int_equal(atomic_load(&raw->dirty), 1); /* it died holding the lock */
    unmap_file(raw);

    b = open_b("svc", &o);
    resil_breaker_snapshot before = snap(b);
    assert_int_equal(before.state, RESIL_BREAKER_HALF_OPEN);
    assert_int_equal(before.open_streak, 1);
    resil_breaker_permit p;
    assert_int_equal(resil_breaker_acquire(b, &p, NULL), 0);
    assert_int_equal(resil_breaker_record(b, &p, RESIL_BREAKER_FAILURE, -1), 0);
    resil_breaker_snapshot s = snap(b);
    assert_int_equal(s.state, RESIL_BREAKER_OPEN);
    assert_int_equal(s.open_streak, 2);
    assert_true(s.open_duration_s == 60.0);
    resil_breaker_free(b);
}

/* A breaker whose store gives no fast-path record (a guarded one: the path
 * a network backend takes) behaves as one that has it: the same sequence
 * of calls on both gives the same states, refusals, waits and counts. */
static void run_cycle(resil_breaker *b, resil_breaker_snapshot *out, int *refused)
{
    *refused = 0;
    for (int i = 0; i < 2; i++)
        assert_int_equal(resil_breaker_call(b, ok_op, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(resil_breaker_call(b, fail_op, NULL), 1);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_OPEN);
    double wait_s = 0;
    resil_breaker_permit p;
    advance(10 * S_NS);
    assert_int_equal(resil_breaker_acquire(b, &p, &wait_s), RESIL_ECIRCUIT_OPEN);
    (*refused)++;
    assert_true(wait_s > 19.99 && wait_s <= 20.0);
    advance(20 * S_NS);
    assert_int_equal(resil_breaker_acquire(b, &p, &wait_s), 0); /* the trial */
    resil_breaker_permit q;
    assert_int_equal(resil_breaker_acquire(b, &q, &wait_s), RESIL_ECIRCUIT_OPEN);
    (*refused)++;
    assert_true(wait_s == 0);
    assert_int_equal(resil_breaker_report(b, &p, 0, -1), 0);
    assert_int_equal(resil_breaker_get_state(b), RESIL_BREAKER_CLOSED);
    assert_int_equal(resil_breaker_snapshot_get(b, out), 0);
}

static void test_without_fast_record(void **state)
{
    (void)state;
    resil_breaker_opts o = base_opts();
    resil_breaker *fast = NULL, *slow = NULL;
    assert_int_equal(resil_breaker_new(&fast, "with-record", &o, NULL), 0);
    o.guard_every_call = true;
    assert_int_equal(resil_breaker_new(&slow, "without-record", &o, NULL), 0);
    resil_breaker_snapshot a, b;
    int ra, rb;
    run_cycle(fast, &a, &ra);
    run_cycle(slow, &b, &rb);
    assert_int_equal(ra, rb);
    assert_int_equal(a.state, b.state);
    assert_int_equal(a.successful, 3);
    assert_int_equal(b.successful, 3);
    assert_int_equal(a.failed, b.failed);
    assert_int_equal(a.not_permitted, 2);
    assert_int_equal(b.not_permitted, 2);
    assert_int_equal(a.epoch, b.epoch);
    assert_int_equal(a.open_streak, b.open_streak);
    resil_breaker_free(fast);
    resil_breaker_free(slow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trip_seen_by_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_fast_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_totals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_holder_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_lease_report_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_file_seen_by_holders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_dir_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_one_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reboot_rebases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reboot_clears_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_mid_transition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_trip_not_in_streak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creator_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creator_killed_before_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inherited_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_wiped_while_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_file_keeps_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_windowless_handle_does_not_feed_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fork_chdir_relative_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_fd_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_generation_across_reset_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_call_result_when_record_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_lock_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_timeout_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinked_state_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_only_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_retrip_not_in_streak, setup, teardown),
    };
    /* RESIL_TEST_FILTER=test_long_* runs only the matching tests. */
    if (getenv("RESIL_TEST_FILTER"))
        cmocka_set_test_filter(getenv("RESIL_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
