/* SPDX-License-Identifier: MIT */
/*
 * Interrupts: the client's eventfds per IRQ index, SET_IRQS / GET_IRQ_INFO,
 * and delivery with masking. A trigger is delivered, held pending (masked:
 * it goes out on unmask) or dropped (capability disabled, no eventfd).
 * While the device is stopped for migration a trigger is only remembered
 * ("held") and replayed when the device runs again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

enum verdict { IRQ_DELIVER, IRQ_HOLD, IRQ_DROP };

int dev_irq_init(struct vfmig_dev *dev)
{
	const struct vfmig_dev_desc *d = &dev->desc;
	const uint32_t maskable = VFW_IRQ_INFO_EVENTFD | VFW_IRQ_INFO_MASKABLE;
	const struct {
		uint32_t count, flags;
	} tab[VFMIG_DEV_IRQ_NUM] = {
		[VFMIG_DEV_IRQ_INTX] = { d->intx_count, maskable },
		[VFMIG_DEV_IRQ_MSI] = { d->msi_vectors,
					maskable | VFW_IRQ_INFO_NORESIZE },
		[VFMIG_DEV_IRQ_MSIX] = { d->msix_vectors,
					 maskable | VFW_IRQ_INFO_NORESIZE },
		[VFMIG_DEV_IRQ_ERR] = { d->err_count, VFW_IRQ_INFO_EVENTFD },
		[VFMIG_DEV_IRQ_REQ] = { d->req_count, VFW_IRQ_INFO_EVENTFD },
	};

	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++) {
		struct dev_irq *irq = &dev->irqs[i];
		irq->count = tab[i].count;
		irq->flags = tab[i].flags;
		if (!irq->count)
			continue;
		irq->lines = calloc(irq->count, sizeof(*irq->lines));
		if (!irq->lines)
			return -ENOMEM;
		for (uint32_t j = 0; j < irq->count; j++)
			irq->lines[j].efd = -1;
	}
	return 0;
}

static void irq_close_range(struct dev_irq *irq, uint32_t start, uint32_t count)
{
	for (uint32_t j = start; j < start + count; j++) {
		if (irq->lines[j].efd >= 0)
			close(irq->lines[j].efd);
		irq->lines[j].efd = -1;
	}
}

void dev_irq_close_all(struct vfmig_dev *dev)
{
	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++)
		if (dev->irqs[i].lines)
			irq_close_range(&dev->irqs[i], 0, dev->irqs[i].count);
}

void dev_irq_fini(struct vfmig_dev *dev)
{
	dev_irq_close_all(dev);
	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++) {
		free(dev->irqs[i].lines);
		dev->irqs[i].lines = NULL;
	}
}

/* Reset: eventfds stay, masks and pending state go. */
void dev_irq_reset(struct vfmig_dev *dev)
{
	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++)
		for (uint32_t j = 0; j < dev->irqs[i].count; j++) {
			dev->irqs[i].lines[j].masked = false;
			dev->irqs[i].lines[j].pending = false;
		}
}

void dev_irq_notify(struct vfmig_dev *dev, unsigned int index)
{
	if (dev->ops.irq_changed)
		dev->ops.irq_changed(dev, dev->priv, index);
}

static enum verdict judge_msi(const struct vfmig_dev *dev, uint32_t sub)
{
	uint32_t c = dev->pci.msi_cap;
	uint16_t ctrl = dev_pci_get16(&dev->pci, c + 2);

	if (!(ctrl & PCI_MSI_CTRL_ENABLE) || sub >= (1u << ((ctrl >> 4) & 7)))
		return IRQ_DROP;
	if (dev_pci_get32(&dev->pci, c + 16) & (1u << sub))
		return IRQ_HOLD;
	return IRQ_DELIVER;
}

static enum verdict judge_msix(const struct vfmig_dev *dev, uint32_t sub)
{
	uint16_t ctrl = dev_pci_get16(&dev->pci, dev->pci.msix_cap + 2u);

	if (!(ctrl & PCI_MSIX_CTRL_ENABLE))
		return IRQ_DROP;
	if ((ctrl & PCI_MSIX_CTRL_MASKALL) ||
	    dev_msix_vector_masked(&dev->msix, sub))
		return IRQ_HOLD;
	return IRQ_DELIVER;
}

static enum verdict judge(const struct vfmig_dev *dev, unsigned int index,
			  uint32_t sub)
{
	if (dev->irqs[index].lines[sub].masked)
		return IRQ_HOLD;
	switch (index) {
	case VFMIG_DEV_IRQ_INTX:
		if (dev_pci_get16(&dev->pci, PCI_CMD) & PCI_CMD_INTX_DISABLE)
			return IRQ_HOLD;
		return IRQ_DELIVER;
	case VFMIG_DEV_IRQ_MSI:
		return judge_msi(dev, sub);
	case VFMIG_DEV_IRQ_MSIX:
		return judge_msix(dev, sub);
	default:
		return IRQ_DELIVER;
	}
}

static void set_pending(struct vfmig_dev *dev, unsigned int index,
			uint32_t sub, bool on)
{
	if (index == VFMIG_DEV_IRQ_MSIX) {
		dev_msix_set_pending(&dev->msix, sub, on);
	} else if (index == VFMIG_DEV_IRQ_MSI) {
		uint32_t off = dev->pci.msi_cap + 20u;
		uint32_t v = dev_pci_get32(&dev->pci, off);
		v = on ? (v | (1u << sub)) : (v & ~(1u << sub));
		dev_pci_set32(&dev->pci, off, v);
	} else {
		dev->irqs[index].lines[sub].pending = on;
	}
}

static bool is_pending(const struct vfmig_dev *dev, unsigned int index,
		       uint32_t sub)
{
	if (index == VFMIG_DEV_IRQ_MSIX)
		return dev_msix_pending(&dev->msix, sub);
	if (index == VFMIG_DEV_IRQ_MSI)
		return dev_pci_get32(&dev->pci, dev->pci.msi_cap + 20u) &
		       (1u << sub);
	return dev->irqs[index].lines[sub].pending;
}

static int signal_efd(int efd)
{
	uint64_t one = 1;

	if (efd < 0)
		return 0;
	if (write(efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		return errno == EAGAIN ? 1 : -errno; /* EAGAIN: counter full */
	return 1;
}

VFMIG_EXPORT int vfmig_dev_irq_trigger(vfmig_dev *dev, unsigned int index,
				       unsigned int subindex)
{
	if (!dev || index >= VFMIG_DEV_IRQ_NUM ||
	    subindex >= dev->irqs[index].count)
		return -EINVAL;
	if (!dev_mig_running(dev)) { /* stopped: deliver when running again */
		dev->irqs[index].lines[subindex].held = true;
		return 0;
	}
	switch (judge(dev, index, subindex)) {
	case IRQ_HOLD:
		set_pending(dev, index, subindex, true);
		return 0;
	case IRQ_DROP:
		return 0;
	default:
		return signal_efd(dev->irqs[index].lines[subindex].efd);
	}
}

void dev_irq_release_held(struct vfmig_dev *dev)
{
	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++)
		for (uint32_t j = 0; j < dev->irqs[i].count; j++) {
			if (!dev->irqs[i].lines[j].held)
				continue;
			dev->irqs[i].lines[j].held = false;
			if (vfmig_dev_irq_trigger(dev, i, j) < 0)
				DEV_LOG(dev, VFW_LOG_WARNING,
					"irq %u/%u: held interrupt lost", i, j);
		}
}

void dev_irq_drop_held(struct vfmig_dev *dev)
{
	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++)
		for (uint32_t j = 0; j < dev->irqs[i].count; j++)
			dev->irqs[i].lines[j].held = false;
}

void dev_irq_deliver_pending(struct vfmig_dev *dev)
{
	for (unsigned int i = 0; i < VFMIG_DEV_IRQ_NUM; i++)
		for (uint32_t j = 0; j < dev->irqs[i].count; j++) {
			if (!is_pending(dev, i, j) ||
			    judge(dev, i, j) != IRQ_DELIVER)
				continue;
			set_pending(dev, i, j, false);
			if (signal_efd(dev->irqs[i].lines[j].efd) < 0)
				DEV_LOG(dev, VFW_LOG_WARNING,
					"irq %u/%u: eventfd write failed", i,
					j);
		}
}

static int one_bit(uint32_t v)
{
	return v && !(v & (v - 1));
}

int dev_irq_set_check(const struct dev_irq *irqs, const uint8_t *payload,
		      size_t len, size_t nfds)
{
	struct vfw_irq_set s;
	uint32_t data, action;
	uint64_t want;

	if (len < sizeof(s))
		return -EINVAL;
	memcpy(&s, payload, sizeof(s));
	data = s.flags & VFW_IRQ_SET_DATA_MASK;
	action = s.flags & VFW_IRQ_SET_ACTION_MASK_ALL;
	if ((s.flags & ~(VFW_IRQ_SET_DATA_MASK | VFW_IRQ_SET_ACTION_MASK_ALL)) ||
	    !one_bit(data) || !one_bit(action))
		return -EINVAL;
	want = sizeof(s) + (data == VFW_IRQ_SET_DATA_BOOL ? s.count : 0);
	if (s.argsz != want || len != want)
		return -EINVAL;
	if (s.index >= VFMIG_DEV_IRQ_NUM)
		return -EINVAL;
	if (s.count == 0 && (data != VFW_IRQ_SET_DATA_NONE || s.start != 0))
		return -EINVAL;
	if ((uint64_t)s.start + s.count > irqs[s.index].count)
		return -EINVAL;
	if (data == VFW_IRQ_SET_DATA_EVENTFD) {
		if (action != VFW_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		if (nfds != 0 && nfds != s.count)
			return -EINVAL;
	} else if (nfds) {
		return -EINVAL;
	}
	if (action != VFW_IRQ_SET_ACTION_TRIGGER &&
	    !(irqs[s.index].flags & VFW_IRQ_INFO_MASKABLE))
		return -EINVAL;
	return 0;
}

/* Apply a checked request; sub-index i is selected unless DATA_BOOL says
 * otherwise. */
static void apply_set(struct vfmig_dev *dev, const struct vfw_irq_set *s,
		      const uint8_t *bools, struct vfw_msg *msg)
{
	struct dev_irq *irq = &dev->irqs[s->index];
	uint32_t action = s->flags & VFW_IRQ_SET_ACTION_MASK_ALL;

	if (s->flags & VFW_IRQ_SET_DATA_EVENTFD) {
		irq_close_range(irq, s->start, s->count);
		for (uint32_t i = 0; i < msg->nfds; i++)
			irq->lines[s->start + i].efd = vfw_msg_take_fd(msg, i);
		dev_irq_deliver_pending(dev);
		return;
	}
	if (s->count == 0) {
		if (action == VFW_IRQ_SET_ACTION_TRIGGER && irq->lines)
			irq_close_range(irq, 0, irq->count);
		return;
	}
	for (uint32_t i = 0; i < s->count; i++) {
		uint32_t sub = s->start + i;
		if (bools && !bools[i])
			continue;
		if (action == VFW_IRQ_SET_ACTION_MASK)
			irq->lines[sub].masked = true;
		else if (action == VFW_IRQ_SET_ACTION_UNMASK)
			irq->lines[sub].masked = false;
		else
			(void)vfmig_dev_irq_trigger(dev, s->index, sub);
	}
	if (action == VFW_IRQ_SET_ACTION_UNMASK)
		dev_irq_deliver_pending(dev);
}

int dev_cmd_set_irqs(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_irq_set s;
	int r = dev_irq_set_check(dev->irqs, msg->payload, msg->len, msg->nfds);

	if (r < 0)
		return r;
	memcpy(&s, msg->payload, sizeof(s));
	DEV_LOG(dev, VFW_LOG_DEBUG,
		"SET_IRQS index %u start %u count %u flags 0x%x fds %zu",
		s.index, s.start, s.count, s.flags, msg->nfds);
	apply_set(dev, &s,
		  (s.flags & VFW_IRQ_SET_DATA_BOOL) ? msg->payload + sizeof(s)
						    : NULL,
		  msg);
	dev_irq_notify(dev, s.index);
	return dev_reply(dev, &msg->hdr, NULL, 0);
}

int dev_cmd_get_irq_info(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	struct vfw_irq_info in;

	memcpy(&in, msg->payload, sizeof(in));
	if (in.argsz < sizeof(in) || in.index >= VFMIG_DEV_IRQ_NUM)
		return -EINVAL;
	in.argsz = sizeof(in);
	in.flags = dev->irqs[in.index].flags;
	in.count = dev->irqs[in.index].count;
	return dev_reply(dev, &msg->hdr, &in, sizeof(in));
}
