/*
 * proto.h: the wire messages of quicprochat, as protobuf-c generates them from
 * proto/qpc.proto (ClientRequest, ServerMessage, FederationRequest, P2pFrame, ...).
 *
 * The one idea: the schema is part of libqpc's public API on purpose. Both programs
 * speak these messages, so they use the generated structs and their
 * qpc__*__pack/unpack functions directly; the build generates the header into the
 * build tree and libqpc exports that directory. Signed bytes are never protobuf bytes
 * (protobuf is not canonical): envelope.h and docs/envelope.md say what is signed.
 * The generated code is never edited; change proto/qpc.proto instead.
 */
#ifndef QPC_PROTO_H
#define QPC_PROTO_H

#include "qpc.pb-c.h"

#endif
