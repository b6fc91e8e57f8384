/* SPDX-License-Identifier: MIT */
/*
 * vfmig demo: start the "regs" sample device as its own process, attach to
 * it from the VMM side through libvfmig-vmm, drive it the way a guest driver
 * would, and report every step.
 *
 * Steps: negotiate; list regions and IRQs; map 16 MiB of guest RAM (half
 * with its fd, half only through DMA_READ/DMA_WRITE messages); wire MSI-X
 * to eventfds; exercise registers, interrupts, device DMA through both
 * windows and the mappable BAR; disconnect and reconnect (device state must
 * survive); stop the device with SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vfmig/vmm.h>

#include "cli.h"
#include "regs_hw.h"

#define RAM_SIZE (16u << 20)
#define WIN_FD_IOVA 0x0ull /* first half of RAM, passed as an fd */
#define WIN_MSG_IOVA 0x40000000ull /* second half, messages only */
#define WIN_SIZE (RAM_SIZE / 2)
#define DMA_BYTES (256u << 10)

struct demo {
	bool json;
	char dir[64], sock[128];
	pid_t dev_pid;
	vfmig_vmm_dev *dev;
	uint8_t *ram;
	int ram_fd;
	int irq_fds[REGS_MSIX_VECTORS];
	uint64_t dma_msg_bytes; /* guest bytes the device moved by message */
	char detail[256];       /* what the current step found */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- device process ---- */

static int spawn_device(struct demo *d)
{
	struct stat st;

	snprintf(d->dir, sizeof(d->dir), "/tmp/vfmig-demo-XXXXXX");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/regs.sock", d->dir);
	d->dev_pid = fork();
	if (d->dev_pid < 0)
		return -errno;
	if (d->dev_pid == 0) {
		execl("/proc/self/exe", "vfmig", "device", "regs",
		      "--socket-path", d->sock, "--quiet", (char *)NULL);
		perror("vfmig demo: exec device");
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (stat(d->sock, &st) == 0)
			return 0;
		if (waitpid(d->dev_pid, NULL, WNOHANG) == d->dev_pid) {
			d->dev_pid = -1;
			return -ECHILD;
		}
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* SIGTERM the device and return its exit status (-1 if it had to be
 * killed). */
static int stop_device(struct demo *d)
{
	int status;

	if (d->dev_pid <= 0)
		return -1;
	kill(d->dev_pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(d->dev_pid, &status, WNOHANG) == d->dev_pid) {
			d->dev_pid = -1;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		usleep(10000);
	}
	kill(d->dev_pid, SIGKILL);
	waitpid(d->dev_pid, NULL, 0);
	d->dev_pid = -1;
	return -1;
}

/* ---- register helpers ---- */

static int reg_read(struct demo *d, uint32_t off, uint32_t *val)
{
	return vfmig_vmm_dev_region_read(d->dev, REGS_BAR_REGS, off, val, 4);
}

static int reg_write(struct demo *d, uint32_t off, uint32_t val)
{
	return vfmig_vmm_dev_region_write(d->dev, REGS_BAR_REGS, off, &val, 4);
}

#define TRY(expr)                                                              \
	do {                                                                   \
		int r_ = (expr);                                               \
		if (r_ < 0) {                                                  \
			snprintf(d->detail, sizeof(d->detail), "%s: %s",       \
				 #expr, vfmig_vmm_strerror(r_));               \
			return r_;                                             \
		}                                                              \
	} while (0)

#define EXPECT(cond, ...)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			snprintf(d->detail, sizeof(d->detail), __VA_ARGS__);   \
			return -EIO;                                           \
		}                                                              \
	} while (0)

/* ---- steps ---- */

static int step_connect(struct demo *d)
{
	struct vfmig_vmm_caps caps;
	struct vfmig_vmm_dev_info info;

	TRY(spawn_device(d));
	TRY(vfmig_vmm_dev_connect(d->sock, NULL, &d->dev));
	TRY(vfmig_vmm_dev_get_caps(d->dev, &caps));
	TRY(vfmig_vmm_dev_get_info(d->dev, &info));
	EXPECT(info.flags & VFMIG_VMM_DEV_FLAG_PCI, "device is not PCI");
	snprintf(d->detail, sizeof(d->detail),
		 "protocol %u.%u, max_data_xfer_size %llu, max_msg_fds %u; "
		 "%u regions, %u IRQ indexes",
		 caps.major, caps.minor,
		 (unsigned long long)caps.max_data_xfer_size, caps.max_msg_fds,
		 info.num_regions, info.num_irqs);
	return 0;
}

static int step_regions(struct demo *d)
{
	char *p = d->detail, *end = d->detail + sizeof(d->detail);

	for (uint32_t i = 0; i < 9; i++) {
		struct vfmig_vmm_region_info ri;
		TRY(vfmig_vmm_dev_get_region_info(d->dev, i, &ri));
		if (ri.size && p < end)
			p += snprintf(p, (size_t)(end - p), "%s%u:%llu%s%s",
				      p == d->detail ? "" : " ", i,
				      (unsigned long long)ri.size,
				      (ri.flags & VFMIG_VMM_REGION_MMAP) ? "+mmap"
									 : "",
				      ri.has_sparse ? "(sparse)" : "");
		vfmig_vmm_region_info_release(&ri);
	}
	return 0;
}

/* Find a PCI capability by id in config space; 0 if absent. */
static int find_cap(struct demo *d, uint8_t id, uint8_t *where)
{
	uint8_t cfg[256];

	TRY(vfmig_vmm_dev_region_read(d->dev, VFMIG_VMM_PCI_CONFIG, 0, cfg,
				      sizeof(cfg)));
	*where = 0;
	for (uint8_t pos = cfg[0x34] & 0xfc, n = 0; pos && n < 48;
	     pos = cfg[pos + 1] & 0xfc, n++)
		if (cfg[pos] == id) {
			*where = pos;
			return 0;
		}
	return 0;
}

static int step_guest_ram(struct demo *d)
{
	d->ram_fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (d->ram_fd < 0 || ftruncate(d->ram_fd, RAM_SIZE) < 0)
		TRY(-errno);
	d->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      d->ram_fd, 0);
	if (d->ram == MAP_FAILED) {
		d->ram = NULL;
		TRY(-errno);
	}
	TRY(vfmig_vmm_dev_dma_map(d->dev, WIN_FD_IOVA, WIN_SIZE, d->ram_fd, 0,
				  d->ram,
				  VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE));
	TRY(vfmig_vmm_dev_dma_map(d->dev, WIN_MSG_IOVA, WIN_SIZE, -1, 0,
				  d->ram + WIN_SIZE,
				  VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE));
	snprintf(d->detail, sizeof(d->detail),
		 "%u MiB memfd: 0x%llx+%u MiB with fd, 0x%llx+%u MiB by "
		 "message",
		 RAM_SIZE >> 20, (unsigned long long)WIN_FD_IOVA,
		 WIN_SIZE >> 20, (unsigned long long)WIN_MSG_IOVA,
		 WIN_SIZE >> 20);
	return 0;
}

static int step_msix(struct demo *d)
{
	uint8_t cap;
	uint16_t ctrl, cmd;

	for (unsigned i = 0; i < REGS_MSIX_VECTORS; i++) {
		d->irq_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->irq_fds[i] < 0)
			TRY(-errno);
	}
	TRY(vfmig_vmm_dev_set_irq_eventfds(d->dev, VFMIG_VMM_IRQ_MSIX, 0,
					   d->irq_fds, REGS_MSIX_VECTORS));
	TRY(find_cap(d, 0x11, &cap));
	EXPECT(cap, "no MSI-X capability in config space");
	TRY(vfmig_vmm_dev_region_read(d->dev, VFMIG_VMM_PCI_CONFIG, cap + 2,
				      &ctrl, 2));
	ctrl = (uint16_t)((ctrl | 0x8000) & ~0x4000); /* enable, unmask */
	TRY(vfmig_vmm_dev_region_write(d->dev, VFMIG_VMM_PCI_CONFIG, cap + 2,
				       &ctrl, 2));
	/* Table entries come out of reset masked: unmask each vector. */
	for (unsigned v = 0; v < REGS_MSIX_VECTORS; v++) {
		uint32_t vctl = 0;
		TRY(vfmig_vmm_dev_region_write(d->dev, REGS_BAR_MSIX,
					       v * 16 + 12, &vctl, 4));
	}
	/* Memory decoding and bus mastering on, as a driver would. */
	TRY(vfmig_vmm_dev_region_read(d->dev, VFMIG_VMM_PCI_CONFIG, 4, &cmd,
				      2));
	cmd |= 0x6;
	TRY(vfmig_vmm_dev_region_write(d->dev, VFMIG_VMM_PCI_CONFIG, 4, &cmd,
				       2));
	snprintf(d->detail, sizeof(d->detail),
		 "%u vectors on eventfds, MSI-X capability at 0x%02x enabled",
		 REGS_MSIX_VECTORS, cap);
	return 0;
}

/* Wait (bounded) for vector v's eventfd; returns its count or -errno. */
static int wait_irq(struct demo *d, unsigned v)
{
	struct pollfd p = { .fd = d->irq_fds[v], .events = POLLIN };
	uint64_t n;

	if (poll(&p, 1, 2000) <= 0)
		return -ETIMEDOUT;
	if (read(d->irq_fds[v], &n, sizeof(n)) != sizeof(n))
		return -EIO;
	return (int)n;
}

static int step_registers(struct demo *d)
{
	uint32_t id, before, after, scratch;

	TRY(reg_read(d, REG_ID, &id));
	EXPECT(id == REGS_MAGIC, "ID register 0x%08x, expected 0x%08x", id,
	       REGS_MAGIC);
	TRY(reg_write(d, REG_SCRATCH0 + 8, 0xdecafbad));
	TRY(reg_read(d, REG_SCRATCH0 + 8, &scratch));
	EXPECT(scratch == 0xdecafbad, "scratch read back 0x%08x", scratch);
	TRY(reg_read(d, REG_COUNTER, &before));
	for (int i = 0; i < 100; i++)
		TRY(reg_write(d, REG_DOORBELL, 1));
	TRY(reg_read(d, REG_COUNTER, &after));
	EXPECT(after - before == 100, "counter moved by %u, expected 100",
	       after - before);
	snprintf(d->detail, sizeof(d->detail),
		 "ID 0x%08x, scratch kept, 100 doorbells -> counter %u", id,
		 after);
	return 0;
}

static int step_interrupts(struct demo *d)
{
	for (unsigned v = 0; v < REGS_MSIX_VECTORS; v++) {
		TRY(reg_write(d, REG_EVENT, v));
		int n = wait_irq(d, v);
		EXPECT(n == 1, "vector %u: %s", v,
		       n < 0 ? "no interrupt within 2 s" : "wrong count");
	}
	snprintf(d->detail, sizeof(d->detail),
		 "vectors 0-%u each arrived once on their eventfd",
		 REGS_MSIX_VECTORS - 1);
	return 0;
}

/* Run one DMA command at iova and wait for its completion interrupt. */
static int run_dma(struct demo *d, uint64_t iova, uint32_t cmd,
		   uint32_t *result)
{
	uint32_t status, err;

	TRY(reg_write(d, REG_DMA_ADDR_LO, (uint32_t)iova));
	TRY(reg_write(d, REG_DMA_ADDR_HI, (uint32_t)(iova >> 32)));
	TRY(reg_write(d, REG_DMA_LEN, DMA_BYTES));
	TRY(reg_write(d, REG_DMA_CMD, cmd));
	TRY(reg_read(d, REG_DMA_STATUS, &status));
	TRY(reg_read(d, REG_DMA_ERROR, &err));
	EXPECT(status == DMA_STATUS_DONE, "DMA command %u at 0x%llx: status "
	       "%u, error %u", cmd, (unsigned long long)iova, status, err);
	int n = wait_irq(d, 0);
	EXPECT(n >= 1, "no completion interrupt for DMA command %u", cmd);
	return result ? reg_read(d, REG_DMA_RESULT, result) : 0;
}

/* Checksum and fill through one window; host is the VMM's view of it. */
static int dma_through(struct demo *d, uint64_t iova, uint8_t *host)
{
	uint32_t sum;

	for (uint32_t i = 0; i < DMA_BYTES; i++)
		host[i] = (uint8_t)(rand() & 0xff);
	TRY(run_dma(d, iova, DMA_CMD_CHECKSUM, &sum));
	EXPECT(sum == regs_fnv1a(host, DMA_BYTES),
	       "device checksum 0x%08x differs from ours", sum);
	TRY(reg_write(d, REG_DMA_PATTERN, 0x5a));
	TRY(run_dma(d, iova, DMA_CMD_FILL, NULL));
	for (uint32_t i = 0; i < DMA_BYTES; i++)
		EXPECT(host[i] == (uint8_t)(0x5a + i),
		       "guest byte %u is 0x%02x after fill", i, host[i]);
	return 0;
}

static int step_dma(struct demo *d)
{
	TRY(dma_through(d, WIN_FD_IOVA + 4096, d->ram + 4096));
	TRY(dma_through(d, WIN_MSG_IOVA + 4096, d->ram + WIN_SIZE + 4096));
	d->dma_msg_bytes += 2ull * DMA_BYTES;
	/* Outside every window: the device must refuse, not crash. */
	uint32_t status, err;
	TRY(reg_write(d, REG_DMA_ADDR_LO, 0));
	TRY(reg_write(d, REG_DMA_ADDR_HI, 0x10));
	TRY(reg_write(d, REG_DMA_CMD, DMA_CMD_CHECKSUM));
	TRY(reg_read(d, REG_DMA_STATUS, &status));
	TRY(reg_read(d, REG_DMA_ERROR, &err));
	EXPECT(status & DMA_STATUS_ERROR, "DMA outside every window "
	       "succeeded (status %u)", status);
	wait_irq(d, 0); /* completion interrupt of the failed command */
	snprintf(d->detail, sizeof(d->detail),
		 "checksum+fill of %u KiB via mmapped fd and via messages "
		 "verified; unmapped address refused (errno %u)",
		 DMA_BYTES >> 10, err);
	return 0;
}

static int step_mmap_bar(struct demo *d)
{
	struct vfmig_vmm_region_info ri;
	struct vfmig_vmm_mapping maps[4];
	uint8_t back[64];
	int n;

	TRY(vfmig_vmm_dev_get_region_info(d->dev, REGS_BAR_MEM, &ri));
	n = vfmig_vmm_region_mmap(&ri, PROT_READ | PROT_WRITE, maps, 4);
	vfmig_vmm_region_info_release(&ri);
	TRY(n);
	EXPECT(n >= 1, "BAR%u offered nothing to mmap", REGS_BAR_MEM);
	uint8_t *mem = maps[0].addr;
	for (int i = 0; i < 64; i++)
		mem[i] = (uint8_t)(0xa0 + i);
	int r = vfmig_vmm_dev_region_read(d->dev, REGS_BAR_MEM,
					  maps[0].offset, back, sizeof(back));
	vfmig_vmm_region_munmap(maps, (size_t)n);
	TRY(r);
	for (int i = 0; i < 64; i++)
		EXPECT(back[i] == (uint8_t)(0xa0 + i),
		       "REGION_READ byte %d differs from the mmapped write", i);
	snprintf(d->detail, sizeof(d->detail),
		 "BAR%u mapped (%d area%s); writes through the mapping read "
		 "back with REGION_READ",
		 REGS_BAR_MEM, n, n == 1 ? "" : "s");
	return 0;
}

static int step_reconnect(struct demo *d)
{
	uint32_t before, after, scratch;

	TRY(reg_read(d, REG_COUNTER, &before));
	TRY(vfmig_vmm_dev_reconnect(d->dev));
	TRY(reg_read(d, REG_COUNTER, &after));
	TRY(reg_read(d, REG_SCRATCH0 + 8, &scratch));
	EXPECT(after == before && scratch == 0xdecafbad,
	       "device state lost across reconnect (counter %u -> %u)", before,
	       after);
	snprintf(d->detail, sizeof(d->detail),
		 "new connection negotiated; counter %u and scratch kept",
		 after);
	return 0;
}

static int step_shutdown(struct demo *d)
{
	vfmig_vmm_dev_close(d->dev);
	d->dev = NULL;
	int status = stop_device(d);
	EXPECT(status == 0, "device exit status %d after SIGTERM", status);
	snprintf(d->detail, sizeof(d->detail),
		 "device exited 0 on SIGTERM");
	return 0;
}

struct step {
	const char *name;
	int (*run)(struct demo *d);
};

static const struct step steps[] = {
	{ "connect", step_connect },	 { "regions", step_regions },
	{ "guest-ram", step_guest_ram }, { "msix", step_msix },
	{ "registers", step_registers }, { "interrupts", step_interrupts },
	{ "dma", step_dma },		 { "mmap-bar", step_mmap_bar },
	{ "reconnect", step_reconnect }, { "shutdown", step_shutdown },
};

static void cleanup(struct demo *d)
{
	char cmd[96];

	vfmig_vmm_dev_close(d->dev);
	stop_device(d);
	for (unsigned i = 0; i < REGS_MSIX_VECTORS; i++)
		if (d->irq_fds[i] >= 0)
			close(d->irq_fds[i]);
	if (d->ram)
		munmap(d->ram, RAM_SIZE);
	if (d->ram_fd >= 0)
		close(d->ram_fd);
	if (d->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "vfmig demo: could not remove %s\n",
				d->dir);
	}
}

static void print_json(const struct demo *d, bool ok, double total,
		       const char *error)
{
	struct json_object *o = json_object_new_object();
	struct json_object *bytes = json_object_new_object();

	/* The keys of ../shared/DESIGN.md. This demo does not migrate yet:
	 * no downtime, no rounds, and no RAM or device-state bytes moved. */
	json_object_object_add(o, "verified", json_object_new_boolean(ok));
	json_object_object_add(o, "total_ms", json_object_new_double(total));
	json_object_object_add(o, "downtime_ms", NULL);
	json_object_object_add(o, "rounds", json_object_new_int(0));
	json_object_object_add(bytes, "ram", json_object_new_int(0));
	json_object_object_add(bytes, "device", json_object_new_int(0));
	json_object_object_add(bytes, "overhead", json_object_new_int(0));
	json_object_object_add(o, "bytes", bytes);
	json_object_object_add(o, "throughput_mbps", NULL);
	json_object_object_add(o, "dma_message_bytes",
			       json_object_new_uint64(d->dma_msg_bytes));
	json_object_object_add(o, "error",
			       error ? json_object_new_string(error) : NULL);
	printf("%s\n",
	       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

int cmd_demo(int argc, char **argv)
{
	struct demo d = { .ram_fd = -1, .dev_pid = -1 };
	char error[400] = "";
	double t0 = now_ms();
	bool ok = true;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			d.json = true;
		else {
			fprintf(stderr, "vfmig demo: unknown option '%s'\n"
					"usage: vfmig demo [--json]\n",
				argv[i]);
			return 2;
		}
	}
	for (unsigned i = 0; i < REGS_MSIX_VECTORS; i++)
		d.irq_fds[i] = -1;
	srand(1);
	printf("vfmig demo: sample device \"regs\" driven over vfio-user\n");
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		d.detail[0] = '\0';
		double s = now_ms();
		int r = steps[i].run(&d);
		printf("  %-11s %s %7.2f ms  %s\n", steps[i].name,
		       r < 0 ? "FAIL" : "ok  ", now_ms() - s, d.detail);
		if (r < 0) {
			snprintf(error, sizeof(error), "%s: %s", steps[i].name,
				 d.detail);
			ok = false;
			break;
		}
	}
	cleanup(&d);
	double total = now_ms() - t0;
	printf("result: %s in %.1f ms\n", ok ? "verified" : "FAILED", total);
	if (d.json)
		print_json(&d, ok, total, ok ? NULL : error);
	return ok ? 0 : 1;
}
