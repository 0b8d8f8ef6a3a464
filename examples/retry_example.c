/* examples/retry_example.c - resil_retry() from C: an operation that fails
 * twice with a transient error, hooks that print each attempt and sleep, and
 * a retry budget shared by callers.  Built as build/<preset>/example_retry. */
#include <resil/resil.h>
#include <stdio.h>

struct service {
    int calls;
};

/* One attempt: fails twice ("unavailable"), then succeeds. */
static resil_outcome call_service(resil_retry_call *call, void *arg)
{
    struct service *svc = arg;
    svc->calls++;
    if (svc->calls <= 2) {
        call->error = -11; /* -EAGAIN: the op's own error, kept in the result */
        if (svc->calls == 2)
            call->retry_after_s = 0.05; /* the server said "retry after 50 ms" */
        return RESIL_OUTCOME_TRANSIENT;
    }
    return RESIL_OUTCOME_SUCCESS;
}

static void on_attempt(const resil_attempt_info *info, void *arg)
{
    (void)arg;
    printf("  %s: attempt %d %s", info->name, info->attempt,
           info->outcome == RESIL_OUTCOME_SUCCESS ? "succeeded" : "failed");
    if (info->reason == RESIL_STOP_NONE)
        printf(", next in %.3fs\n", info->delay_s);
    else
        printf(", stop: %s\n", resil_stop_reason_name(info->reason));
}

int main(void)
{
    resil_retry_budget *budget;
    if (resil_retry_budget_new(&budget, 10, 0.1, NULL) != 0)
        return 1;
    resil_retry_config config = RESIL_RETRY_AGGRESSIVE; /* 7 retries, 0.1 s .. 10 s */
    resil_retry_opts opts = RESIL_RETRY_OPTS_INIT;
    opts.after_attempt = on_attempt;
    opts.budget = budget;
    opts.measure_time = true;

    struct service svc = {0};
    resil_retry_result result;
    int rc = resil_retry(call_service, &svc, "call_service", &config, &opts, &result);
    printf("  result: %s after %d attempts, %.3fs (slept %.3fs); budget tokens %.1f\n",
           rc == 0 ? "success" : resil_strerror(rc), result.attempts, result.elapsed_s,
           result.total_delay_s, resil_retry_budget_tokens(budget));
    resil_retry_budget_free(budget);
    return rc == 0 ? 0 : 1;
}
