#include "core/clock.h"
#include "core/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double g_scale = 1.0;

static uint64_t ts_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t clock_mono_ms(void)
{
    return ts_ms(CLOCK_MONOTONIC);
}

uint64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clock_wall_ms(void)
{
    return ts_ms(CLOCK_REALTIME);
}

int clock_set_scale(double scale)
{
    if (!(scale >= 0.0 && scale <= 1000.0)) /* also rejects NaN */
        return ARIQ_EINVAL;
    g_scale = scale;
    return 0;
}

double clock_get_scale(void)
{
    return g_scale;
}

int clock_init_from_env(void)
{
    const char *s = getenv("ARIQ_TIME_SCALE");
    if (!s || !*s)
        return 0;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0')
        return ARIQ_EINVAL;
    return clock_set_scale(v);
}

uint64_t clock_scaled_ms(uint64_t ms)
{
    double v = (double)ms * g_scale;
    if (v >= 1.8e19)
        return UINT64_MAX;
    return (uint64_t)llround(v);
}

char *clock_format_ari(uint64_t wall_ms, char *buf, unsigned long len)
{
    time_t sec = (time_t)(wall_ms / 1000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03u+0000", (unsigned)(wall_ms % 1000u));
    return buf;
}
