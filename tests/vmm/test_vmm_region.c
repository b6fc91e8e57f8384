/* SPDX-License-Identifier: MIT */
/*
 * The VMM library's region-based device-state interface
 * (docs/region-interface.md) against an emulated device: a thread serves
 * raw vfio-user on a socketpair with the four regions, records every
 * device_state value and bitmap request, and misbehaves on demand (missing
 * or malformed regions, a wrong version, sizes beyond the region, failing
 * state writes). Data regions are offered with or without an fd, so both
 * the mapped and the REGION_READ/WRITE paths run.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfmig/vmm_mig.h>

#include "protocol/proto.h"

#define MAX_LOG 64
#define NREG 4 /* control, config, memory, bitmap at 9..12 */

struct emu_region {
	bool present;
	uint32_t flags; /* VFW_REGION_INFO_FLAG_* */
	uint32_t type, subtype;
	uint64_t size;
	uint8_t *mem; /* backing store (a memfd mapping when fd >= 0) */
	int fd;
};

struct emu {
	int fd;
	pthread_t th;
	bool give_fds;
	uint32_t num_regions;
	struct emu_region reg[NREG];
	uint32_t version, caps;
	uint32_t xfer; /* max_data_xfer_size we announce */
	/* control fields */
	uint32_t device_state;
	uint64_t cfg_size, mem_size, mem_pos, start, page_nr;
	/* misbehaviour */
	uint64_t lie_mem_size, lie_cfg_size; /* nonzero: GET reports this */
	bool shrink; /* after a memory GET, truncate the region's memfd */
	uint32_t fail_value;  /* writing this device_state fails ... */
	int fail_times;       /* ... this many times, with EIO */
	bool stray_bits;      /* set bits past page_nr */
	/* data to save, and what was loaded */
	const uint8_t *src_mem, *src_cfg;
	size_t src_mem_len, src_cfg_len, mem_fetched, cfg_fetched;
	uint8_t *dst_mem, *dst_cfg;
	size_t dst_mem_len, dst_cfg_len;
	/* records */
	uint32_t states[MAX_LOG];
	size_t nstates;
	uint64_t bm_start[MAX_LOG], bm_pages[MAX_LOG];
	size_t nbm;
	int resets, region_infos, sets;
	int data_msgs; /* REGION_READ/WRITE of a data or bitmap region */
	bool bad; /* the client did something the contract forbids */
};

/* Pages the emulated device dirtied. */
static bool dirty(uint64_t page)
{
	return page % 5 == 0 || page == 40001;
}

static uint64_t le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void append(uint8_t **buf, size_t *len, const uint8_t *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, p, n);
	*len += n;
}

/* A GET_BUFFER: the next piece of src into region r. */
static uint64_t emu_get(struct emu *e, int r, const uint8_t *src,
			size_t len, size_t *fetched)
{
	uint64_t n = len - *fetched;

	if (n > e->reg[r].size)
		n = e->reg[r].size;
	memcpy(e->reg[r].mem, src + *fetched, n);
	*fetched += n;
	return n;
}

static void fill_bitmap(struct emu *e)
{
	uint8_t *bm = e->reg[3].mem;
	uint64_t first = e->start / 4096;

	memset(bm, 0, e->reg[3].size);
	for (uint64_t i = 0; i < e->page_nr; i++)
		if (dirty(first + i))
			bm[i / 8] |= (uint8_t)(1u << (i % 8));
	if (e->stray_bits && e->page_nr % 64)
		bm[(e->page_nr / 64) * 8 + 7] |= 0x80;
	if (e->nbm < MAX_LOG) {
		e->bm_start[e->nbm] = e->start;
		e->bm_pages[e->nbm++] = e->page_nr;
	}
}

/* One control-region write; returns 0 or a positive errno. */
static int ctl_write(struct emu *e, uint64_t off, const uint8_t *p,
		     uint32_t n)
{
	uint64_t v = le(p, n);

	switch (off) {
	case VFW_DS_OFF_DEVICE_STATE:
		if (n != 4 || v > 3)
			return EINVAL;
		if (e->nstates < MAX_LOG)
			e->states[e->nstates++] = (uint32_t)v;
		if (e->fail_times > 0 && v == e->fail_value) {
			e->fail_times--;
			return EIO;
		}
		e->device_state = (uint32_t)v;
		return 0;
	case VFW_DS_OFF_CONFIG_ACTION:
		if (n != 4)
			return EINVAL;
		if (v == VFW_DS_ACTION_GET_BUFFER) {
			e->cfg_size = emu_get(e, 1, e->src_cfg, e->src_cfg_len,
					      &e->cfg_fetched);
			if (e->lie_cfg_size)
				e->cfg_size = e->lie_cfg_size;
			return 0;
		}
		if (e->cfg_size > e->reg[1].size)
			return EINVAL;
		append(&e->dst_cfg, &e->dst_cfg_len, e->reg[1].mem,
		       e->cfg_size);
		e->sets++;
		return 0;
	case VFW_DS_OFF_MEMORY_ACTION:
		if (n != 4)
			return EINVAL;
		if (v == VFW_DS_ACTION_GET_BUFFER) {
			if (e->mem_pos != e->mem_fetched)
				return e->bad = true, EINVAL;
			e->mem_size = emu_get(e, 2, e->src_mem, e->src_mem_len,
					      &e->mem_fetched);
			if (e->lie_mem_size)
				e->mem_size = e->lie_mem_size;
			if (e->shrink &&
			    ftruncate(e->reg[2].fd, 0) != 0)
				return EIO;
			return 0;
		}
		if (e->mem_pos != e->dst_mem_len ||
		    e->mem_size > e->reg[2].size)
			return e->bad = true, EINVAL;
		append(&e->dst_mem, &e->dst_mem_len, e->reg[2].mem,
		       e->mem_size);
		e->sets++;
		return 0;
	case VFW_DS_OFF_CONFIG_SIZE:
		return n == 8 ? (e->cfg_size = v, 0) : EINVAL;
	case VFW_DS_OFF_MEMORY_SIZE:
		return n == 8 ? (e->mem_size = v, 0) : EINVAL;
	case VFW_DS_OFF_MEMORY_POS:
		return n == 8 ? (e->mem_pos = v, 0) : EINVAL;
	case VFW_DS_OFF_SYS_START_ADDR:
		return n == 8 ? (e->start = v, 0) : EINVAL;
	case VFW_DS_OFF_SYS_PAGE_NR:
		if (n != 8 || !(e->device_state & VFW_DS_STATE_LOGGING) ||
		    v == 0 || v > e->reg[3].size * 8)
			return e->bad = true, EINVAL;
		e->page_nr = v;
		fill_bitmap(e);
		return 0;
	default:
		return e->bad = true, EINVAL;
	}
}

static int ctl_read(struct emu *e, uint64_t off, uint8_t *p, uint32_t n)
{
	static const struct {
		uint64_t off;
		uint32_t len;
	} fields[] = {
		{ VFW_DS_OFF_VERSION, 4 },     { VFW_DS_OFF_DEVICE_STATE, 4 },
		{ VFW_DS_OFF_CAPS, 4 },        { VFW_DS_OFF_CONFIG_SIZE, 8 },
		{ VFW_DS_OFF_MEMORY_SIZE, 8 }, { VFW_DS_OFF_MEMORY_POS, 8 },
	};
	const uint64_t vals[] = { e->version, e->device_state, e->caps,
				  e->cfg_size, e->mem_size, e->mem_pos };

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i].off == off) {
			if (fields[i].len != n)
				return e->bad = true, EINVAL;
			put(p, vals[i], n);
			return 0;
		}
	return e->bad = true, EINVAL;
}

static void emu_region_info(struct emu *e, struct vfw_msg *m)
{
	struct vfw_region_info ri;
	struct {
		struct vfw_region_info ri;
		struct vfw_region_info_cap_type t;
	} out;
	int fd = -1;

	memcpy(&ri, m->payload, sizeof(ri));
	e->region_infos++;
	memset(&out, 0, sizeof(out));
	out.ri.argsz = sizeof(out);
	out.ri.index = ri.index;
	if (ri.index >= 9 && ri.index < 9 + NREG && e->reg[ri.index - 9].present) {
		struct emu_region *r = &e->reg[ri.index - 9];
		out.ri.flags = r->flags | VFW_REGION_INFO_FLAG_CAPS;
		out.ri.size = r->size;
		out.ri.cap_offset = sizeof(out.ri);
		out.t.header.id = VFW_REGION_INFO_CAP_TYPE;
		out.t.header.version = 1;
		out.t.type = r->type;
		out.t.subtype = r->subtype;
		if (r->fd >= 0 && (r->flags & VFW_REGION_INFO_FLAG_MMAP))
			fd = r->fd;
	}
	struct iovec iov = { &out, sizeof(out) };
	struct vfw_header h = m->hdr;
	h.flags = VFW_FLAGS_TYPE_REPLY;
	assert_int_equal(vfw_msg_send(e->fd, &h, &iov, 1, fd >= 0 ? &fd : NULL,
				      fd >= 0 ? 1 : 0),
			 0);
}

static void emu_access(struct emu *e, struct vfw_msg *m, bool wr)
{
	struct vfw_region_access a;
	uint8_t *buf;
	int err = 0;

	memcpy(&a, m->payload, sizeof(a));
	buf = calloc(1, sizeof(a) + a.count);
	assert_non_null(buf);
	memcpy(buf, &a, sizeof(a));
	if (a.region < 9 || a.region >= 9 + NREG ||
	    !e->reg[a.region - 9].present ||
	    a.offset + a.count > e->reg[a.region - 9].size ||
	    (wr && m->len != sizeof(a) + a.count)) {
		err = EINVAL;
	} else if (a.region == 9) {
		err = wr ? ctl_write(e, a.offset, m->payload + sizeof(a),
				     a.count)
			 : ctl_read(e, a.offset, buf + sizeof(a), a.count);
	} else if (wr) {
		e->data_msgs++;
		memcpy(e->reg[a.region - 9].mem + a.offset,
		       m->payload + sizeof(a), a.count);
	} else {
		e->data_msgs++;
		memcpy(buf + sizeof(a), e->reg[a.region - 9].mem + a.offset,
		       a.count);
	}
	if (err)
		assert_int_equal(vfw_send_error(e->fd, &m->hdr, err), 0);
	else
		assert_int_equal(vfw_send_reply(e->fd, &m->hdr, buf,
						sizeof(a) + (wr ? 0 : a.count)),
				 0);
	free(buf);
}

static void *emu_main(void *arg)
{
	struct emu *e = arg;
	struct vfw_msg m;
	char json[128];

	snprintf(json, sizeof(json),
		 "{\"capabilities\":{\"max_msg_fds\":2,"
		 "\"max_data_xfer_size\":%u}}",
		 e->xfer);
	while (vfw_msg_recv(e->fd, &m, (1u << 20) + 64, 4) == 0) {
		switch (m.hdr.command) {
		case VFW_CMD_VERSION: {
			uint8_t buf[160];
			struct vfw_version v = { 0, 2 };
			memcpy(buf, &v, sizeof(v));
			memcpy(buf + sizeof(v), json, strlen(json) + 1);
			vfw_send_reply(e->fd, &m.hdr, buf,
				       sizeof(v) + strlen(json) + 1);
			break;
		}
		case VFW_CMD_DEVICE_GET_INFO: {
			struct vfw_device_info di = { sizeof(di), 3,
						      e->num_regions, 5 };
			vfw_send_reply(e->fd, &m.hdr, &di, sizeof(di));
			break;
		}
		case VFW_CMD_DEVICE_GET_REGION_INFO:
			emu_region_info(e, &m);
			break;
		case VFW_CMD_REGION_READ:
		case VFW_CMD_REGION_WRITE:
			emu_access(e, &m, m.hdr.command == VFW_CMD_REGION_WRITE);
			break;
		case VFW_CMD_DEVICE_RESET:
			e->resets++;
			e->device_state = 0;
			vfw_send_reply(e->fd, &m.hdr, NULL, 0);
			break;
		default: /* DEVICE_FEATURE, MIG_DATA_*: not this interface */
			vfw_send_error(e->fd, &m.hdr, ENOTSUP);
			break;
		}
		vfw_msg_release(&m);
	}
	return NULL;
}

/* The contract's layout; tests change what they need before emu_start. */
static void emu_init(struct emu *e, bool fds)
{
	static const uint64_t sizes[NREG] = { 4096, 8192, 4096, 4096 };

	memset(e, 0, sizeof(*e));
	e->give_fds = fds;
	e->num_regions = 13;
	e->version = 1;
	e->caps = VFW_DS_CAP_DEVICE_MEMORY | VFW_DS_CAP_SYSTEM_MEMORY;
	e->xfer = 4096;
	for (int i = 0; i < NREG; i++)
		e->reg[i] = (struct emu_region){
			true,
			VFW_REGION_INFO_FLAG_READ | VFW_REGION_INFO_FLAG_WRITE |
				(i ? VFW_REGION_INFO_FLAG_MMAP : 0),
			VFW_REGION_TYPE_DEVICE_STATE,
			(uint32_t)i + 1,
			sizes[i],
			NULL,
			-1,
		};
}

static vfmig_vmm_dev *emu_start(struct emu *e)
{
	static const struct vfmig_vmm_dev_opts opts = {
		.version = VFMIG_VMM_OPTS_VERSION,
		.reply_timeout_ms = 5000,
	};
	vfmig_vmm_dev *dev = NULL;
	int sv[2];

	for (int i = 0; i < NREG; i++) {
		struct emu_region *r = &e->reg[i];
		size_t sz = r->size < (1u << 24) ? (size_t)r->size : 4096;
		if (e->give_fds && i) {
			r->fd = memfd_create("emu", MFD_CLOEXEC);
			assert_true(r->fd >= 0);
			assert_int_equal(ftruncate(r->fd, (off_t)sz), 0);
			r->mem = mmap(NULL, sz, PROT_READ | PROT_WRITE,
				      MAP_SHARED, r->fd, 0);
			assert_true(r->mem != MAP_FAILED);
		} else {
			r->mem = calloc(1, sz);
			assert_non_null(r->mem);
		}
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	e->fd = sv[1];
	assert_int_equal(pthread_create(&e->th, NULL, emu_main, e), 0);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(sv[0], &opts, &dev), 0);
	return dev;
}

static void emu_stop(struct emu *e, vfmig_vmm_dev *dev)
{
	vfmig_vmm_dev_close(dev);
	pthread_join(e->th, NULL);
	close(e->fd);
	for (int i = 0; i < NREG; i++) {
		struct emu_region *r = &e->reg[i];
		size_t sz = r->size < (1u << 24) ? (size_t)r->size : 4096;
		if (r->fd >= 0) {
			munmap(r->mem, sz);
			close(r->fd);
		} else {
			free(r->mem);
		}
	}
	free(e->dst_mem);
	free(e->dst_cfg);
	assert_false(e->bad);
}

/* ---- discovery ---- */

static void discover_ok(struct emu *e, vfmig_vmm_dev *dev)
{
	struct vfmig_vmm_mig_caps mc;
	uint32_t st = 99;

	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	if (!mc.migratable)
		fprintf(stderr, "blocker: %s\n", mc.blocker);
	assert_true(mc.migratable);
	assert_string_equal(mc.blocker, "");
	assert_int_equal(mc.flags, VFMIG_VMM_MIG_FLAG_STOP_COPY |
					   ((e->caps & VFW_DS_CAP_DEVICE_MEMORY)
						    ? VFMIG_VMM_MIG_FLAG_PRE_COPY
						    : 0));
	assert_int_equal(mc.dirty_logging,
			 !!(e->caps & VFW_DS_CAP_SYSTEM_MEMORY));
	assert_false(mc.size_info);
	assert_int_equal(vfmig_vmm_mig_interface(dev),
			 VFMIG_VMM_MIG_IFACE_REGION);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_RUNNING);
}

enum breakage {
	B_NONE_AT_ALL,
	B_NO_CTL,
	B_CTL_SMALL,
	B_CTL_RO,
	B_VERSION,
	B_NO_CFG,
	B_CFG_SMALL,
	B_CFG_RO,
	B_NO_MEM,
	B_NO_BMP,
	B_WRONG_TYPE,
	B_COUNT,
};

static const char *const want_blocker[B_COUNT] = {
	[B_NONE_AT_ALL] = "DEVICE_FEATURE MIGRATION refused",
	[B_NO_CTL] = "region interface: no control region",
	[B_CTL_SMALL] = "region interface: control region of 64 bytes",
	[B_CTL_RO] = "region interface: control region not readable",
	[B_VERSION] = "region interface: version 2, expected 1",
	[B_NO_CFG] = "region interface: no device-config region",
	[B_CFG_SMALL] = "region interface: device-config region of 2048 bytes",
	[B_CFG_RO] = "region interface: device-config region not readable",
	[B_NO_MEM] = "region interface: no device-memory region",
	[B_NO_BMP] = "region interface: no dirty-bitmap region",
	[B_WRONG_TYPE] = "region interface: no device-config region",
};

static void break_emu(struct emu *e, enum breakage b)
{
	switch (b) {
	case B_NONE_AT_ALL:
		e->num_regions = 9;
		break;
	case B_NO_CTL:
		e->reg[0].present = false;
		break;
	case B_CTL_SMALL:
		e->reg[0].size = 64;
		break;
	case B_CTL_RO:
		e->reg[0].flags = VFW_REGION_INFO_FLAG_READ;
		break;
	case B_VERSION:
		e->version = 2;
		break;
	case B_NO_CFG:
		e->reg[1].present = false;
		break;
	case B_CFG_SMALL:
		e->reg[1].size = 2048;
		break;
	case B_CFG_RO:
		e->reg[1].flags &= ~VFW_REGION_INFO_FLAG_WRITE;
		break;
	case B_NO_MEM:
		e->reg[2].present = false;
		break;
	case B_NO_BMP:
		e->reg[3].present = false;
		break;
	case B_WRONG_TYPE: /* the config region with another type */
		e->reg[1].type = 3;
		break;
	case B_COUNT:
		break;
	}
}

static void test_discover_blockers(void **state)
{
	(void)state;
	for (int b = 0; b < B_COUNT; b++) {
		struct emu e;
		struct vfmig_vmm_mig_caps mc;
		vfmig_vmm_dev *dev;

		emu_init(&e, b & 1);
		break_emu(&e, (enum breakage)b);
		dev = emu_start(&e);
		assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
		if (!strstr(mc.blocker, want_blocker[b]))
			fprintf(stderr, "case %d: blocker \"%s\"\n", b,
				mc.blocker);
		assert_false(mc.migratable);
		assert_non_null(strstr(mc.blocker, want_blocker[b]));
		assert_int_equal(vfmig_vmm_mig_interface(dev),
				 VFMIG_VMM_MIG_IFACE_NONE);
		assert_true(vfmig_vmm_dev_connected(dev));
		emu_stop(&e, dev);
	}
}

/* Optional pieces may be missing when the caps do not ask for them; a
 * huge num_regions is not walked. */
static void test_discover_minimal(void **state)
{
	struct emu e;
	vfmig_vmm_dev *dev;
	uint64_t a, b, bm[1];

	(void)state;
	emu_init(&e, false);
	e.caps = 0;
	e.reg[2].present = e.reg[3].present = false;
	e.num_regions = 0xffffffffu;
	dev = emu_start(&e);
	discover_ok(&e, dev);
	assert_true(e.region_infos <= 64 - 9);
	assert_int_equal(vfmig_vmm_mig_precopy_info(dev, &a, &b), -EOPNOTSUPP);
	assert_int_equal(vfmig_vmm_mig_stop_copy_size(dev, &a), -EOPNOTSUPP);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, NULL),
			 -EOPNOTSUPP);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0, 4096, 4096, bm, 1),
			 -EOPNOTSUPP);
	emu_stop(&e, dev);
}

/* ---- sizes beyond the region ---- */

static int sink_drop(void *priv, const void *buf, size_t len)
{
	(void)priv, (void)buf, (void)len;
	return 0;
}

/* A device that shrinks the file behind a data region after filling it:
 * the VMM, which reads the region through the fd and never maps it, gets
 * a short read and a clear error instead of SIGBUS. */
static void test_shrunk_region_file(void **state)
{
	struct vfmig_vmm_mig_save_result res;
	static const uint8_t data[3000];
	struct emu e;
	vfmig_vmm_dev *dev;
	uint32_t fin;

	(void)state;
	emu_init(&e, true);
	e.shrink = true;
	e.src_mem = e.src_cfg = data;
	e.src_mem_len = e.src_cfg_len = sizeof(data);
	dev = emu_start(&e);
	discover_ok(&e, dev);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_PRE_COPY,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_drop, NULL, &res),
			 -EPROTO);
	assert_false(vfmig_vmm_dev_connected(dev));
	emu_stop(&e, dev);
}

static void test_lying_sizes(void **state)
{
	struct vfmig_vmm_mig_save_result res;
	static const uint8_t data[100];

	(void)state;
	for (int cfg = 0; cfg < 2; cfg++) {
		struct emu e;
		vfmig_vmm_dev *dev;
		uint32_t fin;

		emu_init(&e, cfg);
		if (cfg)
			e.lie_cfg_size = e.reg[1].size + 1;
		else
			e.lie_mem_size = e.reg[2].size + 1;
		e.src_mem = e.src_cfg = data;
		e.src_mem_len = e.src_cfg_len = sizeof(data);
		dev = emu_start(&e);
		discover_ok(&e, dev);
		assert_int_equal(vfmig_vmm_mig_set_state(
					 dev, VFMIG_VMM_MIG_STOP_COPY,
					 VFMIG_VMM_MIG_RUNNING, &fin),
				 0);
		assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_drop, NULL,
						    &res),
				 -EPROTO);
		assert_false(vfmig_vmm_dev_connected(dev));
		emu_stop(&e, dev);
	}
}

/* ---- save and load ---- */

struct buf {
	uint8_t *p;
	size_t len;
	int calls;
};

static int sink_buf(void *priv, const void *data, size_t len)
{
	struct buf *b = priv;

	append(&b->p, &b->len, data, len);
	b->calls++;
	return 0;
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed + i / 251);
}

/* Walk the framing of a saved stream: kinds and lengths in order. */
static size_t frames(const struct buf *b, uint8_t *kinds, uint32_t *lens,
		     size_t max)
{
	size_t off = 0, n = 0;

	while (off < b->len && n < max) {
		assert_true(b->len - off >= 5);
		kinds[n] = b->p[off];
		lens[n] = (uint32_t)b->p[off + 1] << 24 |
			  (uint32_t)b->p[off + 2] << 16 |
			  (uint32_t)b->p[off + 3] << 8 | b->p[off + 4];
		off += 5 + lens[n++];
	}
	assert_int_equal(off, b->len);
	return n;
}

static void save_load(bool fds)
{
	static uint8_t mem[10000], cfg[9000];
	struct vfmig_vmm_mig_save_result res;
	struct buf out = { 0 };
	struct emu src, dst;
	vfmig_vmm_dev *dev;
	uint32_t fin, st;
	uint8_t kinds[16];
	uint32_t lens[16];

	fill_pattern(mem, sizeof(mem), 1);
	fill_pattern(cfg, sizeof(cfg), 7);
	emu_init(&src, fds);
	src.src_mem = mem;
	src.src_mem_len = sizeof(mem);
	src.src_cfg = cfg;
	src.src_cfg_len = sizeof(cfg);
	dev = emu_start(&src);
	discover_ok(&src, dev);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_PRE_COPY,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	assert_int_equal(fin, VFMIG_VMM_MIG_PRE_COPY);
	/* budget: one 4096-byte memory chunk reaches it */
	assert_int_equal(vfmig_vmm_mig_save(dev, 100, sink_buf, &out, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_BUDGET);
	assert_int_equal(res.bytes, 5 + 4096);
	assert_int_equal(res.state, VFMIG_VMM_MIG_PRE_COPY);
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_buf, &out, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_DRAINED);
	assert_int_equal(res.bytes, 5 + 4096 + 5 + 1808);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
						 VFMIG_VMM_MIG_STOP, &fin),
			 0);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_STOP_COPY);
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_buf, &out, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_END);
	assert_int_equal(res.bytes, 5 + 8192 + 5 + 808);
	assert_int_equal(frames(&out, kinds, lens, 16), 5);
	assert_memory_equal(kinds, "\1\1\1\2\2", 5);
	assert_int_equal(lens[2], 1808);
	assert_int_equal(lens[3], 8192);
	/* the values written: PRE_COPY 2, STOP_COPY 3 */
	assert_int_equal(src.nstates, 2);
	assert_int_equal(src.states[0], 2);
	assert_int_equal(src.states[1], 3);
	/* a save outside PRE_COPY/STOP_COPY */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0);
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_buf, &out, &res),
			 -EINVAL);
	assert_int_equal(res.state, VFMIG_VMM_MIG_STOP);
	if (fds)
		assert_int_equal(src.data_msgs, 0);
	else
		assert_true(src.data_msgs >= 5);
	emu_stop(&src, dev);

	/* load it into another device in odd pieces */
	emu_init(&dst, !fds);
	dev = emu_start(&dst);
	discover_ok(&dst, dev);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, out.p, 3), -EINVAL);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	for (size_t off = 0, step = 1; off < out.len; step = step * 3 + 1) {
		size_t n = out.len - off < step ? out.len - off : step;
		assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, out.p + off,
							      n),
				 0);
		off += n;
	}
	/* RESUMING again writes nothing (it would end the load) */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	/* leaving RESUMING writes even the same value */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RUNNING,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0);
	assert_int_equal(dst.nstates, 3);
	assert_int_equal(dst.states[0], 1);
	assert_int_equal(dst.states[1], 1);
	assert_int_equal(dst.states[2], 0);
	assert_int_equal(dst.dst_mem_len, sizeof(mem));
	assert_memory_equal(dst.dst_mem, mem, sizeof(mem));
	assert_int_equal(dst.dst_cfg_len, sizeof(cfg));
	assert_memory_equal(dst.dst_cfg, cfg, sizeof(cfg));
	assert_int_equal(dst.sets, 5);
	if (fds)
		assert_true(dst.data_msgs >= 5);
	else
		assert_int_equal(dst.data_msgs, 0);
	emu_stop(&dst, dev);
	free(out.p);
}

static void test_save_load_mapped(void **state)
{
	(void)state;
	save_load(true);
}

static void test_save_load_messages(void **state)
{
	(void)state;
	save_load(false);
}

/* A chunk longer than the region is split into several SET_BUFFERs. */
static void test_load_split(void **state)
{
	static uint8_t stream[5 + 10000];
	struct emu e;
	vfmig_vmm_dev *dev;
	uint32_t fin;

	(void)state;
	emu_init(&e, true);
	dev = emu_start(&e);
	discover_ok(&e, dev);
	stream[0] = 1;
	stream[3] = 10000 >> 8;
	stream[4] = 10000 & 0xff;
	fill_pattern(stream + 5, 10000, 3);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, stream,
						      sizeof(stream)),
			 0);
	assert_int_equal(e.sets, 3); /* 4096 + 4096 + 1808 */
	assert_int_equal(e.dst_mem_len, 10000);
	assert_memory_equal(e.dst_mem, stream + 5, 10000);
	emu_stop(&e, dev);
}

static void test_framing_errors(void **state)
{
	static const uint8_t bad_kind[] = { 3, 0, 0, 0, 1, 0 };
	static const uint8_t too_long[] = { 2, 0x40, 0, 0, 1 };
	static const uint8_t empty[] = { 2, 0, 0, 0, 0 };
	struct emu e;
	vfmig_vmm_dev *dev;
	uint32_t fin;

	(void)state;
	emu_init(&e, false);
	e.caps = VFW_DS_CAP_SYSTEM_MEMORY; /* no memory region */
	e.reg[2].present = false;
	dev = emu_start(&e);
	discover_ok(&e, dev);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	/* an empty chunk is fine; a kind split over two calls is checked */
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, empty, 5), 0);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, bad_kind, 2), 0);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, bad_kind + 2, 4),
			 -EPROTO);
	/* sticky */
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, empty, 5), -EPROTO);
	/* entering RESUMING again starts afresh */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, too_long, 5),
			 -EPROTO);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	/* memory chunk for a device without a memory region */
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, "\1\0\0\0\1x", 6),
			 -EPROTO);
	assert_true(vfmig_vmm_dev_connected(dev));
	assert_int_equal(e.sets, 0);
	emu_stop(&e, dev);
}

/* ---- states, logging values, recovery ---- */

static void test_states(void **state)
{
	struct emu e;
	vfmig_vmm_dev *dev;
	uint32_t fin, st;
	uint64_t chosen = 0;

	(void)state;
	emu_init(&e, false);
	dev = emu_start(&e);
	discover_ok(&e, dev);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 8192, NULL, 0, NULL),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_stop(dev), -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, &chosen),
			 0); /* 2 */
	assert_int_equal(chosen, 4096);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, NULL),
			 -EBUSY);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0); /* 3: STOP with logging */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0); /* 3 */
	assert_int_equal(vfmig_vmm_dma_log_stop(dev), 0); /* keeps the bit */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RUNNING,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0); /* 0 */
	/* P2P: nothing written, the state stays */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RUNNING_P2P,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 -EINVAL);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_PRE_COPY_P2P,
						 &fin),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_ERROR,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0); /* 1 */
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, NULL),
			 0); /* 3 */
	assert_int_equal(vfmig_vmm_dma_log_stop(dev), 0); /* 1 */
	static const uint32_t want[] = { 2, 3, 3, 0, 1, 3, 1 };
	assert_int_equal(e.nstates, sizeof(want) / sizeof(want[0]));
	assert_memory_equal(e.states, want, sizeof(want));

	/* a failed write recovers to the recover state */
	e.nstates = 0;
	e.fail_value = 3;
	e.fail_times = 1;
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 -EIO);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_RUNNING);
	/* ... and when that fails too, reset: RUNNING, logging off */
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, NULL),
			 0); /* 2 */
	e.fail_times = 2;
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
						 VFMIG_VMM_MIG_STOP, &fin),
			 -EIO);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(e.resets, 1);
	assert_int_equal(vfmig_vmm_dma_log_stop(dev), -EINVAL); /* was reset */
	/* recover ERROR: straight to the reset */
	e.fail_value = 1;
	e.fail_times = 1;
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 -EIO);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(e.resets, 2);
	static const uint32_t want2[] = { 3, 0, 2, 3, 3, 1 };
	assert_int_equal(e.nstates, sizeof(want2) / sizeof(want2[0]));
	assert_memory_equal(e.states, want2, sizeof(want2));
	/* a repeated discovery keeps the tracked state and logging */
	struct vfmig_vmm_mig_caps mc;
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 0);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, NULL), 0);
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	assert_true(mc.migratable);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_STOP);
	e.nstates = 0;
	assert_int_equal(vfmig_vmm_dma_log_stop(dev), 0);
	assert_int_equal(e.nstates, 1);
	assert_int_equal(e.states[0], 1);
	/* DEVICE_RESET by the caller resets the shadow */
	assert_int_equal(vfmig_vmm_dev_reset(dev), 0);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_RUNNING);
	emu_stop(&e, dev);
}

/* ---- dirty bitmap ---- */

static void check_bits(const uint64_t *bm, uint64_t first, uint64_t pages)
{
	for (uint64_t i = 0; i < pages; i++) {
		bool set = (bm[i / 64] >> (i % 64)) & 1;
		if (set != dirty(first + i))
			fail_msg("page %llu: bit %d",
				 (unsigned long long)(first + i), set);
	}
}

static void report(bool fds, uint64_t bmp_size, uint64_t per)
{
	const uint64_t iova = 0x100000, pages = 70001;
	size_t words = (size_t)((pages + 63) / 64) + 1;
	uint64_t *bm = calloc(words, 8);
	struct emu e;
	vfmig_vmm_dev *dev;
	size_t chunks = (size_t)((pages + per - 1) / per);

	assert_non_null(bm);
	emu_init(&e, fds);
	e.reg[3].size = bmp_size;
	e.stray_bits = true;
	dev = emu_start(&e);
	discover_ok(&e, dev);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, iova, pages * 4096,
						  4096, bm, words - 1),
			 -EINVAL); /* logging off: the device says so */
	assert_true(vfmig_vmm_dev_connected(dev));
	e.bad = false;
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, NULL), 0);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, iova + 1, 4096, 4096,
						  bm, 1),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, iova, pages * 4096,
						  8192, bm, words),
			 -EINVAL);
	bm[words - 1] = 0x5a;
	assert_int_equal(vfmig_vmm_dma_log_report(dev, iova,
						  pages * 4096 - 100, 4096, bm,
						  words - 1),
			 0);
	check_bits(bm, iova / 4096, pages);
	if (fds)
		assert_int_equal(e.data_msgs, 0);
	else
		assert_int_equal(e.data_msgs, (int)chunks);
	assert_int_equal(bm[words - 2] >> (pages % 64), 0); /* stray dropped */
	assert_int_equal(bm[words - 1], 0x5a); /* untouched */
	if (e.nbm != chunks)
		fprintf(stderr, "%zu bitmap requests, want %zu\n", e.nbm,
			chunks);
	assert_int_equal(e.nbm, chunks);
	for (size_t i = 0; i < chunks; i++) {
		assert_int_equal(e.bm_start[i], iova + i * per * 4096);
		assert_int_equal(e.bm_pages[i],
				 i + 1 < chunks ? per : pages - i * per);
	}
	emu_stop(&e, dev);
	free(bm);
}

static void test_report_mapped(void **state)
{
	(void)state;
	report(true, 4096, 32768);
}

static void test_report_messages(void **state)
{
	(void)state;
	report(false, 4096, 32768);
	report(false, 2048 + 8, 16448); /* unmapped: too small to map */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discover_blockers),
		cmocka_unit_test(test_discover_minimal),
		cmocka_unit_test(test_lying_sizes),
		cmocka_unit_test(test_save_load_mapped),
		cmocka_unit_test(test_shrunk_region_file),
		cmocka_unit_test(test_save_load_messages),
		cmocka_unit_test(test_load_split),
		cmocka_unit_test(test_framing_errors),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_report_mapped),
		cmocka_unit_test(test_report_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
