/* RFC 6901 JSON Pointers: the examples of the RFC, set and delete. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "resil/json.h"

static json_t *rfc_doc(void)
{
    return json_loads("{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, \"e^f\": 3,"
                      " \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, \"m~n\": 8}",
                      0, NULL);
}

static void test_rfc_examples(void **state)
{
    (void)state;
    json_t *doc = rfc_doc();
    assert_non_null(doc);
    struct {
        const char *ptr;
        int want;
    } cases[] = {{"/", 0}, {"/a~1b", 1}, {"/c%d", 2}, {"/e^f", 3}, {"/g|h", 4},
                 {"/i\\j", 5}, {"/k\"l", 6}, {"/ ", 7}, {"/m~0n", 8}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v;
        assert_int_equal(resil_json_pointer_get(&v, doc, cases[i].ptr, NULL), 0);
        assert_int_equal(json_integer_value(v), cases[i].want);
    }
    json_t *v;
    assert_int_equal(resil_json_pointer_get(&v, doc, "", NULL), 0);
    assert_ptr_equal(v, doc);
    assert_int_equal(resil_json_pointer_get(&v, doc, "/foo/1", NULL), 0);
    assert_string_equal(json_string_value(v), "baz");

    resil_error e;
    assert_int_equal(resil_json_pointer_get(&v, doc, "/foo/2", &e), -ENOENT);
    assert_non_null(strstr(e.message, "/foo/2"));
    assert_int_equal(resil_json_pointer_get(&v, doc, "/foo/01", NULL), -ENOENT); /* no leading 0 */
    assert_int_equal(resil_json_pointer_get(&v, doc, "/nope/x", &e), -ENOENT);
    assert_non_null(strstr(e.message, "no value at /nope"));
    assert_int_equal(resil_json_pointer_get(&v, doc, "foo", &e), RESIL_EINVAL);
    assert_int_equal(resil_json_pointer_get(&v, doc, "/a~2", &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "~0"));
    json_decref(doc);
}

static void test_set_and_del(void **state)
{
    (void)state;
    json_t *doc = NULL;
    json_t *one = json_integer(1);
    resil_error e;
    /* Only "" can create a document. */
    assert_int_equal(resil_json_pointer_set(&doc, "/a", one, &e), RESIL_EINVAL);
    json_t *obj = json_pack("{s:[i]}", "list", 10);
    assert_int_equal(resil_json_pointer_set(&doc, "", obj, NULL), 0);
    assert_ptr_equal(doc, obj);
    json_decref(obj);
    assert_int_equal(resil_json_pointer_set(&doc, "/a", one, NULL), 0);
    assert_int_equal(resil_json_pointer_set(&doc, "/list/-", one, NULL), 0);
    assert_int_equal(resil_json_pointer_set(&doc, "/list/2", one, NULL), 0); /* == size: append */
    assert_int_equal(resil_json_pointer_set(&doc, "/list/0", one, NULL), 0); /* replace */
    assert_int_equal(json_array_size(json_object_get(doc, "list")), 3);
    assert_int_equal(resil_json_pointer_set(&doc, "/list/9", one, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "past the end"));
    assert_int_equal(resil_json_pointer_set(&doc, "/list/x", one, &e), RESIL_EINVAL);
    assert_int_equal(resil_json_pointer_set(&doc, "/missing/child", one, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "parent must exist"));
    assert_non_null(strstr(e.message, "/missing"));
    assert_int_equal(resil_json_pointer_set(&doc, "/a/b", one, &e), RESIL_EINVAL);
    assert_non_null(strstr(e.message, "a number"));

    assert_int_equal(resil_json_pointer_del(doc, "/list/0", NULL), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "list")), 2);
    assert_int_equal(resil_json_pointer_del(doc, "/a", NULL), 0);
    assert_int_equal(resil_json_pointer_del(doc, "/a", &e), -ENOENT);
    assert_int_equal(resil_json_pointer_del(doc, "", &e), RESIL_EINVAL);
    json_t *want = json_pack("{s:[i, i]}", "list", 1, 1);
    assert_true(json_equal(doc, want));
    json_decref(want);
    /* Replacing the document by itself (its only reference) is safe. */
    json_t *self = json_pack("{s:i}", "x", 1);
    assert_int_equal(resil_json_pointer_set(&self, "", self, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(self, "x")), 1);
    json_decref(self);
    json_decref(doc);
    json_decref(one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_set_and_del),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
