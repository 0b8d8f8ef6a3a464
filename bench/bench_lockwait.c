/* bench/bench_lockwait.c - how long a contended lock makes its waiters wait
 * (issue 10), against the fair bound and against flock(2) in the same run.
 *
 * For N = 2, 4, 8 processes and hold times of 1 ms and 50 ms, every process
 * loops acquire - hold - release for a fixed time (all start together), and
 * each acquire's wait is timed (CLOCK_MONOTONIC around it).  Two methods:
 *   resil   resil_lock_acquire(EXCLUSIVE) / resil_lock_release on one path,
 *           opening the sidecar each time as the CLI does;
 *   flock   open + flock(LOCK_EX) blocking + close on a separate file, as
 *           flock(1) does: the kernel's wait queue, no timeout.
 * A fair (FIFO) lock bounds a wait by (N-1) x hold; target: resil max <= 2 x
 * that bound.  Output: one "lockwait ..." line per method and config (p50,
 * p99, max in ms, acquires, the bound, max/bound, the processes' CPU time and the time the host
 * stole from this VM's CPUs meanwhile) and "verdict ..." lines.
 *
 * Usage: bench_lockwait [--seconds S] [--dir DIR]
 *   S (default 2): the time of each config, at least 4 x N x hold.
 *   DIR (default ./bench_lockwait_tmp): where the lock files are made.
 * A benchmark, not a test: exits 0 when a target is missed, 1 on a failure
 * (a lock error, or two holders at once). */
#define _GNU_SOURCE
#include "resil/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_PROCS = 8, MAX_WAITS = 20000 };

typedef struct shared {
    int64_t start_ns;
    int inside; /* holders at once (must stay <= 1) */
    int overlap;
    int n[MAX_PROCS];
    int64_t wait_ns[MAX_PROCS][MAX_WAITS];
} shared;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The machine's stolen time so far (ms, all CPUs): /proc/stat's 8th "cpu"
 * field, in USER_HZ ticks.  On a shared VM the host preempts the vCPUs; a
 * waiter or a holder whose vCPU is stolen for a few ms makes a wait that
 * long whatever the lock does, so every line says how much was stolen. */
static double steal_ms(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                       &v[4], &v[5], &v[6], &v[7])
              : 0;
    if (f)
        fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    return n == 8 && hz > 0 ? (double)v[7] * 1000.0 / (double)hz : 0;
}

/* User + system time of the reaped children so far (ms). */
static double children_cpu_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int child(shared *sh, int k, int use_flock, const char *path, int64_t hold_ns,
                 int64_t end_ns)
{
    /* All start together, asleep until then (not spinning: 8 spinners on a
     * 2-core machine would delay the first holders). */
    struct timespec at = {(time_t)(sh->start_ns / 1000000000LL), (long)(sh->start_ns % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {
    }
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.lock_timeout_s = 120;
    while (now_ns() < end_ns && sh->n[k] < MAX_WAITS) {
        int64_t t0 = now_ns();
        resil_lock *lk = NULL;
        int fd = -1;
        if (use_flock) {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (fd < 0 || flock(fd, LOCK_EX) != 0)
                return 1;
        } else {
            resil_error e;
            if (resil_lock_acquire(&lk, path, RESIL_LOCK_EXCLUSIVE, &o, &e) != 0) {
                fprintf(stderr, "bench_lockwait: %s\n", e.message);
                return 1;
            }
        }
        int64_t t1 = now_ns();
        sh->wait_ns[k][sh->n[k]++] = t1 - t0;
        if (__atomic_add_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST) != 1)
            __atomic_store_n(&sh->overlap, 1, __ATOMIC_SEQ_CST);
        sleep_ns(hold_ns);
        __atomic_sub_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        if (use_flock)
            close(fd);
        else
            resil_lock_release(lk);
    }
    return 0;
}

/* Runs one config; prints its line; returns max/bound (or -1 on failure). */
static double run(shared *sh, const char *dir, int use_flock, int procs, int hold_ms,
                  double seconds)
{
    memset(sh, 0, sizeof *sh);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, use_flock ? "flock.lock" : "resil.json");
    int64_t hold_ns = (int64_t)hold_ms * 1000000LL;
    double secs = seconds;
    if (secs < 4.0 * procs * hold_ms / 1000.0)
        secs = 4.0 * procs * hold_ms / 1000.0;
    sh->start_ns = now_ns() + 50000000LL; /* everybody forked by then */
    int64_t end_ns = sh->start_ns + (int64_t)(secs * 1e9);
    pid_t kids[MAX_PROCS];
    double steal0 = steal_ms(), cpu0 = children_cpu_ms();
    for (int k = 0; k < procs; k++) {
        kids[k] = fork();
        if (kids[k] == 0)
            _exit(child(sh, k, use_flock, path, hold_ns, end_ns));
    }
    int failed = 0;
    for (int k = 0; k < procs; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double stolen = steal_ms() - steal0, cpu = children_cpu_ms() - cpu0;
    size_t total = 0;
    for (int k = 0; k < procs; k++)
        total += (size_t)sh->n[k];
    int64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t m = 0;
    for (int k = 0; k < procs; k++)
        for (int i = 0; i < sh->n[k]; i++)
            all[m++] = sh->wait_ns[k][i];
    qsort(all, m, sizeof *all, cmp64);
    size_t over = 0;
    for (size_t i = 0; i < m; i++)
        over += (double)all[i] / 1e6 > 2.0 * (double)(procs - 1) * hold_ms;
    double p50 = m ? (double)all[(m - 1) / 2] / 1e6 : 0;
    double p99 = m ? (double)all[(size_t)((double)(m - 1) * 0.99)] / 1e6 : 0;
    double mx = m ? (double)all[m - 1] / 1e6 : 0;
    free(all);
    double bound = (double)(procs - 1) * hold_ms;
    printf("lockwait method=%s procs=%d hold_ms=%d seconds=%.1f acquires=%zu p50_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f fair_bound_ms=%.0f max_over_bound=%.2f over_2x_bound=%zu cpu_ms=%.0f steal_ms=%.0f%s\n",
           use_flock ? "flock" : "resil", procs, hold_ms, secs, total, p50, p99, mx, bound,
           mx / bound, over, cpu, stolen, failed ? " FAILED" : sh->overlap ? " OVERLAP" : "");
    fflush(stdout);
    return failed || sh->overlap ? -1 : mx / bound;
}

int main(int argc, char **argv)
{
    double seconds = 2;
    const char *dir = "bench_lockwait_tmp";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_lockwait [--seconds S] [--dir DIR]\n");
            return 2;
        }
    }
    mkdir(dir, 0700);
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    static const int holds[] = {1, 50}, procs[] = {2, 4, 8};
    int bad = 0, missed = 0;
    for (size_t h = 0; h < 2; h++) {
        for (size_t p = 0; p < 3; p++) {
            double r = run(sh, dir, 0, procs[p], holds[h], seconds);
            (void)run(sh, dir, 1, procs[p], holds[h], seconds);
            if (r < 0)
                bad = 1;
            else if (r > 2.0)
                missed++;
        }
    }
    printf("verdict lockwait: resil max wait <= 2 x fair bound in %d of 6 configs%s\n", 6 - missed,
           bad ? " (a run FAILED)" : "");
    return bad;
}
