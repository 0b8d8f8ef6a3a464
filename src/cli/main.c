/* src/cli/main.c - the resil command: a dispatcher over sub-commands.
 *
 * Each sub-command is one entry of the table below and lives in its own
 * src/cli/<name>.c.  main() only picks the entry; the sub-command parses its
 * own options (argv[0] is its name) and returns the exit status. */
#define _GNU_SOURCE
#include "cli.h"

#include "resil/common.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const resil_cli_command commands[] = {
    {"run", resil_cli_run, "run a command, retrying it with backoff until it succeeds"},
    {"json", resil_cli_json, "get, set, delete or update values of a JSON file, safely"},
    {"yaml", resil_cli_yaml, "get, set, delete or update values of a YAML file, safely"},
    {"ndjson", resil_cli_ndjson, "append to, print, check or repair a shared NDJSON log"},
    {"lock", resil_cli_lock, "run a command holding a file's lock (flock with a timeout)"},
    {"breaker", resil_cli_breaker, "list, inspect, trip, reset or disable circuit breakers"},
    {"metrics", resil_cli_metrics, "export resil metrics, or serve them over HTTP for Prometheus"},
    {"version", cmd_version, "print the version and exit"},
    {"help", cmd_help, "show this help, or a sub-command's help (resil help CMD)"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const resil_cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: resil <command> [options] [args...]\n"
            "       resil --help | --version\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nRun 'resil help <command>' or 'resil <command> --help' for a command's "
                 "options.\nSee resil(1).\n");
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("resil %s\n", resil_version());
    return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
}

static int cmd_help(int argc, char **argv)
{
    if (argc > 1) {
        const resil_cli_command *c = find_command(argv[1]);
        if (!c) {
            fprintf(stderr, "resil: unknown command '%s'\n", argv[1]);
            usage(stderr);
            return RESIL_CLI_EXIT_USAGE;
        }
        if (c->fn != cmd_help && c->fn != cmd_version) {
            char help_opt[] = "--help";
            char *sub_argv[] = {argv[1], help_opt, NULL};
            return c->fn(2, sub_argv);
        }
    }
    usage(stdout);
    return fflush(stdout) == 0 ? RESIL_CLI_EXIT_OK : RESIL_CLI_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
    /* A SIGCHLD ignored by whoever started us would make the kernel reap our
     * commands itself, and their exit statuses would be lost. */
    signal(SIGCHLD, SIG_DFL);
    if (argc < 2) {
        fprintf(stderr, "resil: missing command\n");
        usage(stderr);
        return RESIL_CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        name = "version";
    else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";

    const resil_cli_command *c = find_command(name);
    if (!c) {
        if (name[0] == '-')
            fprintf(stderr, "resil: unknown option '%s'\n", name);
        else
            fprintf(stderr, "resil: unknown command '%s'\n", name);
        usage(stderr);
        return RESIL_CLI_EXIT_USAGE;
    }
    return c->fn(argc - 1, argv + 1);
}
