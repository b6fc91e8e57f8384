/* SPDX-License-Identifier: MIT */
/*
 * MSI-X table and PBA emulation. The table is 16 bytes per vector: message
 * address (8), data (4), vector control (4, bit 0 = mask). The PBA is one
 * bit per vector in 64-bit words; it is read-only for the client and set by
 * masked triggers (irq.c). Both live in the BAR named by the description.
 * Both are kept as the bytes the guest sees (little-endian, as PCI), so a
 * read is a copy on any host.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MSIX_ENTRY_SIZE 16u
#define MSIX_VCTRL 12u
#define MSIX_VCTRL_MASK 0x1u

int dev_msix_init(struct dev_msix *m, const struct vfmig_dev_desc *d)
{
	memset(m, 0, sizeof(*m));
	if (!d->msix_vectors)
		return 0;
	m->vectors = d->msix_vectors;
	m->table_off = d->msix_table_offset;
	m->table_len = (uint64_t)m->vectors * MSIX_ENTRY_SIZE;
	m->pba_off = d->msix_pba_offset;
	m->pba_len = ((uint64_t)m->vectors + 63) / 64 * 8;
	m->table = calloc(1, m->table_len);
	m->pba = calloc(1, m->pba_len);
	if (!m->table || !m->pba) {
		dev_msix_fini(m);
		return -ENOMEM;
	}
	dev_msix_reset(m);
	return 0;
}

void dev_msix_fini(struct dev_msix *m)
{
	free(m->table);
	free(m->pba);
	memset(m, 0, sizeof(*m));
}

void dev_msix_reset(struct dev_msix *m)
{
	if (!m->vectors)
		return;
	memset(m->table, 0, m->table_len);
	memset(m->pba, 0, m->pba_len);
	for (uint32_t v = 0; v < m->vectors; v++)
		m->table[v * MSIX_ENTRY_SIZE + MSIX_VCTRL] = MSIX_VCTRL_MASK;
}

bool dev_msix_vector_masked(const struct dev_msix *m, uint32_t v)
{
	return m->table[v * MSIX_ENTRY_SIZE + MSIX_VCTRL] & MSIX_VCTRL_MASK;
}

/* PBA bit v of the little-endian qwords is bit v % 8 of byte v / 8. */
bool dev_msix_pending(const struct dev_msix *m, uint32_t v)
{
	return (m->pba[v / 8] >> (v % 8)) & 1;
}

void dev_msix_set_pending(struct dev_msix *m, uint32_t v, bool on)
{
	if (on)
		m->pba[v / 8] |= (uint8_t)(1u << (v % 8));
	else
		m->pba[v / 8] &= (uint8_t)~(1u << (v % 8));
}

static bool in(uint64_t off, uint64_t start, uint64_t len)
{
	return off >= start && off - start < len;
}

uint64_t dev_msix_claim(const struct dev_msix *m, uint64_t off,
			uint64_t *next)
{
	*next = UINT64_MAX;
	if (!m->vectors)
		return 0;
	if (in(off, m->table_off, m->table_len))
		return m->table_off + m->table_len - off;
	if (in(off, m->pba_off, m->pba_len))
		return m->pba_off + m->pba_len - off;
	if (m->table_off > off)
		*next = m->table_off - off;
	if (m->pba_off > off && m->pba_off - off < *next)
		*next = m->pba_off - off;
	return 0;
}

static void table_write(struct dev_msix *m, uint64_t t, const uint8_t *v,
			size_t len)
{
	for (size_t i = 0; i < len; i++, t++) {
		uint64_t e = t % MSIX_ENTRY_SIZE;
		if (e == MSIX_VCTRL)
			m->table[t] = (uint8_t)((m->table[t] & ~MSIX_VCTRL_MASK) |
						(v[i] & MSIX_VCTRL_MASK));
		else if (e < MSIX_VCTRL)
			m->table[t] = v[i];
		/* other vector-control bytes are reserved, read-only */
	}
}

int dev_msix_access(struct dev_msix *m, uint64_t off, void *buf, size_t len,
		    bool is_write)
{
	if (m->vectors && vfw_range_within(off, len, m->table_off,
					   m->table_len)) {
		uint64_t t = off - m->table_off;
		if (is_write)
			table_write(m, t, buf, len);
		else
			memcpy(buf, m->table + t, len);
		return 0;
	}
	if (m->vectors && vfw_range_within(off, len, m->pba_off, m->pba_len)) {
		/* PBA writes are ignored: it is read-only */
		if (!is_write)
			memcpy(buf, m->pba + (off - m->pba_off), len);
		return 0;
	}
	return -EINVAL;
}
