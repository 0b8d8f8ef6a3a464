/* src/cli/lock.c - `resil lock [--shared] [--timeout S] PATH [--] CMD [ARGS...]`:
 * run a command while holding the lock of PATH (like flock(1), with a
 * timeout that always ends).
 *
 * A thin shell over resil_lock_acquire / resil_lock_release: the lock is the
 * library's, on the sidecar "PATH.lock" (an OFD lock, O_CLOEXEC, so the
 * command does not inherit it: the lock lives exactly as long as resil,
 * which waits for the command).
 *
 * Also home of the small process runner that `resil json update` shares
 * (resil_cli_spawn_wait): posix_spawnp, then waitpid, with SIGINT, SIGTERM
 * and SIGHUP forwarded to the command while it runs.
 */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/common.h"
#include "resil/files.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

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

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    default: return NULL;
    }
}

const char *resil_cli_describe_status(int status, char *buf, size_t size)
{
    if (status > 128 && status < 128 + 65) {
        const char *nm = sig_name(status - 128);
        if (nm)
            snprintf(buf, size, "killed by %s", nm);
        else
            snprintf(buf, size, "killed by signal %d", status - 128);
    } else
        snprintf(buf, size, "exit %d", status);
    return buf;
}

/* Runs cmd and waits for it, forwarding SIGINT, SIGTERM and SIGHUP.  No
 * signal handler is involved: the forwarded signals and SIGCHLD stay
 * blocked in resil and are taken with sigwaitinfo(), so there is no window
 * in which a signal could be lost or sent to a reaped pid. */
int resil_cli_spawn_wait(char *const *cmd, int in_fd, int out_fd, const char *who, bool *started)
{
    if (started)
        *started = false;
    sigset_t orig_mask, waitset;
    sigprocmask(SIG_SETMASK, NULL, &orig_mask);
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    for (size_t i = 0; i < N_FORWARDED; i++) {
        /* Signals ignored when we started (nohup) stay ignored, for us and
         * for the command. */
        struct sigaction old;
        if (sigaction(forwarded_signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaddset(&waitset, forwarded_signals[i]);
    }
    sigset_t saved;
    sigprocmask(SIG_BLOCK, &waitset, &saved);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    /* The command starts with our original mask and default handlers for
     * SIGPIPE and SIGCHLD. */
    sigset_t deflt;
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGPIPE);
    sigaddset(&deflt, SIGCHLD);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&attr, &orig_mask);
    posix_spawnattr_setsigdefault(&attr, &deflt);

    pid_t pid = -1;
    int rc = posix_spawnp(&pid, cmd[0], &fa, &attr, cmd, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);

    int status;
    if (rc != 0) {
        if (rc == ENOENT) {
            fprintf(stderr, "%s: %s: command not found\n", who, cmd[0]);
            status = EXIT_NOT_FOUND;
        } else {
            fprintf(stderr, "%s: %s: cannot execute: %s\n", who, cmd[0], strerror(rc));
            status = EXIT_CANNOT_EXEC;
        }
    } else {
        if (started)
            *started = true;
        status = RESIL_CLI_EXIT_FAILURE;
        for (;;) {
            int ws = 0;
            pid_t w = waitpid(pid, &ws, WNOHANG);
            if (w == pid) {
                if (WIFEXITED(ws))
                    status = WEXITSTATUS(ws);
                else if (WIFSIGNALED(ws))
                    status = 128 + WTERMSIG(ws);
                break;
            }
            if (w < 0 && errno != EINTR) {
                fprintf(stderr, "%s: cannot wait for %s: %s\n", who, cmd[0], strerror(errno));
                break;
            }
            siginfo_t si;
            int sig = sigwaitinfo(&waitset, &si);
            /* A signal from the terminal (SI_KERNEL) already reached the
             * command, which shares our process group: not twice. */
            if (sig > 0 && sig != SIGCHLD && si.si_code != SI_KERNEL)
                kill(pid, sig);
        }
    }
    /* Drop a SIGCHLD still pending from our child, then restore the mask. */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&chld, NULL, &zero) > 0) {
    }
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return status;
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
          "  -h, --help             show this help\n"
          "\n"
          "exit status: CMD's status (128+N if it died of signal N); 1 when the lock\n"
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
            fo.lock_timeout_s = s > 0 ? s : -1; /* < 0: one try */
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
    int status = resil_cli_spawn_wait(cmd, -1, -1, "resil lock", NULL);
    rc = resil_lock_release(lk);
    if (rc != 0)
        fprintf(stderr, "resil lock: releasing the lock of %s: %s\n", path, resil_strerror(rc));
    return status;
}
