/* SPDX-License-Identifier: MIT */
/*
 * Interrupts: DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS (eventfds, masks,
 * triggers, disabling an index).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

int vmm_irq_info_locked(vfmig_vmm_dev *dev, uint32_t index,
			struct vfmig_vmm_irq_info *info)
{
	struct vfw_irq_info ii = { .argsz = sizeof(ii), .index = index };
	struct iovec iov = { &ii, sizeof(ii) };
	struct vfw_msg reply;
	int r;

	r = vmm_call(dev, VFW_CMD_DEVICE_GET_IRQ_INFO, &iov, 1, NULL, 0,
		     &reply);
	if (r < 0)
		return r;
	if (reply.len != sizeof(ii))
		return vmm_proto_error(dev, &reply, "IRQ info reply size");
	memcpy(&ii, reply.payload, sizeof(ii));
	if (ii.index != index)
		return vmm_proto_error(dev, &reply, "IRQ info index echo");
	vfw_msg_release(&reply);
	*info = (struct vfmig_vmm_irq_info){ ii.flags, ii.count };
	return 0;
}

int vfmig_vmm_dev_get_irq_info(vfmig_vmm_dev *dev, uint32_t index,
			       struct vfmig_vmm_irq_info *info)
{
	int r;

	if (!info)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = vmm_irq_info_locked(dev, index, info);
	vmm_unlock(dev);
	return r;
}

/* One SET_IRQS message; replies are header-only (any payload ignored). */
static int set_irqs(vfmig_vmm_dev *dev, uint32_t flags, uint32_t index,
		    uint32_t start, uint32_t count, const uint8_t *data,
		    size_t dlen, const int *fds, size_t nfds)
{
	struct vfw_irq_set s = {
		.argsz = (uint32_t)(sizeof(s) + dlen),
		.flags = flags,
		.index = index,
		.start = start,
		.count = count,
	};
	struct iovec iov[2] = { { &s, sizeof(s) }, { (void *)data, dlen } };
	struct vfw_msg reply;
	int r = vmm_call(dev, VFW_CMD_DEVICE_SET_IRQS, iov, dlen ? 2 : 1, fds,
			 nfds, &reply);

	if (r == 0)
		vfw_msg_release(&reply);
	return r;
}

int vfmig_vmm_dev_irq_disable(vfmig_vmm_dev *dev, uint32_t index)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = set_irqs(dev, VFW_IRQ_SET_DATA_NONE | VFW_IRQ_SET_ACTION_TRIGGER,
		     index, 0, 0, NULL, 0, NULL, 0);
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_dev_set_irq_eventfds(vfmig_vmm_dev *dev, uint32_t index,
				   uint32_t start, const int *fds,
				   uint32_t count)
{
	const uint32_t flags =
		VFW_IRQ_SET_DATA_EVENTFD | VFW_IRQ_SET_ACTION_TRIGGER;
	uint32_t done = 0;
	size_t per;
	int r;

	if (count == 0)
		return vfmig_vmm_dev_irq_disable(dev, index);
	if (!fds || start + count < start)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++)
		if (fds[i] < 0)
			return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	per = dev->caps.max_msg_fds < VFW_MAX_FDS_PER_MSG
		      ? dev->caps.max_msg_fds
		      : VFW_MAX_FDS_PER_MSG;
	if (per == 0)
		r = -ENOTSUP; /* the device takes no fds at all */
	while (r == 0 && done < count) {
		uint32_t n = count - done < per ? count - done : (uint32_t)per;
		r = set_irqs(dev, flags, index, start + done, n, NULL, 0,
			     fds + done, n);
		done += n;
	}
	vmm_unlock(dev);
	return r;
}

static const uint32_t action_flags[] = {
	[VFMIG_VMM_IRQ_MASK] = VFW_IRQ_SET_ACTION_MASK,
	[VFMIG_VMM_IRQ_UNMASK] = VFW_IRQ_SET_ACTION_UNMASK,
	[VFMIG_VMM_IRQ_TRIGGER] = VFW_IRQ_SET_ACTION_TRIGGER,
};

int vfmig_vmm_dev_set_irq_action(vfmig_vmm_dev *dev, uint32_t index,
				 uint32_t start, uint32_t count,
				 enum vfmig_vmm_irq_action action,
				 const uint8_t *bools)
{
	uint32_t flags;
	int r;

	if ((unsigned int)action >=
		    sizeof(action_flags) / sizeof(action_flags[0]) ||
	    count == 0 || start + count < start ||
	    (bools && count > VMM_MAX_XFER))
		return -EINVAL;
	flags = action_flags[action] |
		(bools ? VFW_IRQ_SET_DATA_BOOL : VFW_IRQ_SET_DATA_NONE);
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	r = set_irqs(dev, flags, index, start, count, bools,
		     bools ? count : 0, NULL, 0);
	vmm_unlock(dev);
	return r;
}
