#!/usr/bin/env bash
# scripts/check-headers.sh BUILD_DIR - every public header compiles on its
# own (C11, -Wall -Wextra -Wpedantic -Werror, gcc and clang when present), and
# a program of two files that both use the inline functions (resil_retry,
# resil_counter_inc, resil_histogram_observe) links against the static
# library without duplicate symbols and counts right, with C11 and with
# GNU89 inline semantics, C99, and with the fast paths switched off.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
san=$(sed -n 's/^RESIL_SANITIZE:STRING=//p' "$build/CMakeCache.txt")
extra=()
[ -n "$san" ] && extra+=(-fsanitize="$san")
grep -q '^RESIL_COVERAGE:BOOL=ON' "$build/CMakeCache.txt" && extra+=(--coverage)

compilers=(cc)
command -v clang >/dev/null && compilers+=(clang)
n=0
for h in "$root"/include/resil/*.h; do
  for c in "${compilers[@]}"; do
    printf '#include <resil/%s>\n#include <resil/%s>\nint main(void) { return 0; }\n' \
      "$(basename "$h")" "$(basename "$h")" >"$tmp/one.c"
    "$c" -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$root/include" -c "$tmp/one.c" -o "$tmp/one.o" ||
      { echo "header $(basename "$h") does not compile alone with $c"; exit 1; }
    n=$((n + 1))
  done
done

# C++: every header compiles as C++11 and C++17 (g++ and clang++ when
# present, -Wall -Wextra -Wpedantic -Werror), and the *_INIT macros that
# follow docs/abi.md's pattern work there in static and automatic
# initializers without warnings (add a struct here when its _INIT does).
cxx_inits=(resil_file_opts:RESIL_FILE_OPTS_INIT resil_proc_opts:RESIL_PROC_OPTS_INIT
           resil_breaker_opts:RESIL_BREAKER_OPTS_INIT resil_metrics_opts:RESIL_METRICS_OPTS_INIT
           resil_retry_opts:RESIL_RETRY_OPTS_INIT resil_guard_opts:RESIL_GUARD_OPTS_INIT)
cxx=()
for c in g++ clang++; do command -v "$c" >/dev/null && cxx+=("$c"); done
{
  printf '#include <resil/resil.h>\n'
  i=0
  for pair in "${cxx_inits[@]}"; do
    printf 'static const %s s%d = %s;\n' "${pair%%:*}" "$i" "${pair#*:}"
    i=$((i + 1))
  done
  printf 'int main() {\n    unsigned v = 0;\n'
  i=0
  for pair in "${cxx_inits[@]}"; do
    printf '    %s a%d = %s;\n    v += a%d.version + s%d.version;\n' "${pair%%:*}" "$i" "${pair#*:}" "$i" "$i"
    i=$((i + 1))
  done
  printf '    return v == 0;\n}\n'
} >"$tmp/inits.cc"
for c in "${cxx[@]}"; do
  for std in c++11 c++17; do
    for h in "$root"/include/resil/*.h; do
      printf '#include <resil/%s>\nint main() { return 0; }\n' "$(basename "$h")" >"$tmp/one.cc"
      "$c" -std=$std -Wall -Wextra -Wpedantic -Werror -I"$root/include" -c "$tmp/one.cc" -o "$tmp/one.o" ||
        { echo "header $(basename "$h") does not compile as $std with $c"; exit 1; }
      n=$((n + 1))
    done
    "$c" -std=$std -Wall -Wextra -Wpedantic -Werror -I"$root/include" -c "$tmp/inits.cc" -o "$tmp/inits.o" ||
      { echo "the *_INIT macros do not compile as $std with $c"; exit 1; }
    n=$((n + 1))
  done
done

cat >"$tmp/a.c" <<'C'
#include <resil/resil.h>
static resil_outcome ok(resil_retry_call *c, void *a) { (void)c; (void)a; return RESIL_OUTCOME_SUCCESS; }
int use_a(void);
int use_a(void) {
    static const resil_retry_config cfg = RESIL_RETRY_TRANSIENT; /* (NULL: the slow path) */
    return resil_retry(ok, NULL, "a", &cfg, NULL, NULL) | resil_retry(ok, NULL, "b", &cfg, NULL, NULL);
}
void count_a(resil_counter *c, resil_histogram *h);
void count_a(resil_counter *c, resil_histogram *h) { resil_counter_inc(c); resil_histogram_observe(h, 0.2); }
void observe_a(resil_histogram *h, double v); /* small: the inline observe is inlined here */
void observe_a(resil_histogram *h, double v) { resil_histogram_observe(h, v); }
C
cat >"$tmp/b.c" <<'C'
#include <resil/resil.h>
#include <stdlib.h>
#include <string.h>
static resil_outcome ok(resil_retry_call *c, void *a) { (void)c; (void)a; return RESIL_OUTCOME_SUCCESS; }
int use_a(void);
void count_a(resil_counter *c, resil_histogram *h);
void observe_a(resil_histogram *h, double v);
int main(void) {
    int (*fp)(resil_retry_op, void *, const char *, const resil_retry_config *,
              const resil_retry_opts *, resil_retry_result *) = resil_retry;
    static const resil_retry_config cfg = RESIL_RETRY_TRANSIENT;
    int rc = use_a() | resil_retry(ok, NULL, "b", &cfg, NULL, NULL) | fp(ok, NULL, "c", &cfg, NULL, NULL);
    rc |= resil_retry(ok, NULL, "b", &cfg, NULL, NULL);
    resil_metrics_registry *r = resil_metrics_default();
    resil_metric *mc, *mh;
    resil_counter *c;
    resil_histogram *h;
    if (!r || resil_metrics_counter_new(&mc, r, "hc", "h", NULL, 0, NULL) ||
        resil_metrics_histogram_new(&mh, r, "hh", "h", NULL, 0, NULL, 0, NULL) ||
        resil_counter_get(&c, mc, NULL) || resil_histogram_get(&h, mh, NULL))
        return 2;
    void (*inc)(resil_counter *) = resil_counter_inc;
    void (*obs)(resil_histogram *, double) = resil_histogram_observe;
    count_a(c, h);
    resil_counter_inc(c);
    inc(c);
    resil_histogram_observe(h, 3.0);
    volatile double nan_v = __builtin_nan(""); /* (known only at run time) */
    observe_a(h, nan_v); /* not observed, even with -ffast-math */
    obs(h, 0.02);
    if (resil_counter_value(c) != 3 || resil_histogram_count(h) != 3 ||
        resil_histogram_sum(h) != 3.22)
        return 3;
    char *text = resil_export_prometheus_metrics();
    if (!text ||
        !strstr(text, "\nresil_retry_calls_total{name=\"a\",kind=\"successful_without_retry\"} 1\n") ||
        !strstr(text, "\nresil_retry_calls_total{name=\"b\",kind=\"successful_without_retry\"} 3\n") ||
        !strstr(text, "\nresil_retry_calls_total{name=\"c\",kind=\"successful_without_retry\"} 1\n"))
        return 4;
    free(text);
    return rc;
}
C
# Link with the compiler that built the library (sanitizer and coverage
# runtimes differ between compilers).
build_cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
for c in "${build_cc:-cc}"; do
  for mode in "-std=c11" "-std=c11 -O2" "-std=c11 -O2 -ffast-math" "-std=c11 -fgnu89-inline" \
              "-std=gnu99 -O2" "-std=c11 -DRESIL_NO_INLINE_FAST_PATH"; do
    # shellcheck disable=SC2086
    "$c" $mode -Wall -Wextra -Werror "${extra[@]}" -I"$root/include" "$tmp/a.c" "$tmp/b.c" \
      "$build/libresil.a" $(pkg-config --libs jansson yaml-0.1) -lpthread -lm \
      -o "$tmp/prog" ||
      { echo "two files using the inline functions do not link with $c $mode"; exit 1; }
    "$tmp/prog" || { echo "program built with $c $mode failed"; exit 1; }
    n=$((n + 1))
  done
done
# The inline updates read a thread-local variable defined in the shared
# library: link a program against libresil.so too, PIE and not.
if [ -e "$build/libresil.so" ]; then
  for mode in "-std=c11 -O2 -fPIE -pie" "-std=c11 -O2 -no-pie"; do
    # shellcheck disable=SC2086
    "${build_cc:-cc}" $mode -Wall -Wextra -Werror "${extra[@]}" -I"$root/include" "$tmp/a.c" "$tmp/b.c" \
      -L"$build" -Wl,-rpath,"$build" -lresil -lpthread -lm -o "$tmp/prog_so" ||
      { echo "a program using the inline functions does not link against libresil.so ($mode)"; exit 1; }
    "$tmp/prog_so" || { echo "program linked against libresil.so ($mode) failed"; exit 1; }
    n=$((n + 1))
  done
fi
echo "headers ok: $n compilations"
