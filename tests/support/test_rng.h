/* test_rng.h - the seeded randomness of the random runs (queued_random):
 * one xorshift64* generator, seeded from argv[1], else $ARIQ_SEED, else a
 * fixed default, so a failing run is rerun by its seed. Not thread-safe:
 * one generator per test program. */
#ifndef ARIQ_TEST_RNG_H
#define ARIQ_TEST_RNG_H

#include <stdbool.h>
#include <stdint.h>

/* Seeds the generator from argv[1] (argc > 1), else $ARIQ_SEED, else
 * `dflt`. Returns the seed used. */
unsigned test_rng_seed(int argc, char **argv, unsigned dflt);

uint64_t test_rng_next(void);
/* True with probability p. */
bool test_rng_chance(double p);
/* 0 .. n-1 (n > 0). */
int test_rng_below(int n);

/* nanosleep for ms milliseconds. */
void test_sleep_ms(int ms);

#endif
