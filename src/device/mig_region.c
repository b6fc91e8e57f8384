/* SPDX-License-Identifier: MIT */
/*
 * The 2019 region-based device-state interface (docs/region-interface.md),
 * the table dev_mig_region (struct dev_mig_iface, internal.h) that
 * vfmig_dev_set_mig_interface (migration.c) selects: regions 9..12 (control,
 * device-config data, device-memory data, dirty bitmap), the emulation of
 * struct vfio_device_state_ctl in the control region, and the memfds behind
 * the data regions, made by init and freed by fini. It has no DEVICE_FEATURE
 * features, no MIG_DATA_* and no size estimates: those are ENOTSUP and the
 * extension is not offered.
 *
 * Nothing here owns a state machine: a device_state write is mapped onto a
 * v2 target and handed to migration.c (dev_mig_goto), and the data actions
 * use the same save/load helpers as MIG_DATA_READ/WRITE, so the device's
 * callbacks see exactly the arcs and the byte stream they see under v2.
 * LOGGING is the DMA dirty log of dirty.c on every window at 4 KiB pages.
 *
 * The data regions are memfds the client may map: what it put there is
 * copied before the device's mig_load sees it, so a client changing the
 * memory meanwhile cannot change bytes under the device's parser.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* The data regions, by dev_ds.data index (region VFW_DS_REGION_CONFIG + i). */
static const struct {
	const char *name;
	uint32_t subtype;
	size_t size;
} data_desc[DEV_DS_NDATA] = {
	[DEV_DS_CONFIG] = { "vfmig-ds-config",
			    VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_CONFIG,
			    VFW_DS_DATA_REGION_SIZE },
	[DEV_DS_MEMORY] = { "vfmig-ds-memory",
			    VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_MEMORY,
			    VFW_DS_DATA_REGION_SIZE },
	[DEV_DS_BITMAP] = { "vfmig-ds-bitmap",
			    VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_DIRTYBITMAP,
			    VFW_DS_BITMAP_REGION_SIZE },
};

static_assert(VFW_DS_REGION_MEMORY == VFW_DS_REGION_CONFIG + DEV_DS_MEMORY &&
		      VFW_DS_REGION_BITMAP == VFW_DS_REGION_CONFIG + DEV_DS_BITMAP,
	      "data region indexes follow dev_ds.data");
static_assert(VFW_DS_REGION_CTL == VFW_PCI_NUM_REGIONS &&
		      VFW_DS_NUM_REGIONS == VFW_DS_REGION_BITMAP + 1,
	      "the four regions are the ones after the PCI regions");

/* ---- lifecycle ---- */

static void ds_fini(struct vfmig_dev *dev)
{
	for (unsigned int i = 0; i < DEV_DS_NDATA; i++) {
		struct dev_ds_data *d = &dev->ds.data[i];
		if (d->mem)
			munmap(d->mem, d->size);
		if (d->memfd >= 0)
			close(d->memfd);
		*d = (struct dev_ds_data){ .memfd = -1 };
	}
}

static int data_init(struct dev_ds_data *d, unsigned int i)
{
	void *p = NULL;
	int r = dev_memfd_create(data_desc[i].name, data_desc[i].size,
				 &d->memfd, &p);

	if (r < 0)
		return r;
	d->mem = p;
	d->size = data_desc[i].size;
	return 0;
}

/* DEVICE_RESET: control fields back to 0 (device_state RUNNING). */
static void ds_reset(struct vfmig_dev *dev)
{
	struct dev_ds *ds = &dev->ds;

	ds->device_state = 0;
	ds->config_size = ds->memory_size = ds->memory_pos = 0;
	ds->start_addr = ds->page_nr = 0;
}

static int ds_init(struct vfmig_dev *dev)
{
	int r = 0;

	for (unsigned int i = 0; i < DEV_DS_NDATA; i++)
		dev->ds.data[i] = (struct dev_ds_data){ .memfd = -1 };
	for (unsigned int i = 0; r == 0 && i < DEV_DS_NDATA; i++)
		r = data_init(&dev->ds.data[i], i);
	if (r < 0) {
		ds_fini(dev);
		return r;
	}
	ds_reset(dev);
	return 0;
}

/* The client took its dirty log along (dev_drop_client): reads of
 * device_state tell so. */
static void ds_client_gone(struct vfmig_dev *dev)
{
	dev->ds.device_state &= ~VFW_DS_STATE_LOGGING;
}

/* ---- device_state ---- */

/* The v2 state a device_state value stands for. */
static uint32_t v2_target(const struct vfmig_dev *dev, uint32_t v)
{
	switch (v) {
	case 0:
		return VFW_MIG_STATE_RUNNING;
	case VFW_DS_STATE_STOP:
		return VFW_MIG_STATE_STOP;
	case VFW_DS_STATE_LOGGING:
		return (dev->ops.mig_flags & VFMIG_DEV_MIG_F_PRE_COPY)
			       ? VFW_MIG_STATE_PRE_COPY
			       : VFW_MIG_STATE_RUNNING;
	default:
		return VFW_MIG_STATE_STOP_COPY;
	}
}

/* Walk to target. STOP_COPY to PRE_COPY is no v2 arc: that write ends the
 * save session through RUNNING and starts a new one. */
static int go(struct vfmig_dev *dev, uint32_t target)
{
	if (dev->mig.state == VFW_MIG_STATE_STOP_COPY &&
	    target == VFW_MIG_STATE_PRE_COPY) {
		int r = dev_mig_goto(dev, VFW_MIG_STATE_RUNNING);
		if (r < 0)
			return r;
	}
	return dev_mig_goto(dev, target);
}

static int write_state(struct vfmig_dev *dev, uint32_t v)
{
	struct dev_ds *ds = &dev->ds;
	bool log = v & VFW_DS_STATE_LOGGING, was_log = dev->dlog.on;
	int r;

	if (v & ~(VFW_DS_STATE_STOP | VFW_DS_STATE_LOGGING))
		return -EINVAL;
	if (dev->mig.state == VFW_MIG_STATE_ERROR)
		return -EIO;
	if (dev->mig.state == VFW_MIG_STATE_RESUMING) {
		/* End the implicit load session first (mig_load_finish). */
		r = dev_mig_goto(dev, VFW_MIG_STATE_STOP);
		if (r < 0)
			return r;
	} else if (v == ds->device_state && log == was_log) {
		return 0;
	}
	if (log && !was_log) {
		r = dev_dlog_start_all(dev, VFW_DS_PAGE_SIZE);
		if (r < 0)
			return r;
	}
	r = go(dev, v2_target(dev, v));
	if (r < 0) {
		if (log && !was_log)
			dev_dlog_stop(dev);
		return r;
	}
	if (!log && was_log)
		dev_dlog_stop(dev);
	DEV_LOG(dev, VFW_LOG_INFO, "device_state %u -> %u", ds->device_state,
		v);
	ds->device_state = v;
	return 0;
}

/* ---- data actions ---- */

/* GET_BUFFER: the next bytes of the save stream into a data region. */
static int save_into(struct vfmig_dev *dev, unsigned int which,
		     uint64_t *size)
{
	struct dev_ds_data *d = &dev->ds.data[which];
	size_t got;
	int r = dev_mig_save_chunk(dev, d->mem, d->size, &got);

	if (r < 0)
		return r;
	*size = got;
	return 0;
}

/* SET_BUFFER: size bytes of a data region to the device's mig_load. A SET
 * in STOP starts the load session (STOP -> RESUMING). */
static int load_from(struct vfmig_dev *dev, unsigned int which,
		     uint64_t size)
{
	const struct dev_ds_data *d = &dev->ds.data[which];
	uint8_t *copy;
	int r;

	if (size > d->size)
		return -EINVAL;
	if (dev->mig.state == VFW_MIG_STATE_STOP) {
		r = dev_mig_goto(dev, VFW_MIG_STATE_RESUMING);
		if (r < 0)
			return r;
	} else if (dev->mig.state != VFW_MIG_STATE_RESUMING) {
		return -EINVAL;
	}
	copy = malloc(size ? (size_t)size : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, d->mem, (size_t)size);
	r = dev_mig_load_chunk(dev, copy, (size_t)size);
	free(copy);
	return r;
}

static int config_action(struct vfmig_dev *dev, uint32_t action)
{
	struct dev_ds *ds = &dev->ds;

	switch (action) {
	case VFW_DS_ACTION_GET_BUFFER:
		if (dev->mig.state != VFW_MIG_STATE_STOP_COPY)
			return -EINVAL;
		return save_into(dev, DEV_DS_CONFIG, &ds->config_size);
	case VFW_DS_ACTION_SET_BUFFER:
		return load_from(dev, DEV_DS_CONFIG, ds->config_size);
	default:
		return -EINVAL;
	}
}

static int memory_get(struct vfmig_dev *dev)
{
	struct dev_ds *ds = &dev->ds;
	int r;

	switch (dev->mig.state) {
	case VFW_MIG_STATE_PRE_COPY:
		/* Chunks are sequential: pos is what was fetched so far. */
		if (ds->memory_pos != dev->mig.mem_bytes)
			return -EINVAL;
		r = save_into(dev, DEV_DS_MEMORY, &ds->memory_size);
		if (r == 0)
			dev->mig.mem_bytes += ds->memory_size;
		return r;
	case VFW_MIG_STATE_RUNNING:
		/* RUNNING + LOGGING of a device without iterative data */
		if (ds->device_state != VFW_DS_STATE_LOGGING)
			return -EINVAL;
		/* fall through */
	case VFW_MIG_STATE_STOP_COPY:
		ds->memory_size = 0; /* the rest comes through config */
		return 0;
	default:
		return -EINVAL;
	}
}

static int memory_action(struct vfmig_dev *dev, uint32_t action)
{
	struct dev_ds *ds = &dev->ds;
	int r;

	switch (action) {
	case VFW_DS_ACTION_GET_BUFFER:
		return memory_get(dev);
	case VFW_DS_ACTION_SET_BUFFER:
		if (ds->memory_pos != dev->mig.mem_bytes)
			return -EINVAL;
		r = load_from(dev, DEV_DS_MEMORY, ds->memory_size);
		if (r == 0)
			dev->mig.mem_bytes += ds->memory_size;
		return r;
	default:
		return -EINVAL;
	}
}

/* ---- dirty bitmap ---- */

static int fill_bitmap(struct vfmig_dev *dev, uint64_t start, uint64_t pages)
{
	struct dev_ds *ds = &dev->ds;
	uint64_t bm[VFW_DS_BITMAP_REGION_SIZE / 8] = { 0 };
	int r;

	if (pages > VFW_DS_BITMAP_REGION_SIZE * 8ull)
		return -EINVAL;
	r = dev_dlog_fill(dev, start, pages, bm);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(bm) / sizeof(bm[0]); i++)
		bm[i] = htole64(bm[i]);
	memcpy(ds->data[DEV_DS_BITMAP].mem, bm, sizeof(bm));
	ds->start_addr = start;
	ds->page_nr = pages;
	return 0;
}

/* ---- the control region ---- */

enum { CTL_R = 1, CTL_W = 2 };

/* Every access is exactly one of these. */
static const struct {
	uint32_t off, size, access;
} ctl_fields[] = {
	{ VFW_DS_OFF_VERSION, 4, CTL_R },
	{ VFW_DS_OFF_DEVICE_STATE, 4, CTL_R | CTL_W },
	{ VFW_DS_OFF_CAPS, 4, CTL_R },
	{ VFW_DS_OFF_CONFIG_ACTION, 4, CTL_W },
	{ VFW_DS_OFF_CONFIG_SIZE, 8, CTL_R | CTL_W },
	{ VFW_DS_OFF_MEMORY_ACTION, 4, CTL_W },
	{ VFW_DS_OFF_MEMORY_SIZE, 8, CTL_R | CTL_W },
	{ VFW_DS_OFF_MEMORY_POS, 8, CTL_R | CTL_W },
	{ VFW_DS_OFF_SYS_START_ADDR, 8, CTL_R | CTL_W },
	{ VFW_DS_OFF_SYS_PAGE_NR, 8, CTL_R | CTL_W },
	{ VFW_DS_OFF_SYS_START_ADDR, 16, CTL_W }, /* start_addr + page_nr */
};

static bool ctl_field_ok(uint64_t off, size_t len, bool is_write)
{
	for (size_t i = 0; i < sizeof(ctl_fields) / sizeof(ctl_fields[0]); i++)
		if (ctl_fields[i].off == off && ctl_fields[i].size == len)
			return ctl_fields[i].access & (is_write ? CTL_W : CTL_R);
	return false;
}

static uint64_t ctl_get(const struct vfmig_dev *dev, uint64_t off)
{
	const struct dev_ds *ds = &dev->ds;

	switch (off) {
	case VFW_DS_OFF_VERSION:
		return VFW_DEVICE_STATE_INTERFACE_VERSION;
	case VFW_DS_OFF_DEVICE_STATE:
		return ds->device_state;
	case VFW_DS_OFF_CAPS:
		return ((dev->ops.mig_flags & VFMIG_DEV_MIG_F_NO_DIRTY_LOG)
				? 0
				: VFW_DS_CAP_SYSTEM_MEMORY) |
		       ((dev->ops.mig_flags & VFMIG_DEV_MIG_F_PRE_COPY)
				? VFW_DS_CAP_DEVICE_MEMORY
				: 0);
	case VFW_DS_OFF_CONFIG_SIZE:
		return ds->config_size;
	case VFW_DS_OFF_MEMORY_SIZE:
		return ds->memory_size;
	case VFW_DS_OFF_MEMORY_POS:
		return ds->memory_pos;
	case VFW_DS_OFF_SYS_START_ADDR:
		return ds->start_addr;
	default: /* VFW_DS_OFF_SYS_PAGE_NR */
		return ds->page_nr;
	}
}

static uint64_t le_get(const uint8_t *p, size_t len)
{
	uint32_t v32;
	uint64_t v64;

	if (len == 4) {
		memcpy(&v32, p, 4);
		return le32toh(v32);
	}
	memcpy(&v64, p, 8);
	return le64toh(v64);
}

static int ctl_set(struct vfmig_dev *dev, uint64_t off, const uint8_t *buf,
		   size_t len)
{
	struct dev_ds *ds = &dev->ds;
	uint64_t v = le_get(buf, len < 8 ? len : 8);

	switch (off) {
	case VFW_DS_OFF_DEVICE_STATE:
		return write_state(dev, (uint32_t)v);
	case VFW_DS_OFF_CONFIG_ACTION:
		return config_action(dev, (uint32_t)v);
	case VFW_DS_OFF_CONFIG_SIZE:
		ds->config_size = v;
		return 0;
	case VFW_DS_OFF_MEMORY_ACTION:
		return memory_action(dev, (uint32_t)v);
	case VFW_DS_OFF_MEMORY_SIZE:
		ds->memory_size = v;
		return 0;
	case VFW_DS_OFF_MEMORY_POS:
		ds->memory_pos = v;
		return 0;
	case VFW_DS_OFF_SYS_START_ADDR:
		if (len == 16)
			return fill_bitmap(dev, v, le_get(buf + 8, 8));
		ds->start_addr = v;
		return 0;
	default: /* VFW_DS_OFF_SYS_PAGE_NR */
		return fill_bitmap(dev, ds->start_addr, v);
	}
}

static int ctl_access(struct vfmig_dev *dev, uint64_t off, uint8_t *buf,
		      size_t len, bool is_write)
{
	uint32_t v32;
	uint64_t v64;

	if (!ctl_field_ok(off, len, is_write))
		return -EINVAL;
	if (is_write)
		return ctl_set(dev, off, buf, len);
	if (len == 4) {
		v32 = htole32((uint32_t)ctl_get(dev, off));
		memcpy(buf, &v32, 4);
	} else {
		v64 = htole64(ctl_get(dev, off));
		memcpy(buf, &v64, 8);
	}
	return 0;
}

/* A REGION_READ/WRITE of region 9..12. */
static int ds_access(struct vfmig_dev *dev, uint32_t region, uint64_t off,
		     void *buf, size_t len, bool is_write)
{
	struct dev_ds_data *d;

	if (region == VFW_DS_REGION_CTL)
		return ctl_access(dev, off, buf, len, is_write);
	d = &dev->ds.data[region - VFW_DS_REGION_CONFIG];
	if (!vfw_range_ok(off, len, d->size))
		return -EINVAL;
	if (is_write)
		memcpy(d->mem + off, buf, len);
	else
		memcpy(buf, d->mem + off, len);
	return 0;
}

/* ---- GET_REGION_INFO ---- */

static int ds_region_fd(const struct vfmig_dev *dev, uint32_t index)
{
	if (index < VFW_DS_REGION_CONFIG || index > VFW_DS_REGION_BITMAP)
		return -1;
	return dev->ds.data[index - VFW_DS_REGION_CONFIG].memfd;
}

static void ds_region_info(const struct vfmig_dev *dev, uint32_t index,
			   struct vfw_region_info *ri,
			   struct vfw_region_info_cap_type *cap, bool *with_fd)
{
	*ri = (struct vfw_region_info){
		.index = index,
		.flags = VFW_REGION_INFO_FLAG_READ | VFW_REGION_INFO_FLAG_WRITE |
			 VFW_REGION_INFO_FLAG_CAPS,
	};
	*cap = (struct vfw_region_info_cap_type){
		.header = { .id = VFW_REGION_INFO_CAP_TYPE, .version = 1 },
		.type = VFW_REGION_TYPE_DEVICE_STATE,
	};
	*with_fd = false;
	if (index == VFW_DS_REGION_CTL) {
		ri->size = VFW_DS_CTL_REGION_SIZE;
		cap->subtype = VFW_REGION_SUBTYPE_DEVICE_STATE_CTL;
	} else {
		unsigned int i = index - VFW_DS_REGION_CONFIG;
		ri->size = dev->ds.data[i].size;
		ri->flags |= VFW_REGION_INFO_FLAG_MMAP; /* the whole region */
		cap->subtype = data_desc[i].subtype;
		*with_fd = true;
	}
}

/* No DEVICE_FEATURE, MIG_DATA_* or size estimates: the client reaches the
 * state machine through the four regions only. */
const struct dev_mig_iface dev_mig_region = {
	.iface = VFMIG_DEV_MIG_IFACE_REGION,
	.name = "region",
	.needs_mig = true,
	.num_regions = VFW_DS_NUM_REGIONS,
	.init = ds_init,
	.fini = ds_fini,
	.reset = ds_reset,
	.client_gone = ds_client_gone,
	.region_access = ds_access,
	.region_info = ds_region_info,
	.region_fd = ds_region_fd,
};
