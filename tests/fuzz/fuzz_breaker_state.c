/* tests/fuzz/fuzz_breaker_state.c - property fuzzing of a shared breaker's
 * state file: whatever another process (or a disk) leaves in it, resil must
 * neither crash nor write outside the record, and must either refuse the file
 * with RESIL_EPARSE or work with it.
 *
 * Per input, on one state file in a private directory:
 *  1. resil_breaker_reset_file writes a fresh state; a handle `h` opened once
 *     (window 20, slow-call rule, 3 trial calls) makes a few calls driven by
 *     the input, so the record holds real window and lease data;
 *  2. the input's patches ([u16 offset][u8 length][bytes]...) are written
 *     into the file, which `h` has mapped: a scribbling process;
 *  3. `h` keeps making calls, trips, resets and snapshots: nothing may crash
 *     (ASan/UBSan builds check every access), whatever the values;
 *  4. a second handle opens the file: it must return 0 or RESIL_EPARSE (with
 *     the file's path in err.path); when 0, after more calls its snapshot
 *     must be sane (a valid state, window_calls within the window, rates in
 *     [-1, 1], leases within the slots).
 * Built as a libFuzzer target with clang (RESIL_FUZZ=ON), otherwise with
 * tests/fuzz/standalone.c; every input costs a few file operations, so the
 * standalone driver checks the first 20000 inputs (RESIL_FUZZ_MAX=N). */
#include "resil/breaker.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_SIZE_GUESS 65536 /* offsets wrap at the file's real size */

static char dir[64];
static char path[128];
static int fd = -1;
static off_t fsize;
static resil_fake_clock fc;
static resil_breaker *h;
static long max_inputs = -1, inputs;
/* Read by standalone.c's summary: inputs checked, and those whose file the
 * second handle accepted. */
long fuzz_inputs_valid, fuzz_inputs_deadline;

static resil_breaker_opts opts(void)
{
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.clock = &fc.clock;
    o.state_dir = dir;
    o.seed = 7;
    o.failure_threshold = 3;
    o.recovery_timeout_s = 1;
    o.window_size = 20;
    o.window_min_calls = 5;
    o.slow_call_duration_s = 0.5;
    o.half_open_max_calls = 3;
    o.half_open_lease_s = 2;
    o.open_multiplier = 2;
    o.max_open_s = 8;
    o.open_jitter = 0.25;
    return o;
}

static void cleanup(void)
{
    resil_breaker_free(h);
    unlink(path);
    rmdir(dir);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/resil-fuzz-cb.%d", (int)getpid());
    resil_fake_clock_init(&fc, 1000000000000LL, 1700000000000000000LL);
    resil_error err;
    if (resil_breaker_reset_file(dir, "fz", &err) != 0) {
        fprintf(stderr, "setup: %s\n", err.message);
        abort();
    }
    resil_breaker_opts o = opts();
    if (resil_breaker_new(&h, "fz", &o, &err) != 0) {
        fprintf(stderr, "setup: %s\n", err.message);
        abort();
    }
    snprintf(path, sizeof path, "%s/fz.cb", dir);
    fd = open(path, O_RDWR | O_CLOEXEC);
    assert(fd >= 0);
    fsize = lseek(fd, 0, SEEK_END);
    assert(fsize > 0);
    atexit(cleanup);
    const char *m = getenv("RESIL_FUZZ_MAX");
    max_inputs = m ? atol(m) : 20000;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    max_inputs = -1; /* libFuzzer: no cap */
    return 0;
}

/* Calls driven by bytes: acquire, then a verdict and a duration, sometimes a
 * held permit, a clock step, a trip or a reset. */
static void drive(resil_breaker *b, const uint8_t *p, size_t n)
{
    resil_breaker_permit held[4];
    int nheld = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        switch (c >> 5) {
        case 0:
        case 1:
        case 2: {
            resil_breaker_permit pm;
            double w;
            if (resil_breaker_acquire(b, &pm, &w) == 0)
                resil_breaker_record(b, &pm, (resil_breaker_verdict)(c % 3),
                                     (c & 8) ? 1.0 : (c & 16) ? -1 : 0.1);
            break;
        }
        case 3:
            if (nheld < 4 && resil_breaker_acquire(b, &held[nheld], NULL) == 0)
                nheld++;
            break;
        case 4:
            if (nheld > 0) {
                nheld--;
                resil_breaker_record(b, &held[nheld], (resil_breaker_verdict)(c % 3), -1);
            }
            break;
        case 5:
            resil_fake_clock_advance(&fc, (int64_t)(c & 31) * 250000000LL);
            break;
        case 6: {
            resil_breaker_snapshot s;
            resil_breaker_snapshot_get(b, &s);
            (void)resil_breaker_get_state(b);
            (void)resil_breaker_time_until_half_open(b);
            break;
        }
        default:
            if (c == 0xff)
                resil_breaker_trip(b);
            else if (c == 0xfe)
                resil_breaker_disable(b);
            else if (c >= 0xf8)
                resil_breaker_reset(b);
            break;
        }
    }
    while (nheld > 0) {
        nheld--;
        resil_breaker_record(b, &held[nheld], RESIL_BREAKER_SUCCESS, -1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0)
        setup();
    if (max_inputs >= 0 && inputs++ >= max_inputs)
        return 0;
    fuzz_inputs_valid++;
    resil_error err;
    if (resil_breaker_reset_file(dir, "fz", &err) != 0) {
        fprintf(stderr, "reset_file: %s\n", err.message);
        abort();
    }
    size_t cut = size / 3;
    drive(h, data, cut);

    /* Patches from the rest of the input. */
    size_t i = cut;
    while (i + 3 <= size) {
        off_t off = (off_t)((data[i] | (data[i + 1] << 8)) % (unsigned)fsize);
        size_t len = data[i + 2] % 16;
        i += 3;
        if (len > size - i)
            len = size - i;
        if (off + (off_t)len > fsize)
            len = (size_t)(fsize - off);
        if (pwrite(fd, data + i, len, off) != (ssize_t)len)
            abort();
        i += len;
    }
    drive(h, data, cut); /* on whatever the file now holds */

    resil_breaker_opts o = opts();
    resil_breaker *n = NULL;
    resil_error_clear(&err);
    int rc = resil_breaker_new(&n, "fz", &o, &err);
    if (rc != 0) {
        if (rc != RESIL_EPARSE || strcmp(err.path, path) != 0 || err.message[0] == 0) {
            fprintf(stderr, "open: rc %d (%s) path '%s'\n", rc, err.message, err.path);
            abort();
        }
        return 0;
    }
    fuzz_inputs_deadline++;
    drive(n, data, cut);
    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(n, &s);
    if ((unsigned)s.state > RESIL_BREAKER_DISABLED || s.window_calls < 0 ||
        s.window_calls > 10000 || !(s.failure_rate >= -1 && s.failure_rate <= 1) ||
        s.half_open_in_flight < 0 || s.half_open_in_flight > 64 ||
        s.consecutive_failures < 0 ||
        s.time_until_half_open_s < (s.state == RESIL_BREAKER_FORCED_OPEN ? -1 : 0)) {
        fprintf(stderr, "insane snapshot: state %d window %d rate %g in flight %d cf %lld\n",
                (int)s.state, s.window_calls, s.failure_rate, s.half_open_in_flight,
                (long long)s.consecutive_failures);
        abort();
    }
    resil_breaker_free(n);
    return 0;
}
