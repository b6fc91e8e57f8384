/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the device side of the 2019 region-based device-state
 * interface (docs/region-interface.md), over a socketpair with raw messages:
 * REGION_INFO of regions 9..12 (type capability, sizes, flags, the memfd and
 * its mapping), the control region's fields and the accesses it refuses,
 * device_state writes against the arcs a v2 client causes, a full save
 * through the memory and config regions loaded into a second device, pos and
 * size checks, ERROR and DEVICE_RESET, the dirty bitmap after device DMA,
 * the v2 features refused, and vfmig_dev_set_mig_interface's errors.
 */
#include <endian.h>
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

enum { E_ = 0, S_ = 1, R_ = 2, SC_ = 3, RS_ = 4, PC_ = 6 };

#define MiB (1u << 20)
#define STREAM_MAX (4u * MiB)

/* ---- a test device ---- */

struct tdev {
	uint32_t arcs[64][2];
	int narcs;
	size_t pre_total;  /* bytes a session produces while in PRE_COPY */
	size_t save_total; /* bytes a session produces in all */
	size_t save_pos;
	uint8_t *loaded; /* STREAM_MAX bytes */
	size_t nloaded;
	int finished;
	bool fail_finish;
};

static uint8_t pattern(size_t pos)
{
	return (uint8_t)((pos % 251) ^ (pos >> 12));
}

static int t_access(vfmig_dev *dev, void *priv, unsigned int bar,
		    uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off;
	if (!is_write)
		memset(buf, 0x11, len);
	return 0;
}

static int t_transition(vfmig_dev *dev, void *priv, uint32_t from,
			uint32_t to)
{
	struct tdev *t = priv;

	(void)dev;
	if (t->narcs < 64) {
		t->arcs[t->narcs][0] = from;
		t->arcs[t->narcs][1] = to;
		t->narcs++;
	}
	if ((to == SC_ || to == PC_) && from != PC_)
		t->save_pos = 0;
	if (to == RS_)
		t->nloaded = 0;
	return 0;
}

static ssize_t t_save(vfmig_dev *dev, void *priv, void *buf, size_t len)
{
	struct tdev *t = priv;
	size_t end = vfmig_dev_mig_state(dev) == PC_ ? t->pre_total
						      : t->save_total;
	size_t n = end > t->save_pos ? end - t->save_pos : 0;

	if (n > len)
		n = len;
	if (n > 70000)
		n = 70000; /* the library must gather several calls */
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = pattern(t->save_pos + i);
	t->save_pos += n;
	return (ssize_t)n;
}

static ssize_t t_load(vfmig_dev *dev, void *priv, const void *buf,
		      size_t len)
{
	struct tdev *t = priv;

	(void)dev;
	if (!t->loaded || len > STREAM_MAX - t->nloaded)
		return -ENOSPC;
	memcpy(t->loaded + t->nloaded, buf, len);
	t->nloaded += len;
	return (ssize_t)len;
}

static int t_finish(vfmig_dev *dev, void *priv)
{
	struct tdev *t = priv;

	(void)dev;
	t->finished++;
	return t->fail_finish ? -EBADMSG : 0;
}

static struct vfmig_dev_ops make_ops(uint64_t flags)
{
	struct vfmig_dev_ops o = {
		.version = VFMIG_DEV_OPS_VERSION,
		.region_access = t_access,
		.mig_flags = flags,
		.mig_transition = t_transition,
		.mig_save = t_save,
		.mig_load = t_load,
		.mig_load_finish = t_finish,
	};
	return o;
}

static const uint64_t PRE = VFMIG_DEV_MIG_F_STOP_COPY | VFMIG_DEV_MIG_F_PRE_COPY;

/* ---- a client over a socketpair ---- */

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

static void fx_open(struct fx *f, const struct vfmig_dev_ops *o, bool region)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,"
				   "\"vfmig_mig_info\":{\"version\":1}}}";
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION,
				    .vendor_id = 0x1b36,
				    .device_id = 0x1000 };
	uint8_t v[4 + sizeof(json)] = { 0 };
	struct vfw_caps caps;
	uint16_t major, minor;
	char err[128];
	struct vfw_msg m;
	int sv[2];

	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	memset(f, 0, sizeof(*f));
	f->ram = -1;
	f->t.loaded = malloc(STREAM_MAX);
	assert_non_null(f->t.loaded);
	assert_int_equal(vfmig_dev_create(&d, o, &f->t, &f->dev), 0);
	if (region)
		assert_int_equal(vfmig_dev_set_mig_interface(
					 f->dev, VFMIG_DEV_MIG_IFACE_REGION),
				 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vfmig_dev_attach_fd(f->dev, sv[1]), 0);
	f->fd = sv[0];
	memcpy(v + 4, json, sizeof(json));
	assert_int_equal(call(f, VFW_CMD_VERSION, v, sizeof(v), &m), 0);
	assert_int_equal(vfw_version_parse(m.payload, m.len, &major, &minor,
					   &caps, err, sizeof(err)), 0);
	f->echoed = caps.mig_info_version;
	vfw_msg_release(&m);
}

static void fx_close(struct fx *f)
{
	vfmig_dev_destroy(f->dev);
	close(f->fd);
	if (f->ram >= 0)
		close(f->ram);
	free(f->t.loaded);
}

/* ---- region access helpers ---- */

static int rread(struct fx *f, uint32_t region, uint64_t off, void *buf,
		 uint32_t len)
{
	struct vfw_region_access a = { off, region, len };
	struct vfw_msg m;
	int r = call(f, VFW_CMD_REGION_READ, &a, sizeof(a), &m);

	if (r < 0)
		return r;
	assert_int_equal(m.len, sizeof(a) + len);
	memcpy(buf, m.payload + sizeof(a), len);
	vfw_msg_release(&m);
	return 0;
}

static int rwrite(struct fx *f, uint32_t region, uint64_t off,
		  const void *buf, uint32_t len)
{
	struct vfw_region_access a = { off, region, len };
	uint8_t *p = malloc(sizeof(a) + len);
	int r;

	assert_non_null(p);
	memcpy(p, &a, sizeof(a));
	memcpy(p + sizeof(a), buf, len);
	r = call(f, VFW_CMD_REGION_WRITE, p, sizeof(a) + len, NULL);
	free(p);
	return r;
}

/* Control fields are little-endian on any host (region-interface.md). */
static int ctl_w(struct fx *f, uint32_t off, uint32_t len, uint64_t v)
{
	uint8_t b[8];

	assert_true(len <= sizeof(b));
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return rwrite(f, VFW_DS_REGION_CTL, off, b, len);
}

static uint64_t ctl_r(struct fx *f, uint32_t off, uint32_t len)
{
	uint8_t b[8];
	uint64_t v = 0;

	assert_true(len <= sizeof(b));
	assert_int_equal(rread(f, VFW_DS_REGION_CTL, off, b, len), 0);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static int set_ds(struct fx *f, uint32_t v)
{
	return ctl_w(f, VFW_DS_OFF_DEVICE_STATE, 4, v);
}

static void reset(struct fx *f)
{
	assert_int_equal(call(f, VFW_CMD_DEVICE_RESET, NULL, 0, NULL), 0);
}

/* GET_REGION_INFO with a 64-byte argsz; *fd gets the passed fd or -1. */
static int region_info(struct fx *f, uint32_t index, uint32_t argsz,
		       struct vfw_region_info *ri,
		       struct vfw_region_info_cap_type *cap, int *fd)
{
	struct vfw_region_info rq = { .argsz = argsz, .index = index };
	struct vfw_msg m;
	int r = call(f, VFW_CMD_DEVICE_GET_REGION_INFO, &rq, sizeof(rq), &m);

	*fd = -1;
	if (r < 0)
		return r;
	assert_true(m.len >= sizeof(*ri));
	memcpy(ri, m.payload, sizeof(*ri));
	memset(cap, 0, sizeof(*cap));
	if (ri->cap_offset) {
		assert_int_equal(m.len, ri->cap_offset + sizeof(*cap));
		memcpy(cap, m.payload + ri->cap_offset, sizeof(*cap));
	}
	assert_true(m.nfds <= 1);
	if (m.nfds)
		*fd = m.fds[0];
	m.nfds = 0; /* ours now */
	vfw_msg_release(&m);
	return 0;
}

static uint32_t num_regions(struct fx *f)
{
	struct vfw_device_info di = { sizeof(di) };
	struct vfw_msg m;

	assert_int_equal(call(f, VFW_CMD_DEVICE_GET_INFO, &di, sizeof(di), &m),
			 0);
	memcpy(&di, m.payload, sizeof(di));
	vfw_msg_release(&m);
	return di.num_regions;
}

/* ---- tests ---- */

static void test_region_info(void **state)
{
	static const struct {
		uint32_t index, subtype;
		uint64_t size;
		bool mmap;
	} want[] = {
		{ 9, 1, 4096, false },
		{ 10, 2, MiB, true },
		{ 11, 3, MiB, true },
		{ 12, 4, 4096, true },
	};
	struct vfmig_dev_ops o = make_ops(PRE);
	struct vfw_region_info_cap_type cap;
	struct vfw_region_info ri;
	struct fx f;
	int fd;
	(void)state;

	fx_open(&f, &o, true);
	assert_int_equal(num_regions(&f), 13);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(region_info(&f, want[i].index, 64, &ri, &cap,
					     &fd), 0);
		assert_int_equal(ri.index, want[i].index);
		assert_int_equal(ri.size, want[i].size);
		assert_int_equal(ri.argsz, 48);
		assert_int_equal(ri.cap_offset, 32);
		assert_int_equal(ri.offset, 0);
		assert_int_equal(ri.flags,
				 VFW_REGION_INFO_FLAG_READ |
					 VFW_REGION_INFO_FLAG_WRITE |
					 VFW_REGION_INFO_FLAG_CAPS |
					 (want[i].mmap ? VFW_REGION_INFO_FLAG_MMAP
						       : 0));
		assert_int_equal(cap.header.id, VFW_REGION_INFO_CAP_TYPE);
		assert_int_equal(cap.header.version, 1);
		assert_int_equal(cap.header.next, 0);
		assert_int_equal(cap.type, VFW_REGION_TYPE_DEVICE_STATE);
		assert_int_equal(cap.subtype, want[i].subtype);
		assert_int_equal(fd >= 0, want[i].mmap);
		if (fd < 0)
			continue;
		/* Written through the mapping, seen by REGION_READ, and back. */
		uint8_t *p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, fd, 0);
		assert_true(p != MAP_FAILED);
		uint8_t buf[64], pat[64];
		for (int k = 0; k < 64; k++)
			pat[k] = (uint8_t)(k * 3 + i);
		memcpy(p + ri.size - 64, pat, 64);
		assert_int_equal(rread(&f, ri.index, ri.size - 64, buf, 64), 0);
		assert_memory_equal(buf, pat, 64);
		assert_int_equal(rwrite(&f, ri.index, 0, pat, 64), 0);
		assert_memory_equal(p, pat, 64);
		/* Out of range, overflowing offsets */
		assert_int_equal(rread(&f, ri.index, ri.size - 63, buf, 64),
				 -EINVAL);
		assert_int_equal(rread(&f, ri.index, UINT64_MAX - 7, buf, 16),
				 -EINVAL);
		munmap(p, ri.size);
		close(fd);
	}
	/* A short argsz: the size needed, no capability, no mmap, no fd. */
	assert_int_equal(region_info(&f, 11, 32, &ri, &cap, &fd), 0);
	assert_int_equal(ri.argsz, 48);
	assert_int_equal(ri.cap_offset, 0);
	assert_int_equal(ri.flags, VFW_REGION_INFO_FLAG_READ |
				   VFW_REGION_INFO_FLAG_WRITE);
	assert_int_equal(fd, -1);
	assert_int_equal(region_info(&f, 13, 64, &ri, &cap, &fd), -EINVAL);
	assert_int_equal(rread(&f, 13, 0, &ri, 4), -EINVAL);
	fx_close(&f);

	/* Without the interface the regions do not exist. */
	fx_open(&f, &o, false);
	assert_int_equal(num_regions(&f), 9);
	assert_int_equal(region_info(&f, 9, 64, &ri, &cap, &fd), -EINVAL);
	assert_int_equal(rread(&f, 9, 0, &ri, 4), -EINVAL);
	assert_int_equal(rread(&f, 10, 0, &ri, 4), -EINVAL);
	fx_close(&f);
}

static void test_ctl_fields(void **state)
{
	struct vfmig_dev_ops o = make_ops(PRE);
	uint8_t b16[16] = { 0 };
	uint64_t v;
	struct fx f;
	(void)state;

	fx_open(&f, &o, true);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_VERSION, 4), 1);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_DEVICE_STATE, 4), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_CAPS, 4),
			 VFW_DS_CAP_DEVICE_MEMORY | VFW_DS_CAP_SYSTEM_MEMORY);
	/* rw fields keep what was written */
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_SIZE, 8, 77), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_SIZE, 8, 1ull << 40), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_POS, 8, 5), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_START_ADDR, 8, 0x3000), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_CONFIG_SIZE, 8), 77);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_MEMORY_SIZE, 8), 1ull << 40);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_MEMORY_POS, 8), 5);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_SYS_START_ADDR, 8), 0x3000);
	/* Not exactly one field */
	assert_int_equal(rread(&f, 9, 0, &v, 2), -EINVAL);
	assert_int_equal(rread(&f, 9, 0, &v, 8), -EINVAL);
	assert_int_equal(rread(&f, 9, 2, &v, 4), -EINVAL);
	assert_int_equal(rread(&f, 9, 12, &v, 4), -EINVAL);  /* padding */
	assert_int_equal(rread(&f, 9, 24, &v, 4), -EINVAL);  /* half a u64 */
	assert_int_equal(rread(&f, 9, 28, &v, 4), -EINVAL);
	assert_int_equal(rread(&f, 9, 72, &v, 8), -EINVAL);  /* past the struct */
	assert_int_equal(rread(&f, 9, 4088, &v, 8), -EINVAL);
	assert_int_equal(rread(&f, 9, 4096, &v, 4), -EINVAL);
	assert_int_equal(rread(&f, 9, UINT64_MAX - 3, &v, 4), -EINVAL);
	assert_int_equal(rread(&f, 9, 56, b16, 16), -EINVAL); /* write only */
	/* write-only and read-only fields */
	assert_int_equal(rread(&f, 9, VFW_DS_OFF_CONFIG_ACTION, &v, 4), -EINVAL);
	assert_int_equal(rread(&f, 9, VFW_DS_OFF_MEMORY_ACTION, &v, 4), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_VERSION, 4, 1), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CAPS, 4, 3), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_DEVICE_STATE, 8, 0), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_SIZE, 4, 0), -EINVAL);
	assert_int_equal(ctl_w(&f, 72, 8, 0), -EINVAL);
	assert_int_equal(rwrite(&f, 9, 60, b16, 16), -EINVAL);
	assert_int_equal(rwrite(&f, 9, 64, b16, 16), -EINVAL);
	/* Unknown actions and device_state values change nothing. */
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_ACTION, 4, 3), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_ACTION, 4, 0), -EINVAL);
	f.t.narcs = 0;
	assert_int_equal(set_ds(&f, 4), -EINVAL);
	assert_int_equal(set_ds(&f, 0x80000001u), -EINVAL);
	assert_int_equal(f.t.narcs, 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_DEVICE_STATE, 4), 0);
	/* GETs in RUNNING (no LOGGING) are refused. */
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_POS, 8, 0), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_ACTION, 4, 1), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_ACTION, 4, 1), -EINVAL);
	fx_close(&f);

	/* No iterative data: no DEVICE_MEMORY cap; RUNNING + LOGGING stays
	 * in v2 RUNNING and a memory GET gives 0 bytes. */
	o = make_ops(VFMIG_DEV_MIG_F_STOP_COPY);
	fx_open(&f, &o, true);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_CAPS, 4), VFW_DS_CAP_SYSTEM_MEMORY);
	assert_int_equal(set_ds(&f, VFW_DS_STATE_LOGGING), 0);
	assert_int_equal(vfmig_dev_mig_state(f.dev), R_);
	assert_int_equal(f.t.narcs, 0);
	assert_true(f.dev->dlog.on);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_SIZE, 8, 9), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_ACTION, 4, 1), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_MEMORY_SIZE, 8), 0);
	fx_close(&f);
}

/* The v2 state a device_state value stands for. */
static uint32_t v2_of(uint32_t v, uint64_t flags)
{
	static const uint32_t m[4] = { R_, S_, PC_, SC_ };

	if (v == 2 && !(flags & VFMIG_DEV_MIG_F_PRE_COPY))
		return R_;
	return m[v];
}

static int v2_set(struct fx *f, uint32_t to)
{
	uint8_t buf[16];
	struct vfw_device_feature h = { 16, VFW_FEATURE_SET |
					VFW_FEATURE_MIG_DEVICE_STATE };
	struct vfw_mig_device_state s = { to, 0 };

	memcpy(buf, &h, 8);
	memcpy(buf + 8, &s, 8);
	return call(f, VFW_CMD_DEVICE_FEATURE, buf, sizeof(buf), NULL);
}

static void state_walk(uint64_t flags)
{
	struct vfmig_dev_ops o = make_ops(flags);
	struct fx rg, v2;

	fx_open(&rg, &o, true);
	fx_open(&v2, &o, false);
	for (uint32_t from = 0; from < 4; from++) {
		for (uint32_t to = 0; to < 4; to++) {
			uint32_t vf = v2_of(from, flags), vt = v2_of(to, flags);
			reset(&rg);
			reset(&v2);
			assert_int_equal(set_ds(&rg, from), 0);
			assert_int_equal(ctl_r(&rg, VFW_DS_OFF_DEVICE_STATE, 4),
					 from);
			assert_int_equal(vfmig_dev_mig_state(rg.dev), vf);
			assert_int_equal(rg.dev->dlog.on, (from & 2) != 0);
			assert_int_equal(v2_set(&v2, vf), 0);
			rg.t.narcs = v2.t.narcs = 0;
			assert_int_equal(set_ds(&rg, to), 0);
			assert_int_equal(ctl_r(&rg, VFW_DS_OFF_DEVICE_STATE, 4),
					 to);
			assert_int_equal(vfmig_dev_mig_state(rg.dev), vt);
			assert_int_equal(rg.dev->dlog.on, (to & 2) != 0);
			if (vf == SC_ && vt == PC_) {
				/* No v2 arc: through RUNNING, a new session. */
				assert_int_equal(v2_set(&v2, vt), -EINVAL);
				assert_int_equal(v2_set(&v2, R_), 0);
			}
			assert_int_equal(v2_set(&v2, vt), 0);
			assert_int_equal(rg.t.narcs, v2.t.narcs);
			assert_memory_equal(rg.t.arcs, v2.t.arcs,
					    (size_t)rg.t.narcs * 8);
			if (from == 0 && to == 3) { /* through STOP */
				assert_int_equal(rg.t.narcs, 2);
				assert_int_equal(rg.t.arcs[0][1], S_);
				assert_int_equal(rg.t.arcs[1][1], SC_);
			}
			/* The same value again: nothing happens. */
			rg.t.narcs = 0;
			assert_int_equal(set_ds(&rg, to), 0);
			assert_int_equal(rg.t.narcs, 0);
		}
	}
	/* Stopped: region accesses still work, DMA_MAP does not. */
	assert_int_equal(set_ds(&rg, 1), 0);
	assert_int_equal(ctl_r(&rg, VFW_DS_OFF_VERSION, 4), 1);
	uint8_t z[64] = { 0 };
	assert_int_equal(rwrite(&rg, VFW_DS_REGION_CONFIG, 0, z, 64), 0);
	fx_close(&rg);
	fx_close(&v2);
}

static void test_state_walk(void **state)
{
	(void)state;
	state_walk(PRE);
	state_walk(VFMIG_DEV_MIG_F_STOP_COPY);
}

/* A mapped data region of a device. */
static uint8_t *map_region(struct fx *f, uint32_t index)
{
	struct vfw_region_info_cap_type cap;
	struct vfw_region_info ri;
	uint8_t *p;
	int fd;

	assert_int_equal(region_info(f, index, 64, &ri, &cap, &fd), 0);
	assert_true(fd >= 0);
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	close(fd);
	return p;
}

struct chunk {
	uint8_t kind; /* VFW_DS_CHUNK_* */
	uint64_t off, len; /* in the saved stream */
};

static void test_save_load(void **state)
{
	struct vfmig_dev_ops o = make_ops(PRE);
	uint8_t *stream = malloc(STREAM_MAX), *cfg, *mem, *dcfg, *dmem;
	struct chunk ch[32];
	size_t nch = 0, total = 0, fetched = 0;
	struct fx src, dst;
	uint64_t n;
	(void)state;

	assert_non_null(stream);
	fx_open(&src, &o, true);
	fx_open(&dst, &o, true);
	src.t.pre_total = MiB + MiB / 2;
	src.t.save_total = src.t.pre_total + MiB + 300000;
	cfg = map_region(&src, VFW_DS_REGION_CONFIG);
	mem = map_region(&src, VFW_DS_REGION_MEMORY);
	/* PRE_COPY: memory chunks, pos checked. */
	assert_int_equal(set_ds(&src, VFW_DS_STATE_LOGGING), 0);
	assert_int_equal(vfmig_dev_mig_state(src.dev), PC_);
	assert_int_equal(ctl_w(&src, VFW_DS_OFF_CONFIG_ACTION, 4, 1), -EINVAL);
	for (;;) {
		assert_int_equal(ctl_w(&src, VFW_DS_OFF_MEMORY_POS, 8,
				       fetched + 1), 0);
		assert_int_equal(ctl_w(&src, VFW_DS_OFF_MEMORY_ACTION, 4, 1),
				 -EINVAL);
		assert_int_equal(ctl_w(&src, VFW_DS_OFF_MEMORY_POS, 8, fetched),
				 0);
		assert_int_equal(ctl_w(&src, VFW_DS_OFF_MEMORY_ACTION, 4, 1), 0);
		n = ctl_r(&src, VFW_DS_OFF_MEMORY_SIZE, 8);
		if (!n)
			break;
		assert_true(n <= MiB);
		memcpy(stream + total, mem, n);
		/* REGION_READ sees the same bytes as the mapping. */
		uint8_t head[256];
		assert_int_equal(rread(&src, VFW_DS_REGION_MEMORY, 0, head,
				       sizeof(head)), 0);
		assert_memory_equal(head, mem, sizeof(head));
		ch[nch++] = (struct chunk){ VFW_DS_CHUNK_MEMORY, total, n };
		total += n;
		fetched += n;
	}
	assert_int_equal(fetched, MiB + MiB / 2);
	assert_int_equal(nch, 2);
	/* STOP_COPY: memory gives 0, config chunks until 0. */
	src.t.narcs = 0;
	assert_int_equal(set_ds(&src, VFW_DS_STATE_STOP | VFW_DS_STATE_LOGGING),
			 0);
	assert_int_equal(src.t.narcs, 1); /* PRE_COPY -> STOP_COPY */
	assert_int_equal(ctl_w(&src, VFW_DS_OFF_MEMORY_ACTION, 4, 1), 0);
	assert_int_equal(ctl_r(&src, VFW_DS_OFF_MEMORY_SIZE, 8), 0);
	for (;;) {
		assert_int_equal(ctl_w(&src, VFW_DS_OFF_CONFIG_ACTION, 4, 1), 0);
		n = ctl_r(&src, VFW_DS_OFF_CONFIG_SIZE, 8);
		if (!n)
			break;
		assert_true(n <= MiB);
		memcpy(stream + total, cfg, n);
		ch[nch++] = (struct chunk){ VFW_DS_CHUNK_CONFIG, total, n };
		total += n;
	}
	assert_int_equal(total, src.t.save_total);
	for (size_t i = 0; i < total; i++)
		if (stream[i] != pattern(i))
			fail_msg("saved byte %zu wrong", i);

	/* Destination: a SET while running is refused. */
	dcfg = map_region(&dst, VFW_DS_REGION_CONFIG);
	dmem = map_region(&dst, VFW_DS_REGION_MEMORY);
	assert_int_equal(ctl_w(&dst, VFW_DS_OFF_CONFIG_SIZE, 8, 10), 0);
	assert_int_equal(ctl_w(&dst, VFW_DS_OFF_CONFIG_ACTION, 4, 2), -EINVAL);
	assert_int_equal(set_ds(&dst, VFW_DS_STATE_STOP), 0);
	/* Oversize: refused, no session started. */
	assert_int_equal(ctl_w(&dst, VFW_DS_OFF_CONFIG_SIZE, 8, MiB + 1), 0);
	assert_int_equal(ctl_w(&dst, VFW_DS_OFF_CONFIG_ACTION, 4, 2), -EINVAL);
	assert_int_equal(vfmig_dev_mig_state(dst.dev), S_);
	dst.t.narcs = 0;
	size_t loaded_mem = 0;
	for (size_t i = 0; i < nch; i++) {
		bool is_mem = ch[i].kind == VFW_DS_CHUNK_MEMORY;
		uint8_t *reg = is_mem ? dmem : dcfg;
		/* The first 4 KiB by REGION_WRITE, the rest by the mapping. */
		memset(reg, 0, 4096);
		assert_int_equal(rwrite(&dst, is_mem ? 11 : 10, 0,
					stream + ch[i].off, 4096), 0);
		memcpy(reg + 4096, stream + ch[i].off + 4096, ch[i].len - 4096);
		if (is_mem) {
			if (i == 1) { /* a wrong pos is refused */
				assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_POS,
						       8, loaded_mem - 1), 0);
				assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_SIZE,
						       8, ch[i].len), 0);
				assert_int_equal(ctl_w(&dst,
						       VFW_DS_OFF_MEMORY_ACTION,
						       4, 2), -EINVAL);
				assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_SIZE,
						       8, MiB + 1), 0);
				assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_POS,
						       8, loaded_mem), 0);
				assert_int_equal(ctl_w(&dst,
						       VFW_DS_OFF_MEMORY_ACTION,
						       4, 2), -EINVAL);
			}
			assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_POS, 8,
					       loaded_mem), 0);
			assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_SIZE, 8,
					       ch[i].len), 0);
			assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_ACTION,
					       4, 2), 0);
			loaded_mem += ch[i].len;
		} else {
			assert_int_equal(ctl_w(&dst, VFW_DS_OFF_CONFIG_SIZE, 8,
					       ch[i].len), 0);
			assert_int_equal(ctl_w(&dst, VFW_DS_OFF_CONFIG_ACTION,
					       4, 2), 0);
		}
		assert_int_equal(vfmig_dev_mig_state(dst.dev), RS_);
	}
	/* One STOP -> RESUMING arc; the device_state read stays STOP. */
	assert_int_equal(dst.t.narcs, 1);
	assert_int_equal(dst.t.arcs[0][1], RS_);
	assert_int_equal(ctl_r(&dst, VFW_DS_OFF_DEVICE_STATE, 4), 1);
	assert_int_equal(dst.t.finished, 0);
	/* RUNNING ends the load, then runs. */
	assert_int_equal(set_ds(&dst, 0), 0);
	assert_int_equal(dst.t.finished, 1);
	assert_int_equal(dst.t.narcs, 3);
	assert_int_equal(dst.t.arcs[1][0], RS_);
	assert_int_equal(dst.t.arcs[1][1], S_);
	assert_int_equal(dst.t.arcs[2][1], R_);
	assert_int_equal(vfmig_dev_mig_state(dst.dev), R_);
	assert_int_equal(dst.t.nloaded, total);
	assert_memory_equal(dst.t.loaded, stream, total);

	/* Writing STOP ends a load too (and stays stopped). */
	assert_int_equal(set_ds(&dst, VFW_DS_STATE_STOP), 0);
	assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_POS, 8, 0), 0);
	assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_SIZE, 8, 100), 0);
	assert_int_equal(ctl_w(&dst, VFW_DS_OFF_MEMORY_ACTION, 4, 2), 0);
	assert_int_equal(vfmig_dev_mig_state(dst.dev), RS_);
	assert_int_equal(set_ds(&dst, VFW_DS_STATE_STOP), 0);
	assert_int_equal(dst.t.finished, 2);
	assert_int_equal(vfmig_dev_mig_state(dst.dev), S_);

	munmap(cfg, MiB);
	munmap(mem, MiB);
	munmap(dcfg, MiB);
	munmap(dmem, MiB);
	fx_close(&src);
	fx_close(&dst);
	free(stream);
}

static void test_error_reset(void **state)
{
	struct vfmig_dev_ops o = make_ops(PRE);
	struct fx f;
	(void)state;

	fx_open(&f, &o, true);
	assert_int_equal(set_ds(&f, VFW_DS_STATE_STOP), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_SIZE, 8, 64), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_ACTION, 4, 2), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_MEMORY_POS, 8, 3), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_START_ADDR, 8, 0x5000), 0);
	/* The load does not finish: the device's error, then ERROR. */
	f.t.fail_finish = true;
	assert_int_equal(set_ds(&f, 0), -EBADMSG);
	assert_int_equal(vfmig_dev_mig_state(f.dev), E_);
	for (uint32_t v = 0; v < 4; v++)
		assert_int_equal(set_ds(&f, v), -EIO);
	assert_int_equal(set_ds(&f, 9), -EINVAL);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_VERSION, 4), 1); /* readable */
	/* DEVICE_RESET: RUNNING, logging off, every field 0. */
	reset(&f);
	assert_int_equal(vfmig_dev_mig_state(f.dev), R_);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_DEVICE_STATE, 4), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_CONFIG_SIZE, 8), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_MEMORY_SIZE, 8), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_MEMORY_POS, 8), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_SYS_START_ADDR, 8), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_SYS_PAGE_NR, 8), 0);
	f.t.fail_finish = false;
	assert_int_equal(set_ds(&f, 2), 0);
	assert_true(f.dev->dlog.on);
	reset(&f);
	assert_false(f.dev->dlog.on);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 1), -EINVAL);
	assert_int_equal(set_ds(&f, 3), 0);
	fx_close(&f);
}

static void map_ram(struct fx *f, uint64_t iova, uint64_t size)
{
	struct vfw_dma_map m = { 32, 3, 0, iova, size };

	if (f->ram < 0) {
		f->ram = memfd_create("ram", MFD_CLOEXEC);
		assert_int_equal(ftruncate(f->ram, 1 << 20), 0);
	}
	assert_int_equal(call_fds(f, VFW_CMD_DMA_MAP, &m, sizeof(m), &f->ram, 1,
				  NULL), 0);
}

static void test_dirty_bitmap(void **state)
{
	struct vfmig_dev_ops o = make_ops(PRE);
	const uint64_t W = 0x40000000;
	uint64_t words[512], rd[4];
	uint8_t b[8] = { 1 }, w16[16];
	uint64_t *bm;
	struct fx f;
	(void)state;

	fx_open(&f, &o, true);
	map_ram(&f, W, 256 * 4096);
	bm = (uint64_t *)map_region(&f, VFW_DS_REGION_BITMAP);
	/* LOGGING off: refused */
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_START_ADDR, 8, W), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 256), -EINVAL);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W, b, 1), 0); /* not logged */
	assert_int_equal(set_ds(&f, VFW_DS_STATE_LOGGING), 0);
	/* Pages 1, 3 (and 4: a write across), 64, 200. */
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 4096 + 8, b, 8), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 4 * 4096 - 2, b, 4), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 64 * 4096, b, 1), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 200 * 4096 + 4095, b,
					     1), 0);
	memset(bm, 0xff, 4096);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 256), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_SYS_PAGE_NR, 8), 256);
	/* the bitmap's u64 words are little-endian on any host */
	assert_int_equal(((uint8_t *)bm)[0], 0x1a);
	assert_int_equal(((uint8_t *)bm)[8], 0x01);
	assert_int_equal(((uint8_t *)bm)[25], 0x01); /* page 200: word 3 bit 8 */
	memcpy(words, bm, sizeof(words));
	assert_int_equal(le64toh(words[0]), (1ull << 1) | (1ull << 3) | (1ull << 4));
	assert_int_equal(le64toh(words[1]), 1);
	assert_int_equal(le64toh(words[2]), 0);
	assert_int_equal(le64toh(words[3]), 1ull << 8);
	for (int i = 4; i < 512; i++)
		assert_int_equal(le64toh(words[i]), 0);
	assert_int_equal(rread(&f, VFW_DS_REGION_BITMAP, 0, rd, sizeof(rd)), 0);
	assert_memory_equal(rd, words, sizeof(rd));
	/* Reported pages are cleared. */
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 256), 0);
	for (int i = 0; i < 512; i++)
		assert_int_equal(le64toh(bm[i]), 0);
	/* The 16-byte write; a range reaching past the window. */
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 69 * 4096, b, 1), 0);
	assert_int_equal(vfmig_dev_dma_write(f.dev, W + 255 * 4096, b, 1), 0);
	uint64_t sp[2] = { htole64(W + 64 * 4096), htole64(32768) };
	memcpy(w16, sp, 16);
	assert_int_equal(rwrite(&f, VFW_DS_REGION_CTL, 56, w16, 16), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_SYS_START_ADDR, 8), W + 64 * 4096);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_SYS_PAGE_NR, 8), 32768);
	assert_int_equal(le64toh(bm[0]), 1ull << 5);
	assert_int_equal(le64toh(bm[1]), 0);
	assert_int_equal(le64toh(bm[191 / 64]), 1ull << (191 % 64));
	assert_int_equal(le64toh(bm[3]), 0); /* past the window: clean */
	/* Errors change nothing. */
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 0), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 32769), -EINVAL);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_SYS_PAGE_NR, 8), 32768);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_START_ADDR, 8, W + 1), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 1), -EINVAL);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_START_ADDR, 8,
			       UINT64_MAX - 4095), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 1), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 2), -EINVAL);
	sp[0] = htole64(UINT64_MAX - 8191);
	sp[1] = htole64(3);
	memcpy(w16, sp, 16);
	assert_int_equal(rwrite(&f, VFW_DS_REGION_CTL, 56, w16, 16), -EINVAL);
	/* STOP + LOGGING keeps logging; clearing LOGGING stops it. */
	assert_int_equal(set_ds(&f, VFW_DS_STATE_STOP | VFW_DS_STATE_LOGGING), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_START_ADDR, 8, W), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 64), 0);
	assert_int_equal(set_ds(&f, VFW_DS_STATE_STOP), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_SYS_PAGE_NR, 8, 64), -EINVAL);
	munmap(bm, 4096);
	fx_close(&f);
}

static int feature(struct fx *f, uint32_t flags, size_t datalen)
{
	uint8_t buf[8 + 64] = { 0 };
	struct vfw_device_feature h = { (uint32_t)sizeof(buf), flags };

	memcpy(buf, &h, 8);
	return call(f, VFW_CMD_DEVICE_FEATURE, buf, 8 + datalen, NULL);
}

static void test_v2_refused(void **state)
{
	static const uint32_t feats[][2] = {
		{ VFW_FEATURE_MIGRATION, VFW_FEATURE_GET },
		{ VFW_FEATURE_MIG_DEVICE_STATE, VFW_FEATURE_GET },
		{ VFW_FEATURE_MIG_DEVICE_STATE, VFW_FEATURE_SET },
		{ VFW_FEATURE_DMA_LOGGING_START, VFW_FEATURE_SET },
		{ VFW_FEATURE_DMA_LOGGING_STOP, VFW_FEATURE_SET },
		{ VFW_FEATURE_DMA_LOGGING_REPORT, VFW_FEATURE_GET },
		{ VFW_FEATURE_MIG_DATA_SIZE, VFW_FEATURE_GET },
		{ VFW_FEATURE_VFMIG_PRECOPY_INFO, VFW_FEATURE_GET },
		{ VFW_FEATURE_MIGRATION, VFW_FEATURE_GET | VFW_FEATURE_PROBE },
	};
	struct vfmig_dev_ops o = make_ops(PRE);
	o.mig_estimate = NULL;
	struct fx f;
	(void)state;

	fx_open(&f, &o, true);
	assert_int_equal(f.echoed, 0); /* no vfmig_mig_info */
	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++)
		assert_int_equal(feature(&f, feats[i][0] | feats[i][1], 24),
				 -ENOTSUP);
	uint8_t md[8 + 16] = { 0 };
	struct vfw_mig_data d = { 8 + 16, 16 };
	memcpy(md, &d, 8);
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_READ, md, 8, NULL), -ENOTSUP);
	assert_int_equal(set_ds(&f, VFW_DS_STATE_STOP), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_SIZE, 8, 0), 0);
	assert_int_equal(ctl_w(&f, VFW_DS_OFF_CONFIG_ACTION, 4, 2), 0);
	assert_int_equal(vfmig_dev_mig_state(f.dev), RS_);
	assert_int_equal(call(&f, VFW_CMD_MIG_DATA_WRITE, md, sizeof(md), NULL),
			 -ENOTSUP);
	fx_close(&f);
}

/* An estimate callback offers the extension under v2 only. */
static int t_estimate(vfmig_dev *dev, void *priv,
		      struct vfmig_dev_mig_estimate *e)
{
	(void)dev;
	(void)priv;
	memset(e, 0, sizeof(*e));
	return 0;
}

static void test_extension_not_offered(void **state)
{
	struct vfmig_dev_ops o = make_ops(PRE);
	struct fx f;
	(void)state;

	o.mig_estimate = t_estimate;
	fx_open(&f, &o, false);
	assert_int_equal(f.echoed, 1);
	fx_close(&f);
	fx_open(&f, &o, true);
	assert_int_equal(f.echoed, 0);
	assert_int_equal(feature(&f, VFW_FEATURE_MIG_DATA_SIZE |
					     VFW_FEATURE_GET, 0),
			 -ENOTSUP);
	fx_close(&f);
}

static void test_set_interface_errors(void **state)
{
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION };
	struct vfmig_dev_ops o = make_ops(PRE);
	vfmig_dev *dev;
	int sv[2];
	(void)state;

	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	assert_int_equal(vfmig_dev_set_mig_interface(NULL,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 -EINVAL);
	/* No migration: version 1 table, or mig_flags 0. */
	o.version = 1;
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 -EINVAL);
	assert_int_equal(vfmig_dev_set_mig_interface(dev, VFMIG_DEV_MIG_IFACE_V2),
			 0);
	vfmig_dev_destroy(dev);
	o = make_ops(0);
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 -EINVAL);
	vfmig_dev_destroy(dev);
	/* Unknown value; twice the same; back to v2; busy once attached. */
	o = make_ops(PRE);
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), 0);
	assert_int_equal(vfmig_dev_set_mig_interface(
				 dev, (enum vfmig_dev_mig_interface)2),
			 -EINVAL);
	assert_int_equal(vfmig_dev_set_mig_interface(dev,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev, VFMIG_DEV_MIG_IFACE_V2),
			 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vfmig_dev_attach_fd(dev, sv[1]), 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev, VFMIG_DEV_MIG_IFACE_V2),
			 -EBUSY);
	assert_int_equal(vfmig_dev_set_mig_interface(dev,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 -EBUSY);
	vfmig_dev_destroy(dev);
	close(sv[0]);

	/* Switched back to v2 before attaching: the regions are gone. */
	assert_int_equal(vfmig_dev_create(&d, &o, NULL, &dev), 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev,
						     VFMIG_DEV_MIG_IFACE_REGION),
			 0);
	assert_int_equal(vfmig_dev_set_mig_interface(dev, VFMIG_DEV_MIG_IFACE_V2),
			 0);
	assert_ptr_equal(dev->mig.iface, &dev_mig_v2);
	assert_int_equal(dev->ds.data[0].memfd, -1);
	vfmig_dev_destroy(dev);
}

/* A client that goes away takes LOGGING with it; the next one sees so. */
static void test_client_gone(void **state)
{
	struct vfmig_dev_ops o = make_ops(PRE);
	struct fx f;
	int sv[2];
	(void)state;

	fx_open(&f, &o, true);
	assert_int_equal(set_ds(&f, VFW_DS_STATE_LOGGING), 0);
	close(f.fd);
	for (int i = 0; i < 4 && vfmig_dev__process_one(f.dev) >= 0; i++)
		;
	assert_false(f.dev->dlog.on);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vfmig_dev_attach_fd(f.dev, sv[1]), 0);
	f.fd = sv[0];
	uint8_t v[4] = { 0 };
	assert_int_equal(call(&f, VFW_CMD_VERSION, v, sizeof(v), NULL), 0);
	assert_int_equal(ctl_r(&f, VFW_DS_OFF_DEVICE_STATE, 4), 0);
	assert_int_equal(vfmig_dev_mig_state(f.dev), PC_);
	f.t.narcs = 0;
	assert_int_equal(set_ds(&f, VFW_DS_STATE_LOGGING), 0);
	assert_int_equal(f.t.narcs, 0); /* still PRE_COPY, logging again */
	assert_true(f.dev->dlog.on);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_region_info),
		cmocka_unit_test(test_ctl_fields),
		cmocka_unit_test(test_state_walk),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_error_reset),
		cmocka_unit_test(test_dirty_bitmap),
		cmocka_unit_test(test_v2_refused),
		cmocka_unit_test(test_extension_not_offered),
		cmocka_unit_test(test_set_interface_errors),
		cmocka_unit_test(test_client_gone),
	};
	return cmocka_run_group_tests_name("device-region-iface", tests, NULL,
					   NULL);
}
