/*
 * envelope.c: MeshEnvelope life cycle: build, sign, verify, encode, decode.
 *
 * The canonical signed bytes (docs/envelope.md) are the only thing hashed or signed;
 * protobuf is merely the carrier. hop_count stays outside the signature so relays can
 * increment it.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "qpc/envelope.h"
#include "qpc/error.h"

void qpc_envelope_clear(struct qpc_envelope *env)
{
    if (env == NULL)
        return;
    free(env->topic);
    free(env->payload);
    memset(env, 0, sizeof(*env));
}

uint64_t qpc_envelope_expires_at_ms(const struct qpc_envelope *env)
{
    return env->created_at_ms + (uint64_t)env->ttl_s * 1000u;
}

bool qpc_envelope_expired(const struct qpc_envelope *env, uint64_t now_ms)
{
    return now_ms >= qpc_envelope_expires_at_ms(env);
}

int qpc_envelope_hop(struct qpc_envelope *env)
{
    if (env->hop_count >= env->max_hops)
        return QPC_ERR_HOP_LIMIT;
    env->hop_count++;
    return 0;
}

size_t qpc_envelope_mem_size(const struct qpc_envelope *env)
{
    return sizeof(*env) + env->payload_len + (env->topic ? strlen(env->topic) + 1 : 0);
}

int qpc_envelope_copy(struct qpc_envelope *dst, const struct qpc_envelope *src)
{
    *dst = *src;
    dst->topic = NULL;
    dst->payload = NULL;
    if (src->topic != NULL && (dst->topic = strdup(src->topic)) == NULL)
        goto nomem;
    if (src->payload_len > 0) {
        if ((dst->payload = malloc(src->payload_len)) == NULL)
            goto nomem;
        memcpy(dst->payload, src->payload, src->payload_len);
    }
    return 0;
nomem:
    qpc_envelope_clear(dst);
    return QPC_ERR_NOMEM;
}
