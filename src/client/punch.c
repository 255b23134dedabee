/*
 * punch.c: the hole punching budget (punch.h).
 *
 * The one idea: a punch is cheap for whoever asks and costs us packets to addresses
 * we did not choose, so it is counted in three places that each bound a different
 * abuse: per peer and address set (a peer cannot make us retry forever), node-wide per
 * second (many peers cannot add up to a flood), and for strangers separately (minted
 * keys cannot use up what real contacts need).
 */
#include "punch.h"

static bool bucket_take(struct punch_bucket *k, double rate, double burst, uint64_t now, bool take)
{
    double tokens = k->tokens;

    if (!k->used)
        tokens = burst;
    else if (now > k->last_ms)
        tokens += (double)(now - k->last_ms) / 1000.0 * rate;
    if (tokens > burst)
        tokens = burst;
    if (tokens < 1.0)
        return false;
    if (take) {
        k->tokens = tokens - 1.0;
        k->last_ms = now;
        k->used = true;
    }
    return true;
}

enum punch_verdict punch_allow(struct punch_budget *b, struct punch_peer *p, uint64_t digest,
                               bool stranger, bool urgent, uint64_t now)
{
    unsigned tries = p->digest == digest ? p->tries : 0;

    if (tries >= PUNCH_TRIES_MAX)
        return PUNCH_EXHAUSTED;
    if (!urgent && p->last_ms != 0 && now < p->last_ms + PUNCH_RETRY_MS)
        return PUNCH_TOO_SOON;
    if (!bucket_take(&b->all, PUNCH_RATE_PER_S, PUNCH_BURST, now, false) ||
        (stranger && !bucket_take(&b->strangers, PUNCH_STRANGER_RATE_PER_S, PUNCH_STRANGER_BURST, now, false)))
        return PUNCH_RATE;
    bucket_take(&b->all, PUNCH_RATE_PER_S, PUNCH_BURST, now, true);
    if (stranger)
        bucket_take(&b->strangers, PUNCH_STRANGER_RATE_PER_S, PUNCH_STRANGER_BURST, now, true);
    p->digest = digest;
    p->tries = tries + 1;
    p->last_ms = now;
    return PUNCH_OK;
}

bool punch_stranger_admit(size_t strangers_now)
{
    return strangers_now < PUNCH_STRANGERS_MAX;
}

bool punch_log_due(struct punch_budget *b, uint64_t now, unsigned *unlogged)
{
    if (now < b->next_log_ms) {
        b->unlogged++;
        return false;
    }
    *unlogged = b->unlogged;
    b->unlogged = 0;
    b->next_log_ms = now + PUNCH_LOG_MS;
    return true;
}
