/* Batched ChaCha20-Poly1305 seal/open; see aead.c for the layout. */
#ifndef MESHNET_AEAD_H
#define MESHNET_AEAD_H
#include <stddef.h>
#include <stdint.h>

/* Seals src item i into dst at dst_offs[i] with counter counter+k (k counts
 * the items sealed so far). status[i] = datagram bytes from dst_offs[i], or
 * -1 when the item was out of bounds. Returns the number sealed, -1 when
 * the cipher is unavailable. */
int aead_seal_batch(const uint8_t key[32], uint32_t prefix, uint64_t counter, const uint8_t *src, size_t src_cap,
                    const uint32_t *src_offs, const uint32_t *src_lens, uint8_t *dst, size_t dst_cap,
                    const uint32_t *dst_offs, uint32_t count, uint32_t aad, int32_t *status);

/* Opens datagram i (src_offs[i], src_lens[i]) into dst at dst_offs[i].
 * status[i] = plaintext length, or -1 when short, out of bounds or not
 * authentic; counters[2i], counters[2i+1] = its counter (low, high) when
 * authentic. Returns the number opened. */
int aead_open_batch(const uint8_t key[32], uint32_t prefix, const uint8_t *src, size_t src_cap, const uint32_t *src_offs,
                    const uint32_t *src_lens, uint8_t *dst, size_t dst_cap, const uint32_t *dst_offs, uint32_t count,
                    uint32_t aad, int32_t *status, uint32_t *counters);
#endif
