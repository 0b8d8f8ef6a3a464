/* bench/bench_util.h - what the C benchmarks share: medians and minimums
 * over runs, scaled iteration counts and the machine's load.  Header-only
 * (static functions); include after <stdio.h>, <stdlib.h> and <string.h>. */
#ifndef RESIL_BENCH_UTIL_H
#define RESIL_BENCH_UTIL_H

#define MAX_RUNS 64

/* Prints "load WHEN loadavg=..." from /proc/loadavg. */
static inline void print_load(const char *when)
{
    char buf[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            strcpy(buf, "?");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("load %s loadavg=\"%s\"\n", when, buf);
}

/* n scaled by `scale`, at least 1000. */
static inline long scaled_iters(double n, double scale)
{
    double v = n * scale;
    return v < 1000 ? 1000 : (long)v;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    double med, min;
} stats;

/* The median and the minimum of n (<= MAX_RUNS) samples. */
static inline stats summarize(const double *samples, int n)
{
    double s[MAX_RUNS];
    memcpy(s, samples, (size_t)n * sizeof s[0]);
    qsort(s, (size_t)n, sizeof s[0], cmp_double);
    stats st = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0]};
    return st;
}

#endif
