/* SPDX-License-Identifier: MIT */
/*
 * DEVICE_RESET, DEVICE_FEATURE and the raw migration data commands
 * MIG_DATA_READ / MIG_DATA_WRITE.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

int vmm_reset_locked(vfmig_vmm_dev *dev)
{
	struct vfw_msg reply;
	int r = vmm_call(dev, VFW_CMD_DEVICE_RESET, NULL, 0, NULL, 0, &reply);

	if (r == 0)
		vfw_msg_release(&reply);
	return r;
}

int vfmig_vmm_dev_reset(vfmig_vmm_dev *dev)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = vmm_reset_locked(dev);
	if (r == 0 && vmm_mig(dev)->after_reset)
		vmm_mig(dev)->after_reset(dev);
	if (r == 0)
		vmm_shadow_after_reset(dev);
	vmm_unlock(dev);
	return r;
}

int vmm_feature_call(vfmig_vmm_dev *dev, uint32_t flags, const void *in,
		     size_t in_len, size_t out_cap, struct vfw_msg *reply,
		     const uint8_t **data, size_t *data_len)
{
	size_t most = in_len > out_cap ? in_len : out_cap;
	struct vfw_device_feature f = { .flags = flags };
	int r;

	if (most > VMM_MAX_XFER || (in_len && !in))
		return -EINVAL;
	f.argsz = (uint32_t)(sizeof(f) + most);
	struct iovec iov[2] = { { &f, sizeof(f) }, { (void *)in, in_len } };
	r = vmm_call(dev, VFW_CMD_DEVICE_FEATURE, iov, in_len ? 2 : 1, NULL, 0,
		     reply);
	if (r < 0)
		return r;
	if (reply->len < sizeof(f))
		return vmm_proto_error(dev, reply, "DEVICE_FEATURE reply size");
	*data = reply->payload + sizeof(f);
	*data_len = reply->len - sizeof(f);
	return 0;
}

int vmm_feature_exact(vfmig_vmm_dev *dev, uint32_t flags, const void *in,
		      size_t in_len, void *out, size_t want)
{
	struct vfw_msg reply;
	const uint8_t *data;
	size_t len;
	int r = vmm_feature_call(dev, flags, in, in_len, want, &reply, &data,
				 &len);

	if (r < 0)
		return r;
	if (len != want) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"DEVICE_FEATURE %u: %zu bytes of reply data, want %zu",
			flags & VFW_FEATURE_MASK, len, want);
		return vmm_proto_error(dev, &reply,
				       "DEVICE_FEATURE reply data size");
	}
	if (want)
		memcpy(out, data, want);
	vfw_msg_release(&reply);
	return 0;
}

/* Copy the reply data of a DEVICE_FEATURE call; see vmm.h. */
static int feature_reply(struct vfw_msg *reply, uint32_t argsz, void *out,
			 size_t out_cap, size_t *out_len)
{
	struct vfw_device_feature f;
	size_t avail;

	memcpy(&f, reply->payload, sizeof(f));
	if (f.argsz > argsz && f.argsz >= sizeof(f)) {
		if (out_len)
			*out_len = f.argsz - sizeof(f);
		vfw_msg_release(reply);
		return -E2BIG;
	}
	avail = reply->len - sizeof(f);
	if (avail > out_cap)
		avail = out_cap;
	if (avail)
		memcpy(out, reply->payload + sizeof(f), avail);
	if (out_len)
		*out_len = avail;
	vfw_msg_release(reply);
	return 0;
}

int vfmig_vmm_dev_feature(vfmig_vmm_dev *dev, uint32_t flags, const void *in,
			  size_t in_len, void *out, size_t out_cap,
			  size_t *out_len)
{
	size_t most = in_len > out_cap ? in_len : out_cap;
	struct vfw_msg reply;
	const uint8_t *data;
	size_t len;
	int r;

	if (out_len)
		*out_len = 0;
	if (most > VMM_MAX_XFER || (in_len && !in) || (out_cap && !out))
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_feature_call(dev, flags, in, in_len, out_cap, &reply, &data,
			     &len);
	if (r == 0)
		r = feature_reply(&reply,
				  (uint32_t)(sizeof(struct vfw_device_feature) +
					     most),
				  out, out_cap, out_len);
	vmm_unlock(dev);
	return r;
}

int vmm_mig_read_msg(vfmig_vmm_dev *dev, size_t len, struct vfw_msg *reply,
		     const uint8_t **data)
{
	struct vfw_mig_data m;
	int r;

	if (len > vmm_xfer_chunk(dev))
		len = vmm_xfer_chunk(dev);
	m = (struct vfw_mig_data){ (uint32_t)(sizeof(m) + len),
				   (uint32_t)len };
	struct iovec iov = { &m, sizeof(m) };
	r = vmm_call(dev, VFW_CMD_MIG_DATA_READ, &iov, 1, NULL, 0, reply);
	if (r < 0)
		return r;
	/* Trust size (not argsz, not padding), bounded by what we asked and
	 * by what arrived: libvfio-user pads the reply to the size asked. */
	if (reply->len < sizeof(m))
		return vmm_proto_error(dev, reply, "MIG_DATA_READ reply size");
	memcpy(&m, reply->payload, sizeof(m));
	if (m.size > len || m.size > reply->len - sizeof(m)) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"MIG_DATA_READ: size %u, asked %zu, %zu arrived",
			m.size, len, reply->len - sizeof(m));
		return vmm_proto_error(dev, reply,
				       "MIG_DATA_READ size beyond request/reply");
	}
	*data = reply->payload + sizeof(m);
	return (int)m.size;
}

int vfmig_vmm_dev_mig_data_read(vfmig_vmm_dev *dev, void *buf, size_t len)
{
	struct vfw_msg reply;
	const uint8_t *data;
	int r;

	if (len && !buf)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	if (vmm_dc_saving(dev) && vmm_mig(dev) == &vmm_mig_v2) {
		/* The session's data is on the channel: a short count is
		 * "nothing more now" or "end", as with the messages. */
		size_t got = 0;
		int status = VMM_DC_MORE;
		uint32_t st = VFW_MIG_STATE_ERROR;
		r = vmm_mig_v2.get_state(dev, &st);
		bool stop_copy = st == VFW_MIG_STATE_STOP_COPY;
		while (r >= 0 && got < len && status == VMM_DC_MORE) {
			r = vmm_dc_read(dev, (uint8_t *)buf + got, len - got,
					stop_copy, &status);
			if (r > 0)
				got += (size_t)r;
		}
		vmm_unlock(dev);
		if (r < 0)
			return r;
		return got > INT32_MAX ? INT32_MAX : (int)got;
	}
	r = vmm_mig_read_msg(dev, len, &reply, &data);
	if (r >= 0) {
		if (r)
			memcpy(buf, data, (size_t)r);
		vfw_msg_release(&reply);
	}
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_dev_mig_data_write(vfmig_vmm_dev *dev, const void *buf,
				 size_t len)
{
	int r;

	if (len && !buf)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	/* MIG_DATA_WRITE, or (region interface) the data regions */
	r = vmm_mig(dev)->load(dev, buf, len);
	vmm_unlock(dev);
	return r;
}

bool vfmig_vmm_dev_mig_data_sealed(vfmig_vmm_dev *dev)
{
	bool sealed;

	if (!dev || vmm_lock_live(dev) < 0)
		return false;
	sealed = vmm_dc_loading(dev) && dev->dc.sealed && dev->dc.fd >= 0;
	vmm_unlock(dev);
	return sealed;
}

int vfmig_vmm_dev_mig_data_forward(vfmig_vmm_dev *dev, int fd, size_t len,
				   int timeout_ms)
{
	int r;

	if (fd < 0)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_dc_loading(dev) ? vmm_dc_forward(dev, fd, len, timeout_ms)
				: -ENOTSUP;
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_dev_set_seal(vfmig_vmm_dev *dev, int index)
{
	if (!dev || index < -1 || index > 65535)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	dev->seal_index = index;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int vfmig_vmm_dev_mig_data_sync(vfmig_vmm_dev *dev)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = vmm_dc_load_sync(dev);
	vmm_unlock(dev);
	return r;
}
