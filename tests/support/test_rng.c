/* test_rng.c - see test_rng.h. */
#include "test_rng.h"

#include <stdlib.h>
#include <time.h>

static uint64_t rng = 1;

unsigned test_rng_seed(int argc, char **argv, unsigned dflt)
{
    const char *s = argc > 1 ? argv[1] : getenv("ARIQ_SEED");
    unsigned seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : dflt;
    rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed * 0xBF58476D1CE4E5B9ULL);
    if (!rng)
        rng = 1;
    return seed;
}

uint64_t test_rng_next(void)
{
    uint64_t x = rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

bool test_rng_chance(double p)
{
    return (double)(test_rng_next() >> 11) / (double)(1ULL << 53) < p;
}

int test_rng_below(int n)
{
    return (int)(test_rng_next() % (uint64_t)n);
}

void test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
