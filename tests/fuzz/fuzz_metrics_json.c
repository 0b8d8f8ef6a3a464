/* tests/fuzz/fuzz_metrics_json.c - property fuzzing of the metrics
 * directory reader's core, resil_metrics_merge_json: whatever a record in
 * DIR/metrics.ndjson holds, merging it never crashes (ASan/UBSan check every
 * access), either succeeds or fails with RESIL_EPARSE / RESIL_EINVAL and a
 * message, and the registry then still exports in every format, with
 * `# EOF` last in OpenMetrics.  Inputs are parsed with jansson first (what
 * the NDJSON reader does); every 4th input is also wrapped as a one-family
 * document so that merging is reached often.
 * Built as a libFuzzer target with clang (RESIL_FUZZ=ON), otherwise with
 * tests/fuzz/standalone.c. */
#include "resil/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long fuzz_inputs_valid, fuzz_inputs_deadline;

static void check(json_t *doc)
{
    resil_metrics_registry *r;
    if (resil_metrics_registry_new(&r, NULL, NULL) != 0)
        abort();
    resil_error err;
    resil_error_clear(&err);
    int rc = resil_metrics_merge_json(r, doc, &err);
    if (rc != 0 && ((rc != RESIL_EPARSE && rc != RESIL_EINVAL) || err.message[0] == 0)) {
        fprintf(stderr, "merge: rc %d, message '%s'\n", rc, err.message);
        abort();
    }
    if (rc == 0)
        fuzz_inputs_deadline++;
    for (int f = RESIL_METRICS_PROMETHEUS; f <= RESIL_METRICS_JSON; f++) {
        char *out;
        size_t len;
        if (resil_metrics_export(&out, &len, r, (resil_metrics_format)f) != 0)
            abort();
        if (strlen(out) != len)
            abort();
        if (f == RESIL_METRICS_OPENMETRICS &&
            (len < 6 || strcmp(out + len - 6, "# EOF\n") != 0))
            abort();
        free(out);
    }
    resil_metrics_registry_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!doc)
        return 0;
    fuzz_inputs_valid++;
    check(doc);
    if (fuzz_inputs_valid % 4 == 0) {
        json_t *wrap = json_pack("{s:[{s:s,s:s,s:s,s:[s],s:[o]}]}", "metrics", "name", "m",
                                 "type", "counter", "help", "h", "labels", "l", "series",
                                 json_incref(doc));
        if (wrap) {
            check(wrap);
            json_decref(wrap);
        }
    }
    json_decref(doc);
    return 0;
}
