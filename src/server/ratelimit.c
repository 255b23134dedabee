/*
 * ratelimit.c: token buckets and the monotonic clock they run on (ratelimit.h says
 * why a rate must never be measured on the wall clock).
 */
#include <time.h>

#include "ratelimit.h"

double ratelimit_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t ratelimit_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool token_bucket_take(struct token_bucket *b, double now, double rate, double burst)
{
    if (!b->used) {
        b->used = true;
        b->tokens = burst;
    } else if (now > b->last) {
        b->tokens += (now - b->last) * rate;
    }
    /* A clock read earlier than the last take refills nothing, and the next reading is
     * measured from this one: a step back costs at most the time it hid, never the
     * size of the step. */
    if (b->tokens > burst)
        b->tokens = burst;
    b->last = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}
