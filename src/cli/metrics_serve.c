/* src/cli/metrics_serve.c - resil-metrics-serve, the helper program that
 * `resil metrics serve` execs (helper.h): src/cli/metrics.c built with
 * RESIL_CLI_METRICS_SERVE, linked with libresil-http, so that only this
 * program loads libmicrohttpd.  argv is the sub-command's ("serve" and its
 * options), with argv[0] this program's path. */
#define _GNU_SOURCE
#include "cli.h"

#include <signal.h>

int main(int argc, char **argv)
{
    signal(SIGCHLD, SIG_DFL); /* as the resil command does */
    return resil_cli_metrics(argc, argv);
}
