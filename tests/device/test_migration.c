/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of device-side migration over a socketpair, through the
 * internal API: every (from, to) state request for STOP_COPY and
 * STOP_COPY|PRE_COPY devices (arcs checked against the specification's arc
 * list, written out here independently of the next-hop table), failing-arc
 * recovery and ERROR, reset, MIG_DATA gating and size checks, command
 * gating while stopped, DMA and interrupts while stopped, DMA logging
 * START/REPORT/STOP validation and bitmaps, and the size-estimate
 * extension's negotiation.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "device/internal.h"
#include "raw_client.h"
#include "protocol/migfsm.h"
#include "stream/stream.h"

enum { E_ = 0, S_ = 1, R_ = 2, SC_ = 3, RS_ = 4, RP_ = 5, PC_ = 6, PP_ = 7 };

/* The VFIO v2 uAPI's minimum arc set for vfio-user with PRE_COPY; then the
 * uAPI's P2P arcs. R->S, S->R and PC->SC exist only without P2P. */
static const uint32_t spec_arcs[][2] = {
	{ R_, S_ }, { SC_, S_ }, { RS_, S_ }, { PC_, R_ }, { S_, R_ },
	{ R_, PC_ }, { S_, SC_ }, { PC_, SC_ }, { S_, RS_ },
	{ R_, RP_ }, { RP_, R_ }, { RP_, S_ }, { S_, RP_ }, { PC_, PP_ },
	{ PP_, PC_ }, { PP_, SC_ }, { RP_, PP_ }, { PP_, RP_ },
};

struct tdev {
	uint32_t fail_from, fail_to; /* arc to fail (0/0: none) */
	uint32_t fail_from2, fail_to2;
	bool fail_finish;
	uint32_t arcs[64][2];
	int narcs;
	size_t save_total, save_pos; /* bytes a session produces */
	size_t loaded;
	bool load_short;
	int resets;
};

static bool is_fail(struct tdev *t, uint32_t from, uint32_t to)
{
	return (t->fail_from == from && t->fail_to == to) ||
	       (t->fail_from2 == from && t->fail_to2 == to);
}

static int t_access(vfmig_dev *dev, void *priv, unsigned int bar,
		    uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off;
	if (!is_write)
		memset(buf, 0x11, len);
	return 0;
}

static int t_reset(vfmig_dev *dev, void *priv)
{
	(void)dev;
	((struct tdev *)priv)->resets++;
	return 0;
}

static int t_transition(vfmig_dev *dev, void *priv, uint32_t from,
			uint32_t to)
{
	struct tdev *t = priv;

	(void)dev;
	if (is_fail(t, from, to))
		return -EIO;
	if (t->narcs < 64) {
		t->arcs[t->narcs][0] = from;
		t->arcs[t->narcs][1] = to;
		t->narcs++;
	}
	if (vfw_mig_state_saving(to) && !vfw_mig_state_saving(from))
		t->save_pos = 0;
	if (to == RS_)
		t->loaded = 0;
	return 0;
}

static ssize_t t_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	struct tdev *t = priv;
	size_t n = t->save_total - t->save_pos;

	(void)dev;
	if (n > len)
		n = len;
	if (n > 700)
		n = 700; /* the library must gather several calls */
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = (uint8_t)((t->save_pos + i) % 251);
	t->save_pos += n;
	return (ssize_t)n;
}

static int t_estimate(vfmig_dev *dev, void *priv,
		      struct vfmig_dev_mig_estimate *e)
{
	struct tdev *t = priv;

	(void)dev;
	e->initial_bytes = t->save_total - t->save_pos;
	e->dirty_bytes = 7;
	e->stop_copy_bytes = 12345;
	return 0;
}

static ssize_t t_load(vfmig_dev *dev, void *priv, const void *buf,
		      size_t len)
{
	struct tdev *t = priv;

	(void)dev;
	(void)buf;
	t->loaded += len;
	return t->load_short ? (ssize_t)len - 1 : (ssize_t)len;
}

static int t_finish(vfmig_dev *dev, void *priv)
{
	(void)dev;
	return ((struct tdev *)priv)->fail_finish ? -EINVAL : 0;
}

static struct vfmig_dev_ops make_ops(uint64_t flags)
{
	struct vfmig_dev_ops o = {
		.version = VFMIG_DEV_OPS_VERSION,
		.region_access = t_access,
		.reset = t_reset,
		.mig_flags = flags,
		.mig_transition = t_transition,
		.mig_save = t_save,
		.mig_estimate = t_estimate,
		.mig_load = t_load,
		.mig_load_finish = t_finish,
	};
	return o;
}

struct fx {
	vfmig_dev *dev;
	int fd; /* client end */
	struct tdev t;
	int ram;
	uint32_t echoed; /* vfmig_mig_info version in the VERSION reply */
};

static int call_fds(struct fx *f, uint16_t cmd, const void *p, size_t len,
		    const int *fds, size_t nfds, struct vfw_msg *rep)
{
	return raw_call(f->dev, f->fd, cmd, p, len, fds, nfds, rep);
}

static int call(struct fx *f, uint16_t cmd, const void *p, size_t len,
		struct vfw_msg *rep)
{
	return call_fds(f, cmd, p, len, NULL, 0, rep);
}

/* DEVICE_FEATURE: flags, data; out gets reply data after the 8-byte
 * header (at most cap). argsz = 8 + max(len, cap). */
static int feat(struct fx *f, uint32_t flags, const void *data, size_t len,
		void *out, size_t cap, size_t *out_len)
{
	uint8_t buf[8 + 8192];
	struct vfw_device_feature h = { (uint32_t)(8 + (len > cap ? len : cap)),
					flags };
	struct vfw_msg m;
	int r;

	assert_true(len <= 8192);
	memcpy(buf, &h, 8);
	if (len)
		memcpy(buf + 8, data, len);
	r = call(f, VFW_CMD_DEVICE_FEATURE, buf, 8 + len, &m);
	if (r < 0)
		return r;
	assert_true(m.len >= 8);
	memcpy(&h, m.payload, 8);
	if (flags & VFW_FEATURE_GET)
		assert_int_equal(h.argsz, m.len);
	if (out)
		memcpy(out, m.payload + 8, m.len - 8 < cap ? m.len - 8 : cap);
	if (out_len)
		*out_len = m.len - 8;
	vfw_msg_release(&m);
	return 0;
}

static uint32_t get_state(struct fx *f)
{
	struct vfw_mig_device_state s;
	size_t n;

	assert_int_equal(feat(f, VFW_FEATURE_GET | VFW_FEATURE_MIG_DEVICE_STATE,
			      NULL, 0, &s, sizeof(s), &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(s.device_state, vfmig_dev_mig_state(f->dev));
	return s.device_state;
}

static int set_state(struct fx *f, uint32_t to)
{
	struct vfw_mig_device_state s = { to, 0xabcdef01u }, o = { 0 };
	size_t n;
	int r = feat(f, VFW_FEATURE_SET | VFW_FEATURE_MIG_DEVICE_STATE, &s,
		     sizeof(s), &o, sizeof(o), &n);

	if (r == 0) { /* echo with the resulting state */
		assert_int_equal(n, 8);
		assert_int_equal(o.device_state, to);
		assert_int_equal(o.data_fd, 0xabcdef01u);
	}
	return r;
}

static void fx_open(struct fx *f, const struct vfmig_dev_ops *o,
		    const char *json)
{
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION,
				    .msix_vectors = 2, .msix_bar = 4,
				    .msix_pba_offset = 0x800 };
	uint8_t v[256] = { 0 };
	size_t vlen = 4;
	int sv[2];

	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	d.bars[4] = (struct vfmig_dev_bar){ .size = 4096 };
	memset(&f->t, 0, sizeof(f->t));
	f->t.save_total = 3000;
	assert_int_equal(vfmig_dev_create(&d, o, &f->t, &f->dev), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vfmig_dev_attach_fd(f->dev, sv[1]), 0);
	f->fd = sv[0];
	if (json) {
		memcpy(v + 4, json, strlen(json) + 1);
		vlen += strlen(json) + 1;
	}
	struct vfw_msg m;
	struct vfw_caps caps;
	uint16_t major, minor;
	char err[128];
	assert_int_equal(call(f, VFW_CMD_VERSION, v, vlen, &m), 0);
	assert_int_equal(vfw_version_parse(m.payload, m.len, &major, &minor,
					   &caps, err, sizeof(err)), 0);
	f->echoed = caps.mig_info_version;
	assert_int_equal(f->echoed, f->dev->mig.info_version);
	vfw_msg_release(&m);
	f->ram = -1;
}

static void fx_close(struct fx *f)
{
	vfmig_dev_destroy(f->dev);
	close(f->fd);
	if (f->ram >= 0)
		close(f->ram);
}

static bool arc_in_spec(uint32_t from, uint32_t to, uint64_t flags)
{
	if ((flags & VFW_MIGRATION_P2P) &&
	    ((from == R_ && to == S_) || (from == S_ && to == R_) ||
	     (from == PC_ && to == SC_)))
		return false;
	for (size_t i = 0; i < sizeof(spec_arcs) / sizeof(spec_arcs[0]); i++)
		if (spec_arcs[i][0] == from && spec_arcs[i][1] == to)
			return vfw_mig_state_supported(from, flags) &&
			       vfw_mig_state_supported(to, flags);
	return false;
}

/* Put the device into state `s` from RUNNING (after a reset). */
static void goto_state(struct fx *f, uint32_t s)
{
	assert_int_equal(call(f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);
	assert_int_equal(get_state(f), R_);
	assert_int_equal(set_state(f, s), 0);
	assert_int_equal(get_state(f), s);
}

static void all_pairs(uint64_t flags)
{
	struct vfmig_dev_ops o = make_ops(flags);
	struct fx f;

	fx_open(&f, &o, NULL);
	for (uint32_t from = 1; from < 8; from++) {
		if (!vfw_mig_state_supported(from, flags))
			continue;
		for (uint32_t to = 0; to < 10; to++) {
			bool valid = vfw_mig_state_supported(to, flags) &&
				     !(from == SC_ && (to == PC_ || to == PP_));
			goto_state(&f, from);
			f.t.narcs = 0;
			int r = set_state(&f, to);
			if (!valid) {
				assert_int_equal(r, -EINVAL);
				assert_int_equal(get_state(&f), from);
				assert_int_equal(f.t.narcs, 0);
				continue;
			}
			assert_int_equal(r, 0);
			assert_int_equal(get_state(&f), to);
			/* A chain of specified arcs from `from` to `to`, with
			 * saving states only at its ends. */
			uint32_t cur = from;
			for (int i = 0; i < f.t.narcs; i++) {
				assert_int_equal(f.t.arcs[i][0], cur);
				assert_true(arc_in_spec(cur, f.t.arcs[i][1], flags));
				cur = f.t.arcs[i][1];
				if (i + 1 < f.t.narcs)
					assert_false(vfw_mig_state_saving(cur) &&
						     !vfw_mig_state_saving(from));
			}
			assert_int_equal(cur, to);
			assert_true(f.t.narcs <= ((flags & VFW_MIGRATION_P2P) ? 4 : 3));
		}
	}
	fx_close(&f);
}

static void test_all_pairs_stop_copy(void **state)
{
	(void)state;
	all_pairs(VFW_MIGRATION_STOP_COPY);
}

static void test_all_pairs_pre_copy(void **state)
{
	(void)state;
	all_pairs(VFW_MIGRATION_STOP_COPY | VFW_MIGRATION_PRE_COPY);
}

static void test_all_pairs_p2p(void **state)
{
	(void)state;
	all_pairs(VFW_MIGRATION_STOP_COPY | VFW_MIGRATION_P2P);
	all_pairs(VFW_MIGRATION_STOP_COPY | VFW_MIGRATION_P2P |
		  VFW_MIGRATION_PRE_COPY);
}

static void test_failing_arcs(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY |
					  VFW_MIGRATION_PRE_COPY);
	struct fx f;
	(void)state;

	fx_open(&f, &o, NULL);
	/* First arc fails: nothing changes. */
	f.t.fail_from = R_;
	f.t.fail_to = S_;
	assert_int_equal(set_state(&f, SC_), -EIO);
	assert_int_equal(get_state(&f), R_);
	/* Second arc fails: back to RUNNING. */
	f.t.fail_from = S_;
	f.t.fail_to = SC_;
	assert_int_equal(set_state(&f, SC_), -EIO);
	assert_int_equal(get_state(&f), R_);
	/* ... and the way back fails too: ERROR. */
	f.t.fail_from2 = S_;
	f.t.fail_to2 = R_;
	assert_int_equal(set_state(&f, SC_), -EIO);
	assert_int_equal(get_state(&f), E_);
	/* ERROR: every SET is invalid, data commands refused. */
	f.t.fail_from = f.t.fail_to = f.t.fail_from2 = f.t.fail_to2 = 0;
	for (uint32_t s = 0; s < 8; s++)
		assert_int_equal(set_state(&f, s), -EINVAL);
	struct vfw_mig_data md = { 8 + 16, 16 };
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_READ, &md, 8, NULL), -EINVAL);
	assert_int_equal(get_state(&f), E_);
	/* Reset leaves ERROR. */
	assert_int_equal(call(&f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);
	assert_int_equal(get_state(&f), R_);
	assert_int_equal(set_state(&f, S_), 0);
	/* From PRE_COPY to STOP fails on RUNNING->STOP: the device stays in
	 * RUNNING (going back to PRE_COPY would start a new session). */
	goto_state(&f, PC_);
	f.t.fail_from = R_;
	f.t.fail_to = S_;
	assert_int_equal(set_state(&f, S_), -EIO);
	assert_int_equal(get_state(&f), R_);
	f.t.fail_from = f.t.fail_to = 0;
	/* A refused load: RESUMING -> STOP fails, the device is in ERROR and
	 * still serving; reset brings it back. */
	goto_state(&f, RS_);
	uint8_t data[8 + 100] = { 0 };
	struct vfw_mig_data w = { sizeof(data), 100 };
	memcpy(data, &w, 8);
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_WRITE, data, sizeof(data),
			      NULL), 0);
	f.t.fail_finish = true;
	assert_int_equal(set_state(&f, R_), -EINVAL);
	assert_int_equal(get_state(&f), E_);
	assert_int_equal(call(&f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);
	assert_int_equal(get_state(&f), R_);
	fx_close(&f);
}

static int read_data(struct fx *f, uint32_t argsz, uint32_t size,
		     uint8_t *out)
{
	struct vfw_mig_data md = { argsz, size };
	struct vfw_msg m;
	int r = call(f, VFW_CMD_MIG_DATA_READ, &md, sizeof(md), &m);

	if (r < 0)
		return r;
	assert_true(m.len >= 8);
	memcpy(&md, m.payload, 8);
	assert_int_equal(m.len, 8 + md.size); /* exactly, no padding */
	assert_int_equal(md.argsz, 8 + md.size);
	assert_true(md.size <= size);
	if (out)
		memcpy(out, m.payload + 8, md.size);
	vfw_msg_release(&m);
	return (int)md.size;
}

static void test_mig_data(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY |
					  VFW_MIGRATION_PRE_COPY);
	uint8_t buf[4096];
	struct fx f;
	(void)state;

	fx_open(&f, &o, NULL);
	assert_int_equal(read_data(&f, 8 + 16, 16, buf), -EINVAL); /* RUNNING */
	assert_int_equal(set_state(&f, SC_), 0);
	assert_int_equal(read_data(&f, 8 + 15, 16, buf), -EINVAL); /* argsz */
	assert_int_equal(read_data(&f, 8 + DEV_MAX_XFER + 1, DEV_MAX_XFER + 1,
				   NULL), -EINVAL);
	int total = 0, n;
	while ((n = read_data(&f, 8 + 1000, 1000, buf)) == 1000) {
		for (int i = 0; i < n; i++)
			assert_int_equal(buf[i], (total + i) % 251);
		total += n;
	}
	assert_true(n >= 0);
	total += n;
	assert_int_equal(total, 3000);
	assert_int_equal(read_data(&f, 8 + 1000, 1000, buf), 0); /* end */
	/* MIG_DATA_WRITE only in RESUMING. */
	uint8_t w[8 + 64] = { 0 };
	struct vfw_mig_data md = { sizeof(w), 64 };
	memcpy(w, &md, 8);
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_WRITE, w, sizeof(w), NULL),
			 -EINVAL);
	/* PRE_COPY: a fresh session, a short read is "nothing for now". */
	goto_state(&f, PC_);
	f.t.save_total = 1500;
	assert_int_equal(read_data(&f, 8 + 4096, 4096, buf), 1500);
	assert_int_equal(read_data(&f, 8 + 4096, 4096, buf), 0);
	assert_int_equal(set_state(&f, SC_), 0); /* same session goes on */
	f.t.save_total = 1600;
	assert_int_equal(read_data(&f, 8 + 4096, 4096, buf), 100);
	goto_state(&f, RS_);
	assert_int_equal(read_data(&f, 8 + 16, 16, buf), -EINVAL);
	md.size = 65; /* more than the payload */
	memcpy(w, &md, 8);
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_WRITE, w, sizeof(w), NULL),
			 -EINVAL);
	md = (struct vfw_mig_data){ 8 + 63, 64 }; /* argsz too small */
	memcpy(w, &md, 8);
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_WRITE, w, sizeof(w), NULL),
			 -EINVAL);
	md = (struct vfw_mig_data){ sizeof(w), 64 };
	memcpy(w, &md, 8);
	f.t.load_short = true;
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_WRITE, w, sizeof(w), NULL),
			 -EINVAL);
	f.t.load_short = false;
	size_t before = f.t.loaded;
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_WRITE, w, sizeof(w), NULL), 0);
	assert_int_equal(f.t.loaded, before + 64);
	fx_close(&f);
}

static void map_ram(struct fx *f, uint64_t iova, uint64_t size, int expect)
{
	struct vfw_dma_map m = { 32, 3, 0, iova, size };

	if (f->ram < 0) {
		f->ram = memfd_create("ram", MFD_CLOEXEC);
		assert_int_equal(ftruncate(f->ram, 1 << 20), 0);
	}
	assert_int_equal(call_fds(f, VFW_CMD_DMA_MAP, &m, sizeof(m), &f->ram, 1,
				  NULL), expect);
}

static void test_gating_dma_irq(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY);
	struct fx f;
	uint8_t b[16] = { 1 };
	uint64_t cnt;
	(void)state;

	fx_open(&f, &o, NULL);
	map_ram(&f, 0x10000, 0x10000, 0);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vfw_irq_set s = { 20, VFW_IRQ_SET_DATA_EVENTFD |
				 VFW_IRQ_SET_ACTION_TRIGGER, 2, 0, 1 };
	assert_int_equal(call_fds(&f, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s),
				  &efd, 1, NULL), 0);
	/* enable MSI-X */
	uint8_t cw[18];
	struct vfw_region_access ra = { f.dev->pci.msix_cap + 2u,
					VFW_PCI_CONFIG_REGION, 2 };
	memcpy(cw, &ra, 16);
	cw[16] = 0;
	cw[17] = 0x80;
	assert_int_equal(call(&f, VFW_CMD_REGION_WRITE, cw, sizeof(cw), NULL), 0);
	uint8_t vw[20] = { 0 }; /* unmask vector 0 in the MSI-X table */
	struct vfw_region_access va = { 12, 4, 4 };
	memcpy(vw, &va, 16);
	assert_int_equal(call(&f, VFW_CMD_REGION_WRITE, vw, sizeof(vw), NULL), 0);
	assert_int_equal(vfmig_dev_irq_trigger(f.dev, 2, 0), 1);
	assert_int_equal(read(efd, &cnt, 8), 8);

	for (int k = 0; k < 2; k++) {
		uint32_t st = k == 0 ? S_ : SC_;
		assert_int_equal(set_state(&f, st), 0); /* no reset: MSI-X on */
		/* Refused while stopped */
		map_ram(&f, 0x40000, 0x1000, -EINVAL);
		assert_int_equal(call_fds(&f, VFW_CMD_DEVICE_SET_IRQS, &s,
					  sizeof(s), &efd, 1, NULL), -EINVAL);
		struct vfw_dma_unmap u = { 24, 0, 0x10000, 0x10000 };
		assert_int_equal(call(&f, VFW_CMD_DMA_UNMAP, &u, sizeof(u), NULL),
				 -EINVAL);
		/* Allowed */
		struct vfw_region_access rr = { 0, 0, 4 };
		assert_int_equal(call(&f, VFW_CMD_REGION_READ, &rr, sizeof(rr),
				      NULL), 0);
		struct vfw_device_info di = { 16 };
		assert_int_equal(call(&f, VFW_CMD_DEVICE_GET_INFO, &di,
				      sizeof(di), NULL), 0);
		struct vfw_region_io_fds_request io = { 16, 0, 0, 0 };
		assert_int_equal(call(&f, VFW_CMD_DEVICE_GET_REGION_IO_FDS, &io,
				      sizeof(io), NULL), 0);
		/* No DMA; interrupts held until RUNNING. */
		assert_int_equal(vfmig_dev_dma_write(f.dev, 0x10000, b, 4), -EPERM);
		assert_int_equal(vfmig_dev_dma_read(f.dev, 0x10000, b, 4), -EPERM);
		assert_int_equal(vfmig_dev_irq_trigger(f.dev, 2, 0), 0);
		assert_int_equal(read(efd, &cnt, 8), -1);
		assert_int_equal(set_state(&f, R_), 0);
		assert_int_equal(read(efd, &cnt, 8), 8);
		assert_int_equal(cnt, 1);
	}
	/* RESUMING is not gated (config and SET_IRQS restore), but no DMA. */
	goto_state(&f, RS_);
	assert_int_equal(call_fds(&f, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s),
				  &efd, 1, NULL), 0);
	assert_int_equal(call(&f, VFW_CMD_REGION_WRITE, cw, sizeof(cw), NULL), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, 0x10000, b, 4), -EPERM);
	assert_int_equal(set_state(&f, R_), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, 0x10000, b, 4), 0);
	close(efd);
	fx_close(&f);
}

static int log_start(struct fx *f, uint64_t pg, uint32_t n,
		     const struct vfw_dma_logging_range *r, uint32_t claim,
		     uint64_t *chosen)
{
	uint8_t buf[16 + 300 * 16];
	struct vfw_dma_logging_start st = { pg, claim, 0 };
	uint8_t out[sizeof(buf)];
	size_t len = 16 + (size_t)n * 16, olen;
	int ret;

	memcpy(buf, &st, 16);
	if (n)
		memcpy(buf + 16, r, (size_t)n * 16);
	ret = feat(f, VFW_FEATURE_SET | VFW_FEATURE_DMA_LOGGING_START, buf, len,
		   out, sizeof(out) > 4096 ? 4096 : sizeof(out), &olen);
	if (ret == 0) {
		assert_int_equal(olen, len);
		memcpy(&st, out, 16);
		if (chosen)
			*chosen = st.page_size;
		assert_memory_equal(out + 16, buf + 16, len - 16);
	}
	return ret;
}

/* REPORT; returns 0 with the bitmap's first word in *w0 (and w1). */
static int log_report(struct fx *f, uint64_t iova, uint64_t len, uint64_t pg,
		      size_t cap, uint64_t *words, size_t nwords)
{
	struct vfw_dma_logging_report rq = { iova, len, pg };
	uint8_t out[24 + 4096];
	size_t olen;
	int r = feat(f, VFW_FEATURE_GET | VFW_FEATURE_DMA_LOGGING_REPORT, &rq,
		     sizeof(rq), out, cap, &olen);

	if (r < 0)
		return r;
	assert_true(olen >= 24);
	assert_memory_equal(out, &rq, 24);
	memset(words, 0, nwords * 8);
	memcpy(words, out + 24,
	       olen - 24 < nwords * 8 ? olen - 24 : nwords * 8);
	return (int)(olen - 24);
}

static void test_dma_logging(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY);
	struct vfw_dma_logging_range rg[300];
	const uint64_t W = 0x100000;
	uint8_t b[8] = { 9 };
	uint64_t pg, bm[4];
	struct fx f;
	(void)state;

	fx_open(&f, &o, NULL);
	map_ram(&f, W, 0x10000, 0);
	rg[0] = (struct vfw_dma_logging_range){ W, 0x10000 };
	/* Logging off: REPORT fails. */
	assert_int_equal(log_report(&f, W, 0x10000, 4096, 24 + 8, bm, 1),
			 -EINVAL);
	/* START's page size is a hint: the device picks a size it supports
	 * and says which in the reply (the hint rounded up to a power of two
	 * from 4 KiB to 1 GiB); the ranges must be aligned to that size. */
	static const uint64_t hint[][2] = { { 1000, 4096 }, { 2048, 4096 },
					    { 0, 4096 }, { 12288, 16384 } };
	for (size_t k = 0; k < sizeof(hint) / sizeof(hint[0]); k++) {
		assert_int_equal(log_start(&f, hint[k][0], 1, rg, 1, &pg), 0);
		assert_int_equal(pg, hint[k][1]);
		assert_int_equal(feat(&f, VFW_FEATURE_SET |
					      VFW_FEATURE_DMA_LOGGING_STOP,
				      NULL, 0, NULL, 0, NULL), 0);
	}
	/* 1 GiB at most; W is not aligned to it. */
	assert_int_equal(log_start(&f, 1ull << 40, 1, rg, 1, NULL), -EINVAL);
	rg[1] = (struct vfw_dma_logging_range){ 1ull << 30, 1ull << 30 };
	assert_int_equal(log_start(&f, 1ull << 40, 1, rg + 1, 1, &pg), 0);
	assert_int_equal(pg, 1ull << 30);
	assert_int_equal(feat(&f, VFW_FEATURE_SET | VFW_FEATURE_DMA_LOGGING_STOP,
			      NULL, 0, NULL, 0, NULL), 0);
	/* START checks */
	assert_int_equal(log_start(&f, 4096, 1, rg, 2, NULL), -EINVAL);
	rg[1] = (struct vfw_dma_logging_range){ W + 0x8000, 0x1000 };
	assert_int_equal(log_start(&f, 4096, 2, rg, 2, NULL), -EINVAL); /* overlap */
	rg[1] = (struct vfw_dma_logging_range){ W + 0x20000, 0x800 };
	assert_int_equal(log_start(&f, 4096, 2, rg, 2, NULL), -EINVAL); /* align */
	rg[1] = (struct vfw_dma_logging_range){ UINT64_MAX - 0xfff, 0x2000 };
	assert_int_equal(log_start(&f, 4096, 2, rg, 2, NULL), -EINVAL); /* wrap */
	for (int i = 0; i < 257; i++)
		rg[i] = (struct vfw_dma_logging_range){ (uint64_t)i << 20, 4096 };
	assert_int_equal(log_start(&f, 4096, 257, rg, 257, NULL), -E2BIG);
	/* A valid START, then a second one is refused. */
	rg[0] = (struct vfw_dma_logging_range){ W, 0x10000 };
	assert_int_equal(log_start(&f, 4096, 1, rg, 1, &pg), 0);
	assert_int_equal(pg, 4096);
	assert_int_equal(log_start(&f, 4096, 1, rg, 1, NULL), -EBUSY);
	/* Device writes mark pages 1, 3 and 4 */
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 5000, b, 8), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 0x3ffe, b, 4), 0);
	/* argsz too small for the bitmap */
	assert_int_equal(log_report(&f, W, 0x10000, 4096, 24, bm, 1), -E2BIG);
	assert_int_equal(log_report(&f, W, 0x10000, 3000, 24 + 8, bm, 1),
			 -EINVAL);
	assert_int_equal(log_report(&f, W, 0x11000, 4096, 24 + 8, bm, 1),
			 -EINVAL); /* beyond the logged range */
	assert_int_equal(log_report(&f, W + 1, 0x1000, 4096, 24 + 8, bm, 1),
			 -EINVAL);
	assert_int_equal(log_report(&f, W, 0, 4096, 24 + 8, bm, 1), -EINVAL);
	/* 8 KiB report pages: page 1 -> bit 0, 3 and 4 -> bits 1 and 2 */
	assert_int_equal(log_report(&f, W, 0x10000, 8192, 24 + 8, bm, 1), 8);
	assert_int_equal(bm[0], 0x7);
	/* Reading cleared them. */
	assert_int_equal(log_report(&f, W, 0x10000, 4096, 24 + 8, bm, 1), 8);
	assert_int_equal(bm[0], 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 5000, b, 8), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 0x3ffe, b, 4), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 0xf000, b, 1), 0);
	/* Part of the range: pages 2..5 -> bits 1 (page 3), 2 (page 4) */
	assert_int_equal(log_report(&f, W + 0x2000, 0x4000, 4096, 24 + 8, bm, 1),
			 8);
	assert_int_equal(bm[0], 0x6);
	assert_int_equal(log_report(&f, W, 0x10000, 4096, 24 + 8, bm, 1), 8);
	assert_int_equal(bm[0], (1ull << 1) | (1ull << 15));
	/* STOP ignores its payload; REPORT is refused afterwards. */
	assert_int_equal(feat(&f, VFW_FEATURE_SET | VFW_FEATURE_DMA_LOGGING_STOP,
			      rg, 16, NULL, 0, NULL), 0);
	assert_int_equal(log_report(&f, W, 0x10000, 4096, 24 + 8, bm, 1),
			 -EINVAL);
	/* num_ranges 0: every window, including ones mapped while logging. */
	assert_int_equal(log_start(&f, 8192, 0, NULL, 0, &pg), 0);
	assert_int_equal(pg, 8192);
	map_ram(&f, 0x200000, 0x4000, 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, 0x200000 + 0x2000, b, 1), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 0x6000, b, 1), 0);
	assert_int_equal(log_report(&f, 0x200000, 0x4000, 4096, 24 + 8, bm, 1),
			 8);
	assert_int_equal(bm[0], 0xc); /* one 8 KiB logging page = 2 bits */
	assert_int_equal(log_report(&f, W, 0x10000, 8192, 24 + 8, bm, 1), 8);
	assert_int_equal(bm[0], 1ull << 3);
	/* A range no window ever covered: REPORT fails. */
	assert_int_equal(log_report(&f, 0x5000000, 0x4000, 4096, 24 + 8, bm, 1),
			 -EINVAL);
	/* Unmapped while logging: its range is gone, REPORT fails. */
	struct vfw_dma_unmap u = { 24, 0, 0x200000, 0x4000 };
	assert_int_equal(call(&f, VFW_CMD_DMA_UNMAP, &u, sizeof(u), NULL), 0);
	assert_int_equal(log_report(&f, 0x200000, 0x4000, 4096, 24 + 8, bm, 1),
			 -EINVAL);
	/* Neighbouring windows sharing an 8 KiB logging page. */
	map_ram(&f, 0x300000, 0x1000, 0);
	map_ram(&f, 0x301000, 0x3000, 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, 0x303000, b, 1), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, 0x300000, b, 1), 0);
	assert_int_equal(log_report(&f, 0x300000, 0x4000, 4096, 24 + 8, bm, 1),
			 8);
	assert_int_equal(bm[0], 0xf); /* two 8 KiB logging pages */
	u = (struct vfw_dma_unmap){ 24, 0, 0x300000, 0x1000 };
	assert_int_equal(call(&f, VFW_CMD_DMA_UNMAP, &u, sizeof(u), NULL), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, 0x301000, b, 1), 0);
	assert_int_equal(log_report(&f, 0x300000, 0x4000, 4096, 24 + 8, bm, 1),
			 8); /* the shared page stays logged */
	assert_int_equal(bm[0], 0x3);
	/* A client that goes away takes the log with it. */
	assert_int_equal(vfmig_dev_dma_write(f.dev, W, b, 1), 0);
	fx_close(&f);
}

/* A device's own thread writes guest memory while the library thread
 * maps and unmaps other windows (the window array moves) and reports the
 * log (which clears bits the thread sets). Every page the thread wrote
 * must show up in some REPORT: a write and its mark are one step. */
#define TW_BASE 0x100000ull
#define TW_PAGES 64u
struct twriter {
	vfmig_dev *dev;
	atomic_bool stop;
	uint64_t written[TW_PAGES]; /* writes that succeeded, per page */
	int err;
};

static void *twriter_main(void *arg)
{
	struct twriter *t = arg;
	uint64_t v = 1;

	while (!atomic_load(&t->stop) && !t->err)
		for (unsigned int p = 0; p < TW_PAGES; p++, v++) {
			int r = vfmig_dev_dma_write(t->dev,
						    TW_BASE + p * 4096ull +
							    (v % 512) * 8,
						    &v, 8);
			if (r == 0)
				t->written[p]++;
			else
				t->err = r;
		}
	return NULL;
}

static void test_dma_from_thread(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY);
	uint64_t bm[TW_PAGES / 64], seen[TW_PAGES / 64] = { 0 }, pg;
	struct twriter t = { 0 };
	pthread_t th;
	struct fx f;
	(void)state;

	fx_open(&f, &o, NULL);
	map_ram(&f, TW_BASE, TW_PAGES * 4096ull, 0);
	t.dev = f.dev;
	assert_int_equal(log_start(&f, 4096, 0, NULL, 0, &pg), 0);
	assert_int_equal(pthread_create(&th, NULL, twriter_main, &t), 0);
	for (int round = 0; round < 200; round++) {
		/* 20 more windows: the array is reallocated under the writer. */
		for (int k = 0; k < 20; k++)
			map_ram(&f, 0x200000 + (uint64_t)k * 0x1000, 0x1000, 0);
		assert_int_equal(log_report(&f, TW_BASE, TW_PAGES * 4096ull,
					    4096, 24 + 8, bm, 1), 8);
		seen[0] |= bm[0];
		for (int k = 0; k < 20; k++) {
			struct vfw_dma_unmap u = { 24, 0,
						   0x200000 + (uint64_t)k *
								      0x1000,
						   0x1000 };
			assert_int_equal(call(&f, VFW_CMD_DMA_UNMAP, &u,
					      sizeof(u), NULL), 0);
		}
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	assert_int_equal(t.err, 0);
	/* What the thread wrote after the last report: this one. */
	assert_int_equal(log_report(&f, TW_BASE, TW_PAGES * 4096ull, 4096,
				    24 + 8, bm, 1), 8);
	seen[0] |= bm[0];
	for (unsigned int p = 0; p < TW_PAGES; p++)
		if (t.written[p])
			assert_true(seen[p / 64] & (1ull << (p % 64)));
	assert_true(t.written[0] > 0); /* the thread did run */
	/* Stopped: the thread's DMA is refused, not done. */
	assert_int_equal(set_state(&f, S_), 0);
	uint64_t v = 0;
	assert_int_equal(vfmig_dev_dma_write(f.dev, TW_BASE, &v, 8), -EPERM);
	assert_int_equal(set_state(&f, R_), 0);
	fx_close(&f);
}

static void test_extension(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY |
					  VFW_MIGRATION_PRE_COPY);
	struct vfw_precopy_info pi;
	struct vfw_mig_data_size ds;
	struct fx f;
	size_t n;
	(void)state;

	/* Not proposed: both features are unknown. */
	fx_open(&f, &o, NULL);
	assert_int_equal(f.dev->mig.info_version, 0);
	assert_int_equal(feat(&f, VFW_FEATURE_GET | VFW_FEATURE_MIG_DATA_SIZE,
			      NULL, 0, &ds, 8, &n), -ENOTSUP);
	assert_int_equal(feat(&f, VFW_FEATURE_GET |
				      VFW_FEATURE_VFMIG_PRECOPY_INFO,
			      NULL, 0, &pi, 16, &n), -ENOTSUP);
	fx_close(&f);

	/* Proposed with a higher version: we answer 1. */
	fx_open(&f, &o, "{\"capabilities\":{\"vfmig_mig_info\":{\"version\":9}}}");
	assert_int_equal(f.dev->mig.info_version, 1);
	assert_int_equal(feat(&f, VFW_FEATURE_GET | VFW_FEATURE_MIG_DATA_SIZE,
			      NULL, 0, &ds, 8, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(ds.stop_copy_length, 12345);
	assert_int_equal(feat(&f, VFW_FEATURE_PROBE | VFW_FEATURE_GET |
				      VFW_FEATURE_MIG_DATA_SIZE,
			      NULL, 0, NULL, 0, NULL), 0);
	assert_int_equal(feat(&f, VFW_FEATURE_PROBE | VFW_FEATURE_SET |
				      VFW_FEATURE_MIG_DATA_SIZE,
			      NULL, 0, NULL, 0, NULL), -EINVAL);
	assert_int_equal(feat(&f, VFW_FEATURE_GET |
				      VFW_FEATURE_VFMIG_PRECOPY_INFO,
			      NULL, 0, &pi, 16, &n), -EINVAL); /* RUNNING */
	assert_int_equal(set_state(&f, PC_), 0);
	assert_int_equal(feat(&f, VFW_FEATURE_GET |
				      VFW_FEATURE_VFMIG_PRECOPY_INFO,
			      NULL, 0, &pi, 16, &n), 0);
	assert_int_equal(n, 16);
	assert_int_equal(pi.initial_bytes, 3000);
	assert_int_equal(pi.dirty_bytes, 7);
	uint8_t buf[1000];
	assert_int_equal(read_data(&f, 8 + 1000, 1000, buf), 1000);
	assert_int_equal(feat(&f, VFW_FEATURE_GET |
				      VFW_FEATURE_VFMIG_PRECOPY_INFO,
			      NULL, 0, &pi, 16, &n), 0);
	assert_int_equal(pi.initial_bytes, 2000);
	assert_int_equal(set_state(&f, SC_), 0);
	assert_int_equal(feat(&f, VFW_FEATURE_GET |
				      VFW_FEATURE_VFMIG_PRECOPY_INFO,
			      NULL, 0, &pi, 16, &n), -EINVAL);
	fx_close(&f);

	/* A device without an estimate callback does not echo it. */
	o.mig_estimate = NULL;
	fx_open(&f, &o, "{\"capabilities\":{\"vfmig_mig_info\":{\"version\":1}}}");
	assert_int_equal(f.dev->mig.info_version, 0);
	fx_close(&f);
}

/* ---- the data channel (vfmig_data_channel) ---- */

#define DC_JSON "{\"capabilities\":{\"vfmig_data_channel\":{\"version\":1}}}"

/* SET VFMIG_DATA_CHANNEL with a fresh socketpair's end (or with the fd
 * given, when fd >= 0); *mine gets our end. */
static int dc_attach(struct fx *f, int fd, int *mine)
{
	uint8_t buf[16] = { 0 };
	struct vfw_device_feature h = { 16, VFW_FEATURE_SET |
						    VFW_FEATURE_VFMIG_DATA_CHANNEL };
	struct vfw_msg m;
	int sv[2] = { -1, fd }, r;

	if (fd < 0)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					    0, sv), 0);
	memcpy(buf, &h, sizeof(h));
	r = call_fds(f, VFW_CMD_DEVICE_FEATURE, buf, sizeof(buf), &sv[1], 1,
		     &m);
	close(sv[1]);
	if (r == 0)
		vfw_msg_release(&m);
	if (mine)
		*mine = sv[0];
	else if (sv[0] >= 0)
		close(sv[0]);
	return r;
}

/* Read one whole frame from the channel, pumping the device meanwhile;
 * payload into data (at most cap). Returns the kind, or 0 at EOF. */
static uint32_t dc_frame(struct fx *f, int fd, void *data, size_t cap,
			 uint32_t *size)
{
	uint8_t buf[8 + 8192];
	size_t got = 0, want = 8;

	for (int spins = 0; got < want; spins++) {
		assert_true(spins < 100000);
		vfmig_dev_process(f->dev);
		ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
		if (n == 0 && got == 0)
			return 0;
		assert_true(n > 0 || errno == EAGAIN);
		if (n > 0)
			got += (size_t)n;
		if (got == 8 && want == 8) {
			struct vfw_dc_frame h;
			memcpy(&h, buf, 8);
			assert_true(h.size <= sizeof(buf) - 8);
			want = 8 + h.size;
		}
	}
	struct vfw_dc_frame h;
	memcpy(&h, buf, 8);
	*size = h.size;
	assert_true(h.size <= cap);
	memcpy(data, buf + 8, h.size);
	return h.kind;
}

static void test_data_channel(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY |
					  VFW_MIGRATION_PRE_COPY);
	uint8_t data[8192];
	uint32_t size;
	size_t total = 0;
	struct fx f;
	int ch;
	(void)state;

	/* Not proposed: the feature is unknown, MIG_DATA works. */
	fx_open(&f, &o, NULL);
	assert_int_equal(f.dev->mig.dc_version, 0);
	assert_int_equal(set_state(&f, SC_), 0);
	assert_int_equal(dc_attach(&f, -1, NULL), -ENOTSUP);
	fx_close(&f);

	fx_open(&f, &o, DC_JSON);
	assert_int_equal(f.dev->mig.dc_version, 1);
	/* In the wrong state, with a pipe, without an fd: EINVAL. */
	assert_int_equal(dc_attach(&f, -1, NULL), -EINVAL); /* RUNNING */
	assert_int_equal(vfmig_dev_get_data_fd(f.dev), -ENOENT);
	assert_int_equal(set_state(&f, PC_), 0);
	int pp[2];
	assert_int_equal(pipe(pp), 0);
	close(pp[0]);
	assert_int_equal(dc_attach(&f, pp[1], NULL), -EINVAL);
	{
		uint8_t buf[16] = { 0 };
		struct vfw_device_feature h = {
			16, VFW_FEATURE_SET | VFW_FEATURE_VFMIG_DATA_CHANNEL
		};
		memcpy(buf, &h, sizeof(h));
		assert_int_equal(call(&f, VFW_CMD_DEVICE_FEATURE, buf,
				      sizeof(buf), NULL), -EINVAL);
	}
	/* PRE_COPY: the data, then DRAINED; a poke gives DRAINED again. */
	assert_int_equal(dc_attach(&f, -1, &ch), 0);
	assert_true(vfmig_dev_get_data_fd(f.dev) >= 0);
	assert_int_equal(dc_attach(&f, -1, NULL), -EBUSY);
	uint8_t rd[1000];
	assert_int_equal(read_data(&f, 8 + 1000, 1000, rd), -EBUSY);
	for (;;) {
		uint32_t k = dc_frame(&f, ch, data, sizeof(data), &size);
		if (k == VFW_DC_DRAINED)
			break;
		assert_int_equal(k, VFW_DC_DATA);
		for (uint32_t i = 0; i < size; i++)
			assert_int_equal(data[i], (total + i) % 251);
		total += size;
	}
	assert_int_equal(total, 3000);
	assert_int_equal(send(ch, "p", 1, 0), 1);
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size),
			 VFW_DC_DRAINED);
	/* STOP_COPY on the same channel: no more data, END, EOF. */
	assert_int_equal(set_state(&f, SC_), 0);
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size),
			 VFW_DC_END);
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size), 0);
	close(ch);
	assert_int_equal(vfmig_dev_get_data_fd(f.dev), -ENOENT);
	assert_int_equal(set_state(&f, S_), 0);

	/* RESUMING: the raw stream; GET loads what the socket holds before
	 * it answers with the count (control messages are handled before
	 * the channel is pumped, so nothing else loaded it); EOF, DONE with
	 * the count, STOP. */
	uint64_t count;
	size_t got;
	assert_int_equal(feat(&f, VFW_FEATURE_GET |
				      VFW_FEATURE_VFMIG_DATA_CHANNEL,
			      NULL, 0, &count, sizeof(count), &got),
			 -EINVAL); /* no loading channel */
	assert_int_equal(set_state(&f, RS_), 0);
	assert_int_equal(dc_attach(&f, -1, &ch), 0);
	memset(data, 7, sizeof(data));
	assert_int_equal(send(ch, data, 5000, 0), 5000);
	assert_int_equal(feat(&f, VFW_FEATURE_GET |
				      VFW_FEATURE_VFMIG_DATA_CHANNEL,
			      NULL, 0, &count, sizeof(count), &got),
			 0);
	assert_int_equal(got, 8);
	assert_int_equal(count, 5000);
	assert_int_equal(f.t.loaded, 5000);
	assert_int_equal(shutdown(ch, SHUT_WR), 0);
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size),
			 VFW_DC_DONE);
	assert_int_equal(size, 8);
	memcpy(&count, data, 8);
	assert_int_equal(count, 5000);
	assert_int_equal(f.t.loaded, 5000);
	assert_int_equal(set_state(&f, S_), 0);
	close(ch);

	/* RESUMING left before the client's EOF: refused, ERROR. */
	assert_int_equal(set_state(&f, RS_), 0);
	assert_int_equal(dc_attach(&f, -1, &ch), 0);
	assert_int_equal(send(ch, data, 100, 0), 100);
	assert_int_equal(set_state(&f, S_), -ENODATA);
	assert_int_equal(get_state(&f), E_);
	close(ch);
	assert_int_equal(call(&f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);

	/* A load the device refuses: ERROR frame with its errno. */
	f.t.load_short = true;
	assert_int_equal(set_state(&f, S_), 0);
	assert_int_equal(set_state(&f, RS_), 0);
	assert_int_equal(dc_attach(&f, -1, &ch), 0);
	assert_int_equal(send(ch, data, 100, 0), 100);
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size),
			 VFW_DC_ERROR);
	uint32_t e;
	memcpy(&e, data, 4);
	assert_int_equal(e, EINVAL);
	assert_int_equal(set_state(&f, S_), -EINVAL);
	close(ch);

	/* A client that closes its end while saving: the device drops the
	 * channel and stays in its state. */
	assert_int_equal(call(&f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);
	f.t.save_pos = 0;
	assert_int_equal(set_state(&f, SC_), 0);
	assert_int_equal(dc_attach(&f, -1, &ch), 0);
	close(ch);
	for (int i = 0; i < 10 && vfmig_dev_get_data_fd(f.dev) >= 0; i++)
		vfmig_dev_process(f.dev);
	assert_int_equal(vfmig_dev_get_data_fd(f.dev), -ENOENT);
	assert_int_equal(get_state(&f), SC_);
	fx_close(&f);
}

#define DC2_JSON "{\"capabilities\":{\"vfmig_data_channel\":{\"version\":2}}}"

/* SET VFMIG_DATA_CHANNEL asking for a seal (flags, index, algorithm). */
static int dc_attach_seal(struct fx *f, uint32_t flags, uint16_t index,
			  uint16_t algo, int *mine)
{
	struct vfw_data_channel req = { flags, index, algo };
	uint8_t buf[16];
	struct vfw_device_feature h = { 16, VFW_FEATURE_SET |
						    VFW_FEATURE_VFMIG_DATA_CHANNEL };
	struct vfw_msg m;
	int sv[2], r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + 8, &req, sizeof(req));
	r = call_fds(f, VFW_CMD_DEVICE_FEATURE, buf, sizeof(buf), &sv[1], 1, &m);
	close(sv[1]);
	if (r == 0)
		vfw_msg_release(&m);
	if (mine)
		*mine = sv[0];
	else
		close(sv[0]);
	return r;
}

static uint32_t seal_of(uint16_t index, const uint8_t *p, size_t n)
{
	struct vfmig_stream_seal *s;
	uint32_t v;

	assert_int_equal(vfmig_stream_seal_new(&s), 0);
	vfmig_stream_seal_begin(s, index, (uint32_t)n);
	vfmig_stream_seal_update(s, p, n);
	v = vfmig_stream_seal_end(s);
	vfmig_stream_seal_free(s);
	return v;
}

/* Send a SEALED frame of n bytes of data with checksum sum. */
static void send_sealed(int ch, const uint8_t *p, size_t n, uint32_t sum)
{
	struct vfw_dc_frame h = { VFW_DC_SEALED, (uint32_t)n + 4 };
	uint8_t t[4] = { (uint8_t)(sum >> 24), (uint8_t)(sum >> 16),
			 (uint8_t)(sum >> 8), (uint8_t)sum };

	assert_int_equal(send(ch, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	assert_int_equal(send(ch, p, n, 0), (ssize_t)n);
	assert_int_equal(send(ch, t, 4, 0), 4);
}

/* Version 2: sealed sessions. Saving, every data frame is SEALED with the
 * DEVICE_DATA record checksum for the index asked for; loading, DATA and
 * SEALED frames are taken, a wrong checksum and a malformed frame are
 * refused with ERROR. */
static void test_data_channel_sealed(void **state)
{
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY |
					  VFW_MIGRATION_PRE_COPY);
	uint8_t data[8192];
	uint32_t size, e;
	size_t total = 0;
	struct fx f;
	int ch;
	(void)state;

	/* A version 1 session cannot be sealed. */
	fx_open(&f, &o, DC_JSON);
	assert_int_equal(set_state(&f, PC_), 0);
	assert_int_equal(dc_attach_seal(&f, VFW_DC_F_SEAL, 7, VFW_DC_SEAL_XXH3,
					NULL), -EINVAL);
	fx_close(&f);

	fx_open(&f, &o, DC2_JSON);
	assert_int_equal(f.dev->mig.dc_version, 2);
	assert_int_equal(set_state(&f, PC_), 0);
	/* An unknown algorithm, unknown flags, a seal without the flag. */
	assert_int_equal(dc_attach_seal(&f, VFW_DC_F_SEAL, 7, 2, NULL), -EINVAL);
	assert_int_equal(dc_attach_seal(&f, 3, 7, VFW_DC_SEAL_XXH3, NULL), -EINVAL);
	assert_int_equal(dc_attach_seal(&f, 0, 7, 0, NULL), -EINVAL);
	assert_int_equal(dc_attach_seal(&f, VFW_DC_F_SEAL, 7, VFW_DC_SEAL_XXH3,
					&ch), 0);
	for (;;) {
		uint32_t k = dc_frame(&f, ch, data, sizeof(data), &size);
		if (k == VFW_DC_DRAINED)
			break;
		assert_int_equal(k, VFW_DC_SEALED);
		assert_true(size > 4);
		size -= 4;
		for (uint32_t i = 0; i < size; i++)
			assert_int_equal(data[i], (total + i) % 251);
		uint32_t want = seal_of(7, data, size);
		uint32_t got = (uint32_t)data[size] << 24 | (uint32_t)data[size + 1] << 16 |
			       (uint32_t)data[size + 2] << 8 | data[size + 3];
		assert_int_equal(got, want);
		total += size;
	}
	assert_int_equal(total, 3000);
	assert_int_equal(set_state(&f, SC_), 0);
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size), VFW_DC_END);
	close(ch);
	assert_int_equal(set_state(&f, S_), 0);

	/* Loading: a DATA frame, a SEALED one (split by the socket as it
	 * may), the count without headers or checksums. */
	uint64_t count;
	size_t got;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(set_state(&f, RS_), 0);
	assert_int_equal(dc_attach_seal(&f, VFW_DC_F_SEAL, 2, VFW_DC_SEAL_XXH3,
					&ch), 0);
	struct vfw_dc_frame d = { VFW_DC_DATA, 100 };
	assert_int_equal(send(ch, &d, sizeof(d), 0), (ssize_t)sizeof(d));
	assert_int_equal(send(ch, data, 100, 0), 100);
	send_sealed(ch, data + 100, 5000, seal_of(2, data + 100, 5000));
	assert_int_equal(feat(&f, VFW_FEATURE_GET | VFW_FEATURE_VFMIG_DATA_CHANNEL,
			      NULL, 0, &count, sizeof(count), &got), 0);
	assert_int_equal(count, 5100);
	assert_int_equal(f.t.loaded, 5100);
	assert_int_equal(shutdown(ch, SHUT_WR), 0);
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size), VFW_DC_DONE);
	memcpy(&count, data, 8);
	assert_int_equal(count, 5100);
	assert_int_equal(set_state(&f, S_), 0);
	close(ch);

	/* A checksum made for another index: EBADMSG, and STOP refused. */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(set_state(&f, RS_), 0);
	assert_int_equal(dc_attach_seal(&f, VFW_DC_F_SEAL, 2, VFW_DC_SEAL_XXH3,
					&ch), 0);
	send_sealed(ch, data, 1000, seal_of(3, data, 1000));
	assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size), VFW_DC_ERROR);
	memcpy(&e, data, 4);
	assert_int_equal(e, EBADMSG);
	assert_int_equal(set_state(&f, S_), -EBADMSG);
	close(ch);
	assert_int_equal(call(&f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);

	/* Malformed frames: an empty SEALED, an unknown kind, an oversized
	 * DATA, and EOF inside a frame: EPROTO. */
	static const struct vfw_dc_frame bad[] = {
		{ VFW_DC_SEALED, 4 },
		{ 9, 1 },
		{ VFW_DC_DATA, VFW_DC_FRAME_MAX + 1 },
		{ VFW_DC_DATA, 100 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(set_state(&f, S_), 0);
		assert_int_equal(set_state(&f, RS_), 0);
		assert_int_equal(dc_attach_seal(&f, VFW_DC_F_SEAL, 0,
						VFW_DC_SEAL_XXH3, &ch), 0);
		assert_int_equal(send(ch, &bad[i], sizeof(bad[i]), 0),
				 (ssize_t)sizeof(bad[i]));
		if (i == 3) {
			assert_int_equal(send(ch, data, 10, 0), 10);
			assert_int_equal(shutdown(ch, SHUT_WR), 0);
		}
		assert_int_equal(dc_frame(&f, ch, data, sizeof(data), &size),
				 VFW_DC_ERROR);
		memcpy(&e, data, 4);
		assert_int_equal(e, EPROTO);
		close(ch);
		assert_int_equal(call(&f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);
	}
	fx_close(&f);
}

/* A version 1 table (shorter struct) still works: no migration. */
struct ops_v1 {
	uint32_t version;
	int (*region_access)(vfmig_dev *, void *, unsigned int, uint64_t,
			     void *, size_t, bool);
	int (*reset)(vfmig_dev *, void *);
	void (*irq_changed)(vfmig_dev *, void *, unsigned int);
	void (*client_changed)(vfmig_dev *, void *, bool);
};

static void test_ops_v1(void **state)
{
	struct ops_v1 *o1 = malloc(sizeof(*o1)); /* exactly v1-sized */
	struct fx f;
	(void)state;

	*o1 = (struct ops_v1){ 1, t_access, NULL, NULL, NULL };
	fx_open(&f, (const struct vfmig_dev_ops *)o1,
		"{\"capabilities\":{\"vfmig_mig_info\":{\"version\":1}}}");
	free(o1);
	assert_int_equal(f.dev->mig.info_version, 0);
	assert_int_equal(feat(&f, VFW_FEATURE_GET | VFW_FEATURE_MIGRATION, NULL,
			      0, NULL, 8, NULL), -ENOTSUP);
	assert_int_equal(feat(&f, VFW_FEATURE_SET |
				      VFW_FEATURE_DMA_LOGGING_START,
			      NULL, 0, NULL, 0, NULL), -ENOTSUP);
	assert_int_equal(vfmig_dev_mig_state(f.dev), R_);
	fx_close(&f);

	/* MIGRATION GET reports the flags */
	struct vfmig_dev_ops o = make_ops(VFW_MIGRATION_STOP_COPY |
					  VFW_MIGRATION_PRE_COPY);
	uint64_t fl = 0;
	size_t n;
	fx_open(&f, &o, NULL);
	assert_int_equal(feat(&f, VFW_FEATURE_GET | VFW_FEATURE_MIGRATION, NULL,
			      0, &fl, 8, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(fl, VFW_MIGRATION_STOP_COPY | VFW_MIGRATION_PRE_COPY);
	assert_int_equal(feat(&f, VFW_FEATURE_GET | VFW_FEATURE_MIGRATION, NULL,
			      0, &fl, 4, &n), -EINVAL); /* argsz too small */
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_pairs_stop_copy),
		cmocka_unit_test(test_all_pairs_pre_copy),
		cmocka_unit_test(test_all_pairs_p2p),
		cmocka_unit_test(test_failing_arcs),
		cmocka_unit_test(test_mig_data),
		cmocka_unit_test(test_gating_dma_irq),
		cmocka_unit_test(test_dma_logging),
		cmocka_unit_test(test_dma_from_thread),
		cmocka_unit_test(test_extension),
		cmocka_unit_test(test_data_channel),
		cmocka_unit_test(test_data_channel_sealed),
		cmocka_unit_test(test_ops_v1),
	};
	return cmocka_run_group_tests_name("device-migration", tests, NULL,
					   NULL);
}
