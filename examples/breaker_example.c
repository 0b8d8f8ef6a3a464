/* examples/breaker_example.c - a circuit breaker in front of a service that
 * goes down for a while, on a simulated clock (so the example takes no time):
 * the breaker trips, refuses calls while open, lets a trial through after the
 * recovery timeout (which grows on repeated trips), and closes once the
 * service is back.  Then a retry that waits out an open breaker.
 *
 * Build: part of `make` (build/dev/example_breaker). */
#include <resil/resil.h>

#include <stdio.h>

static resil_fake_clock fc;

/* The service: down between t = 10 s and t = 100 s of the simulated clock. */
static int call_service(void *arg)
{
    (void)arg;
    double t = (double)resil_fake_clock_now(&fc) / 1e9;
    return t >= 10 && t < 100 ? -5 /* EIO */ : 0;
}

static void on_transition(const resil_breaker_transition *t, void *arg)
{
    (void)arg;
    printf("  t=%5.1fs  %s: %s -> %s (%s)", (double)resil_fake_clock_now(&fc) / 1e9, t->name,
           resil_breaker_state_name(t->from), resil_breaker_state_name(t->to), t->reason);
    if (t->to == RESIL_BREAKER_OPEN)
        printf(", open for %.0f s", t->open_for_s);
    printf("\n");
}

static resil_outcome attempt(resil_retry_call *call, void *arg)
{
    int rc = call_service(arg);
    call->error = rc;
    return rc == 0 ? RESIL_OUTCOME_SUCCESS : RESIL_OUTCOME_TRANSIENT;
}

int main(void)
{
    resil_fake_clock_init(&fc, 0, 1700000000LL * 1000000000LL);
    resil_breaker_opts o = RESIL_BREAKER_OPTS_INIT;
    o.failure_threshold = 3;
    o.recovery_timeout_s = 15;
    o.open_multiplier = 2; /* 15 s, 30 s, 60 s ... */
    o.max_open_s = 60;
    o.clock = &fc.clock;
    o.state_dir = ""; /* process-local */
    resil_breaker *b;
    resil_error err;
    if (resil_breaker_new(&b, "inventory", &o, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    resil_breaker_add_listener(b, on_transition, NULL);

    printf("one call every 2 s for 150 s; the service is down from 10 s to 100 s\n");
    int ok = 0, failed = 0, refused = 0;
    for (int i = 0; i < 75; i++) {
        int rc = resil_breaker_call(b, call_service, NULL);
        if (rc == 0)
            ok++;
        else if (rc == RESIL_ECIRCUIT_OPEN)
            refused++;
        else
            failed++;
        resil_fake_clock_advance(&fc, 2000000000LL);
    }
    resil_breaker_snapshot s;
    resil_breaker_snapshot_get(b, &s);
    printf("calls: %d succeeded, %d failed (reached the service), %d refused by the breaker\n", ok,
           failed, refused);
    printf("state %s, totals: %lld successful, %lld failed, %lld not permitted\n",
           resil_breaker_state_name(s.state), (long long)s.successful, (long long)s.failed,
           (long long)s.not_permitted);

    printf("\na retry that waits out the open breaker (RESIL_BREAKER_OPEN_WAIT)\n");
    resil_breaker_reset(b);
    resil_fake_clock_init(&fc, 0, 1700000000LL * 1000000000LL);
    resil_fake_clock_advance(&fc, 10000000000LL); /* down again */
    for (int i = 0; i < 3; i++)
        resil_breaker_call(b, call_service, NULL);
    resil_fake_clock_advance(&fc, 2000000000LL); /* t = 12 s: open until 25 s */
    resil_retry_config cfg = RESIL_RETRY_TRANSIENT;
    cfg.max_retries = 10;
    resil_retry_opts ro = RESIL_RETRY_OPTS_INIT;
    ro.clock = &fc.clock;
    resil_retry_result r;
    int rc = resil_retry_with_breaker(b, RESIL_BREAKER_OPEN_WAIT, attempt, NULL, "inventory",
                                      &cfg, &ro, &r);
    printf("retry: %s after %d attempt(s), slept %.1f s (simulated)\n",
           rc == 0 ? "succeeded" : resil_strerror(rc), r.attempts, r.total_delay_s);
    resil_breaker_free(b);
    return 0;
}
