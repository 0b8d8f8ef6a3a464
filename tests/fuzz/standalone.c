/* tests/fuzz/standalone.c - a main() for fuzz targets when libFuzzer is not
 * available (gcc builds): runs the target over the files named on the
 * command line (a corpus), then over N seeded pseudo-random inputs of random
 * lengths.  Usage: TARGET [-n N] [-s SEED] [FILE...] */
#include "resil/clock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern long fuzz_inputs_valid, fuzz_inputs_deadline;

int main(int argc, char **argv)
{
    long n = 200000;
    uint64_t seed = 1;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else
            break;
    }
    static uint8_t buf[4096];
    for (; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 2;
        }
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
    }
    resil_rng rng;
    resil_rng_seed(&rng, seed);
    for (long k = 0; k < n; k++) {
        size_t len = (size_t)(resil_rng_next(&rng) % 96);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)resil_rng_next(&rng);
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("%ld inputs (%ld valid configs, %ld deadline runs): all properties held\n", n,
           fuzz_inputs_valid, fuzz_inputs_deadline);
    return 0;
}
