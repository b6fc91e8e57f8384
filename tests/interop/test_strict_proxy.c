/* SPDX-License-Identifier: MIT */
/*
 * vfmig-strict-proxy in front of a real `vfmig device regs`, driven with
 * libvfmig-vmm: commands pass in RUNNING, are refused with EINVAL in STOP
 * (all but region access, DEVICE_FEATURE, MIG_DATA_READ) and STOP_COPY
 * (region access too), and pass again back in RUNNING; fds travel both
 * ways (DMA_MAP, SET_IRQS, the GET_REGION_INFO reply); a reset is tracked
 * as RUNNING; the state outlives a client; the log names every refusal.
 * Real processes over real sockets; every child is stopped and must exit 0.
 */
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/vmm_mig.h>

#include "harness.h"
#include "regs_hw.h"

#define RAM_SIZE (1u << 20)
#define IOVA 0x100000ull

struct fx {
	char dev_sock[256], proxy_sock[256], log[256];
	pid_t dev_pid, proxy_pid;
	vfmig_vmm_dev *dev;
	uint64_t dirtied; /* bytes the device wrote by DMA_WRITE message */
};

static void on_dma_write(void *priv, uint64_t iova, uint64_t len)
{
	struct fx *f = priv;
	(void)iova;
	f->dirtied += len;
}

static int connect_proxy(struct fx *f)
{
	struct vfmig_vmm_dev_opts o = {
		.version = VFMIG_VMM_OPTS_VERSION,
		.on_dma_write = on_dma_write,
		.priv = f,
	};
	return vfmig_vmm_dev_connect(f->proxy_sock, &o, &f->dev);
}

static int setup(void **state)
{
	static int n;
	const char *bin = getenv("VFMIG_STRICT_PROXY");
	struct fx *f = calloc(1, sizeof(*f));
	char name[32];

	if (!f || !bin) {
		fprintf(stderr, "VFMIG_STRICT_PROXY is not set\n");
		return -1;
	}
	snprintf(name, sizeof(name), "regs%d.sock", n);
	snprintf(f->dev_sock, sizeof(f->dev_sock), "%s", harness_path(name));
	snprintf(name, sizeof(name), "proxy%d.sock", n);
	snprintf(f->proxy_sock, sizeof(f->proxy_sock), "%s", harness_path(name));
	snprintf(name, sizeof(name), "proxy%d.refusals", n);
	snprintf(f->log, sizeof(f->log), "%s", harness_path(name));
	snprintf(name, sizeof(name), "proxy%d", n++);
	*state = f;
	f->dev_pid = harness_spawn_device("regs", f->dev_sock, NULL);
	if (f->dev_pid < 0)
		return -1;
	const char *const argv[] = { bin, "--listen", f->proxy_sock,
				     "--device", f->dev_sock, "--log", f->log,
				     NULL };
	f->proxy_pid = harness_spawn(name, argv, f->proxy_sock);
	if (f->proxy_pid < 0)
		return -1;
	return connect_proxy(f) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct stat st;
	int rc = 0;

	vfmig_vmm_dev_close(f->dev);
	/* SIGTERM: exit 0 and the listening socket is gone. */
	if (harness_stop(f->proxy_pid) != 0 || stat(f->proxy_sock, &st) == 0) {
		fprintf(stderr, "proxy did not exit cleanly\n");
		rc = -1;
	}
	if (harness_stop(f->dev_pid) != 0) {
		fprintf(stderr, "device did not exit cleanly\n");
		rc = -1;
	}
	free(f);
	return rc;
}

/* The whole log, NUL-terminated (static storage). */
static const char *log_text(struct fx *f)
{
	static char text[8192];
	FILE *l = fopen(f->log, "r");
	size_t n = 0;

	if (l) {
		n = fread(text, 1, sizeof(text) - 1, l);
		fclose(l);
	}
	text[n] = '\0';
	return text;
}

static void expect_log(struct fx *f, const char *line)
{
	char want[128];

	snprintf(want, sizeof(want), "%s\n", line);
	if (!strstr(log_text(f), want))
		fail_msg("the proxy log lacks \"%s\":\n%s", line, log_text(f));
}

static void go(struct fx *f, uint32_t target)
{
	uint32_t final;

	assert_int_equal(vfmig_vmm_mig_set_state(f->dev, target,
						 VFMIG_VMM_MIG_ERROR, &final),
			 0);
	assert_int_equal(final, target);
}

static uint32_t dev_state(struct fx *f)
{
	uint32_t s = 0;

	assert_int_equal(vfmig_vmm_mig_get_state(f->dev, &s), 0);
	return s;
}

static uint16_t vendor(struct fx *f)
{
	uint16_t v = 0;

	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, VFMIG_VMM_PCI_CONFIG,
						   0, &v, 2),
			 0);
	return v;
}

/* Every command the tests gate works. */
static void expect_all_pass(struct fx *f)
{
	struct vfmig_vmm_dev_info info;
	struct vfmig_vmm_irq_info ii;
	struct vfmig_vmm_region_info ri;

	assert_int_equal(vfmig_vmm_dev_get_info(f->dev, &info), 0);
	assert_true(info.flags & VFMIG_VMM_DEV_FLAG_PCI);
	assert_int_equal(vfmig_vmm_dev_get_irq_info(f->dev, VFMIG_VMM_IRQ_MSIX,
						    &ii),
			 0);
	assert_int_equal(vfmig_vmm_dev_get_region_info(f->dev,
						       VFMIG_VMM_PCI_CONFIG,
						       &ri),
			 0);
	vfmig_vmm_region_info_release(&ri);
	assert_int_equal(vendor(f), REGS_VENDOR_ID);
	assert_int_equal(vfmig_vmm_dev_reset(f->dev), 0);
}

static void test_running_passes(void **state)
{
	struct fx *f = *state;

	expect_all_pass(f);
	assert_int_equal(dev_state(f), VFMIG_VMM_MIG_RUNNING);
	assert_string_equal(log_text(f), "");
}

/* STOP: region access, DEVICE_FEATURE and MIG_DATA_READ only. */
static void test_stop(void **state)
{
	struct fx *f = *state;
	struct vfmig_vmm_dev_info info;
	struct vfmig_vmm_irq_info ii;
	struct vfmig_vmm_region_info ri;
	uint32_t id = 0;
	uint16_t cmd, back = 0;
	int efd = eventfd(0, EFD_CLOEXEC), ram = memfd_create("ram", MFD_CLOEXEC);

	assert_true(efd >= 0 && ram >= 0);
	assert_int_equal(ftruncate(ram, RAM_SIZE), 0);
	go(f, VFMIG_VMM_MIG_STOP);
	expect_log(f, "state RUNNING -> STOP");

	assert_int_equal(vfmig_vmm_dev_get_info(f->dev, &info), -EINVAL);
	assert_int_equal(vfmig_vmm_dev_get_region_info(f->dev, 0, &ri), -EINVAL);
	assert_int_equal(vfmig_vmm_dev_get_irq_info(f->dev, VFMIG_VMM_IRQ_MSIX,
						    &ii),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_set_irq_eventfds(f->dev,
							VFMIG_VMM_IRQ_MSIX, 0,
							&efd, 1),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_dma_map(f->dev, IOVA, RAM_SIZE, ram, 0,
					       NULL, VFMIG_VMM_DMA_READ),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_reset(f->dev), -EINVAL);
	/* An error reply, not a broken connection. */
	assert_true(vfmig_vmm_dev_connected(f->dev));

	/* Region access and DEVICE_FEATURE reach the device. */
	assert_int_equal(vendor(f), REGS_VENDOR_ID);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, REGS_BAR_REGS,
						   REG_ID, &id, 4),
			 0);
	assert_int_equal(id, REGS_MAGIC);
	/* The library's config space takes writes in STOP (the device's own
	 * registers would answer EBUSY: frozen for migration). */
	cmd = 0x6;
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, VFMIG_VMM_PCI_CONFIG,
						    4, &cmd, 2),
			 0);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, VFMIG_VMM_PCI_CONFIG,
						   4, &back, 2),
			 0);
	assert_int_equal(back & 0x6, 0x6);
	assert_int_equal(dev_state(f), VFMIG_VMM_MIG_STOP);

	go(f, VFMIG_VMM_MIG_RUNNING);
	expect_log(f, "state STOP -> RUNNING");
	expect_all_pass(f);
	assert_int_equal(vfmig_vmm_dev_dma_map(f->dev, IOVA, RAM_SIZE, ram, 0,
					       NULL, VFMIG_VMM_DMA_READ),
			 0);

	expect_log(f, "refused DEVICE_GET_INFO in STOP");
	expect_log(f, "refused DEVICE_GET_REGION_INFO in STOP");
	expect_log(f, "refused DEVICE_GET_IRQ_INFO in STOP");
	expect_log(f, "refused DEVICE_SET_IRQS in STOP");
	expect_log(f, "refused DMA_MAP in STOP");
	expect_log(f, "refused DEVICE_RESET in STOP");
	assert_null(strstr(log_text(f), "refused REGION"));
	assert_null(strstr(log_text(f), "refused DEVICE_FEATURE"));
	close(efd);
	close(ram);
}

/* STOP_COPY: DEVICE_FEATURE and MIG_DATA_READ only. */
static void test_stop_copy(void **state)
{
	struct fx *f = *state;
	struct vfmig_vmm_dev_info info;
	uint8_t buf[4096];
	uint16_t v = 0;
	int n;

	go(f, VFMIG_VMM_MIG_STOP_COPY);
	expect_log(f, "state RUNNING -> STOP_COPY");
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, VFMIG_VMM_PCI_CONFIG,
						   0, &v, 2),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, VFMIG_VMM_PCI_CONFIG,
						    0, &v, 2),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_get_info(f->dev, &info), -EINVAL);
	assert_int_equal(vfmig_vmm_dev_reset(f->dev), -EINVAL);
	assert_int_equal(dev_state(f), VFMIG_VMM_MIG_STOP_COPY);
	n = vfmig_vmm_dev_mig_data_read(f->dev, buf, sizeof(buf));
	assert_true(n > 0); /* the regs device always has state to save */

	go(f, VFMIG_VMM_MIG_RUNNING);
	expect_log(f, "state STOP_COPY -> RUNNING");
	expect_all_pass(f);
	expect_log(f, "refused REGION_READ in STOP_COPY");
	expect_log(f, "refused REGION_WRITE in STOP_COPY");
	expect_log(f, "refused DEVICE_GET_INFO in STOP_COPY");
	expect_log(f, "refused DEVICE_RESET in STOP_COPY");
	assert_null(strstr(log_text(f), "refused MIG_DATA_READ"));
	assert_null(strstr(log_text(f), "refused DEVICE_FEATURE"));
}

static void wr(struct fx *f, uint32_t off, uint32_t v)
{
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, REGS_BAR_REGS, off,
						    &v, 4),
			 0);
}

static uint32_t rd(struct fx *f, uint32_t off)
{
	uint32_t v = 0xffffffff;

	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, REGS_BAR_REGS, off,
						   &v, 4),
			 0);
	return v;
}

/* MSI-X on eventfds through SET_IRQS, enabled and unmasked. */
static void enable_msix(struct fx *f, const int *efd)
{
	uint8_t cfg[256], cap = 0;
	uint16_t ctl;
	uint32_t zero = 0;

	assert_int_equal(vfmig_vmm_dev_set_irq_eventfds(f->dev,
							VFMIG_VMM_IRQ_MSIX, 0,
							efd, REGS_MSIX_VECTORS),
			 0);
	assert_int_equal(vfmig_vmm_dev_region_read(f->dev, VFMIG_VMM_PCI_CONFIG,
						   0, cfg, sizeof(cfg)),
			 0);
	for (uint8_t p = cfg[0x34], k = 0; p && k < 48; p = cfg[p + 1], k++)
		if (cfg[p] == 0x11)
			cap = p;
	assert_true(cap != 0);
	memcpy(&ctl, cfg + cap + 2, 2);
	ctl = (uint16_t)(ctl | 0x8000);
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, VFMIG_VMM_PCI_CONFIG,
						    cap + 2u, &ctl, 2),
			 0);
	for (unsigned v = 0; v < REGS_MSIX_VECTORS; v++)
		assert_int_equal(vfmig_vmm_dev_region_write(f->dev, REGS_BAR_MSIX,
							    v * 16 + 12, &zero,
							    4),
				 0);
}

/* fds cross the proxy both ways. */
static void test_fds_forwarded(void **state)
{
	struct fx *f = *state;
	struct vfmig_vmm_region_info ri;
	struct vfmig_vmm_mapping map[4];
	struct pollfd p;
	int efd[REGS_MSIX_VECTORS], ram = memfd_create("ram", MFD_CLOEXEC);
	uint32_t word = 0xc0ffee11;
	uint64_t count = 0;
	uint8_t *mem;

	/* DMA_MAP with an fd: the device fills guest memory through its own
	 * mapping. No vaddr is given, so a device without the fd (falling
	 * back to DMA_WRITE messages) would fail the command. */
	assert_true(ram >= 0);
	assert_int_equal(ftruncate(ram, RAM_SIZE), 0);
	mem = mmap(NULL, RAM_SIZE, PROT_READ, MAP_SHARED, ram, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(vfmig_vmm_dev_dma_map(f->dev, IOVA, RAM_SIZE, ram, 0,
					       NULL,
					       VFMIG_VMM_DMA_READ |
						       VFMIG_VMM_DMA_WRITE),
			 0);
	wr(f, REG_DMA_PATTERN, 0x40);
	wr(f, REG_DMA_ADDR_LO, (uint32_t)IOVA + 4096);
	wr(f, REG_DMA_ADDR_HI, 0);
	wr(f, REG_DMA_LEN, 8192);
	wr(f, REG_DMA_CMD, DMA_CMD_FILL);
	assert_int_equal(rd(f, REG_DMA_STATUS), DMA_STATUS_DONE);
	for (uint32_t i = 0; i < 8192; i++)
		assert_int_equal(mem[4096 + i], (uint8_t)(0x40 + i));
	assert_int_equal(f->dirtied, 0);

	/* The mappable BAR's fd comes back in the GET_REGION_INFO reply and
	 * maps the device's own memory. */
	assert_int_equal(vfmig_vmm_dev_get_region_info(f->dev, REGS_BAR_MEM,
						       &ri),
			 0);
	assert_true(ri.fd >= 0);
	assert_int_equal(vfmig_vmm_dev_region_write(f->dev, REGS_BAR_MEM, 64,
						    &word, 4),
			 0);
	int nmaps = vfmig_vmm_region_mmap(&ri, PROT_READ, map, 4);
	assert_true(nmaps >= 1);
	assert_true(map[0].offset <= 64 && 68 <= map[0].offset + map[0].size);
	assert_memory_equal((uint8_t *)map[0].addr + 64 - map[0].offset, &word,
			    4);
	vfmig_vmm_region_munmap(map, (size_t)nmaps);
	vfmig_vmm_region_info_release(&ri);

	/* SET_IRQS carries eventfds: the device's interrupt arrives. */
	for (unsigned v = 0; v < REGS_MSIX_VECTORS; v++)
		efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	enable_msix(f, efd);
	while (read(efd[0], &count, 8) == 8) /* the fill's completion */
		;
	wr(f, REG_EVENT, 2);
	p = (struct pollfd){ .fd = efd[2], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(efd[2], &count, 8), 8);
	assert_int_equal(count, 1);

	assert_string_equal(log_text(f), "");
	for (unsigned v = 0; v < REGS_MSIX_VECTORS; v++)
		close(efd[v]);
	munmap(mem, RAM_SIZE);
	close(ram);
}

/* A successful DEVICE_RESET puts the device, and the proxy, in RUNNING. */
static void test_reset_is_running(void **state)
{
	struct fx *f = *state;
	struct vfmig_vmm_dev_info info;

	go(f, VFMIG_VMM_MIG_RESUMING);
	expect_log(f, "state RUNNING -> RESUMING");
	assert_int_equal(vfmig_vmm_dev_get_info(f->dev, &info), 0);
	assert_int_equal(vfmig_vmm_dev_reset(f->dev), 0);
	/* Learnt from the reset reply, before any GET. */
	expect_log(f, "state RESUMING -> RUNNING");
	assert_int_equal(dev_state(f), VFMIG_VMM_MIG_RUNNING);
	go(f, VFMIG_VMM_MIG_STOP);
	assert_int_equal(vfmig_vmm_dev_reset(f->dev), -EINVAL);
	go(f, VFMIG_VMM_MIG_RUNNING);
	assert_null(strstr(log_text(f), "refused DEVICE_GET_INFO"));
}

/* One client after another; the device's state outlives a connection. */
static void test_next_client(void **state)
{
	struct fx *f = *state;
	struct vfmig_vmm_dev_info info;

	go(f, VFMIG_VMM_MIG_STOP);
	vfmig_vmm_dev_close(f->dev);
	f->dev = NULL;
	assert_int_equal(connect_proxy(f), 0);
	assert_int_equal(vfmig_vmm_dev_get_info(f->dev, &info), -EINVAL);
	assert_int_equal(dev_state(f), VFMIG_VMM_MIG_STOP);
	go(f, VFMIG_VMM_MIG_RUNNING);
	expect_all_pass(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_running_passes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_forwarded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_is_running, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_next_client, setup,
						teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("strict-proxy", tests, NULL, NULL);
}
