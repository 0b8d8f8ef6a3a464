/* resil/proc.h - running a child process with a deadline that always ends.
 *
 * resil_proc_run() starts a command (argv, argv[0] looked up in PATH), waits
 * for it with a timeout, a kill-after grace period and a cancel token, and
 * says how it ended: exited with a code, killed by a signal, timed out, or
 * could not start (errno).  It is the process runner behind `resil run`,
 * `resil lock FILE -- CMD` and `resil json|yaml update`.
 *
 *   timeout     after timeout_s the command (its process group when
 *               own_pgroup) gets SIGTERM and SIGCONT; kill_after_s later,
 *               SIGKILL.  A command that times out reports status 124, as
 *               timeout(1) does, whatever its own status was.
 *   cancel      when the token is cancelled the command gets the same
 *               SIGTERM-then-SIGKILL treatment (unless cancel_wait: the
 *               caller forwarded a signal itself and only waits).
 *   stdin       inherited, an fd of the caller, or a pipe fed from a spool
 *               (resil_proc_spool): every byte read so far from a source fd
 *               is kept in an unlinked temporary file and replayed to each
 *               command run with that spool, then more is read from the
 *               source only while the command's pipe has room.  Any size
 *               works; a spool that cannot be written (ENOSPC, EFBIG...) is
 *               an error naming its file, and the command is killed before
 *               it can see end of input on a partial stream.
 *   137 vs KILL a command that exits with 137 by itself is EXITED code 137;
 *               one killed by SIGKILL is SIGNALED signal 9.  Both have the
 *               shell's status 137; resil_proc_describe() tells them apart.
 *
 * Signals: resil_proc_run() installs no handler.  A caller that forwards
 * signals (from its own handler) passes publish_target and publish_mask: the
 * target (pid, or -pgid) is stored there with publish_mask blocked, right
 * after the spawn, and reset to 0 (again blocked) before the child is
 * reaped, so a handler never signals a reaped, reused pid.
 *
 * Thread safety: resil_proc_run() may be called from many threads at once
 * with distinct spools; a spool belongs to one thread at a time.  The child
 * is reaped with waitpid(pid) (a pidfd where the kernel has one): do not
 * reap all children (waitpid(-1), SIGCHLD SIG_IGN) in another thread.
 * Process safety: nothing is shared between processes; the temporary files
 * are created 0600 with O_EXCL and unlinked at once.
 * The library never prints; failures come back as codes and resil_error.
 */
#ifndef RESIL_PROC_H
#define RESIL_PROC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/select.h> /* sigset_t, also under strict C11 */
#include <sys/types.h>  /* pid_t */

#include "resil/cancel.h"
#include "resil/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the stdin spool ----------------------------------------------------------- */

/* Captured input: the bytes read so far from a source fd, kept in an
 * unlinked temporary file, replayable to any number of commands. */
typedef struct resil_proc_spool resil_proc_spool;

/* Creates a spool reading `src_fd` (borrowed, not closed; read only while a
 * command runs with this spool and its pipe has room).  The file is created
 * 0600 with O_EXCL in `dir` (NULL: $TMPDIR, else /tmp), named
 * "resil-stdin.XXXXXX", and unlinked at once; resil_proc_spool_path() keeps
 * its name for messages.  *out receives a new spool the caller frees with
 * resil_proc_spool_free().  Returns 0, or -errno (the message names the
 * directory: missing, not writable, full). */
RESIL_EXPORT int resil_proc_spool_new(resil_proc_spool **out, int src_fd, const char *dir,
                                      resil_error *err);

/* Frees a spool and closes its file.  NULL is ignored. */
RESIL_EXPORT void resil_proc_spool_free(resil_proc_spool *s);

/* The spool file's (unlinked) path, for messages.  Borrowed. */
RESIL_EXPORT const char *resil_proc_spool_path(const resil_proc_spool *s);

/* Bytes captured so far. */
RESIL_EXPORT uint64_t resil_proc_spool_size(const resil_proc_spool *s);

/* True once the source reached end of file (or failed). */
RESIL_EXPORT bool resil_proc_spool_eof(const resil_proc_spool *s);

/* ---- temporary files ----------------------------------------------------------- */

/* Creates a temporary file for a command's output: 0600, O_EXCL, O_CLOEXEC,
 * in `dir` (NULL: $TMPDIR, else /tmp), named "PREFIX.XXXXXX" and unlinked at
 * once.  *out_fd receives the open fd (caller closes it); path (may be NULL)
 * receives the name for messages.  Returns 0 or -errno, with a message that
 * names the directory ("cannot create a temporary file in /x: Permission
 * denied"). */
RESIL_EXPORT int resil_proc_tmpfile(int *out_fd, const char *dir, const char *prefix,
                                    char *path, size_t path_size, resil_error *err);

/* ---- running a command --------------------------------------------------------- */

#define RESIL_PROC_OPTS_VERSION 1

typedef struct resil_proc_opts {
    unsigned version;        /* RESIL_PROC_OPTS_VERSION (0 is read as 1; a
                              * newer one is refused with RESIL_EINVAL,
                              * see docs/abi.md) */
    int stdin_fd;            /* > 0: becomes the command's stdin; 0: inherited */
    int stdout_fd;           /* > 0: becomes the command's stdout; 0: inherited */
    resil_proc_spool *stdin_spool; /* non-NULL: stdin is a pipe fed from it
                                    * (stdin_fd is then ignored); borrowed */
    double timeout_s;        /* > 0: SIGTERM after this; 0: no timeout */
    double kill_after_s;     /* grace between SIGTERM and SIGKILL: 0 = 5 s,
                              * < 0 = SIGKILL at once */
    int64_t deadline_ns;     /* > 0: also time out at this monotonic time
                              * (resil_clock_monotonic_ns) */
    bool own_pgroup;         /* the command leads a new process group, and
                              * timeout / cancel signal the whole group */
    resil_cancel *cancel;    /* optional; borrowed */
    bool cancel_wait;        /* on cancel: only keep waiting (the caller
                              * forwarded a signal) instead of SIGTERM */
    const sigset_t *sigmask; /* the command's signal mask; NULL: the caller's */
    const sigset_t *sigdefault; /* reset to SIG_DFL in the command; NULL:
                                 * SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP,
                                 * SIGQUIT (those the caller does not ignore) */
    volatile sig_atomic_t *publish_target; /* optional, see the file comment */
    const sigset_t *publish_mask;          /* blocked while it changes */
} resil_proc_opts;

#define RESIL_PROC_OPTS_INIT {RESIL_PROC_OPTS_VERSION, 0, 0, NULL, 0, 0, 0, false, NULL, \
                              false, NULL, NULL, NULL, NULL}

typedef enum resil_proc_state {
    RESIL_PROC_NOT_STARTED = 0, /* error says why (ENOENT: not found) */
    RESIL_PROC_EXITED = 1,      /* code is its exit code */
    RESIL_PROC_SIGNALED = 2     /* signal is what killed it */
} resil_proc_state;

/* How the command ended. */
typedef struct resil_proc_result {
    resil_proc_state state;
    int code;          /* EXITED: the exit code 0..255 */
    int signal;        /* SIGNALED: the signal number */
    int error;         /* NOT_STARTED: the errno (ENOENT, EACCES, ECANCELED...) */
    bool timed_out;    /* the timeout or deadline ended it (SIGTERM was sent) */
    bool killed;       /* SIGKILL was sent after kill_after_s */
    bool cancelled;    /* the cancel token fired while it ran */
    int status;        /* the shell's view: code, 128+signal, 124 timed out,
                        * 127 not found, 126 cannot execute, 1 when nothing
                        * started for another reason (cancelled, EINVAL) */
    double duration_s; /* from the spawn to the reap */
    pid_t pid;         /* the command's pid (0 if not started) */
} resil_proc_result;

/* Runs argv (borrowed; argv[0] looked up in PATH, the environment is
 * ours) and waits for it as `opts` (NULL: defaults; borrowed) say; *out
 * (caller-owned) receives how it ended.  Blocks the calling thread until
 * the command has been reaped: at most timeout + kill_after when a timeout
 * is given, else until it exits or the token fires.  Returns 0 when the command ran, whatever its status (see
 * out); -errno when it could not start (out->state NOT_STARTED, out->error
 * set, out->status 127 for ENOENT, else 126); RESIL_ECANCELED when the token
 * was already cancelled before the spawn (nothing started); a negative code
 * for a spool failure (the command was killed; err names the spool file);
 * RESIL_EINVAL for bad arguments.  err (optional) gets the details. */
RESIL_EXPORT int resil_proc_run(resil_proc_result *out, char *const argv[],
                                const resil_proc_opts *opts, resil_error *err);

/* Describes r into buf: "exited with status 3", "killed by signal 9
 * (SIGKILL)", "timed out after 2.00 s (killed by signal 15 (SIGTERM))",
 * "could not start: No such file or directory".  Returns buf. */
RESIL_EXPORT const char *resil_proc_describe(const resil_proc_result *r, char *buf,
                                             size_t size);

/* "SIGKILL" for 9 ..., NULL for a number without a name. */
RESIL_EXPORT const char *resil_proc_signal_name(int sig);

#ifdef __cplusplus
}
#endif
#endif /* RESIL_PROC_H */
