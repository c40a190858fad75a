/* clock.h - time for ariq.
 *
 * Monotonic time drives every timer and every measured duration; wall time is
 * only for timestamps that leave the process (events, queue_log).
 *
 * The time scale lets tests run a 30 s announcement cycle in milliseconds:
 * every configured duration (announce_frequency, wrapup, timeouts) passes
 * through clock_scaled_ms() before it arms a timer. It matches the simulator's
 * --scale. Default 1.0; set from ARIQ_TIME_SCALE or clock_set_scale(). */
#ifndef ARIQ_CORE_CLOCK_H
#define ARIQ_CORE_CLOCK_H

#include <stdint.h>

/* Milliseconds / microseconds from CLOCK_MONOTONIC. */
uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
/* Milliseconds since the epoch (CLOCK_REALTIME). */
uint64_t clock_wall_ms(void);

/* Scale must be >= 0 and <= 1000; 0 makes every scaled duration 0 (the
 * simulator's zero-latency mode). Returns 0 or ARIQ_EINVAL. */
int clock_set_scale(double scale);
double clock_get_scale(void);
/* Reads ARIQ_TIME_SCALE if set; returns ARIQ_EINVAL if set but invalid. */
int clock_init_from_env(void);
/* ms * scale, rounded to nearest, saturating. */
uint64_t clock_scaled_ms(uint64_t ms);

/* Formats wall ms as Asterisk does in ARI: "2026-11-25T02:53:21.823+0000".
 * buf must hold 29 bytes. Returns buf. */
char *clock_format_ari(uint64_t wall_ms, char *buf, unsigned long len);

#endif
