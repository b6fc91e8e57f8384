/* SPDX-License-Identifier: MIT */
/*
 * Device DMA dirty logging: DMA_LOGGING_START / REPORT / STOP. The device
 * logs the pages it writes through its mapped windows; a report is OR-ed
 * into the caller's bitmap. Every echoed field and every size in a reply is
 * checked against what we asked: the bitmap size comes from our request,
 * never from the device.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MIN_PAGE 4096u

static_assert(sizeof(struct vfmig_vmm_dma_range) ==
		      sizeof(struct vfu_dma_logging_range),
	      "range layout");

static bool page_size_ok(uint64_t ps)
{
	return ps >= MIN_PAGE && (ps & (ps - 1)) == 0;
}

/* Non-empty, not wrapping, aligned to ps. */
static bool range_ok(uint64_t iova, uint64_t len, uint64_t ps)
{
	return len && iova + (len - 1) >= iova && !(iova & (ps - 1)) &&
	       !(len & (ps - 1));
}

/* Build the START payload; malloc'd, length in *len. */
static uint8_t *start_payload(uint64_t ps,
			      const struct vfmig_vmm_dma_range *ranges,
			      uint32_t n, size_t *len)
{
	struct vfu_dma_logging_start s = { .page_size = ps, .num_ranges = n };
	uint8_t *p;

	*len = sizeof(s) + (size_t)n * sizeof(struct vfu_dma_logging_range);
	p = malloc(*len);
	if (!p)
		return NULL;
	memcpy(p, &s, sizeof(s));
	for (uint32_t i = 0; i < n; i++) {
		struct vfu_dma_logging_range r = { ranges[i].iova,
						   ranges[i].length };
		memcpy(p + sizeof(s) + i * sizeof(r), &r, sizeof(r));
	}
	return p;
}

/* The reply must be our request with (possibly) another page size. */
static int check_start_echo(const uint8_t *req, const uint8_t *data,
			    size_t len, size_t want, uint64_t *ps)
{
	struct vfu_dma_logging_start s;

	if (len != want)
		return -EPROTO;
	memcpy(&s, data, sizeof(s));
	if (!page_size_ok(s.page_size))
		return -EPROTO;
	/* num_ranges, reserved and the ranges are echoed byte for byte */
	if (memcmp(req + 8, data + 8, want - 8) != 0)
		return -EPROTO;
	*ps = s.page_size;
	return 0;
}

int vfmig_vmm_dma_log_start(vfmig_vmm_dev *dev, uint64_t page_size,
			    const struct vfmig_vmm_dma_range *ranges,
			    uint32_t n, uint64_t *chosen)
{
	struct vfu_msg reply;
	const uint8_t *data;
	uint8_t *req;
	size_t len, got;
	uint64_t ps = 0;
	int r;

	if (!page_size_ok(page_size) || (n && !ranges))
		return -EINVAL;
	if (n > VFMIG_VMM_DMA_LOG_MAX_RANGES)
		return -E2BIG;
	for (uint32_t i = 0; i < n; i++)
		if (!range_ok(ranges[i].iova, ranges[i].length, page_size))
			return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	if (vmm_ds_on(dev)) { /* the device logs every window */
		r = vmm_ds_log_start(dev, page_size, chosen);
		vmm_unlock(dev);
		return r;
	}
	req = start_payload(page_size, ranges, n, &len);
	if (!req) {
		vmm_unlock(dev);
		return -ENOMEM;
	}
	r = vmm_feature_call(dev, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START,
			     req, len, len, &reply, &data, &got);
	if (r == 0) {
		r = check_start_echo(req, data, got, len, &ps);
		if (r < 0)
			r = vmm_proto_error(dev, &reply,
					    "DMA_LOGGING_START reply is no echo");
		else
			vfu_msg_release(&reply);
	}
	vmm_unlock(dev);
	if (r == 0) {
		vfu_log(&dev->log, VFU_LOG_INFO,
			"DMA logging on: %u ranges, page size %llu", n,
			(unsigned long long)ps);
		if (chosen)
			*chosen = ps;
	}
	free(req);
	return r;
}

/* OR the reply's words into out, dropping bits past the last page. */
static void merge(uint64_t *out, const uint8_t *bits, size_t words,
		  uint64_t pages, bool *stray)
{
	for (size_t i = 0; i < words; i++) {
		uint64_t w;
		memcpy(&w, bits + i * 8, 8);
		if (i == words - 1 && pages % 64) {
			uint64_t keep = (1ull << (pages % 64)) - 1;
			*stray |= (w & ~keep) != 0;
			w &= keep;
		}
		out[i] |= w;
	}
}

/* One REPORT message for pages [0, pages) at iova, len bytes. */
static int report_one(vfmig_vmm_dev *dev, uint64_t iova, uint64_t len,
		      uint64_t ps, uint64_t pages, uint64_t *out)
{
	struct vfu_dma_logging_report req = { iova, len, ps }, echo;
	size_t words = (size_t)((pages + 63) / 64);
	size_t want = sizeof(req) + words * 8;
	struct vfu_msg reply;
	const uint8_t *data;
	size_t got;
	bool stray = false;
	int r;

	r = vmm_feature_call(dev, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
			     &req, sizeof(req), want, &reply, &data, &got);
	if (r < 0)
		return r;
	if (got != want) {
		vfu_log(&dev->log, VFU_LOG_ERR,
			"DMA_LOGGING_REPORT: %zu bytes of reply data, want %zu",
			got, want);
		return vmm_proto_error(dev, &reply, "REPORT reply size");
	}
	memcpy(&echo, data, sizeof(echo));
	if (memcmp(&echo, &req, sizeof(req)) != 0)
		return vmm_proto_error(dev, &reply, "REPORT reply is no echo");
	merge(out, data + sizeof(req), words, pages, &stray);
	vfu_msg_release(&reply);
	if (stray)
		vfu_log(&dev->log, VFU_LOG_WARNING,
			"REPORT set bits past the range; dropped");
	return 0;
}

int vfmig_vmm_dma_log_report(vfmig_vmm_dev *dev, uint64_t iova,
			     uint64_t length, uint64_t page_size,
			     uint64_t *bitmap, size_t words)
{
	uint64_t pages, per_msg, done = 0;
	int r;

	if (!page_size_ok(page_size) || !length || !bitmap ||
	    iova + (length - 1) < iova)
		return -EINVAL;
	pages = length / page_size + (length % page_size != 0);
	if ((pages + 63) / 64 > words)
		return -EINVAL;
	r = vmm_lock_live(dev);
	if (r < 0)
		return r;
	if (vmm_ds_on(dev)) {
		r = vmm_ds_log_report(dev, iova, length, page_size, bitmap);
		vmm_unlock(dev);
		return r;
	}
	per_msg = VMM_DMA_LOG_WORDS_PER_MSG * 64;
	while (r == 0 && done < pages) {
		uint64_t n = pages - done < per_msg ? pages - done : per_msg;
		uint64_t off = done * page_size; /* < length: no overflow */
		uint64_t len = n == pages - done ? length - off : n * page_size;

		r = report_one(dev, iova + off, len, page_size, n,
			       bitmap + done / 64);
		done += n;
	}
	vmm_unlock(dev);
	return r;
}

int vfmig_vmm_dma_log_stop(vfmig_vmm_dev *dev)
{
	struct vfu_msg reply;
	const uint8_t *data;
	size_t got;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	if (vmm_ds_on(dev)) {
		r = vmm_ds_log_stop(dev);
		vmm_unlock(dev);
		return r;
	}
	r = vmm_feature_call(dev, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP,
			     NULL, 0, 0, &reply, &data, &got);
	if (r == 0) {
		vfu_msg_release(&reply);
		vfu_log(&dev->log, VFU_LOG_INFO, "DMA logging off");
	}
	vmm_unlock(dev);
	return r;
}
