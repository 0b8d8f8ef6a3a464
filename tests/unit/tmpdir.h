/* tests/unit/tmpdir.h - one private temporary directory per cmocka test,
 * shared by the file tests: `setup` makes $TMPDIR/<TEST_DIR_PREFIX>-XXXXXX,
 * `teardown` resets the fault injection of resil__sys and removes the
 * directory (made writable first: tests leave read-only files and
 * directories behind on purpose), and in_dir(name) gives "<dir>/<name>" in
 * one of four rotating buffers (so a call may take two or three of them).
 * Define TEST_DIR_PREFIX ("resil-files") before including; include after
 * cmocka.h and internal/sys.h. */
#ifndef RESIL_TESTS_TMPDIR_H
#define RESIL_TESTS_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

#ifndef TEST_DIR_PREFIX
#error "define TEST_DIR_PREFIX before including tmpdir.h"
#endif

static char dir[256];

static inline int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/" TEST_DIR_PREFIX "-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static inline int teardown(void **state)
{
    (void)state;
    resil__sys_reset();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static inline const char *in_dir(const char *name)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

#endif
