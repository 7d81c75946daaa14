/* A bump allocator for protobuf-c unpacking: a received message's many small allocations
 * (a batch's items, their checkpoints, changes, fields, names and values) come out of a few
 * large blocks and are all released at once by a reset, instead of one malloc and free
 * each. Not thread-safe: one arena per receiving thread. */
#ifndef PGC_CLIENT_PBARENA_H
#define PGC_CLIENT_PBARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct pbarena pbarena;

/* NULL when out of memory. */
pbarena *pbarena_create(void);
void pbarena_destroy(pbarena *a); /* NULL is a no-op */
/* The allocator to pass to protobuf-c's unpack; its free does nothing (reset frees). An
 * allocation that cannot be served returns NULL, which protobuf-c reports as a failed
 * unpack. */
ProtobufCAllocator *pbarena_allocator(pbarena *a);
/* Releases everything allocated since the last reset. Keeps the largest block for the
 * next message, so memory stays at about one message's unpacked size. */
void pbarena_reset(pbarena *a);
/* Bytes handed out since the last reset (for tests). */
size_t pbarena_used(const pbarena *a);

#endif
