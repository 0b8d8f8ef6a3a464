/* src/cli/run_attempt.c - one attempt of `resil run`: the command run once
 * through resil_proc_run() (resil/proc.h), its outcome for the retry and its
 * verdict for the breaker's guard.
 *
 *   stdin   a terminal is passed through; anything else is captured in a
 *           spool file (resil_proc_spool, in $TMPDIR or /tmp, unlinked): the
 *           child reads a pipe fed first with every byte of our stdin read so
 *           far (replay), then with more of our stdin, read only when the
 *           pipe has room.  A spool that cannot be written is fatal (exit 1,
 *           naming the file) before the command sees partial input;
 *   stdout  goes to a temporary file (0600, O_EXCL, unlinked at once) in
 *           $TMPDIR or /tmp, copied afterwards to our stdout if the attempt
 *           succeeded, to our stderr otherwise; a directory that cannot hold
 *           it is named;
 *   stderr  passes straight through;
 *   waiting the module's ppoll() loop: pidfd, cancel token, stdin pump,
 *           attempt timeout and kill-after.
 */
#define _GNU_SOURCE
#include "run.h"

#include <poll.h>
#include <sys/vfs.h>
#include <unistd.h>

#define NS_NEVER INT64_MAX
#define PUMP_CHUNK 65536

/* t + s seconds, saturating at NS_NEVER (s is finite and >= 0). */
static int64_t add_s(int64_t t, double s)
{
    double ns = s * 1e9;
    if (!(ns < (double)(NS_NEVER - t) - 1e9))
        return NS_NEVER;
    return t + (int64_t)ns;
}

/* Writes all of buf to fd.  Returns 0 or the errno that stopped it. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 1000);
        } else {
            return n < 0 ? errno : EIO;
        }
    }
    return 0;
}

/* Copies the whole of `from` (rewound) to fd `to`.  Returns 0 or an errno. */
static int copy_file(int from, int to)
{
    char buf[PUMP_CHUNK];
    if (lseek(from, 0, SEEK_SET) < 0)
        return errno;
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return 0;
        int e = write_all(to, buf, (size_t)n);
        if (e)
            return e;
    }
}

/* Classifies the last attempt. */
static resil_outcome classify(const run_ctx *c)
{
    int s = c->status;
    bool met = c->until_mode ? c->criteria.has[s] : !c->criteria.has[s];
    if (met)
        return RESIL_OUTCOME_SUCCESS;
    if (c->stop_on.given && c->stop_on.has[s])
        return RESIL_OUTCOME_PERMANENT;
    if (c->retry_on.given && !c->retry_on.has[s] && !c->timed_out)
        return RESIL_OUTCOME_PERMANENT;
    return RESIL_OUTCOME_TRANSIENT;
}

static resil_outcome fatal_msg(run_ctx *c, const char *text)
{
    run_msg("resil run: %s", text);
    c->fatal = true;
    c->status = RESIL_CLI_EXIT_FAILURE;
    return RESIL_OUTCOME_PERMANENT;
}

/* True when the file system of the capture file has no room left (for
 * root: not even the reserved blocks). */
static bool capture_full(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0 || sf.f_blocks == 0)
        return false;
    return (geteuid() == 0 ? sf.f_bfree : sf.f_bavail) == 0;
}

/* How resil_proc_run runs an attempt: our stdout capture, the stdin spool,
 * the timeouts, the process group, the cancel token and the child's signal
 * state. */
static void proc_opts(resil_proc_opts *po, const run_ctx *c, int out_fd)
{
    resil_proc_opts init = RESIL_PROC_OPTS_INIT;
    *po = init;
    po->stdout_fd = out_fd;
    po->stdin_spool = c->stdin_mode == STDIN_PIPE ? c->spool : NULL;
    po->timeout_s = c->attempt_timeout_s;
    po->kill_after_s = c->kill_after_s > 0 ? c->kill_after_s : -1;
    /* --deadline bounds the whole run: an attempt still running when it
     * comes is ended like a timed-out one (and the retry then stops with
     * reason "deadline"). */
    if (c->config.max_elapsed_s > 0)
        po->deadline_ns = add_s(c->run_start_ns, c->config.max_elapsed_s);
    po->own_pgroup = c->own_pgroup;
    po->cancel = g_cancel;
    po->cancel_wait = true; /* the handler forwarded the signal itself */
    po->sigmask = &c->orig_mask;
    po->sigdefault = &c->child_deflt;
    po->publish_target = &g_target;
    po->publish_mask = &c->handled;
}

/* Runs the command once, through resil_proc_run (resil/proc.h). */
static resil_outcome run_command(resil_retry_call *call, run_ctx *c)
{
    /* What the last attempt left, restored if this one is skipped. */
    bool prev_exited = c->exited, prev_timed_out = c->timed_out;
    int prev_status = c->status, prev_code = c->exit_code, prev_sig = c->term_sig;
    double prev_duration = c->duration_s;
    c->exited = false;
    c->exit_code = 0;
    c->term_sig = 0;
    c->timed_out = false;
    c->exec_failed = false;
    c->spawned = false;
    c->status = 0;
    c->duration_s = 0;
    if (c->n_delays > 0) {
        size_t i = (size_t)(call->attempt - 1);
        call->retry_after_s = c->delays[i < c->n_delays ? i : c->n_delays - 1];
    }

    /* stdout goes to a file of ours (0600, O_EXCL, unlinked at once) in
     * $TMPDIR or /tmp: a directory that cannot take it is named. */
    resil_error e;
    resil_error_clear(&e);
    int out_fd = -1;
    char out_path[PATH_MAX];
    int trc = resil_proc_tmpfile(&out_fd, NULL, "resil-run-stdout", out_path, sizeof out_path,
                                 &e);
    if (trc != 0) {
        char text[700];
        snprintf(text, sizeof text, "cannot capture the command's stdout: %s", e.message);
        return fatal_msg(c, text);
    }

    resil_proc_opts po;
    proc_opts(&po, c, out_fd);

    resil_proc_result pr;
    resil_error_clear(&e);
    int rc = resil_proc_run(&pr, c->cmd, &po, &e);
    if (rc == RESIL_ECANCELED) {
        /* A signal came after the library's last look at the token and
         * before the spawn (it could not be forwarded): start nothing. */
        close(out_fd);
        c->skipped = true;
        c->exited = prev_exited;
        c->timed_out = prev_timed_out;
        c->status = prev_status;
        c->exit_code = prev_code;
        c->term_sig = prev_sig;
        c->duration_s = prev_duration;
        return RESIL_OUTCOME_PERMANENT;
    }
    if (pr.state == RESIL_PROC_NOT_STARTED) {
        close(out_fd);
        int err = pr.error ? pr.error : (rc < 0 ? -rc : EINVAL);
        if (err == EAGAIN || err == ENOMEM) {
            /* The system could not start a process now: worth a retry. */
            run_msg("resil run: %s: cannot start: %s", c->cmd[0], strerror(err));
            c->status = RESIL_CLI_EXIT_FAILURE;
            call->error = -err;
            return RESIL_OUTCOME_TRANSIENT;
        }
        if (pr.error == 0) /* not the command's fault: resil's own */
            return fatal_msg(c, e.message[0] ? e.message : resil_strerror(rc));
        c->exec_failed = true;
        c->status = pr.status;
        if (err == ENOENT)
            run_msg("resil run: %s: command not found", c->cmd[0]);
        else
            run_msg("resil run: %s: cannot execute: %s", c->cmd[0], strerror(err));
        call->error = -err;
        return RESIL_OUTCOME_PERMANENT;
    }
    c->spawned = true;
    c->exited = pr.state == RESIL_PROC_EXITED;
    c->exit_code = pr.code;
    c->term_sig = pr.state == RESIL_PROC_SIGNALED ? pr.signal : 0;
    c->timed_out = pr.timed_out;
    c->status = pr.status;
    c->duration_s = pr.duration_s;
    if (rc != 0) {
        /* The spool failed: the command was killed before it could see end
         * of input on partial data.  Its output is not delivered. */
        close(out_fd);
        char text[700];
        snprintf(text, sizeof text, "%s; the command was stopped before it could run on "
                 "partial input", e.message[0] ? e.message : resil_strerror(rc));
        return fatal_msg(c, text);
    }

    if (capture_full(out_fd)) {
        /* The command's writes to its stdout failed (or will have been cut
         * short) for want of space: its output cannot be trusted. */
        close(out_fd);
        char *slash = strrchr(out_path, '/');
        if (slash)
            *slash = '\0';
        char text[PATH_MAX + 200];
        snprintf(text, sizeof text, "the capture file of the command's stdout cannot be "
                 "written: the file system of %s is full (%s)", out_path, strerror(ENOSPC));
        return fatal_msg(c, text);
    }
    resil_outcome outcome = classify(c);
    int werr = copy_file(out_fd, outcome == RESIL_OUTCOME_SUCCESS ? STDOUT_FILENO : STDERR_FILENO);
    if (werr && outcome == RESIL_OUTCOME_SUCCESS)
        c->output_errno = werr; /* the output is lost: never a silent success */
    close(out_fd);
    call->error = c->status;
    return outcome;
}

/* The op: runs the command once.  With --breaker, the guard (resil/guard.h)
 * has asked the breaker already (a refused attempt never gets here: it is
 * not an attempt) and reports this one to it as the op says: by exit status
 * alone (0 success, anything else, a timeout included, failure), with the
 * command's own duration.  An attempt that never started (command not
 * found, resil's own failure, a signal before the spawn) and one ended by a
 * signal sent to resil say nothing about the service: IGNORE. */
resil_outcome run_attempt(resil_retry_call *call, void *arg)
{
    run_ctx *c = arg;
    resil_outcome outcome = run_command(call, c);
    if (!c->spawned || (c->status != 0 && resil_cancel_is_cancelled(g_cancel)))
        call->verdict = RESIL_GATE_IGNORE;
    else
        call->verdict = c->status == 0 ? RESIL_GATE_SUCCESS : RESIL_GATE_FAILURE;
    call->duration_s = c->spawned ? c->duration_s : 0;
    return outcome;
}

void run_guard_event(const resil_guard_event *ev, void *arg)
{
    run_ctx *c = arg;
    if (ev->kind == RESIL_GUARD_REPORT_FAILED) {
        run_msg("resil run: breaker %s: cannot record the attempt's outcome: %s",
                c->breaker_name, resil_strerror(ev->error));
        return;
    }
    if (ev->error == RESIL_ECIRCUIT_OPEN) {
        /* Not an attempt: the command is not run and we stop (exit 75). */
        c->circuit_open = true;
        c->circuit_retry_in_s = ev->retry_in_s;
        return;
    }
    run_msg("resil run: breaker %s: %s", c->breaker_name, resil_strerror(ev->error));
    c->fatal = true;
    c->status = RESIL_CLI_EXIT_FAILURE;
}
