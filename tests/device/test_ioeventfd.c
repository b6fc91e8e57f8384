/* SPDX-License-Identifier: MIT */
/*
 * ioeventfds a device offers (vfmig_dev_add_ioeventfd), over a socketpair:
 * what the call refuses, DEVICE_GET_REGION_IO_FDS refusing malformed
 * requests, answering a too-small argsz with the count it needs and no
 * fds, a good request with the sub-regions and their fds, and a kick on
 * such an fd reaching region_access as a write of that register (zeros,
 * or the datamatch value) that vfmig_dev_write_is_kick() marks; a client
 * that went keeps eventfds that ring nothing, the next gets new ones.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "device/internal.h"
#include "raw_client.h"

struct fx {
	vfmig_dev *dev;
	int fd; /* client end */
};

/* What region_access saw last. */
static struct {
	unsigned int calls, bar;
	uint64_t off;
	uint8_t buf[8];
	size_t len;
	bool write, kick;
} seen;

static int t_access(vfmig_dev *dev, void *priv, unsigned int bar,
		    uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)priv;
	seen.calls++;
	seen.bar = bar;
	seen.off = off;
	seen.len = len;
	seen.write = is_write;
	seen.kick = vfmig_dev_write_is_kick(dev);
	if (is_write)
		memcpy(seen.buf, buf, len < 8 ? len : 8);
	else
		memset(buf, 0, len);
	return 0;
}

static const struct vfmig_dev_ops ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = t_access,
};

/* BAR0 4 KiB MMIO; BAR2 mappable; BAR4 with the MSI-X table and PBA;
 * BAR5 I/O. */
static struct vfmig_dev_desc desc(void)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1234, .device_id = 0x5678, .msix_vectors = 2,
		.msix_bar = 4, .msix_table_offset = 0,
		.msix_pba_offset = 0x800,
	};
	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	d.bars[2] = (struct vfmig_dev_bar){ .size = 4096,
					    .flags = VFMIG_DEV_BAR_MAPPABLE };
	d.bars[4] = (struct vfmig_dev_bar){ .size = 4096 };
	d.bars[5] = (struct vfmig_dev_bar){ .size = 16,
					    .flags = VFMIG_DEV_BAR_IO };
	return d;
}

static void fx_attach(struct fx *f)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	uint8_t v[4 + sizeof(json)] = { 0 };
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vfmig_dev_attach_fd(f->dev, sv[1]), 0);
	f->fd = sv[0];
	memcpy(v + 4, json, sizeof(json));
	assert_int_equal(raw_call(f->dev, f->fd, VFW_CMD_VERSION, v, sizeof(v),
				  NULL, 0, NULL), 0);
}

static void fx_close(struct fx *f)
{
	vfmig_dev_destroy(f->dev);
	close(f->fd);
}

static void test_add_refused(void **state)
{
	struct vfmig_dev_desc d = desc();
	struct fx f;

	(void)state;
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &f.dev), 0);
	assert_int_equal(vfmig_dev_add_ioeventfd(NULL, 0, 0x1c, 4, 0, 0),
			 -EINVAL);
	/* size, alignment, inside the BAR */
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 0x1c, 3, 0, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 0x1e, 4, 0, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 4096, 4, 0, 0),
			 -EINVAL);
	/* no BAR, a mappable one, an I/O one, the MSI-X table and PBA */
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 1, 0, 4, 0, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 6, 0, 4, 0, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 2, 0, 4, 0, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 5, 0, 4, 0, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 4, 0x10, 4, 0, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 4, 0x800, 8, 0, 0),
			 -EINVAL);
	/* unknown flags; a datamatch wider than the register */
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 0x1c, 4, 2, 0),
			 -EINVAL);
	assert_int_equal(vfmig_dev_add_ioeventfd(
				 f.dev, 0, 0x1c, 4,
				 VFMIG_DEV_IOEVENTFD_DATAMATCH, 1ull << 32),
			 -EINVAL);
	/* overlap */
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 0x18, 8, 0, 0), 0);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 0x1c, 4, 0, 0),
			 -EINVAL);
	/* the table is full */
	for (int i = 1; i < VFMIG_DEV_MAX_IOEVENTFDS; i++)
		assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0,
							 0x100 + 8 * i, 8, 0,
							 0),
				 i);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 0x400, 4, 0, 0),
			 -ENOSPC);
	fx_attach(&f);
	/* not once a client is attached */
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 4, 0x900, 4, 0, 0),
			 -EBUSY);
	fx_close(&f);
}

static int io_fds(struct fx *f, uint32_t argsz, uint32_t flags,
		  uint32_t index, uint32_t count, struct vfw_msg *rep)
{
	struct vfw_region_io_fds_request req = { argsz, flags, index, count };

	return raw_call(f->dev, f->fd, VFW_CMD_DEVICE_GET_REGION_IO_FDS, &req,
			sizeof(req), NULL, 0, rep);
}

static void test_message(void **state)
{
	struct vfmig_dev_desc d = desc();
	struct vfw_region_io_fds_request h;
	struct vfw_sub_region_ioeventfd e[2];
	struct vfw_msg rep;
	struct fx f;
	uint64_t one = 1;

	(void)state;
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &f.dev), 0);
	assert_int_equal(vfmig_dev_add_ioeventfd(f.dev, 0, 0x1c, 4, 0, 0), 0);
	assert_int_equal(vfmig_dev_add_ioeventfd(
				 f.dev, 0, 0x40, 2,
				 VFMIG_DEV_IOEVENTFD_DATAMATCH, 0xbeef),
			 1);
	fx_attach(&f);

	/* Malformed requests: argsz below the header, flags, count, an
	 * index the device does not have, a longer payload. */
	assert_int_equal(io_fds(&f, 8, 0, 0, 0, NULL), -EINVAL);
	assert_int_equal(io_fds(&f, 16, 1, 0, 0, NULL), -EINVAL);
	assert_int_equal(io_fds(&f, 16, 0, 0, 1, NULL), -EINVAL);
	assert_int_equal(io_fds(&f, 16, 0, 99, 0, NULL), -EINVAL);
	uint8_t longer[20] = { 16 };
	assert_int_equal(raw_call(f.dev, f.fd, VFW_CMD_DEVICE_GET_REGION_IO_FDS,
				  longer, sizeof(longer), NULL, 0, NULL),
			 -EINVAL);

	/* A region without any: count 0. */
	assert_int_equal(io_fds(&f, 16, 0, 4, 0, &rep), 0);
	assert_int_equal(rep.len, 16);
	memcpy(&h, rep.payload, sizeof(h));
	assert_int_equal(h.argsz, 16);
	assert_int_equal(h.count, 0);
	assert_int_equal(rep.nfds, 0);
	vfw_msg_release(&rep);

	/* Too small an argsz: the header with what it takes, no fds. */
	assert_int_equal(io_fds(&f, 16, 0, 0, 0, &rep), 0);
	assert_int_equal(rep.len, 16);
	memcpy(&h, rep.payload, sizeof(h));
	assert_int_equal(h.argsz, 16 + 2 * 40);
	assert_int_equal(h.count, 2);
	assert_int_equal(h.index, 0);
	assert_int_equal(h.flags, 0);
	assert_int_equal(rep.nfds, 0);
	vfw_msg_release(&rep);

	/* Enough: both sub-regions and their fds. */
	assert_int_equal(io_fds(&f, 96, 0, 0, 0, &rep), 0);
	assert_int_equal(rep.len, 96);
	memcpy(&h, rep.payload, sizeof(h));
	memcpy(e, rep.payload + 16, sizeof(e));
	assert_int_equal(h.count, 2);
	assert_int_equal(rep.nfds, 2);
	assert_int_equal(e[0].offset, 0x1c);
	assert_int_equal(e[0].size, 4);
	assert_int_equal(e[0].type, VFW_IO_FD_TYPE_IOEVENTFD);
	assert_int_equal(e[0].flags, 0);
	assert_int_equal(e[1].offset, 0x40);
	assert_int_equal(e[1].size, 2);
	assert_int_equal(e[1].flags, VFW_IO_FD_FLAG_DATAMATCH);
	assert_int_equal(e[1].datamatch, 0xbeef);
	assert_true(e[0].fd_index < 2 && e[1].fd_index < 2 &&
		    e[0].fd_index != e[1].fd_index);

	/* Nothing signalled: no call. */
	memset(&seen, 0, sizeof(seen));
	assert_true(vfmig_dev_process(f.dev) >= 0);
	assert_int_equal(seen.calls, 0);
	/* A kick on the first: a write of zeros at 0x1c, marked a kick. */
	assert_int_equal(write(rep.fds[e[0].fd_index], &one, 8), 8);
	assert_int_equal(write(rep.fds[e[0].fd_index], &one, 8), 8);
	assert_true(vfmig_dev_process(f.dev) >= 0);
	assert_int_equal(seen.calls, 1); /* two writes, one look: one call */
	assert_true(seen.write && seen.kick);
	assert_int_equal(seen.bar, 0);
	assert_int_equal(seen.off, 0x1c);
	assert_int_equal(seen.len, 4);
	assert_memory_equal(seen.buf, "\0\0\0\0", 4);
	/* On the datamatch one: its value. */
	assert_int_equal(write(rep.fds[e[1].fd_index], &one, 8), 8);
	assert_true(vfmig_dev_process(f.dev) >= 0);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.off, 0x40);
	assert_int_equal(seen.len, 2);
	assert_int_equal(seen.buf[0], 0xef);
	assert_int_equal(seen.buf[1], 0xbe);
	assert_false(vfmig_dev_write_is_kick(f.dev));
	/* A REGION_WRITE of the same register is not a kick. */
	uint8_t w[16 + 4] = { 0x1c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4 };
	w[16] = 9;
	assert_int_equal(raw_call(f.dev, f.fd, VFW_CMD_REGION_WRITE, w,
				  sizeof(w), NULL, 0, NULL), 0);
	assert_true(seen.write && !seen.kick);
	assert_int_equal(seen.buf[0], 9);
	/* The fds an event loop polls: both, while running. */
	int fds[4];
	assert_int_equal(vfmig_dev_get_ioeventfd_fds(f.dev, fds, 4), 2);

	/* The client goes: the next one gets new eventfds, and the old ones
	 * ring nothing any more. */
	close(f.fd);
	assert_true(vfmig_dev_process(f.dev) >= 0);
	assert_int_equal(vfmig_dev_get_poll_fd(f.dev), -ENOTCONN);
	fx_attach(&f);
	seen.calls = 0;
	assert_int_equal(write(rep.fds[e[0].fd_index], &one, 8), 8);
	assert_true(vfmig_dev_process(f.dev) >= 0);
	assert_int_equal(seen.calls, 0);
	struct vfw_msg rep2;
	assert_int_equal(io_fds(&f, 96, 0, 0, 0, &rep2), 0);
	assert_int_equal(rep2.nfds, 2);
	memcpy(e, rep2.payload + 16, sizeof(e));
	assert_int_equal(write(rep2.fds[e[0].fd_index], &one, 8), 8);
	assert_true(vfmig_dev_process(f.dev) >= 0);
	assert_int_equal(seen.calls, 1);
	assert_true(seen.kick);
	vfw_msg_release(&rep2);
	vfw_msg_release(&rep);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_refused),
		cmocka_unit_test(test_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
