/* src/cli/helper.c - running the command's helper programs (helper.h). */
#define _GNU_SOURCE
#include "helper.h"

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RESIL_CLI_LIBEXECDIR
#define RESIL_CLI_LIBEXECDIR "/usr/local/libexec/resil"
#endif
#ifndef RESIL_CLI_LIBEXEC_REL
#define RESIL_CLI_LIBEXEC_REL "../libexec/resil"
#endif

/* Tries one candidate: returns only when it could not be exec'd, with the
 * errno of the attempt. */
static int try_exec(const char *path, int argc, char **argv, char **args)
{
    args[0] = (char *)path;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    args[argc] = NULL;
    execv(path, args);
    return errno;
}

int resil_cli_exec_helper(const char *prog, const char *name, int argc, char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char dir[PATH_MAX] = "";
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(dir, sizeof dir, "%s", self);
        }
    }
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        resil_cli_msg(prog, "out of memory");
        return RESIL_CLI_EXIT_FAILURE;
    }
    char cand[3][PATH_MAX + 64];
    int nc = 0;
    if (dir[0]) {
        snprintf(cand[nc++], sizeof cand[0], "%s/%s", dir, name);
        snprintf(cand[nc++], sizeof cand[0], "%s/%s/%s", dir, RESIL_CLI_LIBEXEC_REL, name);
    }
    snprintf(cand[nc++], sizeof cand[0], "%s/%s", RESIL_CLI_LIBEXECDIR, name);
    int err = ENOENT;
    for (int i = 0; i < nc; i++) {
        int e = try_exec(cand[i], argc, argv, args);
        if (e != ENOENT && e != ENOTDIR) { /* there, but it would not run */
            resil_cli_msg(prog, "cannot run %s: %s", cand[i], strerror(e));
            free(args);
            return RESIL_CLI_EXIT_FAILURE;
        }
        err = e;
    }
    free(args);
    resil_cli_msg(prog, "cannot run its helper %s: %s (looked next to %s and in %s; "
                        "install resil whole, with its libexec directory)",
                  name, strerror(err), dir[0] ? dir : "the resil binary", RESIL_CLI_LIBEXECDIR);
    return RESIL_CLI_EXIT_FAILURE;
}
