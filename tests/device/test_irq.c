/* SPDX-License-Identifier: MIT */
/* Unit tests: MSI-X table/PBA, masking and delivery, SET_IRQS checks. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "device/internal.h"

static int nop_access(vfmig_dev *dev, void *priv, unsigned int bar,
		      uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off; (void)len;
	if (!is_write)
		memset(buf, 0xab, len);
	return 0;
}

static const struct vfmig_dev_ops ops = {
	.version = VFMIG_DEV_OPS_VERSION,
	.region_access = nop_access,
};

static int setup(void **state)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.intx_count = 1, .msi_vectors = 2, .msix_vectors = 70,
		.msix_bar = 1, .msix_table_offset = 0x0,
		.msix_pba_offset = 0x800, .err_count = 1,
	};
	vfmig_dev *dev;

	d.bars[1] = (struct vfmig_dev_bar){ .size = 4096 };
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &dev), 0);
	*state = dev;
	return 0;
}

static int teardown(void **state)
{
	vfmig_dev_destroy(*state);
	return 0;
}

static int new_efd(vfmig_dev *dev, unsigned int index, unsigned int sub)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(fd >= 0);
	dev->irqs[index].lines[sub].efd = dup(fd); /* device owns the dup */
	return fd;
}

static uint64_t fired(int fd)
{
	uint64_t v = 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* BAR and config registers are little-endian, whatever the host. */
static void bar1_w32(vfmig_dev *dev, uint64_t off, uint32_t v)
{
	uint32_t le = htole32(v);

	assert_int_equal(dev_region_access(dev, 1, off, &le, 4, true), 0);
}

static uint32_t bar1_r32(vfmig_dev *dev, uint64_t off)
{
	uint32_t le;

	assert_int_equal(dev_region_access(dev, 1, off, &le, 4, false), 0);
	return le32toh(le);
}

static void cfg_w(vfmig_dev *dev, uint32_t off, uint32_t v, size_t len)
{
	uint8_t b[4];

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(dev_region_access(dev, VFW_PCI_CONFIG_REGION, off, b,
					   len, true), 0);
}

static void msix_ctrl(vfmig_dev *dev, uint16_t v)
{
	cfg_w(dev, dev->pci.msix_cap + 2u, v, 2);
}

static void test_msix_table(void **state)
{
	vfmig_dev *dev = *state;

	/* reset state: every vector masked */
	assert_int_equal(bar1_r32(dev, 12), 1);
	bar1_w32(dev, 0, 0xfee00000);
	bar1_w32(dev, 8, 0x4041);
	bar1_w32(dev, 12, 0xfffffffe); /* reserved bits stay 0 */
	assert_int_equal(bar1_r32(dev, 0), 0xfee00000);
	assert_int_equal(bar1_r32(dev, 8), 0x4041);
	assert_int_equal(bar1_r32(dev, 12), 0);
	/* PBA is read-only */
	bar1_w32(dev, 0x800, 0xffffffff);
	assert_int_equal(bar1_r32(dev, 0x800), 0);
	/* between table end (70*16) and PBA: device callback */
	assert_int_equal(bar1_r32(dev, 0x600), 0xabababab);
	/* an access straddling table end and callback area is split */
	uint8_t buf[16];
	assert_int_equal(dev_region_access(dev, 1, 70 * 16 - 8, buf, 16, false), 0);
	assert_int_equal(buf[15], 0xab);
	/* out of range / overflow */
	assert_int_equal(dev_region_access(dev, 1, 0xfffffffffffffff0ull, buf,
					   16, false), -EINVAL);
	assert_int_equal(dev_region_access(dev, 0, 0, buf, 4, false), -EINVAL);
	assert_int_equal(dev_region_access(dev, 9, 0, buf, 4, false), -EINVAL);
}

static void test_msix_mask_pending(void **state)
{
	vfmig_dev *dev = *state;
	int fd = new_efd(dev, VFMIG_DEV_IRQ_MSIX, 65);

	/* disabled: dropped, nothing pending */
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, 65), 0);
	assert_false(dev_msix_pending(&dev->msix, 65));
	/* enabled, vector masked: pending bit in PBA word 1 */
	msix_ctrl(dev, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, 65), 0);
	assert_int_equal(bar1_r32(dev, 0x808), 1u << 1);
	uint8_t pba[8];
	assert_int_equal(dev_region_access(dev, 1, 0x808, pba, 8, false), 0);
	assert_memory_equal(pba, "\x02\0\0\0\0\0\0\0", 8); /* LE qword */
	assert_int_equal(fired(fd), 0);
	/* function mask, then unmask vector: still held */
	msix_ctrl(dev, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
	bar1_w32(dev, 65 * 16 + 12, 0);
	assert_int_equal(fired(fd), 0);
	/* clear function mask: delivered, PBA cleared */
	msix_ctrl(dev, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(fired(fd), 1);
	assert_int_equal(bar1_r32(dev, 0x808), 0);
	/* unmasked: direct delivery */
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, 65), 1);
	assert_int_equal(fired(fd), 1);
	/* SET_IRQS-style mask holds it too */
	dev->irqs[VFMIG_DEV_IRQ_MSIX].lines[65].masked = true;
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, 65), 0);
	assert_true(dev_msix_pending(&dev->msix, 65));
	dev->irqs[VFMIG_DEV_IRQ_MSIX].lines[65].masked = false;
	dev_irq_deliver_pending(dev);
	assert_int_equal(fired(fd), 1);
	/* bad indexes */
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSIX, 70), -EINVAL);
	assert_int_equal(vfmig_dev_irq_trigger(dev, 5, 0), -EINVAL);
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_REQ, 0), -EINVAL);
	close(fd);
}

static void test_msi_intx(void **state)
{
	vfmig_dev *dev = *state;
	int fd = new_efd(dev, VFMIG_DEV_IRQ_MSI, 1);
	int ifd = new_efd(dev, VFMIG_DEV_IRQ_INTX, 0);
	uint32_t c = dev->pci.msi_cap;

	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSI, 1), 0);
	cfg_w(dev, c + 2, 0x0011, 2); /* enable, 2 vectors */
	cfg_w(dev, c + 16, 0x2, 4);   /* mask vector 1 */
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_MSI, 1), 0);
	assert_int_equal(dev_pci_get32(&dev->pci, c + 20), 0x2);
	cfg_w(dev, c + 16, 0, 4);
	assert_int_equal(fired(fd), 1);
	assert_int_equal(dev_pci_get32(&dev->pci, c + 20), 0);
	/* INTx: command INTx-disable holds it */
	cfg_w(dev, PCI_CMD, PCI_CMD_INTX_DISABLE, 2);
	assert_int_equal(vfmig_dev_irq_trigger(dev, VFMIG_DEV_IRQ_INTX, 0), 0);
	cfg_w(dev, PCI_CMD, 0, 2);
	assert_int_equal(fired(ifd), 1);
	close(fd);
	close(ifd);
}

struct set_case {
	uint32_t argsz, flags, index, start, count;
	size_t extra; /* payload bytes after the struct */
	size_t nfds;
	int want;
};

#define DN VFW_IRQ_SET_DATA_NONE
#define DB VFW_IRQ_SET_DATA_BOOL
#define DE VFW_IRQ_SET_DATA_EVENTFD
#define AM VFW_IRQ_SET_ACTION_MASK
#define AU VFW_IRQ_SET_ACTION_UNMASK
#define AT VFW_IRQ_SET_ACTION_TRIGGER

static void test_set_irqs_check(void **state)
{
	vfmig_dev *dev = *state;
	static const struct set_case cases[] = {
		{ 20, DE | AT, 2, 0, 4, 0, 4, 0 },        /* assign 4 eventfds */
		{ 20, DE | AT, 2, 0, 4, 0, 0, 0 },        /* de-assign */
		{ 20, DE | AT, 2, 0, 4, 0, 3, -EINVAL },  /* fd count mismatch */
		{ 20, DN | AT, 2, 0, 0, 0, 0, 0 },        /* disable index */
		{ 20, DN | AT, 2, 1, 0, 0, 0, -EINVAL },  /* count 0 needs start 0 */
		{ 20, DE | AT, 2, 0, 0, 0, 0, -EINVAL },  /* count 0 needs NONE */
		{ 20, DN | AM, 2, 60, 10, 0, 0, 0 },      /* mask 60..69 */
		{ 20, DN | AM, 2, 61, 10, 0, 0, -EINVAL },/* past the end */
		{ 20, DN | AM, 2, 0xffffffff, 2, 0, 0, -EINVAL }, /* overflow */
		{ 20, DN | AM, 3, 0, 1, 0, 0, -EINVAL },  /* ERR not maskable */
		{ 20, DN | AT, 3, 0, 1, 0, 0, 0 },        /* ERR trigger */
		{ 20, DN | AT, 4, 0, 1, 0, 0, -EINVAL },  /* REQ has 0 vectors */
		{ 20, DN | AT, 5, 0, 1, 0, 0, -EINVAL },  /* bad index */
		{ 20, DN | DB | AT, 2, 0, 1, 0, 0, -EINVAL }, /* two data bits */
		{ 20, DN | AM | AU, 2, 0, 1, 0, 0, -EINVAL }, /* two actions */
		{ 20, DN, 2, 0, 1, 0, 0, -EINVAL },       /* no action */
		{ 20, AT, 2, 0, 1, 0, 0, -EINVAL },       /* no data */
		{ 20, DN | AT | 0x40, 2, 0, 1, 0, 0, -EINVAL }, /* unknown flag */
		{ 23, DB | AU, 2, 0, 3, 3, 0, 0 },        /* bools */
		{ 22, DB | AU, 2, 0, 3, 2, 0, -EINVAL },  /* short bools */
		{ 20, DB | AU, 2, 0, 3, 3, 0, -EINVAL },  /* argsz lies */
		{ 99, DN | AT, 2, 0, 1, 0, 0, -EINVAL },  /* argsz lies */
		{ 20, DN | AT, 2, 0, 1, 0, 1, -EINVAL },  /* unexpected fd */
		{ 20, DE | AM, 2, 0, 1, 0, 1, -EINVAL },  /* eventfd + mask */
		{ 8, DN | AT, 2, 0, 1, 0, 0, -EINVAL },   /* tiny argsz */
	};
	uint8_t buf[64] = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct set_case *c = &cases[i];
		struct vfw_irq_set s = { c->argsz, c->flags, c->index,
					 c->start, c->count };
		memcpy(buf, &s, sizeof(s));
		int r = dev_irq_set_check(dev->irqs, buf, sizeof(s) + c->extra,
					  c->nfds);
		if (r != c->want)
			fail_msg("case %zu: got %d want %d", i, r, c->want);
	}
	assert_int_equal(dev_irq_set_check(dev->irqs, buf, 19, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_msix_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_mask_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msi_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_irqs_check, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
