/* SPDX-License-Identifier: MIT */
/*
 * The "pci" type between two real `vfmig device regs` processes A and B:
 * A is programmed like a driver would (command, BARs, MSI, MSI-X table with
 * some vectors masked, MSI-X enabled); its PCI state is saved through the
 * type registry, encoded through the field table, decoded and loaded into B.
 * Then B's config space and MSI-X table equal A's, and an MSI-X interrupt
 * raised on B arrives on the eventfd bound after rewiring.
 *
 * The restore ORDER is checked on the wire: B is reached through a logging
 * proxy (a thread forwarding bytes and fds between the VMM library's
 * socketpair end and B's socket) that records every REGION_WRITE. Replaying
 * that log over a model of the command, MSI and MSI-X control registers
 * shows that no BAR was written while memory or I/O decoding was on, no MSI
 * address/data while MSI could fire, and no MSI-X table entry while the
 * function was not masked; and that the final values are the source's.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/vmm.h>

#include "engine/typereg.h"
#include "harness.h"
#include "pci/pci_state.h"
#include "regs_hw.h"

#define CFG_SIZE 4096u
#define CMD_IO 0x1u
#define CMD_MEM 0x2u

/* ---- logging proxy ---- */

struct wlog {
	uint32_t region, count;
	uint64_t offset;
	uint8_t data[8]; /* first bytes */
};

struct proxy {
	int client, server;
	pthread_t thread;
	pthread_mutex_t lock;
	struct wlog log[1024];
	size_t nlog;
	uint8_t acc[1 << 20]; /* client->server bytes not yet parsed */
	size_t nacc;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Records the REGION_WRITE commands among the client's complete messages. */
static void parse(struct proxy *p)
{
	size_t off = 0;

	while (p->nacc - off >= 16) {
		const uint8_t *h = p->acc + off;
		uint32_t size = le32(h + 4);
		uint16_t cmd = (uint16_t)(h[2] | h[3] << 8);
		if (size < 16 || size > sizeof(p->acc))
			fail_msg("proxy: bad message size %u", size);
		if (p->nacc - off < size)
			break;
		if (cmd == 10 && (le32(h + 8) & 0xf) == 0 && size >= 32 &&
		    p->nlog < sizeof(p->log) / sizeof(p->log[0])) {
			struct wlog *w = &p->log[p->nlog++];
			w->offset = le32(h + 16) | (uint64_t)le32(h + 20) << 32;
			w->region = le32(h + 24);
			w->count = le32(h + 28);
			memcpy(w->data, h + 32, size - 32 < 8 ? size - 32 : 8);
		}
		off += size;
	}
	memmove(p->acc, p->acc + off, p->nacc - off);
	p->nacc -= off;
}

/* Moves one chunk (with its fds) from -> to. Returns false at the end. */
static bool forward(struct proxy *p, int from, int to)
{
	static uint8_t buf[256 << 10];
	union { char b[CMSG_SPACE(64 * sizeof(int))]; struct cmsghdr align; } c;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b,
			    .msg_controllen = sizeof(c.b) };
	ssize_t n = recvmsg(from, &m, MSG_CMSG_CLOEXEC);
	int fds[64], nfd = 0;

	if (n <= 0)
		return false;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			nfd = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(h), (size_t)nfd * sizeof(int));
		}
	if (from == p->client) {
		pthread_mutex_lock(&p->lock);
		if (p->nacc + (size_t)n <= sizeof(p->acc)) {
			memcpy(p->acc + p->nacc, buf, (size_t)n);
			p->nacc += (size_t)n;
			parse(p);
		}
		pthread_mutex_unlock(&p->lock);
	}
	struct iovec out = { buf, (size_t)n };
	struct msghdr sm = { .msg_iov = &out, .msg_iovlen = 1 };
	union { char b[CMSG_SPACE(64 * sizeof(int))]; struct cmsghdr align; } sc;
	if (nfd) {
		memset(&sc, 0, sizeof(sc)); /* the padding after the fds is sent */
		sm.msg_control = sc.b;
		sm.msg_controllen = CMSG_SPACE((size_t)nfd * sizeof(int));
		struct cmsghdr *h = CMSG_FIRSTHDR(&sm);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
		memcpy(CMSG_DATA(h), fds, (size_t)nfd * sizeof(int));
	}
	bool ok = sendmsg(to, &sm, MSG_NOSIGNAL) == n;
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	return ok;
}

static void *proxy_run(void *arg)
{
	struct proxy *p = arg;

	for (;;) {
		struct pollfd f[2] = { { p->client, POLLIN, 0 }, { p->server, POLLIN, 0 } };
		if (poll(f, 2, -1) < 0)
			break;
		if (f[0].revents && !forward(p, p->client, p->server))
			break;
		if (f[1].revents && !forward(p, p->server, p->client))
			break;
	}
	close(p->client);
	close(p->server);
	return NULL;
}

/* Connects to the device at path through a new proxy; *dev is the VMM end. */
static struct proxy *proxy_connect(const char *path, vfmig_vmm_dev **dev)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sv[2];

	assert_non_null(p);
	pthread_mutex_init(&p->lock, NULL);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	p->server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(p->server, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->client = sv[1];
	assert_int_equal(pthread_create(&p->thread, NULL, proxy_run, p), 0);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(sv[0], NULL, dev), 0);
	return p;
}

static void proxy_join(struct proxy *p)
{
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- fixture ---- */

struct fx {
	pid_t pa, pb;
	char sa[256], sb[256];
	vfmig_vmm_dev *a, *b;
	struct proxy *proxy;
	struct vfmig_typereg *reg;
	int irq[REGS_MSIX_VECTORS];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->sa, sizeof(f->sa), "%s", harness_path("a.sock"));
	snprintf(f->sb, sizeof(f->sb), "%s", harness_path("b.sock"));
	f->pa = harness_spawn_device("regs", f->sa, NULL);
	f->pb = harness_spawn_device("regs", f->sb, NULL);
	if (f->pa < 0 || f->pb < 0)
		return -1;
	if (vfmig_vmm_dev_connect(f->sa, NULL, &f->a) < 0)
		return -1;
	f->proxy = proxy_connect(f->sb, &f->b);
	if (vfmig_typereg_create(&f->reg) < 0 || vfmig_pci_type_register(f->reg) < 0)
		return -1;
	for (unsigned i = 0; i < REGS_MSIX_VECTORS; i++)
		f->irq[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int sa, sb;

	vfmig_vmm_dev_close(f->a);
	vfmig_vmm_dev_close(f->b);
	proxy_join(f->proxy);
	vfmig_typereg_destroy(f->reg);
	sa = harness_stop(f->pa);
	sb = harness_stop(f->pb);
	for (unsigned i = 0; i < REGS_MSIX_VECTORS; i++)
		close(f->irq[i]);
	free(f);
	return sa == 0 && sb == 0 ? 0 : -1;
}

/* n little-endian bytes of config space, whatever the host. */
static void cfg_wr(vfmig_vmm_dev *d, uint32_t off, uint32_t v, unsigned n)
{
	uint8_t b[4];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(vfmig_vmm_dev_region_write(d, VFMIG_VMM_PCI_CONFIG, off, b, n), 0);
}

static uint32_t cfg_rd(vfmig_vmm_dev *d, uint32_t off, unsigned n)
{
	uint8_t b[4];
	uint32_t v = 0;

	assert_int_equal(vfmig_vmm_dev_region_read(d, VFMIG_VMM_PCI_CONFIG, off, b, n), 0);
	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint8_t find_cap(vfmig_vmm_dev *d, uint8_t id)
{
	for (uint8_t p = (uint8_t)cfg_rd(d, 0x34, 1), n = 0; p && n < 48;
	     p = (uint8_t)cfg_rd(d, p + 1u, 1), n++)
		if (cfg_rd(d, p, 1) == id)
			return p;
	fail_msg("capability 0x%x missing", id);
	return 0;
}

/* Program A as a driver would: with MSI-X (use_msi false) or with MSI
 * enabled and unmasked instead. */
static void program_source(vfmig_vmm_dev *a, uint8_t msi, uint8_t msix, bool use_msi)
{
	cfg_wr(a, 0x10, 0xfebf0000u, 4);           /* BAR0 */
	cfg_wr(a, 0x18, 0x00000000u, 4);           /* BAR2/3: 64-bit */
	cfg_wr(a, 0x1c, 0x00000001u, 4);
	cfg_wr(a, 0x20, 0xfebf1000u, 4);           /* BAR4 (MSI-X) */
	cfg_wr(a, 0x0c, 0x10, 1);                  /* cache line */
	cfg_wr(a, 0x3c, 11, 1);                    /* interrupt line */
	/* MSI programmed but not enabled (the driver uses MSI-X), vector
	 * masked. Layout: 64-bit with per-vector masking. */
	cfg_wr(a, msi + 4u, 0xfee00000u, 4);
	cfg_wr(a, msi + 8u, 0x00000000u, 4);
	cfg_wr(a, msi + 12u, 0x4041, 2);
	cfg_wr(a, msi + 16u, 1, 4);
	/* MSI-X table: vectors 1 and 3 masked, 0 and 2 live. */
	for (uint32_t v = 0; v < REGS_MSIX_VECTORS; v++) {
		uint32_t e[4] = { htole32(0xfee00000u + v * 0x1000), 0,
				  htole32(0x4020 + v), htole32(v & 1) };
		assert_int_equal(vfmig_vmm_dev_region_write(a, REGS_BAR_MSIX, v * 16, e, 16), 0);
	}
	if (use_msi) {
		cfg_wr(a, msi + 16u, 0, 4);        /* unmasked */
		cfg_wr(a, msi + 2u, 0x0001, 2);    /* MSI enable */
	} else {
		cfg_wr(a, msix + 2u, 0x8000, 2);   /* MSI-X enable */
	}
	cfg_wr(a, 0x04, 0x0406, 2);                /* MEM | bus master | INTx off */
}

/* Replays the proxy's log of writes to B; see the file comment. */
static void check_order(struct fx *f, uint8_t msi, uint8_t msix, uint16_t src_cmd,
			uint16_t src_msix_ctrl, uint16_t src_msi_ctrl, uint32_t src_msi_mask)
{
	uint16_t cmd = 0, msi_ctrl = 0, msix_ctrl = 0;
	uint32_t msi_mask = 0;
	unsigned bars = 0, table = 0, msi_regs = 0;

	pthread_mutex_lock(&f->proxy->lock);
	for (size_t i = 0; i < f->proxy->nlog; i++) {
		const struct wlog *w = &f->proxy->log[i];
		uint64_t s = w->offset, e = w->offset + w->count;
		uint32_t v = le32(w->data);
		if (w->region == REGS_BAR_MSIX && s < REGS_MSIX_VECTORS * 16u) {
			if (!(msix_ctrl & VFMIG_PCI_MSIX_CTRL_MASKALL))
				fail_msg("MSI-X table written with control 0x%04x", msix_ctrl);
			table++;
			continue;
		}
		if (w->region != VFMIG_VMM_PCI_CONFIG)
			continue;
		if (s == 4 && w->count >= 2)
			cmd = (uint16_t)v;
		if ((s < 0x28 && e > 0x10) || (s < 0x34 && e > 0x30)) {
			if (cmd & (CMD_MEM | CMD_IO))
				fail_msg("BAR at 0x%llx written with command 0x%04x",
					 (unsigned long long)s, cmd);
			bars++;
		}
		if (s == msi + 2u)
			msi_ctrl = (uint16_t)v;
		if (s == msi + 16u)
			msi_mask = v;
		if (s >= msi + 4u && s < msi + 14u) {
			if ((msi_ctrl & VFMIG_PCI_MSI_CTRL_ENABLE) && (msi_mask & 1) != 1)
				fail_msg("MSI address/data written while live");
			msi_regs++;
		}
		if (s == msix + 2u)
			msix_ctrl = (uint16_t)v;
	}
	pthread_mutex_unlock(&f->proxy->lock);
	assert_int_equal(bars, 7); /* 6 BARs and the ROM BAR */
	assert_int_equal(table, 1);
	assert_int_equal(msi_regs, 3);
	assert_int_equal(cmd, src_cmd);          /* re-enabled as on the source */
	assert_int_equal(msix_ctrl, src_msix_ctrl);
	assert_int_equal(msi_ctrl, src_msi_ctrl);
	assert_int_equal(msi_mask, src_msi_mask);
}

static uint64_t irq_count(struct fx *f, unsigned v, int ms)
{
	struct pollfd p = { .fd = f->irq[v], .events = POLLIN };
	uint64_t n = 0;

	if (poll(&p, 1, ms) == 1)
		assert_int_equal(read(f->irq[v], &n, 8), 8);
	return n;
}

static void raise_on(vfmig_vmm_dev *d, uint32_t vector)
{
	vector = htole32(vector);
	assert_int_equal(vfmig_vmm_dev_region_write(d, REGS_BAR_REGS, REG_EVENT, &vector, 4), 0);
}

static void test_save_load_rewire(void **state)
{
	struct fx *f = *state;
	const struct vfmig_type_ops *ops = vfmig_typereg_find(f->reg, "pci");
	uint8_t msi = find_cap(f->a, 0x05), msix = find_cap(f->a, 0x11);
	uint8_t *ca = malloc(CFG_SIZE), *cb = malloc(CFG_SIZE), *enc;
	uint8_t ta[REGS_MSIX_VECTORS * 16], tb[REGS_MSIX_VECTORS * 16];
	size_t len;
	char err[256] = "";

	assert_non_null(ops);
	program_source(f->a, msi, msix, false);
	assert_int_equal(vfmig_vmm_dev_region_read(f->a, VFMIG_VMM_PCI_CONFIG, 0, ca, CFG_SIZE), 0);
	assert_int_equal(vfmig_vmm_dev_region_read(f->a, REGS_BAR_MSIX, 0, ta, sizeof(ta)), 0);
	/* B starts from reset: different from A, so equality below means something. */
	assert_int_equal(vfmig_vmm_dev_region_read(f->b, VFMIG_VMM_PCI_CONFIG, 0, cb, CFG_SIZE), 0);
	assert_memory_not_equal(ca, cb, CFG_SIZE);

	/* Save through the type, encode through its field table. */
	if (vfmig_type_save_encoded(ops, f->a, &enc, &len, err, sizeof(err)) < 0)
		fail_msg("save: %s", err);
	/* Decode, check identity, load into B. */
	struct vfmig_pci_state *s = vfmig_type_state_new(ops);
	assert_non_null(s);
	f->proxy->nlog = 0;
	if (vfmig_type_decode_load(ops, f->b, enc, len, s, err, sizeof(err)) < 0)
		fail_msg("load: %s", err);
	free(enc);

	/* B's config space and MSI-X table are A's. */
	assert_int_equal(vfmig_vmm_dev_region_read(f->b, VFMIG_VMM_PCI_CONFIG, 0, cb, CFG_SIZE), 0);
	for (unsigned i = 0; i < CFG_SIZE; i++)
		if (ca[i] != cb[i])
			fail_msg("config byte 0x%x: 0x%02x on A, 0x%02x on B", i, ca[i], cb[i]);
	assert_int_equal(vfmig_vmm_dev_region_read(f->b, REGS_BAR_MSIX, 0, tb, sizeof(tb)), 0);
	assert_memory_equal(ta, tb, sizeof(ta));
	uint16_t msi_ctrl = (uint16_t)cfg_rd(f->a, msi + 2u, 2);
	check_order(f, msi, msix, 0x0406, 0x8000 | (REGS_MSIX_VECTORS - 1), msi_ctrl, 1);

	/* Rewire as the state says, and interrupts arrive on B. */
	struct vfmig_type_irq_wiring w;
	assert_int_equal(ops->irq_wiring(s, &w), 0);
	assert_int_equal(w.index, VFMIG_VMM_IRQ_MSIX);
	assert_int_equal(w.count, REGS_MSIX_VECTORS);
	assert_int_equal(vfmig_vmm_dev_set_irq_eventfds(f->b, w.index, 0, f->irq, w.count), 0);
	raise_on(f->b, 0);
	assert_int_equal(irq_count(f, 0, 2000), 1);
	raise_on(f->b, 2);
	assert_int_equal(irq_count(f, 2, 2000), 1);
	raise_on(f->b, 1); /* masked on the source, so masked here: held pending */
	assert_int_equal(irq_count(f, 1, 100), 0);
	uint32_t pba = 0;
	assert_int_equal(vfmig_vmm_dev_region_read(f->b, REGS_BAR_MSIX, 0x800, &pba, 4), 0);
	assert_true(le32toh(pba) & 2);
	free(s);
	free(ca);
	free(cb);
}

/* MSI instead of MSI-X: restored masked and disabled while its address and
 * data are written, then enabled and unmasked as on the source. */
static void test_msi_source(void **state)
{
	struct fx *f = *state;
	const struct vfmig_type_ops *ops = vfmig_typereg_find(f->reg, "pci");
	uint8_t msi = find_cap(f->a, 0x05), msix = find_cap(f->a, 0x11);
	uint8_t *ca = malloc(CFG_SIZE), *cb = malloc(CFG_SIZE), *enc;
	size_t len;
	char err[256] = "";

	program_source(f->a, msi, msix, true);
	uint16_t msi_ctrl = (uint16_t)cfg_rd(f->a, msi + 2u, 2);
	assert_true(msi_ctrl & VFMIG_PCI_MSI_CTRL_ENABLE);
	assert_true(msi_ctrl & VFMIG_PCI_MSI_CTRL_PVM);
	assert_int_equal(vfmig_vmm_dev_region_read(f->a, VFMIG_VMM_PCI_CONFIG, 0, ca, CFG_SIZE), 0);
	if (vfmig_type_save_encoded(ops, f->a, &enc, &len, err, sizeof(err)) < 0)
		fail_msg("save: %s", err);
	struct vfmig_pci_state *s = vfmig_type_state_new(ops);
	f->proxy->nlog = 0;
	if (vfmig_type_decode_load(ops, f->b, enc, len, s, err, sizeof(err)) < 0)
		fail_msg("load: %s", err);
	assert_int_equal(vfmig_vmm_dev_region_read(f->b, VFMIG_VMM_PCI_CONFIG, 0, cb, CFG_SIZE), 0);
	for (unsigned i = 0; i < CFG_SIZE; i++)
		if (ca[i] != cb[i])
			fail_msg("config byte 0x%x: 0x%02x on A, 0x%02x on B", i, ca[i], cb[i]);
	check_order(f, msi, msix, 0x0406, REGS_MSIX_VECTORS - 1, msi_ctrl, 0);
	struct vfmig_type_irq_wiring w;
	assert_int_equal(ops->irq_wiring(s, &w), 0);
	assert_int_equal(w.index, VFMIG_VMM_IRQ_MSI);
	assert_int_equal(w.count, 1);
	assert_int_equal(vfmig_vmm_dev_set_irq_eventfds(f->b, w.index, 0, f->irq, w.count), 0);
	free(enc);
	free(s);
	free(ca);
	free(cb);
}

/* A mismatching state is refused before anything is written to B. */
static void test_refused_before_writing(void **state)
{
	struct fx *f = *state;
	const struct vfmig_type_ops *ops = vfmig_typereg_find(f->reg, "pci");
	struct vfmig_pci_state *s = vfmig_type_state_new(ops);
	uint8_t *enc;
	size_t len;
	char err[256] = "";

	program_source(f->a, find_cap(f->a, 0x05), find_cap(f->a, 0x11), false);
	assert_int_equal(vfmig_pci_save(f->a, s, err, sizeof(err)), 0);
	s->cfg[0] = (s->cfg[0] & 0xffff0000u) | 0x8086; /* a different vendor */
	assert_int_equal(vfmig_fields_encode(&vfmig_pci_desc, s, &enc, &len, err, sizeof(err)), 0);
	f->proxy->nlog = 0;
	assert_int_equal(vfmig_type_decode_load(ops, f->b, enc, len, s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vendor id 0x8086 on the source, 0x1b36 here");
	assert_int_equal(f->proxy->nlog, 0);
	assert_int_equal(cfg_rd(f->b, 0x04, 2), 0);
	free(enc);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_load_rewire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msi_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_before_writing, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
