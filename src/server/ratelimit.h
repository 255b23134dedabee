/*
 * ratelimit.h: token buckets, and the monotonic clock every rate and timeout of the
 * node runs on.
 *
 * The one idea: a rate is a difference of two readings of a clock, so the clock must
 * not jump. The wall clock does (NTP steps it, a router without a battery-backed clock
 * boots in 1970 and is set later), and ev_now() is the wall clock; a bucket fed it
 * would stop refilling for as long as the clock was stepped back. So buckets take
 * ratelimit_now() (CLOCK_MONOTONIC), and the bucket itself is a pure function of the
 * time it is given: time that seems to run backwards refills nothing and is never
 * paid back, so even a bad reading cannot block a client. Wall time is kept for what
 * is about calendars: envelope created_at and TTL, and queue expiry (node_now_ms).
 */
#ifndef QPC_SERVER_RATELIMIT_H
#define QPC_SERVER_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A token bucket: rate tokens per second, at most burst stored; it starts full. */
struct token_bucket {
    double tokens;
    double last;                   /* the time of the last take */
    bool used;                     /* false: full, never taken from */
};

/* Seconds on the monotonic clock (CLOCK_MONOTONIC): only differences mean anything. */
double ratelimit_now(void);
/* The same clock in milliseconds (for qpc_log_limit). */
uint64_t ratelimit_now_ms(void);

/*
 * Takes one token at time now (seconds of any clock that is meant to be monotonic)
 * with the given refill rate (per second) and burst (the bucket's size, >= 1). Returns
 * false when the bucket is empty. Pure: a now earlier than the last take counts as no
 * time passed, and from then on time is measured from the new now.
 */
bool token_bucket_take(struct token_bucket *b, double now, double rate, double burst);

#endif
