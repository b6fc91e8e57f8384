/* SPDX-License-Identifier: MIT */
/*
 * GET_REGION_INFO as a strict client sees it (strict_client.h: QEMU's
 * vfio-user client asks with argsz 32 first and refuses FLAG_CAPS with a
 * cap_offset below 32; libvfio-user's sample client refuses an fd it did not
 * expect). Every region DEVICE_GET_INFO reports is probed, over a
 * socketpair, for two layouts: a mappable BAR holding the MSI-X table and
 * PBA plus an excluded range (three sparse areas), and the region-based
 * device-state interface (TYPE capability on 9..12, whole-region mmap on
 * 10..12). A mappable region's fd must map the memory REGION_READ sees.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "device/internal.h"
#include "raw_client.h"
#include "strict_client.h"

struct fx {
	vfmig_dev *dev;
	int fd; /* client end */
};

static int t_access(vfmig_dev *dev, void *priv, unsigned int bar,
		    uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off;
	if (!is_write)
		memset(buf, 0, len);
	return 0;
}

static int t_transition(vfmig_dev *dev, void *priv, uint32_t from,
			uint32_t to)
{
	(void)dev; (void)priv; (void)from; (void)to;
	return 0;
}

static ssize_t t_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	(void)dev; (void)priv; (void)buf; (void)len;
	return 0;
}

static ssize_t t_load(vfmig_dev *dev, void *priv, const void *buf,
		      size_t len)
{
	(void)dev; (void)priv; (void)buf;
	return (ssize_t)len;
}

static int t_finish(vfmig_dev *dev, void *priv)
{
	(void)dev; (void)priv;
	return 0;
}

static const struct vfmig_dev_ops ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = t_access,
	.mig_flags = VFMIG_DEV_MIG_F_STOP_COPY | VFMIG_DEV_MIG_F_PRE_COPY,
	.mig_transition = t_transition,
	.mig_save = t_save,
	.mig_load = t_load,
	.mig_load_finish = t_finish,
};

/* BAR2: 64 KiB mappable with the MSI-X table at 0x2000, the PBA at 0x3000
 * and 0x8100..0x8110 excluded; BAR0 plain MMIO; BAR4 a large MEM64 BAR. */
static struct vfmig_dev_desc msix_desc(void)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1234, .device_id = 0x5678, .msix_vectors = 8,
		.msix_bar = 2, .msix_table_offset = 0x2000,
		.msix_pba_offset = 0x3000, .pcie = true,
	};
	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	d.bars[2] = (struct vfmig_dev_bar){
		.size = 1ull << 16,
		.flags = VFMIG_DEV_BAR_MEM64 | VFMIG_DEV_BAR_PREFETCH |
			 VFMIG_DEV_BAR_MAPPABLE,
		.n_exclude = 1,
		.exclude = { { 0x8100, 0x10 } },
	};
	d.bars[4] = (struct vfmig_dev_bar){ .size = 8ull << 30,
					    .flags = VFMIG_DEV_BAR_MEM64 };
	return d;
}

static void fx_open(struct fx *f, const struct vfmig_dev_desc *d, bool region)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	uint8_t v[4 + sizeof(json)] = { 0 };
	int sv[2];

	assert_int_equal(vfmig_dev_create(d, &ops, NULL, &f->dev), 0);
	if (region)
		assert_int_equal(vfmig_dev_set_mig_interface(
					 f->dev, VFMIG_DEV_MIG_IFACE_REGION),
				 0);
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

static int strict_call(void *ctx, const struct vfw_region_info *req,
		       struct vfw_msg *rep)
{
	struct fx *f = ctx;

	return raw_call(f->dev, f->fd, VFW_CMD_DEVICE_GET_REGION_INFO, req,
			sizeof(*req), NULL, 0, rep);
}

static uint32_t num_regions(struct fx *f)
{
	struct vfw_device_info di = { .argsz = sizeof(di) };
	struct vfw_msg m;

	assert_int_equal(raw_call(f->dev, f->fd, VFW_CMD_DEVICE_GET_INFO, &di,
				  sizeof(di), NULL, 0, &m), 0);
	memcpy(&di, m.payload, sizeof(di));
	vfw_msg_release(&m);
	return di.num_regions;
}

static void region_read(struct fx *f, uint32_t index, uint64_t off,
			void *buf, uint32_t len)
{
	struct vfw_region_access a = { .offset = off, .region = index,
				       .count = len };
	struct vfw_msg m;

	assert_int_equal(raw_call(f->dev, f->fd, VFW_CMD_REGION_READ, &a,
				  sizeof(a), NULL, 0, &m), 0);
	assert_int_equal(m.len, sizeof(a) + len);
	memcpy(buf, m.payload + sizeof(a), len);
	vfw_msg_release(&m);
}

/* The fd maps [offset + at, + len) of the region: a pattern written
 * through the mapping comes back through REGION_READ. */
static void check_mapping(struct fx *f, uint32_t index,
			  const struct strict_region *s, uint64_t at,
			  uint64_t len)
{
	uint8_t pat[16], got[16];
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd,
			  (off_t)(s->offset + at));

	assert_true(p != MAP_FAILED);
	for (unsigned int i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(index * 16 + i + at / 4096);
	memcpy(p + len - sizeof(pat), pat, sizeof(pat));
	region_read(f, index, at + len - sizeof(pat), got, sizeof(got));
	assert_memory_equal(got, pat, sizeof(pat));
	munmap(p, len);
}

static void probe(struct fx *f, uint32_t index, struct strict_region *s)
{
	assert_int_equal(strict_region_info(strict_call, f, index, s), 0);
	assert_int_equal(s->fd >= 0,
			 (s->flags & VFW_REGION_INFO_FLAG_MMAP) != 0);
	/* Only a region with capabilities needs the second request. */
	assert_int_equal(s->retried,
			 (s->flags & VFW_REGION_INFO_FLAG_CAPS) != 0);
}

static void test_msix_bar(void **state)
{
	static const struct vfw_sparse_mmap_area want[] = {
		{ 0, 0x2000 }, { 0x4000, 0x4000 }, { 0x9000, 0x7000 },
	};
	struct vfmig_dev_desc d = msix_desc();
	struct strict_region s;
	struct fx f;
	(void)state;

	fx_open(&f, &d, false);
	assert_int_equal(num_regions(&f), VFW_PCI_NUM_REGIONS);
	for (uint32_t i = 0; i < VFW_PCI_NUM_REGIONS; i++) {
		probe(&f, i, &s);
		assert_int_equal(s.retried, i == 2);
		assert_false(s.has_type);
		if (i != 2)
			continue;
		assert_true(s.flags & VFW_REGION_INFO_FLAG_MMAP);
		assert_int_equal(s.nr_areas, 3);
		assert_memory_equal(s.areas, want, sizeof(want));
		for (uint32_t a = 0; a < s.nr_areas; a++)
			check_mapping(&f, i, &s, s.areas[a].offset,
				      s.areas[a].size);
		close(s.fd);
	}
	fx_close(&f);
}

static void test_region_interface(void **state)
{
	struct vfmig_dev_desc d = msix_desc();
	struct strict_region s;
	struct fx f;
	(void)state;

	fx_open(&f, &d, true);
	assert_int_equal(num_regions(&f), VFW_DS_NUM_REGIONS);
	for (uint32_t i = 0; i < VFW_DS_NUM_REGIONS; i++) {
		probe(&f, i, &s);
		if (i < VFW_PCI_NUM_REGIONS) {
			assert_int_equal(s.retried, i == 2);
			if (s.fd >= 0)
				close(s.fd);
			continue;
		}
		assert_true(s.retried);
		assert_true(s.has_type);
		assert_int_equal(s.type, VFW_REGION_TYPE_DEVICE_STATE);
		assert_int_equal(s.subtype, i - VFW_DS_REGION_CTL + 1);
		assert_int_equal(s.nr_areas, 0);
		assert_int_equal(s.fd >= 0, i != VFW_DS_REGION_CTL);
		if (s.fd < 0)
			continue;
		check_mapping(&f, i, &s, 0, s.size);
		close(s.fd);
	}
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msix_bar),
		cmocka_unit_test(test_region_interface),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
