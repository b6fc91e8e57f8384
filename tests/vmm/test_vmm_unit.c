/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the VMM library's pure logic: region-info capability chains,
 * DMA window bookkeeping and lookup, reply header validation, the check of
 * a DEVICE_GET_REGION_IO_FDS reply, the scaled default reply timeout.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/internal.h"

/* ---- capability chains ---- */

struct rbuf {
	uint8_t b[512];
	size_t len;
};

static void put(struct rbuf *r, size_t off, const void *p, size_t n)
{
	memcpy(r->b + off, p, n);
	if (off + n > r->len)
		r->len = off + n;
}

static void put_info(struct rbuf *r, uint32_t cap_offset, uint64_t size)
{
	struct vfw_region_info ri = {
		.argsz = 0,
		.flags = VFW_REGION_INFO_FLAG_MMAP |
			 (cap_offset ? VFW_REGION_INFO_FLAG_CAPS : 0),
		.cap_offset = cap_offset,
		.size = size,
	};
	put(r, 0, &ri, sizeof(ri));
}

static void put_hdr(struct rbuf *r, size_t off, uint16_t id, uint32_t next)
{
	struct vfw_info_cap_header h = { id, 1, next };
	put(r, off, &h, sizeof(h));
}

/* A sparse cap at off with n areas (offset i*0x1000, size 0x1000). */
static void put_sparse(struct rbuf *r, size_t off, uint32_t n, uint32_t next,
		       uint32_t nr_claimed)
{
	struct vfw_region_info_cap_sparse_mmap sp = {
		.header = { VFW_REGION_INFO_CAP_SPARSE_MMAP, 1, next },
		.nr_areas = nr_claimed,
	};
	put(r, off, &sp, sizeof(sp));
	for (uint32_t i = 0; i < n; i++) {
		struct vfw_sparse_mmap_area a = { i * 0x1000u, 0x1000 };
		put(r, off + sizeof(sp) + i * sizeof(a), &a, sizeof(a));
	}
}

static int parse(struct rbuf *r, struct vfmig_vmm_region_info *info)
{
	const char *why;

	memset(info, 0, sizeof(*info));
	info->fd = -1;
	memcpy(&info->size, r->b + 16, sizeof(info->size));
	return vmm_parse_region_caps(r->b, r->len, info, &why);
}

static void test_caps_valid_chain(void **state)
{
	struct rbuf r = { .len = 0 };
	struct vfmig_vmm_region_info info;
	struct vfw_region_info_cap_type t = {
		{ VFW_REGION_INFO_CAP_TYPE, 1, 96 }, 7, 9
	};

	(void)state;
	put_info(&r, 32, 0x10000);
	put_sparse(&r, 32, 2, 80, 2); /* 32 + 16 + 32 = 80 */
	put(&r, 80, &t, sizeof(t));
	put_hdr(&r, 96, VFW_REGION_INFO_CAP_MSIX_MAPPABLE, 104);
	put_hdr(&r, 104, 77, 0); /* unknown id: skipped */
	assert_int_equal(parse(&r, &info), 0);
	assert_true(info.has_sparse);
	assert_int_equal(info.nr_areas, 2);
	assert_int_equal(info.areas[1].offset, 0x1000);
	assert_int_equal(info.areas[1].size, 0x1000);
	assert_true(info.has_type);
	assert_int_equal(info.type, 7);
	assert_int_equal(info.subtype, 9);
	assert_true(info.msix_mappable);
	vfmig_vmm_region_info_release(&info);
}

static void test_caps_none(void **state)
{
	struct rbuf r = { .len = 0 };
	struct vfmig_vmm_region_info info;

	(void)state;
	put_info(&r, 0, 4096);
	assert_int_equal(parse(&r, &info), 0);
	assert_false(info.has_sparse);
	/* cap_offset set but CAPS flag clear: ignored */
	struct vfw_region_info ri;
	memcpy(&ri, r.b, sizeof(ri));
	ri.cap_offset = 9999;
	put(&r, 0, &ri, sizeof(ri));
	assert_int_equal(parse(&r, &info), 0);
	/* shorter than the struct */
	r.len = 31;
	assert_int_equal(parse(&r, &info), -EPROTO);
}

static void test_caps_loops(void **state)
{
	struct rbuf r = { .len = 0 };
	struct vfmig_vmm_region_info info;

	(void)state;
	put_info(&r, 32, 4096);
	put_hdr(&r, 32, VFW_REGION_INFO_CAP_MSIX_MAPPABLE, 32); /* self */
	assert_int_equal(parse(&r, &info), -EPROTO);
	put_hdr(&r, 32, VFW_REGION_INFO_CAP_MSIX_MAPPABLE, 40);
	put_hdr(&r, 40, VFW_REGION_INFO_CAP_MSIX_MAPPABLE, 32); /* 2-cycle */
	assert_int_equal(parse(&r, &info), -EPROTO);
	vfmig_vmm_region_info_release(&info);
}

static void test_caps_bad_offsets(void **state)
{
	static const uint32_t bad[] = { 8, 31, 200, 0xfffffff8u, 0xffffffffu };
	struct rbuf r = { .len = 0 };
	struct vfmig_vmm_region_info info;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.len = 0;
		put_info(&r, bad[i], 4096);
		put_hdr(&r, 32, VFW_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
		assert_int_equal(parse(&r, &info), -EPROTO);
	}
	/* header straddling the end */
	r.len = 0;
	put_info(&r, 32, 4096);
	put_hdr(&r, 32, VFW_REGION_INFO_CAP_MSIX_MAPPABLE, 36);
	r.len = 40;
	assert_int_equal(parse(&r, &info), -EPROTO);
	/* a TYPE cap cut short */
	r.len = 0;
	put_info(&r, 32, 4096);
	put_hdr(&r, 32, VFW_REGION_INFO_CAP_TYPE, 0);
	r.len = 44;
	assert_int_equal(parse(&r, &info), -EPROTO);
}

static void test_caps_sparse_bounds(void **state)
{
	struct rbuf r = { .len = 0 };
	struct vfmig_vmm_region_info info;

	(void)state;
	/* nr_areas claims 3, room for 2 */
	put_info(&r, 32, 0x10000);
	put_sparse(&r, 32, 2, 0, 3);
	assert_int_equal(parse(&r, &info), -EPROTO);
	vfmig_vmm_region_info_release(&info);
	/* huge nr_areas */
	r.len = 0;
	put_info(&r, 32, 0x10000);
	put_sparse(&r, 32, 2, 0, 0xffffffffu);
	assert_int_equal(parse(&r, &info), -EPROTO);
	vfmig_vmm_region_info_release(&info);
	/* sparse header itself truncated */
	r.len = 0;
	put_info(&r, 32, 0x10000);
	put_sparse(&r, 32, 0, 0, 0);
	r.len = 44;
	assert_int_equal(parse(&r, &info), -EPROTO);
	/* area outside the region: region is 0x1800 bytes */
	r.len = 0;
	put_info(&r, 32, 0x1800);
	put_sparse(&r, 32, 2, 0, 2);
	assert_int_equal(parse(&r, &info), -EPROTO);
	vfmig_vmm_region_info_release(&info);
	/* area offset + size wraps 2^64 */
	r.len = 0;
	put_info(&r, 32, UINT64_MAX);
	put_sparse(&r, 32, 0, 0, 1);
	struct vfw_sparse_mmap_area a = { UINT64_MAX - 0xfff, 0x2000 };
	put(&r, 48, &a, sizeof(a));
	assert_int_equal(parse(&r, &info), -EPROTO);
	vfmig_vmm_region_info_release(&info);
	/* duplicate sparse caps */
	r.len = 0;
	put_info(&r, 32, 0x10000);
	put_sparse(&r, 32, 0, 48, 0);
	put_sparse(&r, 48, 0, 0, 0);
	assert_int_equal(parse(&r, &info), -EPROTO);
	vfmig_vmm_region_info_release(&info);
	/* zero areas is valid: nothing mappable */
	r.len = 0;
	put_info(&r, 32, 0x10000);
	put_sparse(&r, 32, 0, 0, 0);
	assert_int_equal(parse(&r, &info), 0);
	assert_true(info.has_sparse);
	assert_int_equal(info.nr_areas, 0);
	vfmig_vmm_region_info_release(&info);
}

/* ---- DMA windows ---- */

static void test_window_add_overlap(void **state)
{
	struct vmm_windows ws = { 0 };
	const uint32_t rw = VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE;

	(void)state;
	assert_int_equal(vmm_window_add(&ws, 0x1000, 0x1000, NULL, rw), 0);
	assert_int_equal(vmm_window_add(&ws, 0x1000, 0x1000, NULL, rw), -EEXIST);
	assert_int_equal(vmm_window_add(&ws, 0x1800, 0x100, NULL, rw), -EEXIST);
	assert_int_equal(vmm_window_add(&ws, 0x0, 0x1001, NULL, rw), -EEXIST);
	assert_int_equal(vmm_window_add(&ws, 0x1fff, 1, NULL, rw), -EEXIST);
	assert_int_equal(vmm_window_add(&ws, 0x0, 0x10000, NULL, rw), -EEXIST);
	/* adjacent on both sides is fine */
	assert_int_equal(vmm_window_add(&ws, 0x0, 0x1000, NULL, rw), 0);
	assert_int_equal(vmm_window_add(&ws, 0x2000, 0x1000, NULL, rw), 0);
	/* size 0, wrap, bad prot */
	assert_int_equal(vmm_window_add(&ws, 0x9000, 0, NULL, rw), -EINVAL);
	assert_int_equal(vmm_window_add(&ws, UINT64_MAX - 0xfff, 0x1001, NULL,
					rw), -EINVAL);
	assert_int_equal(vmm_window_add(&ws, 0x9000, 1, NULL, 4), -EINVAL);
	/* the very top of the address space */
	assert_int_equal(vmm_window_add(&ws, UINT64_MAX - 0xfff, 0x1000, NULL,
					rw), 0);
	assert_int_equal(vmm_window_add(&ws, UINT64_MAX, 1, NULL, rw), -EEXIST);
	/* many windows force growth */
	for (uint64_t i = 0; i < 40; i++)
		assert_int_equal(vmm_window_add(&ws, 0x100000 + i * 0x1000,
						0x1000, NULL, rw), 0);
	assert_int_equal(vmm_window_index(&ws, 0x2000, 0x1000) >= 0, 1);
	assert_int_equal(vmm_window_index(&ws, 0x2000, 0x800), -ENOENT);
	vmm_window_remove_at(&ws, (size_t)vmm_window_index(&ws, 0x2000, 0x1000));
	assert_int_equal(vmm_window_index(&ws, 0x2000, 0x1000), -ENOENT);
	assert_int_equal(vmm_window_add(&ws, 0x2000, 0x1000, NULL, rw), 0);
	vmm_windows_clear(&ws);
	assert_int_equal(ws.n, 0);
}

static void test_window_resolve(void **state)
{
	static uint8_t mem_a[0x1000], mem_b[0x1000], mem_top[0x1000];
	struct vmm_windows ws = { 0 };
	int err;

	(void)state;
	assert_int_equal(vmm_window_add(&ws, 0x1000, 0x1000, mem_a,
					VFMIG_VMM_DMA_READ), 0);
	assert_int_equal(vmm_window_add(&ws, 0x2000, 0x1000, mem_b,
					VFMIG_VMM_DMA_READ |
						VFMIG_VMM_DMA_WRITE), 0);
	assert_int_equal(vmm_window_add(&ws, 0x3000, 0x1000, NULL,
					VFMIG_VMM_DMA_READ), 0);
	assert_int_equal(vmm_window_add(&ws, UINT64_MAX - 0xfff, 0x1000,
					mem_top, VFMIG_VMM_DMA_READ), 0);

	assert_ptr_equal(vmm_window_resolve(&ws, 0x1000, 0x1000,
					    VFMIG_VMM_DMA_READ, &err), mem_a);
	assert_int_equal(err, 0);
	assert_ptr_equal(vmm_window_resolve(&ws, 0x1ff0, 0x10,
					    VFMIG_VMM_DMA_READ, &err),
			 mem_a + 0xff0);
	assert_ptr_equal(vmm_window_resolve(&ws, 0x2000, 0,
					    VFMIG_VMM_DMA_WRITE, &err), mem_b);
	/* crossing into the adjacent window is not one window */
	assert_null(vmm_window_resolve(&ws, 0x1ff0, 0x20, VFMIG_VMM_DMA_READ,
				       &err));
	assert_int_equal(err, -EFAULT);
	/* permission */
	assert_null(vmm_window_resolve(&ws, 0x1000, 4, VFMIG_VMM_DMA_WRITE,
				       &err));
	assert_int_equal(err, -EFAULT);
	/* window without a host mapping */
	assert_null(vmm_window_resolve(&ws, 0x3000, 4, VFMIG_VMM_DMA_READ,
				       &err));
	/* outside every window */
	assert_null(vmm_window_resolve(&ws, 0x0, 4, VFMIG_VMM_DMA_READ, &err));
	assert_null(vmm_window_resolve(&ws, 0x4000, 1, VFMIG_VMM_DMA_READ,
				       &err));
	/* top of the address space: no wrap */
	assert_ptr_equal(vmm_window_resolve(&ws, UINT64_MAX, 1,
					    VFMIG_VMM_DMA_READ, &err),
			 mem_top + 0xfff);
	assert_null(vmm_window_resolve(&ws, UINT64_MAX, 2, VFMIG_VMM_DMA_READ,
				       &err));
	assert_null(vmm_window_resolve(&ws, 0x1000, UINT64_MAX,
				       VFMIG_VMM_DMA_READ, &err));
	assert_int_equal(err, -EFAULT);
	vmm_windows_clear(&ws);
}

/* ---- reply validation ---- */

static void test_reply_check(void **state)
{
	struct vfw_header h = {
		.msg_id = 7,
		.command = VFW_CMD_REGION_READ,
		.msg_size = 16,
		.flags = VFW_FLAGS_TYPE_REPLY,
	};
	int e;

	(void)state;
	assert_int_equal(vmm_reply_check(7, VFW_CMD_REGION_READ, &h, &e), 0);
	assert_int_equal(e, 0);
	assert_int_equal(vmm_reply_check(8, VFW_CMD_REGION_READ, &h, &e),
			 -EPROTO);
	assert_int_equal(vmm_reply_check(7, VFW_CMD_REGION_WRITE, &h, &e),
			 -EPROTO);
	h.flags = VFW_FLAGS_TYPE_COMMAND;
	assert_int_equal(vmm_reply_check(7, VFW_CMD_REGION_READ, &h, &e),
			 -EPROTO);
	h.flags = VFW_FLAGS_TYPE_REPLY | VFW_FLAGS_ERROR;
	h.error = EINVAL;
	assert_int_equal(vmm_reply_check(7, VFW_CMD_REGION_READ, &h, &e), 0);
	assert_int_equal(e, -EINVAL);
	h.error = 0;
	assert_int_equal(vmm_reply_check(7, VFW_CMD_REGION_READ, &h, &e), 0);
	assert_int_equal(e, -EIO);
	h.error = 0x80000000u; /* nonsense errno: not passed through */
	assert_int_equal(vmm_reply_check(7, VFW_CMD_REGION_READ, &h, &e), 0);
	assert_int_equal(e, -EIO);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(vfmig_vmm_strerror(0), "success");
	assert_non_null(strstr(vfmig_vmm_strerror(-EPROTO), "protocol"));
	assert_string_equal(vfmig_vmm_strerror(-EPROTO),
			    vfmig_vmm_strerror(EPROTO));
	assert_string_equal(vfmig_vmm_strerror(-100000), "unknown error");
	assert_non_null(vfmig_vmm_strerror(-2147483647 - 1));
	/* What a device library answers when a load is cut short. */
	assert_string_equal(vfmig_vmm_strerror(-ENODATA),
			    "migration data incomplete");
	/* An errno of no table of ours: the C library's words, not
	 * "unknown error". */
	assert_string_equal(vfmig_vmm_strerror(-EILSEQ),
			    strerrordesc_np(EILSEQ));
}

/* ---- DEVICE_GET_REGION_IO_FDS replies ---- */

struct iofds {
	struct vfw_region_io_fds_request h;
	struct vfw_sub_region_ioeventfd e[3];
} __attribute__((packed));

/* A good reply for region 0 (4 KiB): n entries of 4 bytes at 0x1c, 0x20,
 * 0x28, the last with datamatch 7, fd_index i. */
static struct iofds good_iofds(uint32_t n)
{
	struct iofds r = { .h = { .argsz = 16 + n * 40, .index = 0,
				  .count = n } };

	for (uint32_t i = 0; i < 3; i++)
		r.e[i] = (struct vfw_sub_region_ioeventfd){
			.offset = i == 0 ? 0x1c : i == 1 ? 0x20 : 0x28,
			.size = 4, .fd_index = i,
			.type = VFW_IO_FD_TYPE_IOEVENTFD,
			.flags = i == 2 ? VFW_IO_FD_FLAG_DATAMATCH : 0,
			.datamatch = i == 2 ? 7 : 0,
		};
	return r;
}

static int parse_iofds(const struct iofds *r, size_t len, uint32_t asked,
		       size_t nfds, struct vfmig_vmm_ioeventfd *out,
		       uint32_t *need, const char **why)
{
	return vmm_parse_io_fds((const uint8_t *)r, len, 0, asked, 4096, nfds,
				out, 3, need, why);
}

static void test_io_fds_valid(void **state)
{
	struct vfmig_vmm_ioeventfd out[3];
	struct iofds r = good_iofds(3);
	uint32_t need = 0;
	const char *why;

	(void)state;
	assert_int_equal(parse_iofds(&r, 16 + 120, 200, 3, out, &need, &why),
			 3);
	assert_int_equal(out[0].offset, 0x1c);
	assert_int_equal(out[0].size, 4);
	assert_int_equal(out[0].flags, 0);
	assert_int_equal(out[1].fd, 1);
	assert_int_equal(out[2].flags, VFMIG_VMM_IOEVENTFD_DATAMATCH);
	assert_int_equal(out[2].datamatch, 7);
	/* None offered. */
	r = good_iofds(0);
	assert_int_equal(parse_iofds(&r, 16, 16, 0, out, &need, &why), 0);
	/* Two entries sharing one fd. */
	r = good_iofds(2);
	r.e[1].fd_index = 0;
	assert_int_equal(parse_iofds(&r, 16 + 80, 96, 1, out, &need, &why), 2);
	assert_int_equal(out[1].fd, 0);
	/* Asked with argsz 16: the header of the longer reply. */
	r = good_iofds(3);
	assert_int_equal(parse_iofds(&r, 16, 16, 0, out, &need, &why), -EAGAIN);
	assert_int_equal(need, 136);
	/* More than the caller takes. */
	assert_int_equal(vmm_parse_io_fds((const uint8_t *)&r, 136, 0, 136,
					  4096, 3, out, 2, &need, &why),
			 -E2BIG);
}

static void expect_refused(const struct iofds *r, size_t len, uint32_t asked,
			   size_t nfds, const char *what)
{
	struct vfmig_vmm_ioeventfd out[3];
	uint32_t need = 0;
	const char *why = NULL;

	assert_int_equal(parse_iofds(r, len, asked, nfds, out, &need, &why),
			 -EPROTO);
	assert_non_null(why);
	if (!strstr(why, what))
		fail_msg("refused with \"%s\", want \"%s\"", why, what);
}

static void test_io_fds_refused(void **state)
{
	struct iofds r;

	(void)state;
	r = good_iofds(1);
	expect_refused(&r, 12, 56, 1, "shorter than its 16-byte header");
	r.h.flags = 1;
	expect_refused(&r, 56, 56, 1, "flags are not 0");
	r = good_iofds(1);
	r.h.index = 2;
	expect_refused(&r, 56, 56, 1, "index is not the region");
	r = good_iofds(1);
	r.h.argsz = 16 + 48; /* entries of another size */
	expect_refused(&r, 64, 64, 1, "argsz is not 16 + count x 40");
	r = good_iofds(1);
	r.h.count = 0xffffffffu;
	expect_refused(&r, 56, 56, 1, "argsz is not 16 + count x 40");
	r = good_iofds(2);
	expect_refused(&r, 56, 96, 2, "length is not its argsz");
	/* A header beyond our argsz must come alone. */
	expect_refused(&r, 96, 56, 2, "beyond our argsz");
	r = good_iofds(1);
	expect_refused(&r, 56, 56, 0, "fd count does not match");
	expect_refused(&r, 56, 56, 2, "fd count does not match");
	r = good_iofds(1);
	r.e[0].type = VFW_IO_FD_TYPE_IOREGIONFD;
	expect_refused(&r, 56, 56, 1, "not an ioeventfd");
	r = good_iofds(1);
	r.e[0].flags = VFW_IO_FD_FLAG_PIO;
	expect_refused(&r, 56, 56, 1, "flags other than DATAMATCH");
	r = good_iofds(1);
	r.e[0].padding = 1;
	expect_refused(&r, 56, 56, 1, "padding");
	static const uint64_t bad_sizes[] = { 0, 3, 16, 1ull << 32 };
	for (size_t i = 0; i < 4; i++) {
		r = good_iofds(1);
		r.e[0].size = bad_sizes[i];
		expect_refused(&r, 56, 56, 1, "size is not 1, 2, 4 or 8");
	}
	r = good_iofds(1);
	r.e[0].offset = 4094; /* its last bytes beyond the region */
	expect_refused(&r, 56, 56, 1, "outside the region");
	r.e[0].offset = UINT64_MAX - 1; /* offset + size wraps */
	expect_refused(&r, 56, 56, 1, "outside the region");
	r = good_iofds(1);
	r.e[0].flags = VFW_IO_FD_FLAG_DATAMATCH;
	r.e[0].datamatch = 1ull << 32;
	expect_refused(&r, 56, 56, 1, "datamatch does not fit");
	r = good_iofds(1);
	r.e[0].fd_index = 1;
	expect_refused(&r, 56, 56, 1, "fd_index names no fd");
	r = good_iofds(2);
	r.e[1].fd_index = 0; /* fd 1 named by nobody */
	expect_refused(&r, 96, 96, 2, "named by no sub-region");
}

/*
 * VFMIG_TIMEOUT_SCALE multiplies the default reply timeout, not one the
 * caller gives. main() sets it to 4 before anything reads it.
 */
static void test_reply_timeout_scaled(void **state)
{
	struct vfmig_vmm_dev_opts o = { .version = 1, .reply_timeout_ms = 500 };
	vfmig_vmm_dev *dev;

	(void)state;
	assert_int_equal(vmm_dev_alloc(NULL, &dev), 0);
	assert_int_equal(dev->reply_timeout_ms, 4 * VMM_DEFAULT_REPLY_MS);
	vmm_dev_free(dev);
	assert_int_equal(vmm_dev_alloc(&o, &dev), 0);
	assert_int_equal(dev->reply_timeout_ms, 500);
	vmm_dev_free(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps_valid_chain),
		cmocka_unit_test(test_caps_none),
		cmocka_unit_test(test_caps_loops),
		cmocka_unit_test(test_caps_bad_offsets),
		cmocka_unit_test(test_caps_sparse_bounds),
		cmocka_unit_test(test_window_add_overlap),
		cmocka_unit_test(test_window_resolve),
		cmocka_unit_test(test_reply_check),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_io_fds_valid),
		cmocka_unit_test(test_io_fds_refused),
		cmocka_unit_test(test_reply_timeout_scaled),
	};
	/* read once, on first use: before any test */
	if (setenv(VFW_TIMEOUT_SCALE_ENV, "4", 1))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
