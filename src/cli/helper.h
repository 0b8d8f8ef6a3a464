/* src/cli/helper.h - the resil command's helper programs.
 *
 * What needs a library the command itself must not load (libmicrohttpd for
 * `resil metrics serve`) runs as a separate small program, exec'd with the
 * sub-command's arguments, so that every other command starts without it.
 */
#ifndef RESIL_CLI_HELPER_H
#define RESIL_CLI_HELPER_H

/* Replaces this process by the helper program NAME, with argv[0] its path
 * and argv[1..argc-1] as given (the sub-command's own arguments).  NAME is
 * looked for next to the running binary (a build tree), then in the
 * libexec directory relative to it (a relocated install), then in the
 * configured LIBEXECDIR/resil.  Returns only on failure: a message naming
 * where it looked goes to stderr (prefixed by prog) and the result is exit
 * status 1. */
int resil_cli_exec_helper(const char *prog, const char *name, int argc, char **argv);

#endif
