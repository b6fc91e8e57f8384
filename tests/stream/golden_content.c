/* SPDX-License-Identifier: MIT */
#include <stddef.h>
#include <string.h>

#include "golden_content.h"

static const struct vfmig_field golden_fields[] = {
	VFMIG_FIELD_U8_V(struct golden_state, a, 0),
	VFMIG_FIELD_U16_V(struct golden_state, b, 0),
	VFMIG_FIELD_U32_V(struct golden_state, c, 0),
	VFMIG_FIELD_U64_V(struct golden_state, d, 2),
	VFMIG_FIELD_BOOL_V(struct golden_state, e, 0),
	VFMIG_FIELD_BYTES_V(struct golden_state, mac, 0),
	VFMIG_FIELD_U32_V(struct golden_state, n, 0),
	VFMIG_FIELD_U32_ARRAY_V(struct golden_state, vec, n, 0),
};

static const struct vfmig_field golden_extra_fields[] = {
	VFMIG_FIELD_U32_V(struct golden_state, extra, 0),
};

static bool golden_extra_needed(const void *obj)
{
	return ((const struct golden_state *)obj)->has_extra;
}

static const struct vfmig_fields_subsection golden_subs[] = {
	{ "extra", golden_extra_needed, golden_extra_fields, 1 },
};

const struct vfmig_fields_desc golden_desc = {
	.name = "golden-type",
	.version = 2,
	.min_version = 1,
	.size = sizeof(struct golden_state),
	.fields = golden_fields,
	.nfields = sizeof(golden_fields) / sizeof(golden_fields[0]),
	.subsections = golden_subs,
	.nsubsections = 1,
};

void golden_state0(struct golden_state *s)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

	memset(s, 0, sizeof(*s));
	s->a = 0xa5;
	s->b = 0x1234;
	s->c = 0xdeadbeef;
	s->d = 0x0102030405060708ull;
	s->e = true;
	memcpy(s->mac, mac, 6);
	s->n = 3;
	s->vec[0] = 10;
	s->vec[1] = 20;
	s->vec[2] = 0xffffffff;
	s->has_extra = true;
	s->extra = 77;
}

void golden_state1(struct golden_state *s)
{
	memset(s, 0, sizeof(*s));
	s->a = 1;
	s->b = 2;
	s->c = 3;
	s->d = 4;
	s->n = 0;
}

void golden_page(uint8_t *page, unsigned i)
{
	unsigned k;

	for (k = 0; k < 4096; k++)
		page[k] = (uint8_t)(k * 7 + i);
}

int golden_write(struct vfmig_io *io, enum vfmig_stream_csum csum)
{
	return golden_write_minor(io, csum, csum == VFMIG_STREAM_CSUM_CRC32 ? 0 : 1);
}

int golden_write_minor(struct vfmig_io *io, enum vfmig_stream_csum csum, uint16_t minor)
{
	static const struct vfmig_stream_kv info[] = {
		{ "producer", "vfmig golden generator" },
		{ "time", "2026-01-01T00:00:00Z" },
	};
	static const struct vfmig_stream_device devs[] = {
		{ "regs0", "pci", "v2", 0, 2 },
		{ "vram0", "pci", "region", 1, 2 },
	};
	static const uint8_t setup0[] = "setup-0";
	static const uint8_t pre1[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	static const uint8_t final0[] = { 0xfe, 0xed };
	static uint8_t pages[2 * 4096];
	struct vfmig_stream_ram_run runs[2] = {
		{ .addr = 0x1000, .npages = 2, .zero = false, .data = pages },
		{ .addr = 0x10000, .npages = 16, .zero = true },
	};
	struct vfmig_stream_ram_pages rp = { "pc.ram", 4096, 2, runs };
	struct vfmig_stream_writer *w;
	struct golden_state s0, s1;
	int rc;

	golden_page(pages, 0);
	golden_page(pages + 4096, 1);
	golden_state0(&s0);
	golden_state1(&s1);
	rc = vfmig_stream_writer_open_minor(&w, io, csum, minor);
	if (rc < 0)
		return rc;
	if ((rc = vfmig_stream_write_info(w, info, 2)) < 0 ||
	    (rc = vfmig_stream_write_device_list(w, devs, 2)) < 0 ||
	    (rc = vfmig_stream_write_device_begin(w, 0, VFMIG_PHASE_SETUP)) < 0 ||
	    (rc = vfmig_stream_write_device_data(w, 0, setup0, 7)) < 0 ||
	    (rc = vfmig_stream_write_device_end(w, 0)) < 0 ||
	    (rc = vfmig_stream_write_ram_pages(w, &rp)) < 0 ||
	    (rc = vfmig_stream_write_device_begin(w, 1, VFMIG_PHASE_PRECOPY)) < 0 ||
	    (rc = vfmig_stream_write_device_data(w, 1, pre1, sizeof(pre1))) < 0 ||
	    (rc = vfmig_stream_write_device_end(w, 1)) < 0 ||
	    (rc = vfmig_stream_write_switchover(w)) < 0 ||
	    (rc = vfmig_stream_write_device_begin(w, 0, VFMIG_PHASE_FINAL)) < 0 ||
	    (rc = vfmig_stream_write_device_data(w, 0, final0, sizeof(final0))) < 0 ||
	    (rc = vfmig_stream_write_type_state(w, 0, &golden_desc, &s0)) < 0 ||
	    (rc = vfmig_stream_write_device_end(w, 0)) < 0 ||
	    (rc = vfmig_stream_write_device_begin(w, 1, VFMIG_PHASE_FINAL)) < 0 ||
	    (rc = vfmig_stream_write_type_state(w, 1, &golden_desc, &s1)) < 0 ||
	    (rc = vfmig_stream_write_device_end(w, 1)) < 0 ||
	    /* 1.2: a vCPU's state (the made-up type again) */
	    (minor >= 2 && (rc = vfmig_stream_write_vcpu_state(w, 0, &golden_desc, &s1)) < 0) ||
	    (rc = vfmig_stream_writer_end(w)) < 0) {
		vfmig_stream_writer_free(w);
		return rc;
	}
	vfmig_stream_writer_free(w);
	return 0;
}
