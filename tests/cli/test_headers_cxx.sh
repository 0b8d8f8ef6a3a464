#!/usr/bin/env bash
# tests/cli/test_headers_cxx.sh RESIL - resil.h compiles as C++ (g++ and
# clang++ when present, -Wall -Wextra -Werror, C++11 and C++17), and the
# versioned *_INIT macros of resil/retry.h and resil/guard.h work there in
# static and automatic initializers without warnings.  (The RESIL argument
# is unused: this lives among the CLI tests only so that CTest picks it up.)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/t.cpp" <<'CPP'
#include <resil/resil.h>
static const resil_retry_opts g_ro = RESIL_RETRY_OPTS_INIT;
static const resil_guard_opts g_go = RESIL_GUARD_OPTS_INIT;
int main()
{
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    resil_guard_opts go = RESIL_GUARD_OPTS_INIT;
    ro.measure_time = true;
    go.open_policy = RESIL_BREAKER_OPEN_STOP;
    return (g_ro.version == RESIL_RETRY_OPTS_VERSION && g_go.version == RESIL_GUARD_OPTS_VERSION &&
            ro.version == RESIL_RETRY_OPTS_VERSION && go.version == RESIL_GUARD_OPTS_VERSION &&
            ro.gate == nullptr) ? 0 : 1;
}
CPP
n=0
for cxx in g++ clang++; do
  command -v "$cxx" >/dev/null || continue
  for std in c++11 c++17; do
    "$cxx" -std=$std -Wall -Wextra -Werror -I"$root/include" -c "$tmp/t.cpp" -o "$tmp/t.o" 2>"$tmp/err" ||
      { echo "resil.h does not compile as $std with $cxx:"; head -20 "$tmp/err"; exit 1; }
    n=$((n + 1))
  done
done
[ "$n" -gt 0 ] || { echo "no C++ compiler: skipped"; exit 0; }
echo "C++ headers ok: $n compilations"
