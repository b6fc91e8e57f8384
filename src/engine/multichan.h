/* SPDX-License-Identifier: MIT */
/*
 * RAM over several connections (`migrate --channels N`): a group of N RAM
 * channels beside a migration's main connection, which keeps everything
 * else (device list, device data, type state, switchover, the return
 * path). Each RAM channel is a stream of its own on another connection to
 * the same URI:
 *     header, STREAM_INFO {producer, migration-id, channel, channels},
 *     DEVICE_LIST (empty), RAM_PAGES..., END
 * and carries the stripes of RAM that vfmig_ram_stripe_of() gives its
 * index, in every round. The main stream announces the group in its first
 * STREAM_INFO ("channels", "migration-id") and carries no RAM_PAGES then.
 *
 * Source: one sender thread per channel for each batch of RAM; the main
 * thread waits for all of them. Destination: the listener of the main
 * connection takes the N connections, checks that each names this
 * migration and a channel not taken yet, and one receiver thread per
 * channel loads its pages while the main stream is read; before the guest
 * may run, every channel has reached END. Any channel's failure fails the
 * migration.
 *
 * The functions return 0 or a negative errno, with err naming the channel
 * and the cause. Not thread-safe: one migration thread drives a group.
 */
#ifndef VFMIG_ENGINE_MULTICHAN_H
#define VFMIG_ENGINE_MULTICHAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/channel.h"
#include "engine/ram.h"
#include "stream/stream.h"

#define VFMIG_MCHAN_MAX 16
#define VFMIG_MCHAN_ID_LEN 32 /* hex digits of the random migration id */
/* How long a destination waits for the announced channels when its own
 * timeout is "forever" (vmm --incoming): the source opens them at once. */
#define VFMIG_MCHAN_ACCEPT_TIMEOUT_MS 10000

struct vfmig_mchan;

/*
 * Whether n RAM channels (n == 0 counts as 1) may go to uri: 1..16, and
 * more than one only over tcp: or unix: (a file is one stream). 0 or
 * -EINVAL with the reason in err.
 */
int vfmig_mchan_check(unsigned n, const char *uri, char *err, size_t errlen);

/* The group's channel count and migration id (NUL-terminated hex). */
unsigned vfmig_mchan_count(const struct vfmig_mchan *g);
const char *vfmig_mchan_id(const struct vfmig_mchan *g);

/* Stream bytes of all RAM channels (headers included), written or read. */
uint64_t vfmig_mchan_bytes(const struct vfmig_mchan *g);

/* Stops and joins any thread, closes the channels, frees g (NULL fine). */
void vfmig_mchan_free(struct vfmig_mchan *g);

/* ---- source ---- */

/* A group of n (2..16) channels with a fresh random migration id. */
int vfmig_mchan_src_new(struct vfmig_mchan **out, unsigned n);

/* The main stream's announcement: fills kv[0..1] ("channels",
 * "migration-id"; the strings live as long as g) and returns 2. */
size_t vfmig_mchan_main_info(const struct vfmig_mchan *g,
			     struct vfmig_stream_kv *kv);

/*
 * Connects the n channels to uri and writes each one's header (record
 * checksum csum), STREAM_INFO and empty DEVICE_LIST, flushed.
 */
int vfmig_mchan_src_connect(struct vfmig_mchan *g, const char *uri,
			    int connect_timeout_ms, int timeout_ms,
			    enum vfmig_stream_csum csum, char *err,
			    size_t errlen);

/*
 * Sends dirty RAM over the channels in parallel, each thread its stripes,
 * each up to budget bytes of page data (0: all). Adds to *st; progress
 * (may be NULL) grows as threads finish. *drained: no channel stopped at
 * its budget. A failure shuts every channel down (the others stop soon)
 * and puts untaken pages back as dirty.
 */
int vfmig_mchan_send_ram(struct vfmig_mchan *g, struct vfmig_ram *ram,
			 uint64_t budget, _Atomic uint64_t *progress,
			 struct vfmig_ram_stats *st, bool *drained, char *err,
			 size_t errlen);

/* Every connected channel sends through the bandwidth limit p
 * (vfmig_chan_set_pace) and waits timeout_ms for progress
 * (vfmig_chan_set_timeout); whether any of them stalled
 * (vfmig_chan_stalled). g NULL: nothing, false. */
void vfmig_mchan_src_tune(struct vfmig_mchan *g, struct vfmig_pace *p,
			  int timeout_ms);
bool vfmig_mchan_stalled(const struct vfmig_mchan *g);

/* Writes END on every channel and flushes it. */
int vfmig_mchan_src_end(struct vfmig_mchan *g, char *err, size_t errlen);

/* ---- destination ---- */

/*
 * The main stream's STREAM_INFO record rec: 1 with *n and id (idlen >=
 * VFMIG_MCHAN_ID_LEN + 1) when it announces channels, 0 when it does not,
 * -EBADMSG (err says why) for a bad count or id.
 */
int vfmig_mchan_parse_info(const struct vfmig_stream_record *rec,
			   unsigned *n, char *id, size_t idlen, char *err,
			   size_t errlen);

struct vfmig_mchan_dst_cfg {
	struct vfmig_chan_listener *listener; /* of the main connection */
	struct vfmig_chan *main;   /* its read side is shut if a channel
				    * fails, so the main reader stops */
	struct vfmig_ram *ram;
	unsigned n;
	const char *id;
	int timeout_ms;            /* wait for all n; negative: the default */
	atomic_bool *cancel;       /* checked while waiting; may be NULL */
	_Atomic uint64_t *progress; /* RAM bytes loaded; may be NULL */
	/* Shared by the main stream and the channels: none of them times
	 * out while another receives (vfmig_chan_share_progress); NULL:
	 * each times out alone. */
	_Atomic uint64_t *shared;
};

/*
 * Accepts the n channels on cfg->listener and starts their receivers.
 * Fails on a timeout, a cancel, a connection that is no stream, names
 * another migration id, a channel count other than n, or a channel taken
 * already.
 */
int vfmig_mchan_dst_accept(struct vfmig_mchan **out,
			   const struct vfmig_mchan_dst_cfg *cfg, char *err,
			   size_t errlen);

/* Whether a receiver has failed; its message goes to err. */
bool vfmig_mchan_dst_failed(struct vfmig_mchan *g, char *err, size_t errlen);

/*
 * Waits for every receiver to reach END (or fail), then checks that no
 * connection beyond the n came to listener (may be NULL). Adds the page
 * data loaded to *ram_bytes. The block's remembered data extent is
 * forgotten (loads punch holes).
 */
int vfmig_mchan_dst_wait(struct vfmig_mchan *g,
			 struct vfmig_chan_listener *listener,
			 uint64_t *ram_bytes, char *err, size_t errlen);

/* Whether RAM_PAGES record rec carries only pages of channel index of
 * count (each run inside one stripe of that channel). */
bool vfmig_mchan_runs_in_stripe(const struct vfmig_stream_record *rec,
				unsigned index, unsigned count);

#endif
