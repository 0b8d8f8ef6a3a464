/* Option structs that can grow (docs/abi.md): *_INIT sets the version and
 * works in static initializers; a version newer than the library's is
 * refused with RESIL_EINVAL and a message naming the struct; 0 is read as
 * the first version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resil/files.h"
#include "resil/proc.h"
#include "resil/breaker.h"
#include "resil/metrics.h"

static const resil_file_opts static_file_opts = RESIL_FILE_OPTS_INIT;
static const resil_proc_opts static_proc_opts = RESIL_PROC_OPTS_INIT;

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/resil-abi-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_init_values(void **state)
{
    (void)state;
    assert_int_equal(static_file_opts.version, RESIL_FILE_OPTS_VERSION);
    assert_true(static_file_opts.lock_timeout_s == RESIL_FILE_DEFAULT_LOCK_TIMEOUT_S);
    assert_int_equal(static_file_opts.durability, RESIL_DURABLE_FULL);
    assert_int_equal(static_file_opts.max_size, 0);
    assert_null(static_file_opts.clock);
    assert_int_equal(static_proc_opts.version, RESIL_PROC_OPTS_VERSION);
    assert_int_equal(offsetof(resil_file_opts, version), 0);
    assert_int_equal(offsetof(resil_proc_opts, version), 0);
}

static void expect_newer(int rc, const resil_error *e, const char *type)
{
    assert_int_equal(rc, RESIL_EINVAL);
    assert_string_equal(e->path, "version");
    char want[128];
    snprintf(want, sizeof want, "%s version 99 is newer than this library knows", type);
    assert_non_null(strstr(e->message, want));
}

static void test_file_opts_newer_version_refused(void **state)
{
    (void)state;
    char p[512], q[600];
    snprintf(p, sizeof p, "%s/v.json", dir);
    snprintf(q, sizeof q, "%s/v.ndjson", dir);
    json_t *v = json_pack("{s:i}", "a", 1);
    assert_int_equal(resil_write_json_safe(p, v, NULL, NULL), 0);
    resil_file_opts o = RESIL_FILE_OPTS_INIT;
    o.version = 99;
    resil_error e;
    json_t *out = NULL;
    char *buf = NULL;
    size_t len;
    resil_lock *l = NULL;
    resil_ndjson_writer *w = NULL;
    expect_newer(resil_write_json_safe(p, v, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_write_file_atomic(p, "x", 1, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_read_json_safe(&out, p, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_read_yaml_safe(&out, p, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_read_file(&buf, &len, p, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_lock_acquire(&l, p, RESIL_LOCK_SHARED, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_append_ndjson_safe(q, v, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_ndjson_writer_open(&w, q, &o, &e), &e, "resil_file_opts");
    expect_newer(resil_read_ndjson_safe(q, NULL, NULL, NULL, false, NULL, &o, &e), &e,
                 "resil_file_opts");
    expect_newer(resil_repair_ndjson(q, NULL, &o, &e), &e, "resil_file_opts");
    assert_null(out);
    assert_null(l);
    assert_null(w);
    assert_int_equal(access(q, F_OK), -1); /* nothing was done */
    /* The file is untouched, and versions 0 and 1 are accepted. */
    o.version = 0;
    assert_int_equal(resil_read_json_safe(&out, p, &o, NULL), 0);
    assert_true(json_equal(out, v));
    json_decref(out);
    o.version = RESIL_FILE_OPTS_VERSION;
    assert_int_equal(resil_append_ndjson_safe(q, v, &o, NULL), 0);
    json_decref(v);
}

static void test_proc_opts_newer_version_refused(void **state)
{
    (void)state;
    resil_proc_opts o = RESIL_PROC_OPTS_INIT;
    o.version = 99;
    resil_proc_result r;
    resil_error e;
    char *argv[] = {"true", NULL};
    expect_newer(resil_proc_run(&r, argv, &o, &e), &e, "resil_proc_opts");
    assert_int_equal(r.state, RESIL_PROC_NOT_STARTED);
    o.version = 0;
    assert_int_equal(resil_proc_run(&r, argv, &o, NULL), 0);
    assert_int_equal(r.status, 0);
}

static void test_breaker_and_metrics_opts_versions(void **state)
{
    (void)state;
    resil_breaker_opts bo = RESIL_BREAKER_OPTS_INIT;
    assert_int_equal(bo.version, RESIL_BREAKER_OPTS_VERSION);
    bo.version = 99;
    resil_breaker *b = NULL;
    resil_error e;
    bo.state_dir = "";
    expect_newer(resil_breaker_new(&b, "abi", &bo, &e), &e, "resil_breaker_opts");
    assert_null(b);
    bo.version = 0; /* a zeroed struct: version 1 */
    assert_int_equal(resil_breaker_new(&b, "abi", &bo, &e), 0);
    resil_breaker_free(b);

    resil_metrics_opts mo = RESIL_METRICS_OPTS_INIT;
    assert_int_equal(mo.version, RESIL_METRICS_OPTS_VERSION);
    mo.version = 99;
    resil_metrics_registry *r = NULL;
    expect_newer(resil_metrics_registry_new(&r, &mo, &e), &e, "resil_metrics_opts");
    assert_null(r);
    mo.version = 0;
    assert_int_equal(resil_metrics_registry_new(&r, &mo, &e), 0);
    resil_metrics_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_values),
        cmocka_unit_test_setup_teardown(test_file_opts_newer_version_refused, setup, teardown),
        cmocka_unit_test(test_proc_opts_newer_version_refused),
        cmocka_unit_test(test_breaker_and_metrics_opts_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
