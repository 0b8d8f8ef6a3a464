/* src/common.c - version, error codes and error details. */
#define _GNU_SOURCE
#include "resil/common.h"

#include "internal/opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *resil_version(void)
{
    return RESIL_VERSION_STRING;
}

int resil_version_number(void)
{
    return RESIL_VERSION_NUMBER;
}

const char *resil_strerror(int code)
{
    switch (code) {
    case RESIL_OK:
        return "success";
#define RESIL__ERR_MSG(name, value, msg) \
    case name:                           \
        return msg;
        RESIL_ERROR_TABLE(RESIL__ERR_MSG)
#undef RESIL__ERR_MSG
    default:
        break;
    }
    if (code < 0 && code > -1000) {
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return "unknown error";
}

const char *resil_err_name(int code)
{
    switch (code) {
    case RESIL_OK:
        return "RESIL_OK";
#define RESIL__ERR_NAME(name, value, msg) \
    case name:                            \
        return #name;
        RESIL_ERROR_TABLE(RESIL__ERR_NAME)
#undef RESIL__ERR_NAME
    default:
        break;
    }
    if (code < 0 && code > -1000) {
        const char *s = strerrorname_np(-code);
        if (s)
            return s;
    }
    return "UNKNOWN";
}

void resil_error_clear(resil_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

int resil_error_set(resil_error *err, int code, const char *path, const char *fmt, ...)
{
    if (!err)
        return code;
    memset(err, 0, sizeof *err);
    err->code = code;
    if (code < 0 && code > -1000)
        err->sys_errno = -code;
    if (path)
        snprintf(err->path, sizeof err->path, "%s", path);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    } else {
        snprintf(err->message, sizeof err->message, "%s", resil_strerror(code));
    }
    return code;
}

int resil__opts_version_check(resil_error *err, const char *type, unsigned version,
                              unsigned newest)
{
    if (version <= newest)
        return 0;
    return resil_error_set(err, RESIL_EINVAL, "version",
                           "%s version %u is newer than this library knows (%u): built against "
                           "a newer resil header? (start from the *_INIT macro of the header "
                           "that matches the library)",
                           type, version, newest);
}
