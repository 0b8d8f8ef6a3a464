/* Error codes, error details and version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "resil/common.h"

static void test_version(void **state)
{
    (void)state;
    assert_string_equal(resil_version(), RESIL_VERSION_STRING);
    assert_int_equal(resil_version_number(), RESIL_VERSION_NUMBER);
    assert_int_equal(RESIL_VERSION_NUMBER, 0x000100);
}

static void test_codes_are_distinct_and_named(void **state)
{
    (void)state;
    static const int codes[] = {
#define X(name, value, msg) name,
        RESIL_ERROR_TABLE(X)
#undef X
    };
    static const char *names[] = {
#define X(name, value, msg) #name,
        RESIL_ERROR_TABLE(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] <= -1000); /* never collides with -errno */
        assert_string_equal(resil_err_name(codes[i]), names[i]);
        assert_string_not_equal(resil_strerror(codes[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
    assert_string_equal(resil_err_name(RESIL_ETIMEDOUT), "RESIL_ETIMEDOUT");
    assert_string_equal(resil_strerror(RESIL_ECIRCUIT_OPEN), "circuit breaker is open");
}

static void test_errno_codes(void **state)
{
    (void)state;
    assert_string_equal(resil_strerror(0), "success");
    assert_string_equal(resil_err_name(0), "RESIL_OK");
    assert_string_equal(resil_err_name(-ENOSPC), "ENOSPC");
    assert_string_equal(resil_strerror(-ENOSPC), "No space left on device");
    assert_string_equal(resil_err_name(-ENOENT), "ENOENT");
    assert_string_equal(resil_strerror(-999), "unknown error");
    assert_string_equal(resil_err_name(12345), "UNKNOWN");
    assert_string_equal(resil_strerror(-5000), "unknown error");
}

static void test_error_details(void **state)
{
    (void)state;
    resil_error e;
    memset(&e, 0x5a, sizeof e);
    resil_error_clear(&e);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.message, "");

    assert_int_equal(resil_error_set(&e, -EIO, "/tmp/x.json", "cannot write %s: %d", "x", 5), -EIO);
    assert_int_equal(e.code, -EIO);
    assert_int_equal(e.sys_errno, EIO);
    assert_string_equal(e.path, "/tmp/x.json");
    assert_string_equal(e.message, "cannot write x: 5");

    assert_int_equal(resil_error_set(&e, RESIL_EPARSE, NULL, NULL), RESIL_EPARSE);
    assert_int_equal(e.sys_errno, 0);
    assert_string_equal(e.path, "");
    assert_string_equal(e.message, "parse error");

    /* NULL err: just returns the code. */
    assert_int_equal(resil_error_set(NULL, RESIL_EINVAL, "p", "m"), RESIL_EINVAL);
    resil_error_clear(NULL);

    /* Long messages are truncated, never overflow. */
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    resil_error_set(&e, RESIL_EINVAL, big, "%s", big);
    assert_int_equal(strlen(e.message), sizeof e.message - 1);
    assert_int_equal(strlen(e.path), sizeof e.path - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_codes_are_distinct_and_named),
        cmocka_unit_test(test_errno_codes),
        cmocka_unit_test(test_error_details),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
