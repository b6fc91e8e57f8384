/* SPDX-License-Identifier: MIT */
/* See strict_client.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strict_client.h"

#define RI_SIZE ((uint32_t)sizeof(struct vfw_region_info))
#define HDR_SIZE sizeof(struct vfw_info_cap_header)

/* Rules every reply must follow, truncated or not. */
static void check_any(const struct vfw_msg *m, uint32_t asked,
		      uint32_t index, const struct vfw_region_info *ri)
{
	bool mmap = ri->flags & VFW_REGION_INFO_FLAG_MMAP;

	if (ri->argsz < RI_SIZE)
		fail_msg("region %u: reply argsz %u is below 32", index,
			 ri->argsz);
	if (m->len > asked)
		fail_msg("region %u: %zu-byte reply to argsz %u", index,
			 m->len, asked);
	if (ri->index != index)
		fail_msg("region %u: reply names index %u", index, ri->index);
	if ((ri->flags & VFW_REGION_INFO_FLAG_CAPS) &&
	    (ri->cap_offset < RI_SIZE || ri->cap_offset > m->len - HDR_SIZE))
		fail_msg("region %u: FLAG_CAPS with cap_offset %u in a %zu-byte "
			 "reply", index, ri->cap_offset, m->len);
	if (m->nfds != (mmap ? 1u : 0u))
		fail_msg("region %u: %zu fds with FLAG_MMAP %s", index, m->nfds,
			 mmap ? "set" : "clear");
}

/* A reply whose argsz is larger than the request's: a header only. */
static void check_truncated(const struct vfw_msg *m, uint32_t index,
			    const struct vfw_region_info *ri)
{
	if (m->nfds)
		fail_msg("region %u: truncated reply carries %zu fds", index,
			 m->nfds);
	if (ri->flags & (VFW_REGION_INFO_FLAG_CAPS | VFW_REGION_INFO_FLAG_MMAP))
		fail_msg("region %u: truncated reply has flags 0x%x (CAPS or "
			 "MMAP)", index, ri->flags);
	if (ri->cap_offset)
		fail_msg("region %u: truncated reply has cap_offset %u", index,
			 ri->cap_offset);
}

static void cap_sparse(const struct vfw_msg *m, uint32_t off,
		       struct strict_region *out)
{
	struct vfw_region_info_cap_sparse_mmap cap;
	struct vfw_sparse_mmap_area a;

	assert_true(off + sizeof(cap) <= m->len);
	memcpy(&cap, m->payload + off, sizeof(cap));
	assert_in_range(cap.nr_areas, 1, STRICT_MAX_AREAS);
	assert_true(off + sizeof(cap) + cap.nr_areas * sizeof(a) <= m->len);
	for (uint32_t i = 0; i < cap.nr_areas; i++) {
		memcpy(&a, m->payload + off + sizeof(cap) + i * sizeof(a),
		       sizeof(a));
		assert_true(a.size > 0);
		assert_true(vfw_range_ok(a.offset, a.size, out->size));
		out->areas[i] = a;
	}
	out->nr_areas = cap.nr_areas;
}

static void cap_type(const struct vfw_msg *m, uint32_t off,
		     struct strict_region *out)
{
	struct vfw_region_info_cap_type cap;

	assert_true(off + sizeof(cap) <= m->len);
	memcpy(&cap, m->payload + off, sizeof(cap));
	out->has_type = true;
	out->type = cap.type;
	out->subtype = cap.subtype;
}

/* Walk the chain of a full reply; every hop must stay inside it. */
static void parse_caps(const struct vfw_msg *m,
		       const struct vfw_region_info *ri,
		       struct strict_region *out)
{
	struct vfw_info_cap_header h;
	size_t hops = 0;

	if (!(ri->flags & VFW_REGION_INFO_FLAG_CAPS))
		return;
	for (uint32_t off = ri->cap_offset; off; off = h.next) {
		assert_true(++hops <= m->len / HDR_SIZE);
		assert_true(off >= RI_SIZE && off <= m->len - HDR_SIZE);
		memcpy(&h, m->payload + off, sizeof(h));
		assert_int_equal(h.version, 1);
		if (h.id == VFW_REGION_INFO_CAP_SPARSE_MMAP)
			cap_sparse(m, off, out);
		else if (h.id == VFW_REGION_INFO_CAP_TYPE)
			cap_type(m, off, out);
	}
}

static int ask(strict_call_fn call, void *ctx, uint32_t index,
	       uint32_t argsz, struct vfw_msg *m, struct vfw_region_info *ri)
{
	struct vfw_region_info req = { .argsz = argsz, .index = index };
	int r = call(ctx, &req, m);

	if (r < 0)
		return r;
	if (m->len < RI_SIZE)
		fail_msg("region %u: %zu-byte reply, shorter than the struct",
			 index, m->len);
	memcpy(ri, m->payload, sizeof(*ri));
	check_any(m, argsz, index, ri);
	return 0;
}

int strict_region_info(strict_call_fn call, void *ctx, uint32_t index,
		       struct strict_region *out)
{
	struct vfw_region_info ri;
	struct vfw_msg m;
	uint32_t full;
	int r;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	r = ask(call, ctx, index, RI_SIZE, &m, &ri);
	if (r < 0)
		return r;
	if (ri.argsz > RI_SIZE) {
		check_truncated(&m, index, &ri);
		vfw_msg_release(&m);
		full = ri.argsz;
		out->retried = true;
		assert_int_equal(ask(call, ctx, index, full, &m, &ri), 0);
		assert_int_equal(ri.argsz, full);
		assert_int_equal(m.len, full);
	}
	out->flags = ri.flags;
	out->size = ri.size;
	out->offset = ri.offset;
	parse_caps(&m, &ri, out);
	out->fd = vfw_msg_take_fd(&m, 0);
	vfw_msg_release(&m);
	return 0;
}
