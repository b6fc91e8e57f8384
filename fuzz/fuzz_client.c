/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the VMM library's reply handling. The input is the
 * byte stream a (hostile) server sends: a helper thread writes it into one
 * end of a socketpair, shuts that direction down, and drains whatever the
 * client sends, so every client read ends (at worst in EOF) and no client
 * write blocks. The client negotiates and runs one call of each kind.
 * msg_ids start at 1 per connection, so the fuzzer can learn them.
 * The first input byte is not sent: its bit 0 picks the migration driver's
 * calls (discovery, states and recovery, save pump, estimates, DMA logging)
 * straight after negotiation, so their replies are reachable without first
 * getting every other call right. Its bit 1 (with bit 0) puts a canned
 * prefix before the input: the replies of a device that refuses the v2
 * MIGRATION feature and offers the four device-state regions
 * (docs/region-interface.md), so the region interface is discovered and
 * the fuzzed bytes answer its state writes, GET_BUFFERs, bitmap reads and
 * SET_BUFFERs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/internal.h"
#include "client_calls.h"

#define MAX_INPUT (1u << 20)

struct feeder {
	int fd;
	const uint8_t *prefix; /* sent first; may be NULL */
	size_t prefix_len;
	const uint8_t *data;
	size_t size;
};

/* ---- the canned region-interface prefix ---- */

struct canned {
	uint8_t buf[1024];
	size_t len;
	uint16_t id; /* msg_id of the next reply */
};

static void canned_reply(struct canned *c, uint16_t cmd, uint32_t flags,
			 uint32_t err, const void *payload, size_t len)
{
	struct vfw_header h = { c->id++, cmd, (uint32_t)(sizeof(h) + len),
				VFW_FLAGS_TYPE_REPLY | flags, err };

	memcpy(c->buf + c->len, &h, sizeof(h));
	if (len)
		memcpy(c->buf + c->len + sizeof(h), payload, len);
	c->len += sizeof(h) + len;
}

static void canned_region(struct canned *c, uint32_t index, uint64_t size)
{
	struct {
		struct vfw_region_info ri;
		struct vfw_region_info_cap_type t;
	} out = {
		{ sizeof(out),
		  VFW_REGION_INFO_FLAG_READ | VFW_REGION_INFO_FLAG_WRITE |
			  VFW_REGION_INFO_FLAG_CAPS,
		  index, sizeof(out.ri), size, 0 },
		{ { VFW_REGION_INFO_CAP_TYPE, 1, 0 },
		  VFW_REGION_TYPE_DEVICE_STATE,
		  index - VFW_DS_REGION_CTL + 1 },
	};

	canned_reply(c, VFW_CMD_DEVICE_GET_REGION_INFO, 0, 0, &out,
		     sizeof(out));
}

/* VERSION, GET MIGRATION refused, GET_INFO, four region infos, the
 * version and caps reads: msg_ids 1 to 9. */
static void canned_build(struct canned *c)
{
	static const char caps[] =
		"{\"capabilities\":{\"max_data_xfer_size\":4096}}";
	uint8_t v[4 + sizeof(caps)] = { 0, 0, 2, 0 };
	struct vfw_device_info di = { sizeof(di), 3, VFW_DS_NUM_REGIONS, 5 };
	uint8_t rd[sizeof(struct vfw_region_access) + 4];
	struct vfw_region_access a = { 0, VFW_DS_REGION_CTL, 4 };

	c->len = 0;
	c->id = 1;
	memcpy(v + 4, caps, sizeof(caps));
	canned_reply(c, VFW_CMD_VERSION, 0, 0, v, sizeof(v));
	canned_reply(c, VFW_CMD_DEVICE_FEATURE, VFW_FLAGS_ERROR, ENOTSUP,
		     NULL, 0);
	canned_reply(c, VFW_CMD_DEVICE_GET_INFO, 0, 0, &di, sizeof(di));
	canned_region(c, VFW_DS_REGION_CTL, VFW_DS_CTL_REGION_SIZE);
	canned_region(c, VFW_DS_REGION_CONFIG, 8192);
	canned_region(c, VFW_DS_REGION_MEMORY, 8192);
	canned_region(c, VFW_DS_REGION_BITMAP, 8);
	memcpy(rd, &a, sizeof(a));
	memcpy(rd + sizeof(a), "\1\0\0\0", 4);
	canned_reply(c, VFW_CMD_REGION_READ, 0, 0, rd, sizeof(rd));
	a.offset = VFW_DS_OFF_CAPS;
	memcpy(rd, &a, sizeof(a));
	memcpy(rd + sizeof(a), "\3\0\0\0", 4);
	canned_reply(c, VFW_CMD_REGION_READ, 0, 0, rd, sizeof(rd));
}

static void *feed(void *arg)
{
	struct feeder *f = arg;
	uint8_t drop[4096];
	size_t off = 0;

	while (off < f->prefix_len) {
		ssize_t n = send(f->fd, f->prefix + off, f->prefix_len - off,
				 MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	off = 0;
	while (off < f->size) {
		ssize_t n = send(f->fd, f->data + off, f->size - off,
				 MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	while (read(f->fd, drop, sizeof(drop)) > 0)
		; /* drain until the client closes */
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct vfmig_vmm_dev_opts opts = {
		.version = VFMIG_VMM_OPTS_VERSION,
		.on_dma_write = on_dma_write,
		.reply_timeout_ms = 2000,
	};
	struct feeder f;
	vfmig_vmm_dev *dev = NULL;
	pthread_t th;
	bool mig;
	int sv[2];

	if (size < 1 || size > MAX_INPUT)
		return 0;
	mig = data[0] & 1;
	f = (struct feeder){ .data = data + 1, .size = size - 1 };
	if (mig && (data[0] & 2)) {
		static struct canned c;
		if (!c.len)
			canned_build(&c);
		f.prefix = c.buf;
		f.prefix_len = c.len;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	f.fd = sv[1];
	if (pthread_create(&th, NULL, feed, &f) != 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	/* adopt_fd owns sv[0] from here, even on failure */
	if (vfmig_vmm_dev_adopt_fd(sv[0], &opts, &dev) == 0) {
		if (mig)
			exercise_mig(dev);
		else
			exercise(dev);
		vfmig_vmm_dev_close(dev);
	}
	pthread_join(th, NULL);
	close(sv[1]);
	return 0;
}
