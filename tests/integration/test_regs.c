/* SPDX-License-Identifier: MIT */
/*
 * The "regs" sample device as a real process (`vfmig device regs`), driven
 * over a real UNIX socket through libvfmig-vmm: every command, fd passing,
 * interrupts on eventfds with masking, DMA through a mapped fd and through
 * messages, reset, and reconnecting after a client goes away.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/vmm.h>

#include "harness.h"
#include "regs_hw.h"

#define RAM_SIZE (4u << 20)
#define WIN_FD 0x100000ull
#define WIN_MSG 0x80000000ull
#define WIN_SIZE (RAM_SIZE / 2)

struct fx {
	char sock[256];
	pid_t pid;
	vfmig_vmm_dev *dev;
	int ram_fd;
	uint8_t *ram;
	int irq[REGS_MSIX_VECTORS];
	uint64_t dirtied; /* bytes reported by on_dma_write */
};

static void on_dma_write(void *priv, uint64_t iova, uint64_t len)
{
	struct fx *f = priv;
	(void)iova;
	f->dirtied += len;
}

static struct vfmig_vmm_dev_opts opts_for(struct fx *f)
{
	struct vfmig_vmm_dev_opts o = {
		.version = VFMIG_VMM_OPTS_VERSION,
		.on_dma_write = on_dma_write,
		.priv = f,
	};
	return o;
}

static int setup(void **state)
{
	static int n;
	char name[32];
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(name, sizeof(name), "regs%d.sock", n++);
	snprintf(f->sock, sizeof(f->sock), "%s", harness_path(name));
	f->pid = harness_spawn_device("regs", f->sock, NULL);
	if (f->pid < 0)
		return -1;
	struct vfmig_vmm_dev_opts o = opts_for(f);
	if (vfmig_vmm_dev_connect(f->sock, &o, &f->dev) < 0)
		return -1;
	f->ram_fd = memfd_create("ram", MFD_CLOEXEC);
	if (f->ram_fd < 0 || ftruncate(f->ram_fd, RAM_SIZE) < 0)
		return -1;
	f->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      f->ram_fd, 0);
	if (f->ram == MAP_FAILED)
		return -1;
	for (unsigned i = 0; i < REGS_MSIX_VECTORS; i++)
		f->irq[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vfmig_vmm_dev_close(f->dev);
	/* The device must survive everything the test did and stop cleanly. */
	int status = harness_stop(f->pid);
	for (unsigned i = 0; i < REGS_MSIX_VECTORS; i++)
		close(f->irq[i]);
	munmap(f->ram, RAM_SIZE);
	close(f->ram_fd);
	free(f);
	return status == 0 ? 0 : -1;
}

/* Registers and config space are little-endian, whatever the host. */
static uint32_t rd(struct fx *f, uint32_t off)
{
	uint32_t v = 0xffffffff;
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, REGS_BAR_REGS, off,
						   &v, 4),
			 0);
	return le32toh(v);
}

static void wr(struct fx *f, uint32_t off, uint32_t v)
{
	v = htole32(v);
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, REGS_BAR_REGS, off,
						    &v, 4),
			 0);
}

static uint8_t msix_cap(struct fx *f)
{
	uint8_t cfg[256];

	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG, 0,
						   cfg, sizeof(cfg)),
			 0);
	for (uint8_t p = cfg[0x34], n = 0; p && n < 48; p = cfg[p + 1], n++)
		if (cfg[p] == 0x11)
			return p;
	fail_msg("no MSI-X capability");
	return 0;
}

/* Wire MSI-X to eventfds, enable it, unmask every table entry. */
static void enable_msix(struct fx *f)
{
	uint8_t cap = msix_cap(f);
	uint16_t ctl;
	uint32_t zero = 0;

	assert_int_equal(vfmig_vmm_dev_set_irq_eventfds(f->dev,
							VFMIG_VMM_IRQ_MSIX, 0,
							f->irq,
							REGS_MSIX_VECTORS),
			 0);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG,
						   cap + 2u, &ctl, 2),
			 0);
	ctl = htole16((uint16_t)(le16toh(ctl) | 0x8000));
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev,
						    VFMIG_VMM_PCI_CONFIG,
						    cap + 2u, &ctl, 2),
			 0);
	for (unsigned v = 0; v < REGS_MSIX_VECTORS; v++)
		assert_int_equal(vfmig_vmm_dev_region_write(
					 f->dev, REGS_BAR_MSIX, v * 16 + 12,
					 &zero, 4),
				 0);
}

/* Count on vector v's eventfd after waiting up to ms (0 if none). */
static uint64_t irq_count(struct fx *f, unsigned v, int ms)
{
	struct pollfd p = { .fd = f->irq[v], .events = POLLIN };
	uint64_t n = 0;

	if (poll(&p, 1, ms) == 1)
		assert_int_equal(read(f->irq[v], &n, 8), 8);
	return n;
}

static void map_ram(struct fx *f)
{
	uint32_t rw = VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE;

	assert_int_equal(vfmig_vmm_dev_dma_map(f->dev, WIN_FD, WIN_SIZE,
					       f->ram_fd, 0, f->ram, rw),
			 0);
	assert_int_equal(vfmig_vmm_dev_dma_map(f->dev, WIN_MSG, WIN_SIZE, -1,
					       0, f->ram + WIN_SIZE, rw),
			 0);
}

/* Run a DMA command; returns DMA_STATUS. */
static uint32_t dma(struct fx *f, uint64_t iova, uint32_t len, uint32_t cmd)
{
	wr(f, REG_DMA_ADDR_LO, (uint32_t)iova);
	wr(f, REG_DMA_ADDR_HI, (uint32_t)(iova >> 32));
	wr(f, REG_DMA_LEN, len);
	wr(f, REG_DMA_CMD, cmd);
	return rd(f, REG_DMA_STATUS);
}

/* ---- tests ---- */

static void test_info_and_regions(void **state)
{
	struct fx *f = *state;
	struct vfmig_vmm_dev_info info;
	struct vfmig_vmm_region_info ri;
	struct vfmig_vmm_irq_info ii;
	struct vfmig_vmm_caps caps;

	assert_int_equal(vfmig_vmm_dev_get_caps(f->dev, &caps), 0);
	assert_int_equal(caps.major, 0);
	assert_true(caps.max_data_xfer_size >= 4096);
	assert_int_equal(vfmig_vmm_dev_get_info(f->dev, &info), 0);
	assert_true(info.flags & VFMIG_VMM_DEV_FLAG_PCI);
	assert_true(info.flags & VFMIG_VMM_DEV_FLAG_RESET);
	assert_true(info.num_regions >= 9);
	assert_int_equal(info.num_irqs, 5);

	assert_int_equal(vfmig_vmm_dev_get_region_info(f->dev, 0, &ri), 0);
	assert_int_equal(ri.size, 4096);
	assert_false(ri.flags & VFMIG_VMM_REGION_MMAP);
	assert_int_equal(ri.fd, -1);
	vfmig_vmm_region_info_release(&ri);

	/* The mappable BAR comes with an fd (fd passing, server to client). */
	assert_int_equal(vfmig_vmm_dev_get_region_info(f->dev, REGS_BAR_MEM,
						       &ri),
			 0);
	assert_int_equal(ri.size, REGS_BAR_MEM_SIZE);
	assert_true(ri.flags & VFMIG_VMM_REGION_MMAP);
	assert_true(ri.fd >= 0);
	assert_true(ri.has_sparse);
	assert_true(ri.nr_areas >= 1);
	vfmig_vmm_region_info_release(&ri);

	assert_int_equal(vfmig_vmm_dev_get_region_info(f->dev,
						       VFMIG_VMM_PCI_CONFIG,
						       &ri),
			 0);
	assert_true(ri.size == 256 || ri.size == 4096);
	vfmig_vmm_region_info_release(&ri);

	/* An index past every region is refused, and the device serves on. */
	assert_true(vfmig_vmm_dev_get_region_info(f->dev, 1000, &ri) < 0);
	assert_int_equal(vfmig_vmm_dev_get_irq_info(f->dev, VFMIG_VMM_IRQ_MSIX,
						    &ii),
			 0);
	assert_int_equal(ii.count, REGS_MSIX_VECTORS);
	assert_true(ii.flags & VFMIG_VMM_IRQ_INFO_EVENTFD);
	assert_true(vfmig_vmm_dev_get_irq_info(f->dev, 99, &ii) < 0);
	assert_int_equal(rd(f, REG_ID), REGS_MAGIC);
}

static void test_config_space(void **state)
{
	struct fx *f = *state;
	uint16_t vendor, cmd;
	uint32_t bar0, size_mask, all = 0xffffffff;

	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG, 0,
						   &vendor, 2),
			 0);
	assert_int_equal(le16toh(vendor), REGS_VENDOR_ID);
	/* Vendor ID is read-only. */
	uint16_t junk = htole16(0x1234);
	vfmig_vmm_dev_region_write(f->dev, VFMIG_VMM_PCI_CONFIG, 0, &junk, 2);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG, 0,
						   &vendor, 2),
			 0);
	assert_int_equal(le16toh(vendor), REGS_VENDOR_ID);
	/* BAR sizing: all-ones reads back the size mask. */
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG, 0x10,
						   &bar0, 4),
			 0);
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev,
						    VFMIG_VMM_PCI_CONFIG, 0x10,
						    &all, 4),
			 0);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG, 0x10,
						   &size_mask, 4),
			 0);
	assert_int_equal(le32toh(size_mask) & ~0xfu, ~(4096u - 1));
	/* Command register: memory + bus master stick. */
	cmd = htole16(0x6);
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev,
						    VFMIG_VMM_PCI_CONFIG, 4,
						    &cmd, 2),
			 0);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG, 4,
						   &cmd, 2),
			 0);
	assert_int_equal(le16toh(cmd) & 0x6, 0x6);
	/* Out of range config access is refused. */
	assert_true(vfmig_vmm_dev_region_read(f->dev, VFMIG_VMM_PCI_CONFIG,
					      4094, &bar0, 4) < 0);
}

static void test_registers_and_counter(void **state)
{
	struct fx *f = *state;

	for (uint32_t i = 0; i < 8; i++)
		wr(f, REG_SCRATCH0 + 4 * i, 0x1000 + i);
	for (uint32_t i = 0; i < 8; i++)
		assert_int_equal(rd(f, REG_SCRATCH0 + 4 * i), 0x1000 + i);
	for (int i = 0; i < 1000; i++)
		wr(f, REG_DOORBELL, 1);
	assert_int_equal(rd(f, REG_COUNTER), 1000);
	/* Out-of-range and overflowing accesses are refused. */
	uint32_t v;
	assert_true(vfmig_vmm_dev_region_read(f->dev, REGS_BAR_REGS, 4096, &v,
					      4) < 0);
	assert_true(vfmig_vmm_dev_region_read(f->dev, REGS_BAR_REGS,
					      0xfffffffffffffffcull, &v,
					      4) < 0);
	assert_int_equal(rd(f, REG_COUNTER), 1000);
}

static void test_interrupts_and_masking(void **state)
{
	struct fx *f = *state;
	uint8_t cap;
	uint16_t ctl;

	enable_msix(f);
	for (unsigned v = 0; v < REGS_MSIX_VECTORS; v++) {
		wr(f, REG_EVENT, v);
		assert_int_equal(irq_count(f, v, 2000), 1);
	}
	/* Per-vector mask in the table: held pending (PBA), then delivered
	 * when unmasked. */
	uint32_t one = htole32(1), zero = 0, pba = 0;
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, REGS_BAR_MSIX,
						    2 * 16 + 12, &one, 4),
			 0);
	wr(f, REG_EVENT, 2);
	assert_int_equal(irq_count(f, 2, 100), 0);
	cap = msix_cap(f);
	uint32_t pba_reg;
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG,
						   cap + 8u, &pba_reg, 4),
			 0);
	pba_reg = le32toh(pba_reg);
	assert_int_equal(pba_reg & 7u, REGS_BAR_MSIX);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, REGS_BAR_MSIX,
						   pba_reg & ~7u, &pba, 4),
			 0);
	assert_true(le32toh(pba) & (1u << 2));
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, REGS_BAR_MSIX,
						    2 * 16 + 12, &zero, 4),
			 0);
	assert_int_equal(irq_count(f, 2, 2000), 1);
	/* Function mask in the control register. */
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev,
						   VFMIG_VMM_PCI_CONFIG,
						   cap + 2u, &ctl, 2),
			 0);
	ctl = htole16((uint16_t)(le16toh(ctl) | 0x4000));
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev,
						    VFMIG_VMM_PCI_CONFIG,
						    cap + 2u, &ctl, 2),
			 0);
	wr(f, REG_EVENT, 1);
	assert_int_equal(irq_count(f, 1, 100), 0);
	ctl = htole16((uint16_t)(le16toh(ctl) & ~0x4000));
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev,
						    VFMIG_VMM_PCI_CONFIG,
						    cap + 2u, &ctl, 2),
			 0);
	assert_int_equal(irq_count(f, 1, 2000), 1);
	/* SET_IRQS MASK / UNMASK through the protocol. */
	assert_int_equal(vfmig_vmm_dev_set_irq_action(f->dev,
						      VFMIG_VMM_IRQ_MSIX, 3, 1,
						      VFMIG_VMM_IRQ_MASK, NULL),
			 0);
	wr(f, REG_EVENT, 3);
	assert_int_equal(irq_count(f, 3, 100), 0);
	assert_int_equal(vfmig_vmm_dev_set_irq_action(f->dev,
						      VFMIG_VMM_IRQ_MSIX, 3, 1,
						      VFMIG_VMM_IRQ_UNMASK,
						      NULL),
			 0);
	assert_int_equal(irq_count(f, 3, 2000), 1);
	/* TRIGGER from the client raises the interrupt too. */
	assert_int_equal(vfmig_vmm_dev_set_irq_action(f->dev,
						      VFMIG_VMM_IRQ_MSIX, 0, 1,
						      VFMIG_VMM_IRQ_TRIGGER,
						      NULL),
			 0);
	assert_int_equal(irq_count(f, 0, 2000), 1);
	/* Disabling the index stops delivery. */
	assert_int_equal(vfmig_vmm_dev_irq_disable(f->dev, VFMIG_VMM_IRQ_MSIX),
			 0);
	wr(f, REG_EVENT, 0);
	assert_int_equal(irq_count(f, 0, 100), 0);
}

static void check_dma(struct fx *f, uint64_t iova, uint8_t *host,
		      uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		host[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(dma(f, iova, len, DMA_CMD_CHECKSUM), DMA_STATUS_DONE);
	assert_int_equal(rd(f, REG_DMA_RESULT), regs_fnv1a(host, len));
	wr(f, REG_DMA_PATTERN, 0x11);
	assert_int_equal(dma(f, iova, len, DMA_CMD_FILL), DMA_STATUS_DONE);
	for (uint32_t i = 0; i < len; i++)
		if (host[i] != (uint8_t)(0x11 + i))
			fail_msg("byte %u is 0x%02x after fill", i, host[i]);
}

static void test_dma_fd_and_messages(void **state)
{
	struct fx *f = *state;

	map_ram(f);
	/* Through the mmapped fd: the client never sees the writes. */
	check_dma(f, WIN_FD + 100, f->ram + 100, 300000);
	assert_int_equal(f->dirtied, 0);
	/* Through DMA_READ/DMA_WRITE messages, larger than one message. */
	check_dma(f, WIN_MSG + 8, f->ram + WIN_SIZE + 8, REGS_DMA_MAX);
	assert_int_equal(f->dirtied, REGS_DMA_MAX);
	/* A range straddling the end of a window, and an unmapped address,
	 * are refused with EFAULT, and the device carries on. */
	assert_true(dma(f, WIN_FD + WIN_SIZE - 16, 32, DMA_CMD_CHECKSUM) & DMA_STATUS_ERROR);
	assert_int_equal(rd(f, REG_DMA_ERROR), EFAULT);
	assert_true(dma(f, 0x10, 32, DMA_CMD_FILL) & DMA_STATUS_ERROR);
	assert_int_equal(rd(f, REG_DMA_ERROR), EFAULT);
	/* Unmap, and the window is gone for the device too. */
	assert_int_equal(vfmig_vmm_dev_dma_unmap(f->dev, WIN_MSG, WIN_SIZE), 0);
	assert_true(dma(f, WIN_MSG, 32, DMA_CMD_CHECKSUM) & DMA_STATUS_ERROR);
	/* Mapping over an existing window fails; a wrong unmap fails. */
	assert_true(vfmig_vmm_dev_dma_map(f->dev, WIN_FD + 4096, 4096, -1, 0,
					  f->ram + 4096,
					  VFMIG_VMM_DMA_READ) < 0);
	assert_true(vfmig_vmm_dev_dma_unmap(f->dev, WIN_FD, 4096) < 0);
	check_dma(f, WIN_FD, f->ram, 4096);
}

static void test_mmap_bar(void **state)
{
	struct fx *f = *state;
	struct vfmig_vmm_region_info ri;
	struct vfmig_vmm_mapping maps[4];
	uint8_t buf[256];
	int n;

	assert_int_equal(vfmig_vmm_dev_get_region_info(f->dev, REGS_BAR_MEM,
						       &ri),
			 0);
	n = vfmig_vmm_region_mmap(&ri, PROT_READ | PROT_WRITE, maps, 4);
	vfmig_vmm_region_info_release(&ri);
	assert_true(n >= 1);
	uint8_t *mem = maps[0].addr;
	memset(mem, 0x77, 256);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, REGS_BAR_MEM,
						   maps[0].offset, buf, 256),
			 0);
	for (int i = 0; i < 256; i++)
		assert_int_equal(buf[i], 0x77);
	memset(buf, 0x42, sizeof(buf));
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, REGS_BAR_MEM,
						    maps[0].offset + 1024, buf,
						    sizeof(buf)),
			 0);
	assert_int_equal(mem[1024], 0x42);
	assert_int_equal(mem[1024 + 255], 0x42);
	vfmig_vmm_region_munmap(maps, (size_t)n);
}

static void test_reset(void **state)
{
	struct fx *f = *state;

	wr(f, REG_SCRATCH0, 99);
	wr(f, REG_DOORBELL, 1);
	assert_int_equal(vfmig_vmm_dev_reset(f->dev), 0);
	assert_int_equal(rd(f, REG_COUNTER), 0);
	assert_int_equal(rd(f, REG_SCRATCH0), 0);
	assert_int_equal(rd(f, REG_ID), REGS_MAGIC);
}

static void test_features_refused_cleanly(void **state)
{
	struct fx *f = *state;
	uint8_t out[64] = { 0 }; /* also sent: the data write below */
	size_t out_len;
	uint64_t flags;

	/* regs migrates with STOP_COPY only; migration data commands are
	 * refused while RUNNING, and the connection stays usable. */
	assert_int_equal(vfmig_vmm_dev_feature(f->dev,
					       1 | VFMIG_VMM_FEATURE_GET, NULL,
					       0, out, sizeof(out), &out_len),
			 0);
	assert_int_equal(out_len, 8);
	memcpy(&flags, out, 8);
	assert_int_equal(flags, 1); /* STOP_COPY */
	assert_int_equal(vfmig_vmm_dev_feature(f->dev,
					       1 | VFMIG_VMM_FEATURE_PROBE |
						       VFMIG_VMM_FEATURE_SET,
					       NULL, 0, out, sizeof(out),
					       &out_len),
			 -EINVAL);
	assert_true(vfmig_vmm_dev_feature(f->dev, 0x7777 | VFMIG_VMM_FEATURE_GET,
					  NULL, 0, out, sizeof(out),
					  &out_len) < 0);
	assert_int_equal(vfmig_vmm_dev_mig_data_read(f->dev, out, 16),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(f->dev, out, 16),
			 -EINVAL);
	assert_true(vfmig_vmm_dev_connected(f->dev));
	assert_int_equal(rd(f, REG_ID), REGS_MAGIC);
}

static void test_reconnect_keeps_state(void **state)
{
	struct fx *f = *state;

	map_ram(f);
	enable_msix(f);
	wr(f, REG_SCRATCH0 + 4, 0xabcd);
	for (int i = 0; i < 5; i++)
		wr(f, REG_DOORBELL, 1);
	for (int round = 0; round < 5; round++) {
		assert_int_equal(vfmig_vmm_dev_reconnect(f->dev), 0);
		assert_int_equal(rd(f, REG_SCRATCH0 + 4), 0xabcd);
		assert_int_equal(rd(f, REG_COUNTER), 5);
		/* The old client's windows and eventfds were dropped. */
		assert_true(dma(f, WIN_FD, 64, DMA_CMD_CHECKSUM) & DMA_STATUS_ERROR);
		wr(f, REG_EVENT, 1);
		assert_int_equal(irq_count(f, 1, 100), 0);
	}
	/* Set up again, everything works. */
	map_ram(f);
	enable_msix(f);
	check_dma(f, WIN_MSG, f->ram + WIN_SIZE, 8192);
	wr(f, REG_EVENT, 1);
	assert_true(irq_count(f, 1, 2000) >= 1);
}

static void test_client_killed_midway(void **state)
{
	struct fx *f = *state;

	wr(f, REG_SCRATCH0 + 12, 0x5150);
	vfmig_vmm_dev_close(f->dev);
	f->dev = NULL;
	/* A second client process maps memory, wires IRQs and dies hard. */
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		vfmig_vmm_dev *d2;
		if (vfmig_vmm_dev_connect(f->sock, NULL, &d2) < 0)
			_exit(1);
		vfmig_vmm_dev_dma_map(d2, WIN_FD, WIN_SIZE, f->ram_fd, 0,
				      f->ram, VFMIG_VMM_DMA_READ);
		vfmig_vmm_dev_set_irq_eventfds(d2, VFMIG_VMM_IRQ_MSIX, 0,
					       f->irq, REGS_MSIX_VECTORS);
		kill(getpid(), SIGKILL);
		_exit(2);
	}
	int status;
	assert_int_equal(waitpid(c, &status, 0), c);
	assert_true(WIFSIGNALED(status));
	struct vfmig_vmm_dev_opts o = opts_for(f);
	assert_int_equal(vfmig_vmm_dev_connect(f->sock, &o, &f->dev), 0);
	assert_int_equal(rd(f, REG_SCRATCH0 + 12), 0x5150);
	assert_true(dma(f, WIN_FD, 64, DMA_CMD_CHECKSUM) & DMA_STATUS_ERROR);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_info_and_regions, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_space, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registers_and_counter,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupts_and_masking,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_dma_fd_and_messages, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mmap_bar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features_refused_cleanly,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_keeps_state,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_killed_midway,
						setup, teardown),
	};
	return cmocka_run_group_tests_name("regs-integration", tests, NULL,
					   NULL);
}
