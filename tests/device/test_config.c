/* SPDX-License-Identifier: MIT */
/* Unit tests: PCI config space emulation and GET_REGION_INFO encoding. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device/internal.h"

static int nop_access(vfmig_dev *dev, void *priv, unsigned int bar,
		      uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off; (void)buf; (void)len;
	(void)is_write;
	return 0;
}

static const struct vfmig_dev_ops ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = nop_access,
};

static struct vfmig_dev_desc test_desc(void)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1234, .device_id = 0x5678,
		.subsys_vendor_id = 0xaaaa, .subsys_id = 0xbbbb,
		.revision = 3, .class_code = 0x020000,
		.intx_count = 1, .msi_vectors = 4, .msix_vectors = 8,
		.msix_bar = 2, .msix_table_offset = 0x2000,
		.msix_pba_offset = 0x3000, .pcie = true,
	};
	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	d.bars[1] = (struct vfmig_dev_bar){ .size = 32, .flags = VFMIG_DEV_BAR_IO };
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

static int setup(void **state)
{
	struct vfmig_dev_desc d = test_desc();
	vfmig_dev *dev;

	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), 0);
	*state = dev;
	return 0;
}

static int teardown(void **state)
{
	vfmig_dev_destroy(*state);
	return 0;
}

/* Config space is little-endian, whatever the host. */
static uint32_t rd32(vfmig_dev *dev, uint32_t off)
{
	uint32_t le;
	assert_int_equal(dev_region_access(dev, VFW_PCI_CONFIG_REGION, off, &le,
					   4, false), 0);
	return le32toh(le);
}

static uint16_t rd16(vfmig_dev *dev, uint32_t off)
{
	uint16_t le;
	assert_int_equal(vfmig_dev_config_read(dev, off, &le, 2), 0);
	return le16toh(le);
}

static void wr32(vfmig_dev *dev, uint32_t off, uint32_t v)
{
	uint32_t le = htole32(v);
	assert_int_equal(dev_region_access(dev, VFW_PCI_CONFIG_REGION, off, &le,
					   4, true), 0);
}

static void wr16(vfmig_dev *dev, uint32_t off, uint16_t v)
{
	uint16_t le = htole16(v);
	assert_int_equal(dev_region_access(dev, VFW_PCI_CONFIG_REGION, off, &le,
					   2, true), 0);
}

static void test_ids_readonly(void **state)
{
	vfmig_dev *dev = *state;

	assert_int_equal(rd32(dev, 0), 0x56781234);
	uint8_t ids[4];
	assert_int_equal(vfmig_dev_config_read(dev, 0, ids, 4), 0);
	assert_memory_equal(ids, "\x34\x12\x78\x56", 4); /* the bytes a guest reads */
	wr32(dev, 0, 0xffffffff);
	assert_int_equal(rd32(dev, 0), 0x56781234);
	assert_int_equal(rd32(dev, 0x08), 0x02000003);
	wr32(dev, 0x08, 0);
	assert_int_equal(rd32(dev, 0x08), 0x02000003);
	assert_int_equal(rd32(dev, 0x2c), 0xbbbbaaaa);
	assert_int_equal(dev->pci.cfg[0x3d], 1); /* INTA */
	/* command: only defined bits are writable */
	wr16(dev, PCI_CMD, 0xffff);
	assert_int_equal(rd16(dev, PCI_CMD), 0x0547);
	/* status: capability bit read-only, error bits W1C */
	assert_true(rd16(dev, PCI_STATUS) & PCI_STATUS_CAPS);
	dev->pci.cfg[PCI_STATUS + 1] |= 0x80; /* pretend parity error */
	wr16(dev, PCI_STATUS, 0);
	assert_int_equal(rd16(dev, PCI_STATUS), PCI_STATUS_CAPS | 0x8000);
	wr16(dev, PCI_STATUS, 0xffff);
	assert_int_equal(rd16(dev, PCI_STATUS), PCI_STATUS_CAPS);
}

static void test_bar_sizing(void **state)
{
	vfmig_dev *dev = *state;

	/* BAR0: 4 KiB 32-bit memory */
	wr32(dev, 0x10, 0xffffffff);
	assert_int_equal(rd32(dev, 0x10), 0xfffff000);
	wr32(dev, 0x10, 0xfebc1234);
	assert_int_equal(rd32(dev, 0x10), 0xfebc1000);
	/* BAR1: 32-byte I/O, bit 0 set */
	wr32(dev, 0x14, 0xffffffff);
	assert_int_equal(rd32(dev, 0x14), 0xffffffe1);
	/* BAR2+3: 64 KiB 64-bit prefetchable */
	assert_int_equal(rd32(dev, 0x18), 0x0000000c);
	wr32(dev, 0x18, 0xffffffff);
	wr32(dev, 0x1c, 0xffffffff);
	assert_int_equal(rd32(dev, 0x18), 0xffff000c);
	assert_int_equal(rd32(dev, 0x1c), 0xffffffff);
	/* BAR4+5: 8 GiB 64-bit: low half has no address bits */
	wr32(dev, 0x20, 0xffffffff);
	wr32(dev, 0x24, 0xffffffff);
	assert_int_equal(rd32(dev, 0x20), 0x00000004);
	assert_int_equal(rd32(dev, 0x24), 0xfffffffe);
	/* ROM BAR absent: reads 0 */
	wr32(dev, 0x30, 0xffffffff);
	assert_int_equal(rd32(dev, 0x30), 0);
}

static void test_cap_chain(void **state)
{
	vfmig_dev *dev = *state;
	uint8_t msi = dev_pci_find_cap(&dev->pci, PCI_CAP_ID_MSI);
	uint8_t msix = dev_pci_find_cap(&dev->pci, PCI_CAP_ID_MSIX);
	uint8_t exp = dev_pci_find_cap(&dev->pci, PCI_CAP_ID_EXP);

	assert_true(msi >= 0x40 && msix >= 0x40 && exp >= 0x40);
	assert_int_equal(dev_pci_find_cap(&dev->pci, 0x01), 0);
	assert_int_equal(dev->pci.size, 4096);
	/* MSI: 4 vectors (MMC 2), 64-bit, per-vector mask; only enable/MME rw */
	assert_int_equal(rd16(dev, msi + 2), 0x0184);
	wr16(dev, msi + 2, 0xffff);
	assert_int_equal(rd16(dev, msi + 2), 0x01f5);
	wr32(dev, msi + 16, 0xffffffff);
	assert_int_equal(rd32(dev, msi + 16), 0xf);
	/* MSI-X: table size 8, BIR 2, offsets */
	assert_int_equal(rd16(dev, msix + 2), 7);
	assert_int_equal(rd32(dev, msix + 4), 0x2002);
	assert_int_equal(rd32(dev, msix + 8), 0x3002);
	wr16(dev, msix + 2, 0xffff);
	assert_int_equal(rd16(dev, msix + 2), 0xc007);
	wr32(dev, msix + 4, 0);
	assert_int_equal(rd32(dev, msix + 4), 0x2002);
	/* PCIe: capability register read-only */
	assert_int_equal(rd16(dev, exp + 2), 0x0002);
	wr16(dev, exp + 2, 0xffff);
	assert_int_equal(rd16(dev, exp + 2), 0x0002);
	/* out of range accesses refused */
	uint32_t v;
	assert_int_equal(vfmig_dev_config_read(dev, 4094, &v, 4), -EINVAL);
	assert_int_equal(dev_region_access(dev, VFW_PCI_CONFIG_REGION,
					   UINT64_MAX - 1, &v, 4, false), -EINVAL);
	/* a looping chain terminates */
	dev->pci.cfg[msi + 1] = msi;
	assert_int_equal(dev_pci_find_cap(&dev->pci, 0x01), 0);
}

static void test_plain_pci(void **state)
{
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION,
				    .vendor_id = 1 };
	vfmig_dev *dev;

	(void)state;
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), 0);
	assert_int_equal(dev->pci.size, 256);
	assert_false(rd16(dev, PCI_STATUS) & PCI_STATUS_CAPS);
	assert_int_equal(dev_pci_find_cap(&dev->pci, PCI_CAP_ID_MSI), 0);
	vfmig_dev_destroy(dev);
}

static void test_bad_desc(void **state)
{
	struct vfmig_dev_desc d = test_desc();
	struct vfmig_dev_ops o = ops;
	vfmig_dev *dev;

	(void)state;
	for (o.version = 1; o.version <= 3; o.version++) { /* 3 adds mig_load_place */
		assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), 0);
		vfmig_dev_destroy(dev);
	}
	o.version = 4;
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), -EINVAL);
	o.version = 0;
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), -EINVAL);
	o = ops;
	o.mig_flags = VFMIG_DEV_MIG_F_PRE_COPY; /* STOP_COPY missing */
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), -EINVAL);
	o.mig_flags = VFMIG_DEV_MIG_F_STOP_COPY; /* callbacks missing */
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), -EINVAL);
	d.bars[0].size = 3000; /* not a power of two */
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), -EINVAL);
	d = test_desc();
	d.bars[3].size = 4096; /* upper half of BAR2 */
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), -EINVAL);
	d = test_desc();
	d.msix_pba_offset = 0x2040; /* overlaps the table */
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), -EINVAL);
	d = test_desc();
	d.msix_table_offset = 0xfff8; /* table runs past the BAR */
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), -EINVAL);
	d = test_desc();
	d.msi_vectors = 3;
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), -EINVAL);
}

static void test_region_info(void **state)
{
	vfmig_dev *dev = *state;
	struct vfw_region_info ri;
	struct vfw_region_info_cap_sparse_mmap cap;
	struct vfw_sparse_mmap_area a[4];
	uint8_t *buf;
	size_t len;
	bool fd;

	/* BAR2: mappable minus exclude page 0x8000 and MSI-X pages */
	assert_int_equal(dev_region_info_build(dev, 2, 4096, &buf, &len, &fd), 0);
	assert_true(fd);
	memcpy(&ri, buf, sizeof(ri));
	assert_int_equal(ri.argsz, len);
	assert_int_equal(ri.size, 1 << 16);
	assert_int_equal(ri.flags, VFW_REGION_INFO_FLAG_READ |
				   VFW_REGION_INFO_FLAG_WRITE |
				   VFW_REGION_INFO_FLAG_MMAP |
				   VFW_REGION_INFO_FLAG_CAPS);
	assert_int_equal(ri.cap_offset, sizeof(ri));
	memcpy(&cap, buf + ri.cap_offset, sizeof(cap));
	assert_int_equal(cap.header.id, VFW_REGION_INFO_CAP_SPARSE_MMAP);
	assert_int_equal(cap.header.version, 1);
	assert_int_equal(cap.header.next, 0);
	assert_int_equal(cap.nr_areas, 3);
	assert_int_equal(len, sizeof(ri) + sizeof(cap) + 3 * sizeof(a[0]));
	memcpy(a, buf + sizeof(ri) + sizeof(cap), 3 * sizeof(a[0]));
	assert_int_equal(a[0].offset, 0);
	assert_int_equal(a[0].size, 0x2000);
	assert_int_equal(a[1].offset, 0x4000); /* table 0x2000, PBA 0x3000 */
	assert_int_equal(a[1].size, 0x4000);
	assert_int_equal(a[2].offset, 0x9000);
	assert_int_equal(a[2].size, 0x7000);
	free(buf);

	/* argsz too small for the capability: the bare struct with the true
	 * argsz, and nothing it cannot back: no CAPS, no MMAP, no fd */
	assert_int_equal(dev_region_info_build(dev, 2, 32, &buf, &len, &fd), 0);
	assert_int_equal(len, sizeof(ri));
	assert_false(fd);
	memcpy(&ri, buf, sizeof(ri));
	assert_int_equal(ri.argsz, sizeof(ri) + sizeof(cap) + 3 * sizeof(a[0]));
	assert_int_equal(ri.cap_offset, 0);
	assert_int_equal(ri.flags, VFW_REGION_INFO_FLAG_READ |
				   VFW_REGION_INFO_FLAG_WRITE);
	assert_int_equal(ri.size, 1 << 16);
	free(buf);

	/* config: 4 KiB, rw, never mmap */
	assert_int_equal(dev_region_info_build(dev, 7, 100, &buf, &len, &fd), 0);
	memcpy(&ri, buf, sizeof(ri));
	assert_false(fd);
	assert_int_equal(len, sizeof(ri));
	assert_int_equal(ri.size, 4096);
	assert_int_equal(ri.flags, VFW_REGION_INFO_FLAG_READ |
				   VFW_REGION_INFO_FLAG_WRITE);
	free(buf);
	/* BAR0: not mappable; BAR3: upper half, size 0; VGA: 0 */
	const uint32_t idx[] = { 0, 3, 8 };
	const uint64_t size[] = { 4096, 0, 0 };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(dev_region_info_build(dev, idx[i], 32, &buf,
						       &len, &fd), 0);
		memcpy(&ri, buf, sizeof(ri));
		assert_false(fd);
		assert_int_equal(ri.size, size[i]);
		assert_int_equal(ri.cap_offset, 0);
		free(buf);
	}
	/* bad index, bad argsz */
	assert_int_equal(dev_region_info_build(dev, 9, 64, &buf, &len, &fd), -EINVAL);
	assert_int_equal(dev_region_info_build(dev, 0, 31, &buf, &len, &fd), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ids_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_chain, setup, teardown),
		cmocka_unit_test(test_plain_pci),
		cmocka_unit_test(test_bad_desc),
		cmocka_unit_test_setup_teardown(test_region_info, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
