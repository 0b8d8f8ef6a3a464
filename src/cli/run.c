/* src/cli/run.c - `resil run [options] -- CMD [ARGS...]`: run a command,
 * retrying it with backoff until it succeeds (a superset of Debian's retry(1)).
 *
 * A thin shell over the public API: resil_retry() is the loop; the op
 * (run_attempt.c) runs the command once and says whether the attempt
 * succeeded, failed transiently or failed permanently; with --breaker the
 * library's guard (resil/guard.h) is the retry's gate, so a refused attempt
 * is not run and not counted, exactly as for resil_retry_with_breaker; a
 * --delay list is passed to the library as the op's retry-after hint;
 * signals cancel a resil_cancel token; messages and NDJSON events come from
 * the after_attempt hook (run_report.c); the options are run_args.c's.
 * This file holds the entry point and the process set-up: fds 0-2, the
 * signal handlers, which forward a signal to the published target (pid or
 * -pgid) that resil_proc_run stores.
 */
#define _GNU_SOURCE
#include "run.h"

#include "resil/metrics.h"

#include <fcntl.h>
#include <unistd.h>


/* ---- signals ---------------------------------------------------------------- */

/* The signals resil forwards to the command and that cancel the retry. */
static const int handled_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_HANDLED (sizeof handled_signals / sizeof handled_signals[0])

/* Shared with the handler (run.h). */
resil_cancel *g_cancel;
volatile sig_atomic_t g_target;
volatile sig_atomic_t g_signal;
static volatile sig_atomic_t g_own_pgroup;

static void on_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved = errno;
    g_signal = sig;
    resil_cancel_cancel(g_cancel);
    pid_t target = (pid_t)g_target;
    /* A command sharing our process group already got a signal the terminal
     * sent to the group (si_code SI_KERNEL): forward only the others. */
    if (target != 0 && (g_own_pgroup || !si || si->si_code != SI_KERNEL)) {
        kill(target, sig);
        kill(target, SIGCONT); /* a stopped command must see it too */
    }
    errno = saved;
}

/* True when we have a controlling terminal and are in its foreground
 * process group. */
static bool in_terminal_foreground(void)
{
    int fd = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool fg = tcgetpgrp(fd) == getpgrp();
    close(fd);
    return fg;
}

/* Makes sure fds 0-2 are open (on /dev/null) so that our own files never
 * land on them.  Returns true when stdin was closed. */
static bool ensure_std_fds(void)
{
    bool stdin_closed = false;
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        if (fd == 0)
            stdin_closed = true;
        int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (nfd >= 0 && nfd != fd) {
            dup2(nfd, fd);
            close(nfd);
        }
    }
    return stdin_closed;
}

/* Installs the handlers and prepares the child's signal state.  Signals that
 * were ignored when we started (nohup, background jobs) stay ignored, in us
 * and in the command. */
static int setup_signals(run_ctx *c)
{
    sigprocmask(SIG_SETMASK, NULL, &c->orig_mask);
    sigemptyset(&c->handled);
    sigemptyset(&c->child_deflt);
    sigaddset(&c->child_deflt, SIGPIPE);
    sigaddset(&c->child_deflt, SIGCHLD);

    /* SIGPIPE: a command that stops reading its stdin gives us EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* An inherited SIG_IGN for SIGCHLD would reap the child behind our back. */
    signal(SIGCHLD, SIG_DFL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_HANDLED; i++)
        sigaddset(&sa.sa_mask, handled_signals[i]);
    for (size_t i = 0; i < N_HANDLED; i++) {
        struct sigaction old;
        if (sigaction(handled_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        if (sigaction(handled_signals[i], &sa, NULL) != 0) {
            run_msg("resil run: cannot install a signal handler: %s", strerror(errno));
            return RESIL_CLI_EXIT_FAILURE;
        }
        sigaddset(&c->handled, handled_signals[i]);
        sigaddset(&c->child_deflt, handled_signals[i]);
        /* A blocked handled signal would never cancel us: unblock it in us,
         * while the command gets our original mask. */
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, handled_signals[i]);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
    }
    return -1;
}

static void cleanup(run_ctx *c)
{
    run_flush_metrics(c); /* what the last attempt and the breaker recorded */
    for (size_t i = 0; i < N_HANDLED; i++) {
        if (sigismember(&c->handled, handled_signals[i]))
            signal(handled_signals[i], SIG_DFL);
    }
    resil_cancel_free(g_cancel);
    g_cancel = NULL;
    resil_guard_free(c->guard);
    c->guard = NULL;
    resil_breaker_free(c->breaker);
    c->breaker = NULL;
    if (c->events) {
        int rc = resil_ndjson_writer_close(c->events);
        if (rc != 0 && rc != RESIL_EDURABILITY)
            run_msg("resil run: closing the events file: %s", resil_strerror(rc));
        c->events = NULL;
    }
    free(c->delays);
    resil_proc_spool_free(c->spool);
    free(c->json_name);
}

/* Sets up what the attempts need: stdin's capture, the command's process
 * group, the events file, the cancel token, the breaker and the signals.
 * Returns -1 to go on, or an exit status after a message. */
static int prepare(run_ctx *c, const overrides *ov)
{
    bool stdin_closed = ensure_std_fds();
    if (stdin_closed)
        c->stdin_mode = STDIN_INHERIT; /* now /dev/null */
    else if (isatty(STDIN_FILENO))
        c->stdin_mode = STDIN_TTY;
    else
        c->stdin_mode = STDIN_PIPE;
    resil_error e;
    resil_error_clear(&e);
    if (c->stdin_mode == STDIN_PIPE) {
        /* Captured stdin is spooled to a file (0600, O_EXCL, unlinked at
         * once), so any size can be replayed to every attempt. */
        if (resil_proc_spool_new(&c->spool, STDIN_FILENO, NULL, &e) != 0) {
            run_msg("resil run: cannot capture stdin: %s", e.message);
            return RESIL_CLI_EXIT_FAILURE;
        }
    }
    /* When resil runs in the foreground of a terminal, the command shares
     * our process group: it may read the terminal (a password prompt) even
     * when stdin is a pipe, which a background group cannot.  Otherwise it
     * gets a group of its own, so that a timeout reaches its children. */
    c->own_pgroup = !in_terminal_foreground();
    g_own_pgroup = c->own_pgroup;

    if (ov->events_path) {
        resil_file_opts fo = RESIL_FILE_OPTS_INIT;
        resil_error_clear(&e);
        int erc = resil_ndjson_writer_open(&c->events, ov->events_path, &fo, &e);
        if (erc != 0) {
            c->events = NULL;
            run_msg("resil run: --events: %s", e.message[0] ? e.message : resil_strerror(erc));
            return RESIL_CLI_EXIT_FAILURE;
        }
    }
    int err = resil_cancel_new(&g_cancel);
    if (err != 0) {
        run_msg("resil run: cannot create a cancel token: %s", resil_strerror(err));
        return RESIL_CLI_EXIT_FAILURE;
    }
    int rc = run_open_breaker(c, ov);
    if (rc < 0)
        rc = setup_signals(c);
    return rc;
}

int resil_cli_run(int argc, char **argv)
{
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.kill_after_s = 5;
    c.until_mode = true;
    overrides ov;
    memset(&ov, 0, sizeof ov);

    int rc = run_parse_args(&c, &ov, argc, argv);
    if (rc < 0)
        rc = run_build_config(&c, &ov);
    if (rc >= 0) {
        free(c.delays);
        return rc;
    }
    if (!c.criteria.given) { /* default: --until success */
        c.criteria.given = true;
        c.criteria.has[0] = true;
    }
    if (!c.name) {
        const char *slash = strrchr(c.cmd[0], '/');
        c.name = slash && slash[1] ? slash + 1 : c.cmd[0];
    }
    if (!c.label)
        c.label = c.name;
    c.json_name = run_utf8_sanitized(c.name);

    rc = prepare(&c, &ov);
    if (rc >= 0) {
        cleanup(&c);
        return rc;
    }

    resil_rng rng;
    resil_retry_opts opts = RESIL_RETRY_OPTS_INIT;
    if (ov.has_seed) {
        resil_rng_seed(&rng, ov.seed);
        opts.rng = &rng;
    }
    opts.cancel = g_cancel;
    opts.after_attempt = run_after_attempt;
    opts.hook_arg = &c;
    /* --breaker: the library's guard is the gate, as for resil_guard_retry */
    opts.gate = c.guard ? resil_guard_gate(c.guard) : NULL;

    resil_retry_result res;
    c.run_start_ns = resil_clock_monotonic_ns(NULL);
    int r = resil_retry(run_attempt, &c, c.name, &c.config, &opts, &res);
    int status = run_final_status(&c, r, &res);
    cleanup(&c);
    return status;
}
