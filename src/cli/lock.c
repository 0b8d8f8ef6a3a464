/* src/cli/lock.c - `resil lock [--shared] [--timeout S] PATH [--] CMD [ARGS...]`:
 * run a command while holding the lock of PATH (like flock(1), with a
 * timeout that always ends).
 *
 * A thin shell over resil_lock_acquire / resil_lock_release: the lock is the
 * library's, on the sidecar "PATH.lock" (an OFD lock, O_CLOEXEC, so the
 * command does not inherit it: the lock lives exactly as long as resil,
 * which waits for the command).
 *
 * Also home of what `resil json|yaml update` shares to run its command
 * (resil_cli_exec): resil_proc_run (resil/proc.h) with SIGINT, SIGTERM and
 * SIGHUP forwarded to the command while it runs, and --cmd-timeout S /
 * --kill-after S: a command still running after S gets SIGTERM (its process
 * group), SIGKILL after the grace period, the status is 124 and the lock is
 * released as soon as it is gone.
 */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/cancel.h"
#include "resil/common.h"
#include "resil/files.h"
#include "resil/proc.h"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>


/* ---- running a command ------------------------------------------------------ */

static const int forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_FORWARDED (sizeof forwarded_signals / sizeof forwarded_signals[0])

void resil_cli_ensure_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (nfd >= 0 && nfd != fd) {
            dup2(nfd, fd);
            close(nfd);
        }
    }
}

/* Shared with the handler: where to forward (pid, -pgid, 0 = nothing
 * running), written by resil_proc_run with the forwarded signals blocked. */
static volatile sig_atomic_t g_target;
static volatile sig_atomic_t g_own_pgroup;
/* A signal that came before the command started: it cancels the token, so
 * that resil_proc_run starts nothing. */
static resil_cancel *g_cancel;
static volatile sig_atomic_t g_early_signal;

static void forward_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved = errno;
    pid_t target = (pid_t)g_target;
    if (target == 0 && !g_early_signal) {
        g_early_signal = sig;
        resil_cancel_cancel(g_cancel);
    }
    /* A command sharing our process group already got a signal the terminal
     * sent to the group (si_code SI_KERNEL): forward only the others. */
    if (target != 0 && (g_own_pgroup || !si || si->si_code != SI_KERNEL)) {
        kill(target, sig);
        kill(target, SIGCONT);
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

int resil_cli_exec(char *const *cmd, int in_fd, int out_fd, const resil_cli_cmd_opts *co,
                   const char *who, resil_proc_result *res)
{
    resil_proc_result local;
    if (!res)
        res = &local;
    g_early_signal = 0;
    if (resil_cancel_new(&g_cancel) != 0)
        g_cancel = NULL; /* then an early signal is only lost, as with no handler */
    sigset_t orig_mask, fwd, deflt;
    sigprocmask(SIG_SETMASK, NULL, &orig_mask);
    sigemptyset(&fwd);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGPIPE);
    sigaddset(&deflt, SIGCHLD);
    struct sigaction sa, old[N_FORWARDED];
    bool installed[N_FORWARDED] = {false};
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = forward_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&sa.sa_mask, forwarded_signals[i]);
    for (size_t i = 0; i < N_FORWARDED; i++) {
        /* Signals ignored when we started (nohup) stay ignored, for us and
         * for the command. */
        if (sigaction(forwarded_signals[i], NULL, &old[i]) != 0 || old[i].sa_handler == SIG_IGN)
            continue;
        if (sigaction(forwarded_signals[i], &sa, NULL) == 0) {
            installed[i] = true;
            sigaddset(&fwd, forwarded_signals[i]);
            sigaddset(&deflt, forwarded_signals[i]);
        }
    }
    /* In the foreground of a terminal the command shares our group (it may
     * read the terminal); otherwise it leads a group of its own, so that a
     * timeout reaches its children too. */
    bool own = !in_terminal_foreground();
    g_own_pgroup = own;

    resil_proc_opts po = RESIL_PROC_OPTS_INIT;
    po.stdin_fd = in_fd > 0 ? in_fd : 0;
    po.stdout_fd = out_fd > 0 ? out_fd : 0;
    po.timeout_s = co ? co->timeout_s : 0;
    po.kill_after_s = co && co->kill_after_given ? (co->kill_after_s > 0 ? co->kill_after_s : -1)
                                                 : 0;
    po.own_pgroup = own;
    po.cancel = g_cancel;
    po.cancel_wait = true; /* the handler forwards the signal itself */
    po.sigmask = &orig_mask;
    po.sigdefault = &deflt;
    po.publish_target = &g_target;
    po.publish_mask = &fwd;
    resil_error err;
    resil_error_clear(&err);
    int rc = resil_proc_run(res, cmd, &po, &err);
    for (size_t i = 0; i < N_FORWARDED; i++) {
        if (installed[i])
            sigaction(forwarded_signals[i], &old[i], NULL);
    }
    resil_cancel_free(g_cancel);
    g_cancel = NULL;
    if (rc == RESIL_ECANCELED) {
        int sig = g_early_signal;
        const char *nm = resil_proc_signal_name(sig);
        resil_cli_msg(who, "%s: not started: %s came first", cmd[0], nm ? nm : "a signal");
        res->status = sig > 0 ? 128 + sig : RESIL_CLI_EXIT_FAILURE;
    } else if (res->state == RESIL_PROC_NOT_STARTED) {
        if (res->error == ENOENT)
            resil_cli_msg(who, "%s: command not found", cmd[0]);
        else if (res->error)
            resil_cli_msg(who, "%s: cannot execute: %s", cmd[0], strerror(res->error));
        else {
            resil_cli_msg(who, "%s: %s", cmd[0], err.message[0] ? err.message
                                                                : resil_strerror(rc));
            res->status = RESIL_CLI_EXIT_FAILURE;
        }
    }
    return res->status;
}

int resil_cli_cmd_option(int argc, char **argv, int *i, const char *prog, resil_cli_cmd_opts *co)
{
    const char *val = NULL;
    const char *name = "--cmd-timeout";
    int r = resil_cli_opt_value(argc, argv, i, name, &val);
    if (r == 0) {
        name = "--kill-after";
        r = resil_cli_opt_value(argc, argv, i, name, &val);
    }
    if (r == 0)
        return 0;
    if (r < 0) {
        resil_cli_msg(prog, "option '%s' requires an argument", name);
        return -1;
    }
    double s;
    if (!resil_cli_parse_seconds(val, &s)) {
        resil_cli_msg(prog, "%s: '%s' is not a valid duration (expected seconds >= 0, "
                            "optionally with a unit ms, s, m, h or d)", name, val);
        return -1;
    }
    if (name[2] == 'c') {
        co->timeout_s = s;
    } else {
        co->kill_after_s = s;
        co->kill_after_given = true;
    }
    co->given = true;
    return 1;
}

void resil_cli_report_end(const char *who, const char *what, const resil_proc_result *r)
{
    char how[160];
    if (r->state == RESIL_PROC_NOT_STARTED)
        return; /* said by resil_cli_exec */
    if (r->timed_out || (r->state == RESIL_PROC_SIGNALED && r->signal != SIGPIPE) ||
        (r->state == RESIL_PROC_EXITED && r->code > 128))
        resil_cli_msg(who, "'%s' %s", what, resil_proc_describe(r, how, sizeof how));
}

/* ---- resil lock ----------------------------------------------------------------- */

static void lock_usage(FILE *out)
{
    fputs("usage: resil lock [options] PATH [--] CMD [ARGS...]\n"
          "\n"
          "Runs CMD while holding the lock of PATH (the sidecar file PATH.lock, created\n"
          "if needed; PATH itself need not exist), then releases it and exits with\n"
          "CMD's status.  Unlike flock(1), waiting always ends: after the timeout resil\n"
          "exits 1 with a message naming the lock file and its last holder.\n"
          "\n"
          "options:\n"
          "  -s, --shared           take a shared lock (many holders at once, no exclusive\n"
          "                         one); the default is an exclusive lock\n"
          "  -x, --exclusive        take an exclusive lock (the default)\n"
          "  -w, --timeout S        give up waiting after S seconds (default 10; 0 means\n"
          "                         a single try); units ms, s, m, h, d\n"
          "      --cmd-timeout S    SIGTERM CMD (its process group) if it still runs\n"
          "                         after S seconds, SIGKILL after --kill-after; the lock\n"
          "                         is released as soon as it is gone; exit 124\n"
          "      --kill-after S     grace between SIGTERM and SIGKILL (default 5)\n"
          "  -h, --help             show this help\n"
          "\n"
          "exit status: CMD's status (128+N if it died of signal N, 124 if --cmd-timeout\n"
          "ended it); 1 when the lock\n"
          "could not be taken in time or at all; 2 for a usage error; 126/127 when CMD\n"
          "cannot be executed / is not found.  See resil(1).\n",
          out);
}

static int lock_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int lock_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("resil lock: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'resil lock --help'.\n", stderr);
    return RESIL_CLI_EXIT_USAGE;
}

int resil_cli_lock(int argc, char **argv)
{
    resil_file_opts fo = RESIL_FILE_OPTS_INIT;
    resil_lock_mode mode = RESIL_LOCK_EXCLUSIVE;
    resil_cli_cmd_opts co = {0};
    const char *path = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (path) /* the command starts after PATH */
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            lock_usage(stdout);
            return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
        }
        if (strcmp(a, "-s") == 0 || strcmp(a, "--shared") == 0) {
            mode = RESIL_LOCK_SHARED;
            continue;
        }
        if (strcmp(a, "-x") == 0 || strcmp(a, "--exclusive") == 0) {
            mode = RESIL_LOCK_EXCLUSIVE;
            continue;
        }
        int cr = resil_cli_cmd_option(argc, argv, &i, "resil lock", &co);
        if (cr < 0) {
            fputs("Try 'resil lock --help'.\n", stderr);
            return RESIL_CLI_EXIT_USAGE;
        }
        if (cr > 0)
            continue;
        int r = resil_cli_opt_value(argc, argv, &i, "--timeout", &val);
        if (r == 0)
            r = resil_cli_opt_value(argc, argv, &i, "-w", &val);
        if (r < 0)
            return lock_usage_error("option '%s' requires an argument", a);
        if (r > 0) {
            double s;
            if (!resil_cli_parse_seconds(val, &s))
                return lock_usage_error("--timeout: '%s' is not a valid duration (expected "
                                        "seconds >= 0, optionally with a unit ms, s, m, h or d)",
                                        val);
            fo.lock_timeout_s = s; /* 0: one try, as in C (resil_file_opts) */
            continue;
        }
        if (resil_cli_is_option(a))
            return lock_usage_error("unknown option '%s'", a);
        path = a;
    }
    if (!path) {
        if (i < argc) /* "resil lock -- PATH CMD" */
            path = argv[i++];
        else
            return lock_usage_error("missing PATH (usage: resil lock [options] PATH [--] CMD "
                                    "[ARGS...])");
    }
    if (path[0] == '\0')
        return lock_usage_error("PATH is an empty string");
    if (i >= argc)
        return lock_usage_error("missing command (usage: resil lock [options] PATH [--] CMD "
                                "[ARGS...])");
    if (argv[i][0] == '\0')
        return lock_usage_error("the command is an empty string");
    char **cmd = argv + i;

    resil_cli_ensure_std_fds();
    resil_lock *lk = NULL;
    resil_error err;
    resil_error_clear(&err);
    int rc = resil_lock_acquire(&lk, path, mode, &fo, &err);
    if (rc != 0) {
        fprintf(stderr, "resil lock: %s\n", err.message[0] ? err.message : resil_strerror(rc));
        return RESIL_CLI_EXIT_FAILURE;
    }
    resil_proc_result res;
    int status = resil_cli_exec(cmd, -1, -1, &co, "resil lock", &res);
    /* Released the moment the command is gone (also when --cmd-timeout
     * killed it): the next waiter proceeds at once. */
    rc = resil_lock_release(lk);
    resil_cli_report_end("resil lock", cmd[0], &res);
    if (rc != 0)
        fprintf(stderr, "resil lock: releasing the lock of %s: %s\n", path, resil_strerror(rc));
    return status;
}
