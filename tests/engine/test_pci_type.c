/* SPDX-License-Identifier: MIT */
/*
 * The type registry and the "pci" type: registration rules, the field
 * table round trip, and save/check against in-process devices (libvfmig-
 * device serving a socketpair in a thread, libvfmig-vmm on the other end):
 * identity and capability-layout mismatches are refused before anything is
 * written, and a self-inconsistent state is refused.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/device.h>
#include <vfmig/vmm.h>

#include "engine/channel.h"
#include "engine/typereg.h"
#include "pci/pci_state.h"
#include "stream/stream.h"

/* ---- in-process devices ---- */

struct tdev {
	vfmig_dev *dev;
	vfmig_vmm_dev *vmm;
	pthread_t thread;
	volatile sig_atomic_t stop;
};

static int region_access(vfmig_dev *dev, void *priv, unsigned int bar, uint64_t offset,
			 void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)offset;
	if (!is_write)
		memset(buf, 0, len);
	return 0;
}

static const struct vfmig_dev_ops dev_ops = { .version = 1, .region_access = region_access };

static struct vfmig_dev_desc regs_like(void)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1b36, .device_id = 0x1000, .subsys_vendor_id = 0x1b36,
		.subsys_id = 1, .revision = 1, .class_code = 0xff0000,
		.intx_count = 1, .msi_vectors = 1, .msix_vectors = 4, .msix_bar = 4,
		.msix_table_offset = 0, .msix_pba_offset = 0x800, .pcie = true,
	};
	d.bars[0].size = 4096;
	d.bars[2].size = 65536;
	d.bars[2].flags = VFMIG_DEV_BAR_MEM64 | VFMIG_DEV_BAR_PREFETCH;
	d.bars[4].size = 4096;
	return d;
}

static void *serve(void *p)
{
	struct tdev *t = p;
	vfmig_dev_run(t->dev, &t->stop);
	return NULL;
}

static struct tdev *tdev_start(const struct vfmig_dev_desc *d)
{
	struct tdev *t = calloc(1, sizeof(*t));
	int sv[2];

	assert_non_null(t);
	assert_int_equal(vfmig_dev_create(d, &dev_ops, NULL, &t->dev), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vfmig_dev_attach_fd(t->dev, sv[1]), 0);
	assert_int_equal(pthread_create(&t->thread, NULL, serve, t), 0);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(sv[0], NULL, &t->vmm), 0);
	return t;
}

static void tdev_stop(struct tdev *t)
{
	vfmig_vmm_dev_close(t->vmm);
	t->stop = 1;
	pthread_join(t->thread, NULL);
	vfmig_dev_destroy(t->dev);
	free(t);
}

/* ---- registry ---- */

static int nop_save(vfmig_vmm_dev *d, void *s, char *e, size_t n)
{
	(void)d; (void)s; (void)e; (void)n;
	return 0;
}

static int nop_load(vfmig_vmm_dev *d, const void *s, char *e, size_t n)
{
	(void)d; (void)s; (void)e; (void)n;
	return 0;
}

static void test_registry(void **state)
{
	struct vfmig_typereg *reg;
	char err[256];
	(void)state;

	assert_int_equal(vfmig_typereg_create(&reg), 0);
	assert_null(vfmig_typereg_find(reg, "pci"));
	assert_int_equal(vfmig_pci_type_register(reg), 0);
	assert_ptr_equal(vfmig_typereg_find(reg, "pci"), &vfmig_pci_type);
	assert_int_equal(vfmig_pci_type_register(reg), -EEXIST);
	assert_int_equal(vfmig_typereg_add(reg, &vfmig_pci_type, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "\"pci\" is already registered"));
	assert_int_equal(vfmig_typereg_count(reg), 1);
	assert_null(vfmig_typereg_find(reg, "pc"));
	assert_null(vfmig_typereg_find(reg, NULL));

	/* Bad tables are refused, naming the problem. */
	struct vfmig_type_ops bad = vfmig_pci_type;
	bad.version = 2;
	assert_int_equal(vfmig_typereg_add(reg, &bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ops version 2"));
	bad = vfmig_pci_type;
	bad.name = "pcie";
	assert_int_equal(vfmig_typereg_add(reg, &bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "named \"pci\""));
	bad = vfmig_pci_type;
	bad.load = NULL;
	assert_int_equal(vfmig_typereg_add(reg, &bad, err, sizeof(err)), -EINVAL);

	/* A second type with its own table is found beside pci. */
	static const struct vfmig_field f[] = { { .name = "x", .type = VFMIG_FIELD_U32 } };
	static const struct vfmig_fields_desc d = {
		.name = "other", .version = 1, .min_version = 1, .size = 4,
		.fields = f, .nfields = 1,
	};
	static const struct vfmig_type_ops other = {
		.version = VFMIG_TYPE_OPS_VERSION, .name = "other", .desc = &d,
		.save = nop_save, .load = nop_load,
	};
	assert_int_equal(vfmig_typereg_add(reg, &other, err, sizeof(err)), 0);
	assert_ptr_equal(vfmig_typereg_find(reg, "other"), &other);
	assert_ptr_equal(vfmig_typereg_find(reg, "pci"), &vfmig_pci_type);
	assert_int_equal(vfmig_typereg_count(reg), 2);
	vfmig_typereg_destroy(reg);

	/* Registries are independent: no hidden global. */
	struct vfmig_typereg *r2;
	assert_int_equal(vfmig_typereg_create(&r2), 0);
	assert_null(vfmig_typereg_find(r2, "pci"));
	assert_int_equal(vfmig_pci_type_register(r2), 0);
	vfmig_typereg_destroy(r2);
}

/* ---- field table ---- */

static void fill(struct vfmig_pci_state *s, bool msix)
{
	uint32_t x = 12345;

	memset(s, 0, sizeof(*s));
	s->cfg_dwords = 1024;
	for (unsigned i = 0; i < 1024; i++)
		s->cfg[i] = x = x * 1103515245u + 12345u;
	s->command = 0x0546;
	for (unsigned i = 0; i < 6; i++)
		s->bars[i] = 0xfe000000u + i * 0x1000;
	s->rom_bar = 0xfff00001u;
	s->cache_line = 16; s->latency = 32; s->intx_pin = 1; s->intx_line = 11;
	s->msi_cap = 0x40; s->msi_ctrl = 0x0181; s->msi_addr_lo = 0xfee00000u;
	s->msi_addr_hi = 1; s->msi_data = 0x4021; s->msi_mask = 1; s->msi_pending = 0;
	s->pcie_cap = 0x64; s->pcie_devctl = 0x2810; s->pcie_linkctl = 3;
	s->pcie_devctl2 = 0;
	if (msix) {
		s->msix_cap = 0x58; s->msix_ctrl = 0xc003;
		s->msix_table_reg = 4; s->msix_pba_reg = 0x804;
		s->msix_table_dwords = 16;
		for (unsigned i = 0; i < 16; i++)
			s->msix_table[i] = 0xa0000000u + i;
		s->msix_pba_dwords = 1;
		s->msix_pba[0] = 0x5;
	}
}

static void test_fields_round_trip(void **state)
{
	struct vfmig_pci_state *a = malloc(sizeof(*a));
	struct vfmig_pci_state *b;
	uint8_t *buf, *buf2;
	size_t len, len2;
	char err[256], name[16];
	uint32_t ver;
	(void)state;

	fill(a, true);
	assert_int_equal(vfmig_fields_check_desc(&vfmig_pci_desc, err, sizeof(err)), 0);
	assert_int_equal(vfmig_fields_encode(&vfmig_pci_desc, a, &buf, &len, err, sizeof(err)), 0);
	assert_int_equal(vfmig_fields_peek(buf, len, name, sizeof(name), &ver), 0);
	assert_string_equal(name, "pci");
	assert_int_equal(ver, VFMIG_PCI_STATE_VERSION);
	b = vfmig_type_state_new(&vfmig_pci_type);
	assert_non_null(b);
	assert_int_equal(vfmig_fields_decode(&vfmig_pci_desc, buf, len, b, err, sizeof(err)), 0);
	assert_memory_equal(a, b, sizeof(*a));

	/* Without MSI-X the subsection is not written, and decoding leaves
	 * the MSI-X members at their defaults. */
	fill(a, false);
	assert_int_equal(vfmig_fields_encode(&vfmig_pci_desc, a, &buf2, &len2, err, sizeof(err)), 0);
	assert_true(len2 < len);
	memset(b, 0, sizeof(*b));
	assert_int_equal(vfmig_fields_decode(&vfmig_pci_desc, buf2, len2, b, err, sizeof(err)), 0);
	assert_memory_equal(a, b, sizeof(*a));
	assert_int_equal(b->msix_cap, 0);

	/* A corrupted encoding is refused and leaves the struct alone. */
	buf[len / 2] ^= 0xff;
	int r = vfmig_fields_decode(&vfmig_pci_desc, buf, len - 7, b, err, sizeof(err));
	assert_true(r < 0);
	assert_memory_equal(a, b, sizeof(*a));
	free(buf);
	free(buf2);
	free(a);
	free(b);
}

/* ---- save and check against devices ---- */

static void saved_state(const struct vfmig_dev_desc *d, struct vfmig_pci_state *s)
{
	struct tdev *t = tdev_start(d);
	char err[256] = "";

	if (vfmig_pci_save(t->vmm, s, err, sizeof(err)) < 0)
		fail_msg("save: %s", err);
	tdev_stop(t);
}

static void expect_refused(const struct vfmig_pci_state *s, const struct vfmig_dev_desc *d,
			   int want, const char *needle)
{
	struct tdev *t = tdev_start(d);
	char err[256] = "";
	uint16_t cmd_before, cmd_after;

	assert_int_equal(vfmig_vmm_dev_region_read(t->vmm, VFMIG_VMM_PCI_CONFIG, 4,
						   &cmd_before, 2), 0);
	assert_int_equal(vfmig_pci_check(t->vmm, s, err, sizeof(err)), want);
	if (!strstr(err, needle))
		fail_msg("message \"%s\" does not say \"%s\"", err, needle);
	/* Nothing was written. */
	assert_int_equal(vfmig_vmm_dev_region_read(t->vmm, VFMIG_VMM_PCI_CONFIG, 4,
						   &cmd_after, 2), 0);
	assert_int_equal(cmd_before, cmd_after);
	tdev_stop(t);
}

static void test_save_and_identity(void **state)
{
	struct vfmig_pci_state *s = malloc(sizeof(*s));
	struct vfmig_dev_desc d = regs_like(), o;
	char err[256];
	(void)state;

	saved_state(&d, s);
	assert_int_equal(s->cfg_dwords, 1024);
	assert_int_equal(s->cfg[0], 0x10001b36u);
	assert_int_not_equal(s->msi_cap, 0);
	assert_int_not_equal(s->msix_cap, 0);
	assert_int_not_equal(s->pcie_cap, 0);
	assert_int_equal(s->msix_table_dwords, 16);
	assert_int_equal(s->msix_pba_dwords, 1);
	assert_int_equal(s->msix_table[3] & 1, 1); /* reset: every vector masked */
	assert_int_equal(s->intx_pin, 1);
	assert_int_equal(s->bars[2] & 0xf, 0xc);   /* 64-bit prefetchable */

	/* The same kind of device takes it. */
	struct tdev *t = tdev_start(&d);
	assert_int_equal(vfmig_pci_check(t->vmm, s, err, sizeof(err)), 0);
	tdev_stop(t);

	o = d; o.vendor_id = 0x8086;
	expect_refused(s, &o, -EINVAL, "vendor id 0x1b36 on the source, 0x8086 here");
	o = d; o.device_id = 0x1001;
	expect_refused(s, &o, -EINVAL, "device id 0x1000 on the source, 0x1001 here");
	o = d; o.class_code = 0x020000;
	expect_refused(s, &o, -EINVAL, "class code 0xff0000 on the source, 0x020000 here");
	o = d; o.subsys_id = 2;
	expect_refused(s, &o, -EINVAL, "subsystem id 0x0001 on the source, 0x0002 here");
	o = d; o.revision = 2;
	expect_refused(s, &o, -EINVAL, "revision 0x01 on the source, 0x02 here");
	o = d; o.msix_vectors = 0;
	expect_refused(s, &o, -EINVAL, "(MSI-X) at 0x58 on the source");
	o = d; o.msix_vectors = 8;
	expect_refused(s, &o, -EINVAL, "MSI-X table size 4 on the source, 8 here");
	o = d; o.msix_pba_offset = 0x400;
	expect_refused(s, &o, -EINVAL, "MSI-X table/PBA");
	o = d; o.msi_vectors = 2;
	expect_refused(s, &o, -EINVAL, "MSI control read-only bits");
	o = d; o.pcie = false;
	expect_refused(s, &o, -EINVAL, "config space of 4096 bytes on the source, 256 here");

	/* A state that disagrees with itself is refused (hostile stream). */
	s->command ^= 2;
	expect_refused(s, &d, -EBADMSG, "command 0x2 disagrees");
	s->command ^= 2;
	s->msix_table_dwords = 8;
	expect_refused(s, &d, -EBADMSG, "MSI-X table of 8 dwords for 4 vectors");
	s->msix_table_dwords = 16;
	s->cfg[0x34 / 4] = (s->cfg[0x34 / 4] & ~0xffu) | 0x34; /* cap pointer loops */
	expect_refused(s, &d, -EBADMSG, "capability list is malformed");
	free(s);
}

static void test_irq_wiring(void **state)
{
	struct vfmig_pci_state *s = malloc(sizeof(*s));
	struct vfmig_type_irq_wiring w;
	(void)state;

	fill(s, true); /* MSI-X enabled (0xc003: enable, mask all, 4 vectors) */
	assert_int_equal(vfmig_pci_type.irq_wiring(s, &w), 0);
	assert_int_equal(w.index, VFMIG_VMM_IRQ_MSIX);
	assert_int_equal(w.count, 4);
	s->msix_ctrl &= (uint16_t)~VFMIG_PCI_MSIX_CTRL_ENABLE;
	s->msi_ctrl = 0x0181 | (1 << 4); /* MSI enabled, 2 vectors enabled */
	vfmig_pci_irq_wiring(s, &w);
	assert_int_equal(w.index, VFMIG_VMM_IRQ_MSI);
	assert_int_equal(w.count, 2);
	s->msi_ctrl = 0x0180;
	s->command &= (uint16_t)~VFMIG_PCI_CMD_INTX_DISABLE;
	vfmig_pci_irq_wiring(s, &w);
	assert_int_equal(w.index, VFMIG_VMM_IRQ_INTX);
	assert_int_equal(w.count, 1);
	s->command |= VFMIG_PCI_CMD_INTX_DISABLE;
	vfmig_pci_irq_wiring(s, &w);
	assert_int_equal(w.count, 0);
	free(s);
}

/* The parts together: A's pci state goes through a real stream over a UNIX
 * channel; the destination finds the type by the name in the device list,
 * loads B, and confirms on the return path. */
static void test_stream_over_channel(void **state)
{
	struct vfmig_dev_desc d = regs_like();
	struct tdev *a = tdev_start(&d), *b = tdev_start(&d);
	struct vfmig_typereg *reg;
	struct vfmig_chan_listener *l;
	struct vfmig_chan *src, *dst;
	struct vfmig_stream_writer *w;
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_rp_msg m;
	const struct vfmig_type_ops *ops = NULL;
	char err[256], uri[128];
	uint8_t ca[4096], cb[4096];
	(void)state;

	assert_int_equal(vfmig_typereg_create(&reg), 0);
	assert_int_equal(vfmig_pci_type_register(reg), 0);
	uint32_t bar0 = htole32(0xfebf0000u); /* config space is little-endian */
	uint16_t cmd = htole16(0x0006);
	assert_int_equal(vfmig_vmm_dev_region_write(a->vmm, VFMIG_VMM_PCI_CONFIG, 0x10, &bar0, 4), 0);
	assert_int_equal(vfmig_vmm_dev_region_write(a->vmm, VFMIG_VMM_PCI_CONFIG, 4, &cmd, 2), 0);

	snprintf(uri, sizeof(uri), "unix:/tmp/vfmig-pcitype-%d.sock", (int)getpid());
	assert_int_equal(vfmig_chan_listen(uri, &l, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_connect(uri, 2000, &src, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_accept(l, 2000, &dst, err, sizeof(err)), 0);
	vfmig_chan_listener_close(l);

	/* Source. */
	struct vfmig_pci_state *sa = vfmig_type_state_new(&vfmig_pci_type);
	assert_int_equal(vfmig_pci_save(a->vmm, sa, err, sizeof(err)), 0);
	const struct vfmig_stream_device dev = {
		.id = "regs0", .type = "pci", .interface = "v2",
		.type_version = VFMIG_PCI_STATE_VERSION,
	};
	assert_int_equal(vfmig_stream_writer_open(&w, vfmig_chan_io(src)), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, &dev, 1), 0);
	assert_int_equal(vfmig_stream_write_type_state(w, 0, &vfmig_pci_desc, sa), 0);
	assert_int_equal(vfmig_stream_write_switchover(w), 0);
	assert_int_equal(vfmig_stream_writer_end(w), 0);
	vfmig_stream_writer_free(w);

	/* Destination. */
	struct vfmig_pci_state *sb = vfmig_type_state_new(&vfmig_pci_type);
	assert_int_equal(vfmig_stream_reader_open(&r, vfmig_chan_io(dst), err, sizeof(err)), 0);
	int loaded = 0;
	while (vfmig_stream_next(r, &rec) == 1) {
		if (rec.type == VFMIG_REC_DEVICE_LIST) {
			struct vfmig_stream_str t = rec.d.u.device_list.dev[0].type;
			char name[32];
			snprintf(name, sizeof(name), "%.*s", (int)t.len, t.p);
			ops = vfmig_typereg_find(reg, name);
		} else if (rec.type == VFMIG_REC_TYPE_STATE) {
			assert_non_null(ops);
			if (vfmig_type_decode_load(ops, b->vmm, rec.d.u.type_state.state,
						   rec.d.u.type_state.len, sb, err, sizeof(err)) < 0)
				fail_msg("load: %s", err);
			loaded++;
		}
	}
	assert_string_equal(vfmig_stream_reader_error(r), "");
	vfmig_stream_reader_free(r);
	assert_int_equal(loaded, 1);
	assert_memory_equal(sa, sb, sizeof(*sa));
	assert_int_equal(vfmig_chan_rp_resumed(dst, 42), 0);
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_RESUMED);
	assert_true(m.timestamp_ns == 42);

	assert_int_equal(vfmig_vmm_dev_region_read(a->vmm, VFMIG_VMM_PCI_CONFIG, 0, ca, 4096), 0);
	assert_int_equal(vfmig_vmm_dev_region_read(b->vmm, VFMIG_VMM_PCI_CONFIG, 0, cb, 4096), 0);
	assert_memory_equal(ca, cb, 4096);
	assert_int_equal(cb[0x10 + 3], 0xfe);

	assert_int_equal(vfmig_chan_close(src), 0);
	assert_int_equal(vfmig_chan_close(dst), 0);
	free(sa);
	free(sb);
	vfmig_typereg_destroy(reg);
	tdev_stop(a);
	tdev_stop(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_fields_round_trip),
		cmocka_unit_test(test_save_and_identity),
		cmocka_unit_test(test_irq_wiring),
		cmocka_unit_test(test_stream_over_channel),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
