/* Bump allocator for protobuf-c (see pbarena.h). */
#include "client/pbarena.h"

#include <stdint.h>
#include <stdlib.h>

#define FIRST_BLOCK (64 * 1024)
#define ALIGN 16

typedef struct block {
    struct block *next;
    size_t size, used;
    _Alignas(ALIGN) unsigned char data[];
} block;

struct pbarena {
    ProtobufCAllocator allocator;
    block *head; /* the block being filled; older ones behind it */
    size_t used;
};

static block *block_new(size_t size)
{
    block *b = malloc(sizeof *b + size);
    if (b) {
        b->next = NULL;
        b->size = size;
        b->used = 0;
    }
    return b;
}

static void *arena_alloc(void *arg, size_t size)
{
    pbarena *a = arg;
    size_t need = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need < size)
        return NULL;
    block *b = a->head;
    if (!b || b->size - b->used < need) {
        size_t grow = b ? b->size * 2 : FIRST_BLOCK;
        if (grow < need)
            grow = need;
        block *nb = block_new(grow);
        if (!nb)
            return NULL;
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used += need;
    return p;
}

static void arena_free(void *arg, void *p)
{
    (void)arg, (void)p;
}

pbarena *pbarena_create(void)
{
    pbarena *a = calloc(1, sizeof *a);
    if (a) {
        a->allocator.alloc = arena_alloc;
        a->allocator.free = arena_free;
        a->allocator.allocator_data = a;
    }
    return a;
}

void pbarena_destroy(pbarena *a)
{
    if (!a)
        return;
    for (block *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(a);
}

ProtobufCAllocator *pbarena_allocator(pbarena *a)
{
    return &a->allocator;
}

void pbarena_reset(pbarena *a)
{
    /* The newest block is the largest: keep it alone. */
    block *keep = a->head;
    if (keep) {
        for (block *b = keep->next, *n; b; b = n) {
            n = b->next;
            free(b);
        }
        keep->next = NULL;
        keep->used = 0;
    }
    a->used = 0;
}

size_t pbarena_used(const pbarena *a)
{
    return a->used;
}
