/* SPDX-License-Identifier: MIT */
/*
 * The VMM side of the 2019 region-based device-state interface
 * (docs/region-interface.md), behind the v2 migration API as the table
 * vmm_mig_region (struct vmm_mig_backend, internal.h): discovery of the
 * four regions by TYPE capability, a shadow v2 state mapped onto
 * device_state, the save pump over GET_BUFFER with the chunk framing, the
 * load side that parses that framing back into SET_BUFFERs, and DMA dirty
 * logging through the bitmap region.
 *
 * Every size the device reports is checked against the region it claims
 * to describe; the control region is reached only with REGION_READ/WRITE of
 * exactly one field, the data regions through their mapping when the device
 * offered an fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "protocol/migfsm.h"

#define FIRST_DS_INDEX 9u
#define MAX_REGIONS 64u /* never walk more indexes than this */
#define MAX_DATA_REGION (1ull << 30) /* also the largest chunk we load */
#define MIN_DATA_REGION 4096u
#define MAX_CHUNK (1ull << 30)

/* ---- little helpers ---- */

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* One control-region field of n (4 or 8) bytes. */
static int ctl_write(vfmig_vmm_dev *dev, uint32_t off, uint64_t v, size_t n)
{
	uint8_t b[8];

	put_le(b, v, n);
	return vmm_region_io_locked(dev, dev->ds.ctl.index, off, NULL, b, n);
}

static int ctl_read(vfmig_vmm_dev *dev, uint32_t off, uint64_t *v, size_t n)
{
	uint8_t b[8];
	int r = vmm_region_io_locked(dev, dev->ds.ctl.index, off, b, NULL, n);

	if (r == 0)
		*v = get_le(b, n);
	return r;
}

/* Data-region access: pread/pwrite on the device's fd, else by message.
 * The callers keep off + len within the region. A short transfer means the
 * device shrank its file under us: a broken device. */
static int data_read(vfmig_vmm_dev *dev, const struct vmm_ds_region *rg,
		     uint64_t off, uint8_t *buf, size_t len)
{
	if (rg->has_fd) {
		for (size_t done = 0; done < len;) {
			ssize_t n = pread(rg->fd, buf + done, len - done,
					  (off_t)(rg->fd_off + off + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return vmm_proto_error(dev, NULL, "data region "
						       "file shorter than the "
						       "region");
			done += (size_t)n;
		}
		return 0;
	}
	return vmm_region_io_locked(dev, rg->index, off, buf, NULL, len);
}

static int data_write(vfmig_vmm_dev *dev, const struct vmm_ds_region *rg,
		      uint64_t off, const uint8_t *buf, size_t len)
{
	if (rg->has_fd) {
		for (size_t done = 0; done < len;) {
			ssize_t n = pwrite(rg->fd, buf + done, len - done,
					   (off_t)(rg->fd_off + off + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return vmm_proto_error(dev, NULL, "data region "
						       "file not writable");
			done += (size_t)n;
		}
		return 0;
	}
	return vmm_region_io_locked(dev, rg->index, off, NULL, buf, len);
}

static void unmap_one(struct vmm_ds_region *rg)
{
	if (rg->has_fd)
		close(rg->fd);
	rg->has_fd = false;
	rg->fd = -1;
}

void vmm_ds_unmap(vfmig_vmm_dev *dev)
{
	dev->ds.tracked = false;
	unmap_one(&dev->ds.cfg);
	unmap_one(&dev->ds.mem);
	unmap_one(&dev->ds.bmp);
}

void vmm_ds_forget(vfmig_vmm_dev *dev)
{
	vmm_ds_unmap(dev);
	memset(&dev->ds, 0, sizeof(dev->ds));
	dev->mig = NULL;
}

static void load_reset(struct vmm_ds *ds)
{
	ds->sess.hdr_got = 0;
	ds->sess.kind = 0;
	ds->sess.left = ds->sess.fill = 0;
	ds->sess.mem_loaded = ds->sess.cfg_loaded = 0;
	ds->sess.load_err = 0;
}

void vmm_ds_after_reset(vfmig_vmm_dev *dev)
{
	dev->ds.sess.state = VFW_MIG_STATE_RUNNING;
	dev->ds.sess.logging = false;
	dev->ds.sess.mem_fetched = 0;
	dev->ds.sess.mem_done = false;
	load_reset(&dev->ds);
}

/* ---- discovery ---- */

static void ds_blocker(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps,
		       const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void ds_blocker(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps,
		       const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(caps->blocker, sizeof(caps->blocker),
			 "region interface: ");

	va_start(ap, fmt);
	vsnprintf(caps->blocker + n, sizeof(caps->blocker) - (size_t)n, fmt,
		  ap);
	va_end(ap);
	caps->migratable = false;
	vfw_log(&dev->log, VFW_LOG_INFO, "migration blocked: %s",
		caps->blocker);
}

static const char *const ds_names[] = {
	[VFW_REGION_SUBTYPE_DEVICE_STATE_CTL] = "control",
	[VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_CONFIG] = "device-config",
	[VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_MEMORY] = "device-memory",
	[VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_DIRTYBITMAP] = "dirty-bitmap",
};

static struct vmm_ds_region *ds_slot(struct vmm_ds *ds, uint32_t subtype)
{
	switch (subtype) {
	case VFW_REGION_SUBTYPE_DEVICE_STATE_CTL:
		return &ds->ctl;
	case VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_CONFIG:
		return &ds->cfg;
	case VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_MEMORY:
		return &ds->mem;
	case VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_DIRTYBITMAP:
		return &ds->bmp;
	default:
		return NULL;
	}
}

/* Keep the fd of a data region the device offered for mapping; else stay
 * with messages. The fd is only pread/pwritten (see struct vmm_ds_region),
 * so its size need not be trusted. */
static void try_map(vfmig_vmm_dev *dev, struct vmm_ds_region *rg,
		    const struct vfmig_vmm_region_info *info)
{
	if (info->fd < 0 || !(info->flags & VFMIG_VMM_REGION_MMAP) ||
	    info->mmap_offset > INT64_MAX - info->size)
		return;
	rg->fd = fcntl(info->fd, F_DUPFD_CLOEXEC, 0);
	rg->fd_off = info->mmap_offset;
	rg->has_fd = rg->fd >= 0;
	if (!rg->has_fd)
		vfw_log(&dev->log, VFW_LOG_DEBUG,
			"region %u: cannot keep its fd (%s); using "
			"REGION_READ/WRITE", info->index, strerror(errno));
}

/* Look at one index; keep a device-state region's facts and mapping. */
static int scan_one(vfmig_vmm_dev *dev, uint32_t index, bool *any)
{
	struct vfmig_vmm_region_info info;
	struct vmm_ds_region *rg;
	int r = vmm_region_info_locked(dev, index, &info);

	if (r < 0)
		return dev->fd < 0 ? r : 0; /* a refused index is skipped */
	if (info.has_type && info.type == VFW_REGION_TYPE_DEVICE_STATE &&
	    (rg = ds_slot(&dev->ds, info.subtype)) && !rg->present) {
		*any = true;
		*rg = (struct vmm_ds_region){ true, index, info.flags,
					      info.size, false, -1, 0 };
		if (rg != &dev->ds.ctl && info.size >= MIN_DATA_REGION &&
		    info.size <= MAX_DATA_REGION)
			try_map(dev, rg, &info);
		vfw_log(&dev->log, VFW_LOG_DEBUG,
			"region %u: %s, %llu bytes, flags 0x%x%s", index,
			ds_names[info.subtype],
			(unsigned long long)info.size, info.flags,
			rg->has_fd ? ", through its fd" : "");
	}
	vfmig_vmm_region_info_release(&info);
	return 0;
}

#define RW (VFMIG_VMM_REGION_READ | VFMIG_VMM_REGION_WRITE)

/* A data region that must be there: readable and writable, sized
 * [MIN_DATA_REGION, MAX_DATA_REGION]. Returns false with the blocker set. */
static bool data_region_ok(vfmig_vmm_dev *dev, struct vmm_ds_region *rg,
			   uint32_t subtype, struct vfmig_vmm_mig_caps *caps)
{
	const char *name = ds_names[subtype];

	if (!rg->present)
		return ds_blocker(dev, caps, "no %s region", name), false;
	if ((rg->flags & RW) != RW)
		return ds_blocker(dev, caps,
				  "%s region not readable and writable", name),
		       false;
	if (rg->size < MIN_DATA_REGION || rg->size > MAX_DATA_REGION)
		return ds_blocker(dev, caps,
				  "%s region of %llu bytes (want %u to %llu)",
				  name, (unsigned long long)rg->size,
				  MIN_DATA_REGION, MAX_DATA_REGION),
		       false;
	return true;
}

static bool ctl_ok(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps)
{
	struct vmm_ds_region *c = &dev->ds.ctl;

	if (!c->present)
		return ds_blocker(dev, caps, "no control region"), false;
	if ((c->flags & RW) != RW)
		return ds_blocker(dev, caps,
				  "control region not readable and writable"),
		       false;
	if (c->size < VFW_DS_CTL_STRUCT_SIZE)
		return ds_blocker(dev, caps,
				  "control region of %llu bytes (want >= %u)",
				  (unsigned long long)c->size,
				  VFW_DS_CTL_STRUCT_SIZE),
		       false;
	if (vmm_xfer_chunk(dev) < 8)
		return ds_blocker(dev, caps,
				  "max_data_xfer_size %zu below 8 bytes",
				  vmm_xfer_chunk(dev)),
		       false;
	return true;
}

/* Version and caps; false with the blocker set (or *err on transport). */
static bool read_header(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps,
			int *err)
{
	uint64_t version = 0, dcaps = 0;
	int r = ctl_read(dev, VFW_DS_OFF_VERSION, &version, 4);

	if (r == 0 && version != VFW_DEVICE_STATE_INTERFACE_VERSION)
		return ds_blocker(dev, caps, "version %llu, expected %u",
				  (unsigned long long)version,
				  VFW_DEVICE_STATE_INTERFACE_VERSION),
		       false;
	if (r == 0)
		r = ctl_read(dev, VFW_DS_OFF_CAPS, &dcaps, 4);
	if (r < 0) {
		*err = dev->fd < 0 ? r : 0;
		ds_blocker(dev, caps, "reading the control region: %s",
			   vfmig_vmm_strerror(r));
		return false;
	}
	dev->ds.caps = (uint32_t)dcaps;
	return true;
}

/* All pieces the caps ask for, or the blocker. */
static bool pieces_ok(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps)
{
	struct vmm_ds *ds = &dev->ds;

	if (!data_region_ok(dev, &ds->cfg,
			    VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_CONFIG, caps))
		return false;
	if ((ds->caps & VFW_DS_CAP_DEVICE_MEMORY) &&
	    !data_region_ok(dev, &ds->mem,
			    VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_MEMORY, caps))
		return false;
	if (!(ds->caps & VFW_DS_CAP_SYSTEM_MEMORY))
		return true;
	if (!ds->bmp.present)
		return ds_blocker(dev, caps, "no dirty-bitmap region"), false;
	if (!(ds->bmp.flags & VFMIG_VMM_REGION_READ) || ds->bmp.size < 8)
		return ds_blocker(dev, caps,
				  "dirty-bitmap region unreadable or smaller "
				  "than 8 bytes"),
		       false;
	return true;
}

int vmm_ds_discover(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps,
		    const struct vmm_ds *prev)
{
	struct vfmig_vmm_dev_info di;
	bool any = false;
	int r, err = 0;

	r = vmm_dev_info_locked(dev, &di);
	if (r < 0)
		return dev->fd < 0 ? r : 0;
	uint32_t n = di.num_regions < MAX_REGIONS ? di.num_regions
						  : MAX_REGIONS;
	for (uint32_t i = FIRST_DS_INDEX; i < n; i++) {
		r = scan_one(dev, i, &any);
		if (r < 0)
			goto lost;
	}
	if (!any) /* neither interface: the v2 refusal stays the reason */
		return 0;
	if (!ctl_ok(dev, caps) || !read_header(dev, caps, &err) ||
	    !pieces_ok(dev, caps)) {
		vmm_ds_forget(dev);
		if (err < 0) {
			r = err;
			goto lost;
		}
		return 0;
	}
	caps->blocker[0] = '\0';
	caps->flags = VFW_MIGRATION_STOP_COPY;
	if (dev->ds.caps & VFW_DS_CAP_DEVICE_MEMORY)
		caps->flags |= VFW_MIGRATION_PRE_COPY;
	caps->migratable = true;
	caps->dirty_logging = dev->ds.caps & VFW_DS_CAP_SYSTEM_MEMORY;
	caps->size_info = false;
	dev->mig = &vmm_mig_region;
	vmm_ds_after_reset(dev);
	if (prev) /* the tracked state and sessions of an earlier discovery */
		dev->ds.sess = prev->sess;
	dev->ds.tracked = true;
	vfw_log(&dev->log, VFW_LOG_INFO,
		"migratable (region interface): caps 0x%x, memory %s, "
		"config %s", dev->ds.caps,
		dev->ds.mem.has_fd ? "through its fd" : "by message",
		dev->ds.cfg.has_fd ? "through its fd" : "by message");
	return 0;
lost:
	vmm_ds_forget(dev);
	caps->migratable = false;
	snprintf(caps->blocker, sizeof(caps->blocker),
		 "connection lost during discovery: %s",
		 vfmig_vmm_strerror(r));
	return r;
}

/* ---- state ---- */

/* device_state for a v2 state; -EINVAL for those it cannot express. */
static int ds_value(const struct vmm_ds *ds, uint32_t st, uint32_t *v)
{
	switch (st) {
	case VFW_MIG_STATE_RUNNING:
		*v = 0;
		break;
	case VFW_MIG_STATE_STOP:
	case VFW_MIG_STATE_RESUMING:
		*v = VFW_DS_STATE_STOP;
		break;
	case VFW_MIG_STATE_PRE_COPY:
		*v = VFW_DS_STATE_LOGGING;
		break;
	case VFW_MIG_STATE_STOP_COPY:
		*v = VFW_DS_STATE_STOP | VFW_DS_STATE_LOGGING;
		break;
	default:
		return -EINVAL;
	}
	/* Logging while loading would make the value STOP_COPY. */
	if (ds->sess.logging && st != VFW_MIG_STATE_RESUMING)
		*v |= VFW_DS_STATE_LOGGING;
	return 0;
}

static int write_state(vfmig_vmm_dev *dev, uint32_t st)
{
	uint32_t v;
	int r = ds_value(&dev->ds, st, &v);

	if (r < 0)
		return r;
	vfw_log(&dev->log, VFW_LOG_DEBUG, "device_state = %u (%s)", v,
		vfw_mig_state_name(st));
	return ctl_write(dev, VFW_DS_OFF_DEVICE_STATE, v, 4);
}

/* The shadow moves to st: start a save or a load session as needed. */
static void enter(struct vmm_ds *ds, uint32_t st)
{
	if (vfw_mig_state_saving(st) && !vfw_mig_state_saving(ds->sess.state)) {
		ds->sess.mem_fetched = 0;
		ds->sess.mem_done = false;
	}
	if (st == VFW_MIG_STATE_RESUMING) {
		ds->sess.logging = false; /* the device dropped it with STOP */
		if (ds->sess.state != VFW_MIG_STATE_RESUMING)
			load_reset(ds);
	}
	ds->sess.state = st;
}

/* After a failed write (connection intact): the v2 recovery rule. */
static uint32_t ds_recover(vfmig_vmm_dev *dev, uint32_t recover)
{
	int r;

	if (recover != VFW_MIG_STATE_ERROR) {
		r = write_state(dev, recover);
		if (r == 0) {
			vfw_log(&dev->log, VFW_LOG_WARNING, "recovered to %s",
				vfw_mig_state_name(recover));
			enter(&dev->ds, recover);
			return recover;
		}
		vfw_log(&dev->log, VFW_LOG_ERR, "device_state %s to recover "
			"failed: %s", vfw_mig_state_name(recover),
			vfmig_vmm_strerror(r));
		if (dev->fd < 0)
			return VFMIG_VMM_MIG_UNKNOWN;
	}
	r = vmm_reset_locked(dev);
	if (r < 0) {
		vfw_log(&dev->log, VFW_LOG_ERR, "reset after failed write: %s",
			vfmig_vmm_strerror(r));
		return VFMIG_VMM_MIG_UNKNOWN;
	}
	vmm_ds_after_reset(dev);
	vfw_log(&dev->log, VFW_LOG_WARNING, "device reset; now in RUNNING");
	return VFW_MIG_STATE_RUNNING;
}

static int ds_set_state(vfmig_vmm_dev *dev, uint32_t target,
			uint32_t recover, uint32_t *ended)
{
	struct vmm_ds *ds = &dev->ds;
	uint32_t v;
	int r;

	*ended = ds->sess.state;
	if (ds_value(ds, target, &v) < 0 ||
	    (recover != VFW_MIG_STATE_ERROR && ds_value(ds, recover, &v) < 0))
		return -EINVAL;
	/* Writing STOP again would end the load we are in. */
	if (target == VFW_MIG_STATE_RESUMING &&
	    ds->sess.state == VFW_MIG_STATE_RESUMING)
		return 0;
	if (ds->sess.state == VFW_MIG_STATE_RESUMING && (ds->sess.hdr_got || ds->sess.left))
		vfw_log(&dev->log, VFW_LOG_WARNING,
			"leaving RESUMING inside a chunk: the stream was "
			"truncated");
	r = write_state(dev, target);
	if (r == 0) {
		enter(ds, target);
		*ended = target;
		vfw_log(&dev->log, VFW_LOG_INFO, "device now in %s",
			vfw_mig_state_name(target));
		return 0;
	}
	vfw_log(&dev->log, VFW_LOG_ERR, "device_state for %s failed: %s",
		vfw_mig_state_name(target), vfmig_vmm_strerror(r));
	*ended = VFMIG_VMM_MIG_UNKNOWN;
	if (dev->fd >= 0)
		*ended = ds_recover(dev, recover);
	if (*ended == VFMIG_VMM_MIG_UNKNOWN)
		ds->sess.state = VFW_MIG_STATE_ERROR;
	return r;
}

/* ---- saving ---- */

/* One GET_BUFFER of kind; *size is checked against the region. */
static int fetch(vfmig_vmm_dev *dev, uint32_t kind, uint64_t *size)
{
	struct vmm_ds *ds = &dev->ds;
	bool mem = kind == VFW_DS_CHUNK_MEMORY;
	const struct vmm_ds_region *rg = mem ? &ds->mem : &ds->cfg;
	int r = 0;

	if (mem)
		r = ctl_write(dev, VFW_DS_OFF_MEMORY_POS, ds->sess.mem_fetched, 8);
	if (r == 0)
		r = ctl_write(dev, mem ? VFW_DS_OFF_MEMORY_ACTION
				       : VFW_DS_OFF_CONFIG_ACTION,
			      VFW_DS_ACTION_GET_BUFFER, 4);
	if (r == 0)
		r = ctl_read(dev, mem ? VFW_DS_OFF_MEMORY_SIZE
				      : VFW_DS_OFF_CONFIG_SIZE,
			     size, 8);
	if (r < 0)
		return r;
	if (*size > rg->size) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"%s size %llu beyond its %llu-byte region",
			mem ? "device_memory" : "device_config",
			(unsigned long long)*size,
			(unsigned long long)rg->size);
		return vmm_proto_error(dev, NULL, "data size beyond the region");
	}
	return 0;
}

struct pump {
	vfmig_vmm_dev *dev;
	vfmig_vmm_mig_sink_fn sink;
	void *priv;
	uint8_t *buf; /* bounce buffer for unmapped regions */
};

/* Hand size bytes of the region to the sink after the header. Called
 * locked; returns unlocked. */
static int deliver(struct pump *p, uint32_t kind, uint64_t size)
{
	vfmig_vmm_dev *dev = p->dev;
	const struct vmm_ds_region *rg =
		kind == VFW_DS_CHUNK_MEMORY ? &dev->ds.mem : &dev->ds.cfg;
	size_t chunk = vmm_xfer_chunk(dev);
	uint8_t hdr[VFW_DS_CHUNK_HDR] = { (uint8_t)kind,
					  (uint8_t)(size >> 24),
					  (uint8_t)(size >> 16),
					  (uint8_t)(size >> 8), (uint8_t)size };
	int r;

	vmm_unlock(dev);
	r = p->sink(p->priv, hdr, sizeof(hdr));
	if (r < 0)
		return r;
	for (uint64_t done = 0; done < size;) {
		size_t n;
		r = vmm_lock_live(dev);
		if (r < 0)
			return r;
		/* Under the lock: a close or reconnect may drop the fd. pread
		 * has no message size limit; p->buf holds VMM_MAX_XFER. */
		n = rg->has_fd ? VMM_MAX_XFER : chunk;
		n = size - done < n ? (size_t)(size - done) : n;
		r = vmm_ds_on(dev) && rg->present
			    ? data_read(dev, rg, done, p->buf, n)
			    : -ENOTCONN;
		vmm_unlock(dev);
		if (r == 0)
			r = p->sink(p->priv, p->buf, n);
		if (r < 0)
			return r;
		done += n;
	}
	return 0;
}

/* One chunk: 1 (one delivered), 0 (this kind is empty) or an error. */
static int save_chunk(struct pump *p, uint32_t st, uint32_t *kind,
		      uint64_t *size)
{
	vfmig_vmm_dev *dev = p->dev;
	struct vmm_ds *ds = &dev->ds;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	if (!vmm_ds_on(dev) || ds->sess.state != st) {
		vmm_unlock(dev);
		return -EINVAL; /* rediscovered or moved meanwhile */
	}
	*kind = st == VFW_MIG_STATE_PRE_COPY || !ds->sess.mem_done
			? VFW_DS_CHUNK_MEMORY
			: VFW_DS_CHUNK_CONFIG;
	if (*kind == VFW_DS_CHUNK_MEMORY && !ds->mem.present) {
		*size = 0;
	} else {
		r = fetch(dev, *kind, size);
		if (r < 0) {
			vmm_unlock(dev);
			return r;
		}
	}
	if (*size == 0) {
		if (*kind == VFW_DS_CHUNK_MEMORY)
			ds->sess.mem_done = true;
		vmm_unlock(dev);
		return 0;
	}
	if (*kind == VFW_DS_CHUNK_MEMORY)
		ds->sess.mem_fetched += *size;
	r = deliver(p, *kind, *size);
	return r < 0 ? r : 1;
}

static int ds_save(vfmig_vmm_dev *dev, uint64_t budget,
		   vfmig_vmm_mig_sink_fn sink, vfmig_vmm_mig_moved_fn moved,
		   void *priv, struct vfmig_vmm_mig_save_result *res)
{
	(void)moved; /* no data channel: nothing is ever sealed */
	struct pump p = { dev, sink, priv, NULL };
	uint32_t st, kind = 0;
	uint64_t size = 0;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	st = dev->ds.sess.state;
	res->state = st;
	if (st == VFW_MIG_STATE_STOP_COPY && !dev->ds.mem.present)
		dev->ds.sess.mem_done = true;
	vmm_unlock(dev);
	if (st != VFW_MIG_STATE_PRE_COPY && st != VFW_MIG_STATE_STOP_COPY)
		return -EINVAL;
	p.buf = malloc(VMM_MAX_XFER);
	if (!p.buf)
		return -ENOMEM;
	for (;;) {
		r = save_chunk(&p, st, &kind, &size);
		if (r < 0)
			break;
		if (r == 0) {
			if (st == VFW_MIG_STATE_STOP_COPY &&
			    kind == VFW_DS_CHUNK_MEMORY)
				continue; /* on to the config data */
			res->status = st == VFW_MIG_STATE_STOP_COPY
					      ? VFMIG_VMM_MIG_SAVE_END
					      : VFMIG_VMM_MIG_SAVE_DRAINED;
			r = 0;
			break;
		}
		res->bytes += VFW_DS_CHUNK_HDR + size;
		if (budget && res->bytes >= budget) {
			res->status = VFMIG_VMM_MIG_SAVE_BUDGET;
			r = 0;
			break;
		}
	}
	free(p.buf);
	return r;
}

/* ---- loading ---- */

/* Hand the filled bytes of the current chunk to the device. */
static int flush(vfmig_vmm_dev *dev)
{
	struct vmm_ds *ds = &dev->ds;
	bool mem = ds->sess.kind == VFW_DS_CHUNK_MEMORY;
	int r = 0;

	if (mem)
		r = ctl_write(dev, VFW_DS_OFF_MEMORY_POS, ds->sess.mem_loaded, 8);
	if (r == 0)
		r = ctl_write(dev, mem ? VFW_DS_OFF_MEMORY_SIZE
				       : VFW_DS_OFF_CONFIG_SIZE,
			      ds->sess.fill, 8);
	if (r == 0)
		r = ctl_write(dev, mem ? VFW_DS_OFF_MEMORY_ACTION
				       : VFW_DS_OFF_CONFIG_ACTION,
			      VFW_DS_ACTION_SET_BUFFER, 4);
	if (r < 0)
		return r;
	if (mem)
		ds->sess.mem_loaded += ds->sess.fill;
	else
		ds->sess.cfg_loaded += ds->sess.fill;
	ds->sess.fill = 0;
	return 0;
}

/* Take header bytes; returns how many were used, or -EPROTO. */
static int take_header(vfmig_vmm_dev *dev, const uint8_t *p, size_t len)
{
	struct vmm_ds *ds = &dev->ds;
	size_t n = VFW_DS_CHUNK_HDR - ds->sess.hdr_got;

	if (n > len)
		n = len;
	memcpy(ds->sess.hdr + ds->sess.hdr_got, p, n);
	ds->sess.hdr_got += n;
	if (ds->sess.hdr_got < VFW_DS_CHUNK_HDR)
		return (int)n;
	ds->sess.kind = ds->sess.hdr[0];
	ds->sess.left = (uint64_t)ds->sess.hdr[1] << 24 | (uint64_t)ds->sess.hdr[2] << 16 |
		   (uint64_t)ds->sess.hdr[3] << 8 | ds->sess.hdr[4];
	ds->sess.fill = 0;
	if ((ds->sess.kind != VFW_DS_CHUNK_MEMORY && ds->sess.kind != VFW_DS_CHUNK_CONFIG) ||
	    (ds->sess.kind == VFW_DS_CHUNK_MEMORY && !ds->mem.present)) {
		vfw_log(&dev->log, VFW_LOG_ERR, "device data: chunk kind %u",
			ds->sess.kind);
		return -EPROTO;
	}
	if (ds->sess.left > MAX_CHUNK) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"device data: chunk of %llu bytes",
			(unsigned long long)ds->sess.left);
		return -EPROTO;
	}
	if (ds->sess.left == 0)
		ds->sess.hdr_got = 0; /* empty chunk: nothing to hand over */
	return (int)n;
}

/* Copy chunk bytes into the region; SET_BUFFER when the chunk is complete
 * or the region full. Returns how many were used, or an error. */
static int take_data(vfmig_vmm_dev *dev, const uint8_t *p, size_t len)
{
	struct vmm_ds *ds = &dev->ds;
	const struct vmm_ds_region *rg =
		ds->sess.kind == VFW_DS_CHUNK_MEMORY ? &ds->mem : &ds->cfg;
	uint64_t n = len;
	int r;

	if (n > ds->sess.left)
		n = ds->sess.left;
	if (n > rg->size - ds->sess.fill)
		n = rg->size - ds->sess.fill;
	r = data_write(dev, rg, ds->sess.fill, p, (size_t)n);
	if (r < 0)
		return r;
	ds->sess.fill += n;
	ds->sess.left -= n;
	if (ds->sess.left == 0 || ds->sess.fill == rg->size) {
		r = flush(dev);
		if (r < 0)
			return r;
		if (ds->sess.left == 0)
			ds->sess.hdr_got = 0;
	}
	return (int)n;
}

static int ds_load(vfmig_vmm_dev *dev, const uint8_t *buf, size_t len)
{
	struct vmm_ds *ds = &dev->ds;
	size_t done = 0;

	if (ds->sess.state != VFW_MIG_STATE_RESUMING)
		return -EINVAL;
	if (ds->sess.load_err)
		return ds->sess.load_err;
	while (done < len) {
		size_t n = len - done;
		int r;

		/* pieces stay below INT_MAX for the int results */
		if (n > MAX_CHUNK)
			n = MAX_CHUNK;
		r = ds->sess.hdr_got < VFW_DS_CHUNK_HDR
			    ? take_header(dev, buf + done, n)
			    : take_data(dev, buf + done, n);
		if (r < 0) {
			ds->sess.load_err = r;
			return r;
		}
		done += (size_t)r;
	}
	return 0;
}

/* ---- DMA dirty logging ---- */

static int ds_log_start_all(vfmig_vmm_dev *dev, uint64_t page_size,
			    uint64_t *chosen)
{
	struct vmm_ds *ds = &dev->ds;
	uint32_t v;
	int r;

	if (!(ds->caps & VFW_DS_CAP_SYSTEM_MEMORY))
		return -EOPNOTSUPP;
	if (page_size != VFW_DS_PAGE_SIZE ||
	    ds->sess.state == VFW_MIG_STATE_RESUMING)
		return -EINVAL;
	if (ds->sess.logging)
		return -EBUSY;
	ds->sess.logging = true;
	r = ds_value(ds, ds->sess.state, &v);
	if (r == 0)
		r = ctl_write(dev, VFW_DS_OFF_DEVICE_STATE, v, 4);
	if (r < 0) {
		ds->sess.logging = false;
		return r;
	}
	if (chosen)
		*chosen = VFW_DS_PAGE_SIZE;
	vfw_log(&dev->log, VFW_LOG_INFO, "DMA logging on (device_state %u)",
		v);
	return 0;
}

static int ds_log_stop(vfmig_vmm_dev *dev)
{
	struct vmm_ds *ds = &dev->ds;
	uint32_t v;
	int r;

	if (!ds->sess.logging)
		return -EINVAL;
	ds->sess.logging = false;
	/* PRE_COPY and STOP_COPY carry the bit in their value. */
	if (ds->sess.state == VFW_MIG_STATE_PRE_COPY ||
	    ds->sess.state == VFW_MIG_STATE_STOP_COPY)
		return 0;
	r = ds_value(ds, ds->sess.state, &v);
	if (r == 0)
		r = ctl_write(dev, VFW_DS_OFF_DEVICE_STATE, v, 4);
	if (r < 0)
		ds->sess.logging = true;
	else
		vfw_log(&dev->log, VFW_LOG_INFO, "DMA logging off");
	return r;
}

/* OR words of LE bitmap bytes into out, dropping bits past pages. */
static void merge(uint64_t *out, const uint8_t *bits, uint64_t pages,
		  bool *stray)
{
	size_t words = (size_t)((pages + 63) / 64);

	for (size_t i = 0; i < words; i++) {
		uint64_t w = get_le(bits + i * 8, 8);
		if (i == words - 1 && pages % 64) {
			uint64_t keep = (1ull << (pages % 64)) - 1;
			*stray |= (w & ~keep) != 0;
			w &= keep;
		}
		out[i] |= w;
	}
}

static int ds_log_report(vfmig_vmm_dev *dev, uint64_t iova,
			 uint64_t length, uint64_t page_size, uint64_t *bitmap)
{
	struct vmm_ds *ds = &dev->ds;
	uint64_t usable, per, pages, done = 0;
	uint8_t *buf;
	bool stray = false;
	int r = 0;

	if (!(ds->caps & VFW_DS_CAP_SYSTEM_MEMORY))
		return -EOPNOTSUPP;
	if (page_size != VFW_DS_PAGE_SIZE || iova % VFW_DS_PAGE_SIZE)
		return -EINVAL;
	usable = ds->bmp.size < VMM_MAX_XFER ? ds->bmp.size : VMM_MAX_XFER;
	per = usable / 8 * 64; /* pages per pass, a multiple of 64 */
	pages = length / page_size + (length % page_size != 0);
	buf = malloc((size_t)usable);
	if (!buf)
		return -ENOMEM;
	while (r == 0 && done < pages) {
		uint64_t n = pages - done < per ? pages - done : per;
		size_t bytes = (size_t)((n + 63) / 64 * 8);

		r = ctl_write(dev, VFW_DS_OFF_SYS_START_ADDR,
			      iova + done * page_size, 8);
		if (r == 0)
			r = ctl_write(dev, VFW_DS_OFF_SYS_PAGE_NR, n, 8);
		if (r == 0)
			r = data_read(dev, &ds->bmp, 0, buf, bytes);
		if (r == 0)
			merge(bitmap + done / 64, buf, n, &stray);
		done += n;
	}
	free(buf);
	if (stray)
		vfw_log(&dev->log, VFW_LOG_WARNING,
			"dirty bitmap had bits past the range; dropped");
	return r;
}

/* ---- the table ---- */

static int ds_get_state(vfmig_vmm_dev *dev, uint32_t *state)
{
	*state = dev->ds.sess.state; /* tracked here: the regions have none */
	return 0;
}

/* The device logs every window: the ranges were checked, then ignored. */
static int ds_log_start(vfmig_vmm_dev *dev, uint64_t page_size,
			const struct vfmig_vmm_dma_range *ranges, uint32_t n,
			uint64_t *chosen)
{
	(void)ranges;
	(void)n;
	return ds_log_start_all(dev, page_size, chosen);
}

static int ds_estimate(vfmig_vmm_dev *dev, uint32_t feature, void *out,
		       size_t len)
{
	(void)dev;
	(void)feature;
	(void)out;
	(void)len;
	return -EOPNOTSUPP; /* the 2019 interface has no size estimates */
}

const struct vmm_mig_backend vmm_mig_region = {
	.iface = VFMIG_VMM_MIG_IFACE_REGION,
	.get_state = ds_get_state,
	.set_state = ds_set_state,
	.save = ds_save,
	.load = ds_load,
	.log_start = ds_log_start,
	.log_report = ds_log_report,
	.log_stop = ds_log_stop,
	.estimate = ds_estimate,
	.after_reset = vmm_ds_after_reset,
};
