/* src/proc.c - resil/proc.h: run a child process with a timeout, a
 * kill-after grace period, a cancel token, an optional process group and
 * stdin replayed from a spool file.
 *
 * One wait: a ppoll() loop over a pidfd (waitpid polling every 10 ms where
 * the kernel has no pidfd), the cancel token's fd, the stdin pump (the
 * child's pipe, and the spool's source while the pipe has room) and the
 * next deadline (SIGTERM, then SIGKILL).  The spool's file I/O goes through
 * resil__sys so that tests can inject ENOSPC, EIO and short writes.
 */
#define _GNU_SOURCE
#include "resil/proc.h"

#include "resil/clock.h"
#include "internal/opts.h"
#include "internal/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NS_PER_S 1000000000LL
#define NS_NEVER INT64_MAX
#define CHUNK 65536
#define FALLBACK_POLL_NS (10 * 1000000LL)
#define DEFAULT_KILL_AFTER_S 5.0

/* ---- names ------------------------------------------------------------------- */

const char *resil_proc_signal_name(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
        {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
        {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
        {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"},
        {SIGSYS, "SIGSYS"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].sig == sig)
            return names[i].name;
    }
    return NULL;
}

const char *resil_proc_describe(const resil_proc_result *r, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    if (!r) {
        snprintf(buf, size, "?");
        return buf;
    }
    char how[96];
    if (r->state == RESIL_PROC_NOT_STARTED) {
        if (r->error == ENOENT)
            snprintf(buf, size, "command not found");
        else
            snprintf(buf, size, "could not start: %s", strerror(r->error));
        return buf;
    }
    if (r->state == RESIL_PROC_SIGNALED) {
        const char *nm = resil_proc_signal_name(r->signal);
        if (nm)
            snprintf(how, sizeof how, "killed by signal %d (%s)", r->signal, nm);
        else
            snprintf(how, sizeof how, "killed by signal %d", r->signal);
    } else {
        snprintf(how, sizeof how, "exited with status %d", r->code);
    }
    if (r->timed_out)
        snprintf(buf, size, "timed out after %.2f s (%s)", r->duration_s, how);
    else
        snprintf(buf, size, "%s", how);
    return buf;
}

/* ---- temporary files ------------------------------------------------------------ */

static const char *tmp_dir(const char *dir)
{
    if (dir && *dir)
        return dir;
    const char *env = getenv("TMPDIR");
    return env && *env ? env : "/tmp";
}

int resil_proc_tmpfile(int *out_fd, const char *dir, const char *prefix, char *path,
                       size_t path_size, resil_error *err)
{
    if (!out_fd || !prefix)
        return resil_error_set(err, RESIL_EINVAL, "", "resil_proc_tmpfile: NULL argument");
    *out_fd = -1;
    const char *d = tmp_dir(dir);
    char tmpl[PATH_MAX];
    int n = snprintf(tmpl, sizeof tmpl, "%s/%s.XXXXXX", d, prefix);
    if (n < 0 || (size_t)n >= sizeof tmpl)
        return resil_error_set(err, -ENAMETOOLONG, d,
                               "cannot create a temporary file in %s: the name is too long", d);
    /* mkostemp: O_CREAT | O_EXCL, mode 0600. */
    int fd = resil__sys.mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        const char *why = e == ENOENT    ? "the directory does not exist"
                          : e == ENOTDIR ? "it is not a directory"
                          : e == EACCES || e == EPERM ? "the directory is not writable"
                          : e == EROFS   ? "the directory is on a read-only file system"
                          : e == ENOSPC || e == EDQUOT ? "the file system is full"
                                                      : NULL;
        if (why)
            return resil_error_set(err, -e, d, "cannot create a temporary file in %s: %s (%s)",
                                   d, why, strerror(e));
        return resil_error_set(err, -e, d, "cannot create a temporary file in %s: %s", d,
                               strerror(e));
    }
    /* Unlinked at once: nothing is left behind, whatever happens next. */
    if (resil__sys.unlink(tmpl) != 0) {
        int e = errno;
        resil__sys.close(fd);
        return resil_error_set(err, -e, tmpl, "cannot unlink the temporary file %s: %s", tmpl,
                               strerror(e));
    }
    if (path && path_size)
        snprintf(path, path_size, "%s", tmpl);
    *out_fd = fd;
    return 0;
}

/* ---- the spool ------------------------------------------------------------------ */

struct resil_proc_spool {
    int fd;        /* the unlinked spool file */
    int src_fd;    /* where the bytes come from (borrowed) */
    uint64_t size; /* bytes captured */
    bool eof;      /* the source is exhausted */
    char path[PATH_MAX];
    char buf[CHUNK];
};

int resil_proc_spool_new(resil_proc_spool **out, int src_fd, const char *dir, resil_error *err)
{
    if (!out || src_fd < 0)
        return resil_error_set(err, RESIL_EINVAL, "", "resil_proc_spool_new: bad argument");
    *out = NULL;
    resil_proc_spool *s = calloc(1, sizeof *s);
    if (!s)
        return resil_error_set(err, -ENOMEM, "", "out of memory for a stdin spool");
    int rc = resil_proc_tmpfile(&s->fd, dir, "resil-stdin", s->path, sizeof s->path, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->src_fd = src_fd;
    *out = s;
    return 0;
}

void resil_proc_spool_free(resil_proc_spool *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        resil__sys.close(s->fd);
    free(s);
}

const char *resil_proc_spool_path(const resil_proc_spool *s)
{
    return s ? s->path : "";
}

uint64_t resil_proc_spool_size(const resil_proc_spool *s)
{
    return s ? s->size : 0;
}

bool resil_proc_spool_eof(const resil_proc_spool *s)
{
    return s ? s->eof : true;
}

/* Reads one chunk of the source and appends it to the spool file.  Returns
 * 0 (something read, end of file, or nothing available now) or a negative
 * code with err set. */
static int spool_fill(resil_proc_spool *s, resil_error *err)
{
    ssize_t n;
    do
        n = read(s->src_fd, s->buf, sizeof s->buf);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN)
            return 0;
        int e = errno;
        s->eof = true;
        return resil_error_set(err, -e, s->path, "reading the input for the spool file %s: %s",
                               s->path, strerror(e));
    }
    if (n == 0) {
        s->eof = true;
        return 0;
    }
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = resil__sys.pwrite(s->fd, s->buf + done, (size_t)n - done,
                                      (off_t)(s->size + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            return resil_error_set(err, -e, s->path, "cannot write the spool file %s: %s",
                                   s->path, strerror(e));
        }
        done += (size_t)w;
    }
    s->size += (uint64_t)n;
    return 0;
}

/* ---- running ------------------------------------------------------------------ */

typedef struct pump {
    resil_proc_spool *s;
    int pipe_w;     /* -1 once closed */
    uint64_t wpos;  /* spool bytes written to this child */
} pump;

static void pump_close(pump *p)
{
    if (p->pipe_w >= 0)
        close(p->pipe_w);
    p->pipe_w = -1;
}

/* Writes what the child has not seen yet.  Returns 0 or a spool error. */
static int pump_write(pump *p, resil_error *err)
{
    while (p->pipe_w >= 0 && p->wpos < p->s->size) {
        uint64_t left = p->s->size - p->wpos;
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        ssize_t r = resil__sys.pread(p->s->fd, p->s->buf, want, (off_t)p->wpos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            return resil_error_set(err, -e, p->s->path, "cannot read the spool file %s: %s",
                                   p->s->path, r < 0 ? strerror(e) : "it is shorter than written");
        }
        ssize_t w = write(p->pipe_w, p->s->buf, (size_t)r);
        if (w > 0) {
            p->wpos += (uint64_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            return 0; /* full: wait for POLLOUT */
        } else {
            pump_close(p); /* EPIPE: the child reads no more */
            return 0;
        }
    }
    return 0;
}

static int64_t now_ns(void)
{
    return resil_clock_monotonic_ns(NULL);
}

static int64_t add_s(int64_t t, double s)
{
    double ns = s * 1e9;
    if (!(ns < (double)(NS_NEVER - t) - 1e9))
        return NS_NEVER;
    return t + (int64_t)ns;
}

/* Blocks the caller's publish_mask (when it publishes a target), so that
 * the target changes atomically for its signal handler. */
static void publish_begin(const resil_proc_opts *o, sigset_t *saved)
{
    if (o->publish_target && o->publish_mask)
        sigprocmask(SIG_BLOCK, o->publish_mask, saved);
}

static void publish_end(const resil_proc_opts *o, const sigset_t *saved)
{
    if (o->publish_target && o->publish_mask)
        sigprocmask(SIG_SETMASK, saved, NULL);
}

static void record(resil_proc_result *out, int ws)
{
    if (WIFEXITED(ws)) {
        out->state = RESIL_PROC_EXITED;
        out->code = WEXITSTATUS(ws);
        out->status = out->code;
    } else if (WIFSIGNALED(ws)) {
        out->state = RESIL_PROC_SIGNALED;
        out->signal = WTERMSIG(ws);
        out->status = 128 + out->signal > 255 ? 255 : 128 + out->signal;
    }
    if (out->timed_out)
        out->status = 124;
}

/* Reaps pid (blocking when `block`).  True once reaped. */
static bool reap(const resil_proc_opts *o, pid_t pid, bool block, resil_proc_result *out)
{
    sigset_t saved;
    publish_begin(o, &saved);
    int ws = 0;
    pid_t r;
    do
        r = waitpid(pid, &ws, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    bool done = r == pid || (r < 0 && errno == ECHILD);
    if (done && o->publish_target)
        *o->publish_target = 0; /* before signals return: never signal a reused pid */
    publish_end(o, &saved);
    if (r == pid) {
        record(out, ws);
    } else if (done) { /* lost: someone else reaped it */
        out->state = RESIL_PROC_EXITED;
        out->code = 1;
        out->status = out->timed_out ? 124 : 1;
    }
    return done;
}

static void signal_target(pid_t target, int sig)
{
    kill(target, sig);
    if (sig != SIGKILL)
        kill(target, SIGCONT); /* a stopped command must see it */
}

/* The command's signal state: the caller's mask (or the one given), and
 * default handlers for what the caller may have caught. */
static void child_sigstate(const resil_proc_opts *o, sigset_t *mask, sigset_t *deflt)
{
    if (o->sigmask)
        *mask = *o->sigmask;
    else
        sigprocmask(SIG_SETMASK, NULL, mask);
    if (o->sigdefault) {
        *deflt = *o->sigdefault;
    } else {
        static const int sigs[] = {SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT};
        sigemptyset(deflt);
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
            struct sigaction old;
            bool ignored = sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN;
            /* nohup's ignored signals stay ignored in the command; SIGPIPE
             * and SIGCHLD are always reset. */
            if (!ignored || sigs[i] == SIGPIPE || sigs[i] == SIGCHLD)
                sigaddset(deflt, sigs[i]);
        }
    }
}

/* Opens the stdin pipe when a spool feeds the command.  Returns 0 or an error. */
static int stdin_pipe_open(pump *pu, int *pipe_r, resil_error *err)
{
    if (!pu->s)
        return 0;
    int p[2];
    if (resil__sys.pipe2(p, O_CLOEXEC) < 0) {
        int e = errno;
        return resil_error_set(err, -e, "", "cannot create a pipe for the command's stdin: %s",
                               strerror(e));
    }
    *pipe_r = p[0];
    pu->pipe_w = p[1];
    resil__sys.fcntl_int(pu->pipe_w, F_SETFL,
                         resil__sys.fcntl_int(pu->pipe_w, F_GETFL, 0) | O_NONBLOCK);
    return 0;
}

/* Spawns the command (unless already cancelled), publishes its target and
 * sets *start; returns 0 or the errno of the failed start. */
static int spawn_child(pid_t *pid, int64_t *start, char *const argv[], const resil_proc_opts *o,
                       int pipe_r, const sigset_t *mask, const sigset_t *deflt)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (pipe_r >= 0)
        posix_spawn_file_actions_adddup2(&fa, pipe_r, STDIN_FILENO);
    else if (o->stdin_fd > 0)
        posix_spawn_file_actions_adddup2(&fa, o->stdin_fd, STDIN_FILENO);
    if (o->stdout_fd > 0)
        posix_spawn_file_actions_adddup2(&fa, o->stdout_fd, STDOUT_FILENO);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (o->own_pgroup) {
        flags |= POSIX_SPAWN_SETPGROUP;
        posix_spawnattr_setpgroup(&attr, 0);
    }
    posix_spawnattr_setflags(&attr, flags);
    posix_spawnattr_setsigmask(&attr, mask);
    posix_spawnattr_setsigdefault(&attr, deflt);

    sigset_t saved;
    publish_begin(o, &saved);
    int rc;
    if (resil_cancel_is_cancelled(o->cancel)) {
        rc = ECANCELED; /* cancelled before anything started: start nothing */
    } else {
        rc = posix_spawnp(pid, argv[0], &fa, &attr, argv, environ);
        if (rc == 0 && o->publish_target)
            *o->publish_target = o->own_pgroup ? -*pid : *pid;
    }
    publish_end(o, &saved); /* a signal that came meanwhile is forwarded now */
    *start = now_ns();
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* Fills out and err for a command that did not start (errno rc). */
static int not_started(resil_proc_result *out, int rc, const char *cmd, resil_error *err)
{
    out->state = RESIL_PROC_NOT_STARTED;
    out->error = rc;
    out->status = rc == ENOENT ? 127 : rc == ECANCELED ? 1 : 126;
    if (rc == ECANCELED)
        return resil_error_set(err, RESIL_ECANCELED, cmd, "%s: cancelled before it "
                               "started", cmd);
    return resil_error_set(err, -rc, cmd, rc == ENOENT ? "%s: command not found"
                                                       : "%s: cannot execute: %s",
                           cmd, strerror(rc));
}

/* The state of one wait for a started command. */
typedef struct run_wait {
    const resil_proc_opts *o;
    resil_proc_result *out;
    pump pu;
    pid_t pid;
    pid_t target;    /* what signals go to: the pid or its group */
    int pidfd;       /* -1 where the kernel has none */
    int cancel_fd;   /* -1 without a cancel token */
    bool cancel_seen;
    int64_t term_at; /* when SIGTERM is due (NS_NEVER: not) */
    int64_t kill_at; /* when SIGKILL is due (NS_NEVER: not) */
    double kill_after;
    int spool_rc;    /* a spool error: the run's result */
} run_wait;

/* One round's poll set, and where each source sits in it (-1: absent). */
typedef struct run_pollset {
    struct pollfd pfd[4];
    nfds_t n;
    int i_pid, i_cancel, i_pipe, i_in;
} run_pollset;

/* Builds the poll set for this round of the wait. */
static void wait_pollset(const run_wait *w, run_pollset *ps)
{
    ps->n = 0;
    ps->i_pid = ps->i_cancel = ps->i_pipe = ps->i_in = -1;
    if (w->pidfd >= 0) {
        ps->i_pid = (int)ps->n;
        ps->pfd[ps->n++] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
    }
    if (!w->cancel_seen && w->cancel_fd >= 0) {
        ps->i_cancel = (int)ps->n;
        ps->pfd[ps->n++] = (struct pollfd){.fd = w->cancel_fd, .events = POLLIN};
    }
    if (w->pu.pipe_w >= 0) {
        ps->i_pipe = (int)ps->n;
        short ev = w->pu.wpos < w->pu.s->size ? POLLOUT : 0;
        ps->pfd[ps->n++] = (struct pollfd){.fd = w->pu.pipe_w, .events = ev};
        if (w->pu.wpos >= w->pu.s->size && !w->pu.s->eof) {
            ps->i_in = (int)ps->n;
            ps->pfd[ps->n++] = (struct pollfd){.fd = w->pu.s->src_fd, .events = POLLIN};
        }
    }
}

/* Polls until an event or the next deadline; returns ppoll's result. */
static int wait_poll(const run_wait *w, run_pollset *ps)
{
    int64_t now = now_ns();
    int64_t wake = w->term_at < w->kill_at ? w->term_at : w->kill_at;
    if (w->pidfd < 0 && now + FALLBACK_POLL_NS < wake)
        wake = now + FALLBACK_POLL_NS;
    struct timespec ts, *tsp = NULL;
    if (wake != NS_NEVER) {
        int64_t left = wake > now ? wake - now : 0;
        ts.tv_sec = (time_t)(left / NS_PER_S);
        ts.tv_nsec = (long)(left % NS_PER_S);
        tsp = &ts;
    }
    int r = ppoll(ps->pfd, ps->n, tsp, NULL);
    if (r < 0 && errno != EINTR) {
        struct timespec pause = {0, FALLBACK_POLL_NS};
        nanosleep(&pause, NULL);
    }
    return r;
}

/* Handles the cancel token and the stdin pump after a poll with events.
 * True when a spool error killed and reaped the command. */
static bool wait_events(run_wait *w, const run_pollset *ps, resil_error *err)
{
    pump *pu = &w->pu;
    if (ps->i_cancel >= 0 && (ps->pfd[ps->i_cancel].revents & POLLIN)) {
        w->cancel_seen = true;
        w->out->cancelled = true;
        if (!w->o->cancel_wait && w->kill_at == NS_NEVER) {
            signal_target(w->target, SIGTERM);
            w->term_at = NS_NEVER;
            w->kill_at = add_s(now_ns(), w->kill_after);
        }
    }
    if (ps->i_pipe >= 0 && pu->pipe_w >= 0) {
        short re = ps->pfd[ps->i_pipe].revents;
        if (re & (POLLERR | POLLNVAL))
            pump_close(pu);
        else if (re & POLLOUT)
            w->spool_rc = pump_write(pu, err);
    }
    if (w->spool_rc == 0 && ps->i_in >= 0 && pu->pipe_w >= 0 &&
        (ps->pfd[ps->i_in].revents & (POLLIN | POLLHUP | POLLERR))) {
        w->spool_rc = spool_fill(pu->s, err);
        if (w->spool_rc == 0)
            w->spool_rc = pump_write(pu, err);
    } else if (ps->i_in >= 0 && (ps->pfd[ps->i_in].revents & POLLNVAL)) {
        pu->s->eof = true;
    }
    if (w->spool_rc != 0) {
        /* Never let the command see end of input on a partial
         * stream: it dies before the pipe closes. */
        signal_target(w->target, SIGKILL);
        w->kill_at = w->term_at = NS_NEVER;
        reap(w->o, w->pid, true, w->out);
        return true;
    }
    return false;
}

/* Sends SIGTERM at the timeout, then SIGKILL after the grace period. */
static void wait_deadlines(run_wait *w)
{
    int64_t now = now_ns();
    if (now >= w->term_at) {
        w->out->timed_out = true;
        signal_target(w->target, SIGTERM);
        w->term_at = NS_NEVER;
        w->kill_at = add_s(now, w->kill_after);
    } else if (now >= w->kill_at) {
        w->out->killed = true;
        signal_target(w->target, SIGKILL);
        w->kill_at = NS_NEVER;
    }
}

/* Waits until the command is reaped (or a spool error killed it). */
static void wait_child(run_wait *w, resil_error *err)
{
    for (;;) {
        if (w->pu.pipe_w >= 0 && w->pu.wpos >= w->pu.s->size && w->pu.s->eof)
            pump_close(&w->pu); /* everything written: the child sees end of input */

        run_pollset ps;
        wait_pollset(w, &ps);
        int r = wait_poll(w, &ps);
        if (r > 0 && wait_events(w, &ps, err))
            break;
        wait_deadlines(w);

        bool exited = w->pidfd >= 0
                          ? (r > 0 && (ps.pfd[ps.i_pid].revents & (POLLIN | POLLHUP)))
                          : true;
        if (exited && reap(w->o, w->pid, w->pidfd >= 0, w->out))
            break;
    }
}

int resil_proc_run(resil_proc_result *out, char *const argv[], const resil_proc_opts *opts,
                   resil_error *err)
{
    if (!out)
        return resil_error_set(err, RESIL_EINVAL, "", "resil_proc_run: out is NULL");
    memset(out, 0, sizeof *out);
    out->status = 1; /* a failure until the command says otherwise */
    if (!argv || !argv[0] || !argv[0][0])
        return resil_error_set(err, RESIL_EINVAL, "argv", "resil_proc_run: no command");
    if (opts && resil__opts_version_check(err, "resil_proc_opts", opts->version,
                                          RESIL_PROC_OPTS_VERSION))
        return RESIL_EINVAL;
    resil_proc_opts o = RESIL_PROC_OPTS_INIT;
    if (opts)
        o = *opts;
    if (!(o.timeout_s >= 0) || o.kill_after_s != o.kill_after_s)
        return resil_error_set(err, RESIL_EINVAL, "timeout_s", "resil_proc_run: bad timeout");
    double kill_after = o.kill_after_s == 0 ? DEFAULT_KILL_AFTER_S
                        : o.kill_after_s < 0 ? 0 : o.kill_after_s;

    sigset_t mask, deflt;
    child_sigstate(&o, &mask, &deflt);

    pump pu = {.s = o.stdin_spool, .pipe_w = -1, .wpos = 0};
    int pipe_r = -1;
    int rc = stdin_pipe_open(&pu, &pipe_r, err);
    if (rc != 0)
        return rc;

    pid_t pid = -1;
    int64_t start;
    rc = spawn_child(&pid, &start, argv, &o, pipe_r, &mask, &deflt);
    if (pipe_r >= 0)
        close(pipe_r);
    if (rc != 0) {
        pump_close(&pu);
        return not_started(out, rc, argv[0], err);
    }
    out->pid = pid;

    run_wait w = {
        .o = &o,
        .out = out,
        .pu = pu,
        .pid = pid,
        .target = o.own_pgroup ? -pid : pid,
        .pidfd = resil__sys_fd_high((int)syscall(SYS_pidfd_open, pid, 0)),
        .cancel_fd = o.cancel ? resil_cancel_fd(o.cancel) : -1,
        .cancel_seen = false,
        .term_at = o.timeout_s > 0 ? add_s(start, o.timeout_s) : NS_NEVER,
        .kill_at = NS_NEVER,
        .kill_after = kill_after,
        .spool_rc = 0,
    };
    if (o.deadline_ns > 0 && o.deadline_ns < w.term_at)
        w.term_at = o.deadline_ns;
    wait_child(&w, err);

    out->duration_s = (double)(now_ns() - start) / 1e9;
    if (w.pidfd >= 0)
        close(w.pidfd);
    pump_close(&w.pu);
    /* A timed-out or cancelled command's own group may outlive it (children
     * that ignore SIGTERM): they get the rest of the grace period, then
     * SIGKILL, so that nothing of it outlasts the call. */
    if (o.own_pgroup && (out->timed_out || w.spool_rc != 0 ||
                         (out->cancelled && !o.cancel_wait))) {
        while (w.kill_at != NS_NEVER && kill(-pid, 0) == 0 && now_ns() < w.kill_at) {
            struct timespec slice = {0, 10 * 1000 * 1000};
            nanosleep(&slice, NULL);
        }
        kill(-pid, SIGKILL);
    }
    return w.spool_rc;
}
