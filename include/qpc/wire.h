/*
 * wire.h: length-prefixed frames, the unit the QUIC streams carry.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes (one protobuf
 * message). The one idea: the decoder checks the length against the configured
 * maximum before it allocates anything, and then grows its buffer only as body bytes
 * actually arrive (at most twice what arrived, never beyond the announced length), so a
 * peer cannot make us reserve memory by announcing a huge frame. The decoder is incremental (stream data arrives in arbitrary
 * pieces), pure, and does no I/O.
 */
#ifndef QPC_WIRE_H
#define QPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QPC_WIRE_HEADER_LEN 4
#define QPC_WIRE_FRAME_MAX_DEFAULT ((size_t)1024 * 1024)   /* 1 MiB */
#define QPC_WIRE_FRAME_MAX_LIMIT ((size_t)UINT32_MAX)      /* what 4 bytes can say */

struct qpc_wire_decoder {
    size_t max_frame;                  /* largest frame accepted */
    uint8_t header[QPC_WIRE_HEADER_LEN];
    size_t header_have;                /* bytes of header[] filled */
    size_t frame_len;                  /* announced length, valid once header is full */
    uint8_t *buf;                      /* owned: body of a frame split over several feeds */
    size_t buf_cap;
    size_t buf_have;
    int failed;                        /* sticky: once oversize, stays oversize */
};

/* Initialises d; max_frame 0 means QPC_WIRE_FRAME_MAX_DEFAULT. Allocates nothing. */
void qpc_wire_decoder_init(struct qpc_wire_decoder *d, size_t max_frame);

/* Frees what d owns and leaves it ready for init. NULL is a no-op. */
void qpc_wire_decoder_clear(struct qpc_wire_decoder *d);

/*
 * Feeds up to len bytes of stream data. Consumes bytes until one frame is complete or
 * the input is used up, and stores the number of bytes used in *consumed; call again
 * with the rest of the input.
 * Returns 1 when a frame is complete: *frame / *frame_len point at its body (possibly
 * zero-length), owned by the decoder or pointing into data; valid until the next call
 * on d and, if inside data, as long as data is. Returns 0 when more bytes are needed.
 * Errors: QPC_ERR_TOO_LARGE (announced length above max_frame; nothing allocated; the
 * decoder refuses all further input), QPC_ERR_NOMEM.
 */
int qpc_wire_decoder_feed(struct qpc_wire_decoder *d, const uint8_t *data, size_t len,
                          size_t *consumed, const uint8_t **frame, size_t *frame_len);

/*
 * True when a frame has begun (some of its header or body arrived) and is not complete:
 * what a deadline for half-sent frames watches. *announced (may be NULL) gets the body
 * length the header announced, or 0 while the header itself is incomplete. d is only read.
 */
bool qpc_wire_decoder_pending(const struct qpc_wire_decoder *d, size_t *announced);

/* Writes the 4-byte big-endian length header for a frame of len bytes. */
void qpc_wire_header_encode(uint8_t header[static QPC_WIRE_HEADER_LEN], uint32_t len);

/*
 * Encodes one frame (header + body) into a new buffer *out (caller frees) of
 * *out_len = len + 4 bytes. Errors: QPC_ERR_TOO_LARGE if len > max_frame (0 = default),
 * QPC_ERR_NOMEM.
 */
int qpc_wire_frame_encode(uint8_t **out, size_t *out_len, const uint8_t *body, size_t len,
                          size_t max_frame);

#endif
