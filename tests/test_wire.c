/*
 * test_wire.c: the length-prefixed frame decoder and encoder (pure, no I/O).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/error.h"
#include "qpc/wire.h"

static void test_wire_decodes_frame_split_at_every_byte(void **state)
{
    uint8_t *enc;
    size_t enc_len;
    const uint8_t body[] = "hello, mesh";

    assert_int_equal(qpc_wire_frame_encode(&enc, &enc_len, body, sizeof(body), 0), 0);
    assert_int_equal(enc_len, sizeof(body) + 4);
    for (size_t split = 0; split <= enc_len; split++) {
        struct qpc_wire_decoder d;
        const uint8_t *frame = NULL;
        size_t used, flen = 0, pos = 0;
        int got = 0, rv;

        qpc_wire_decoder_init(&d, 0);
        while (pos < enc_len) {
            size_t piece = pos < split ? split - pos : enc_len - pos;

            rv = qpc_wire_decoder_feed(&d, enc + pos, piece, &used, &frame, &flen);
            assert_true(rv >= 0);
            assert_true(used <= piece);
            pos += used;
            if (rv == 1) {
                got++;
                assert_int_equal(flen, sizeof(body));
                assert_memory_equal(frame, body, sizeof(body));
            }
        }
        assert_int_equal(got, 1);
        qpc_wire_decoder_clear(&d);
    }
    free(enc);
}

static void test_wire_decodes_several_frames_in_one_piece(void **state)
{
    uint8_t buf[3 * 4 + 6];
    struct qpc_wire_decoder d;
    const uint8_t *frame;
    size_t used, flen, pos = 0, n = 0;
    size_t lens[3] = { 0, 1, 5 };

    qpc_wire_header_encode(buf, 0);
    qpc_wire_header_encode(buf + 4, 1);
    buf[8] = 'a';
    qpc_wire_header_encode(buf + 9, 5);
    memcpy(buf + 13, "bcdef", 5);
    qpc_wire_decoder_init(&d, 0);
    while (pos < sizeof(buf) - 0) {
        int rv = qpc_wire_decoder_feed(&d, buf + pos, sizeof(buf) - pos, &used, &frame, &flen);

        assert_int_equal(rv, 1);
        assert_int_equal(flen, lens[n]);
        n++;
        pos += used;
    }
    assert_int_equal(n, 3);
    qpc_wire_decoder_clear(&d);
}

static void test_wire_refuses_oversized_frame_before_allocating(void **state)
{
    uint8_t hdr[4];
    struct qpc_wire_decoder d;
    const uint8_t *frame;
    size_t used, flen;

    qpc_wire_header_encode(hdr, 1025);
    qpc_wire_decoder_init(&d, 1024);
    assert_int_equal(qpc_wire_decoder_feed(&d, hdr, 4, &used, &frame, &flen), QPC_ERR_TOO_LARGE);
    assert_null(d.buf);
    /* Sticky: the stream is unusable afterwards. */
    assert_int_equal(qpc_wire_decoder_feed(&d, hdr, 4, &used, &frame, &flen), QPC_ERR_TOO_LARGE);
    qpc_wire_decoder_clear(&d);
}

static void test_wire_accepts_frame_exactly_at_limit(void **state)
{
    uint8_t *enc;
    size_t enc_len, used, flen;
    uint8_t body[1024] = { 7 };
    struct qpc_wire_decoder d;
    const uint8_t *frame;

    assert_int_equal(qpc_wire_frame_encode(&enc, &enc_len, body, sizeof(body), 1024), 0);
    qpc_wire_decoder_init(&d, 1024);
    assert_int_equal(qpc_wire_decoder_feed(&d, enc, 10, &used, &frame, &flen), 0);
    assert_int_equal(qpc_wire_decoder_feed(&d, enc + 10, enc_len - 10, &used, &frame, &flen), 1);
    assert_int_equal(flen, 1024);
    assert_memory_equal(frame, body, 1024);
    qpc_wire_decoder_clear(&d);
    free(enc);
}

/* A stranger announcing a 1 MiB frame and sending a trickle must not cost us 1 MiB. */
static void test_wire_buffer_grows_with_bytes_received_not_announced(void **state)
{
    size_t big = QPC_WIRE_FRAME_MAX_DEFAULT, enc_len, used, flen = 0, pos;
    uint8_t *body = malloc(big), *enc;
    struct qpc_wire_decoder d;
    const uint8_t *frame = NULL;
    int rv = 0;

    assert_non_null(body);
    for (size_t i = 0; i < big; i++)
        body[i] = (uint8_t)(i * 31u);
    assert_int_equal(qpc_wire_frame_encode(&enc, &enc_len, body, big, 0), 0);
    qpc_wire_decoder_init(&d, 0);
    assert_int_equal(qpc_wire_decoder_feed(&d, enc, 4 + 100, &used, &frame, &flen), 0);
    assert_int_equal(used, 104);
    assert_true(d.buf_cap < 64 * 1024);
    for (pos = used; pos < enc_len && rv == 0; pos += used) {
        size_t piece = enc_len - pos < 1000 ? enc_len - pos : 1000;

        rv = qpc_wire_decoder_feed(&d, enc + pos, piece, &used, &frame, &flen);
        assert_true(rv >= 0);
        /* Never more than twice what arrived (or the small first allocation). */
        assert_true(d.buf_cap <= 4096 || d.buf_cap <= 2 * d.buf_have);
        assert_true(d.buf_cap <= big);
    }
    assert_int_equal(rv, 1);
    assert_int_equal(pos, enc_len);
    assert_int_equal(flen, big);
    assert_memory_equal(frame, body, big);
    qpc_wire_decoder_clear(&d);
    free(enc);
    free(body);
}

static void test_wire_encode_refuses_body_above_limit(void **state)
{
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    uint8_t body[10] = { 0 };

    assert_int_equal(qpc_wire_frame_encode(&enc, &enc_len, body, sizeof(body), 9),
                     QPC_ERR_TOO_LARGE);
    assert_null(enc);
}

static void test_wire_pending_from_first_header_byte_until_frame_complete(void **state)
{
    struct qpc_wire_decoder d;
    const uint8_t *frame;
    size_t used, flen, announced = 99;
    uint8_t hdr[QPC_WIRE_HEADER_LEN];
    uint8_t body[10] = { 0 };

    (void)state;
    qpc_wire_decoder_init(&d, 0);
    assert_false(qpc_wire_decoder_pending(&d, &announced));
    assert_int_equal(announced, 0);
    qpc_wire_header_encode(hdr, sizeof(body));
    assert_int_equal(qpc_wire_decoder_feed(&d, hdr, 2, &used, &frame, &flen), 0);
    assert_true(qpc_wire_decoder_pending(&d, &announced));
    assert_int_equal(announced, 0);               /* the length is not known yet */
    assert_int_equal(qpc_wire_decoder_feed(&d, hdr + 2, 2, &used, &frame, &flen), 0);
    assert_int_equal(qpc_wire_decoder_feed(&d, body, 3, &used, &frame, &flen), 0);
    assert_true(qpc_wire_decoder_pending(&d, &announced));
    assert_int_equal(announced, sizeof(body));
    assert_int_equal(qpc_wire_decoder_feed(&d, body + 3, 7, &used, &frame, &flen), 1);
    assert_false(qpc_wire_decoder_pending(&d, NULL));
    qpc_wire_decoder_clear(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_decodes_frame_split_at_every_byte),
        cmocka_unit_test(test_wire_decodes_several_frames_in_one_piece),
        cmocka_unit_test(test_wire_refuses_oversized_frame_before_allocating),
        cmocka_unit_test(test_wire_accepts_frame_exactly_at_limit),
        cmocka_unit_test(test_wire_buffer_grows_with_bytes_received_not_announced),
        cmocka_unit_test(test_wire_encode_refuses_body_above_limit),
        cmocka_unit_test(test_wire_pending_from_first_header_byte_until_frame_complete),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
