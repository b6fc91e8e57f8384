/* SPDX-License-Identifier: MIT */
/*
 * Inside the migration engine: the state of one run, shared by the source
 * flow (migrate_src.c), the destination flow (migrate_dst.c) and the
 * helpers both use (migrate.c), and the glue to RAM channels
 * (migrate_mchan.c). Not installed; nothing outside these files includes it.
 */
#ifndef VFMIG_ENGINE_MIGRATE_RUN_H
#define VFMIG_ENGINE_MIGRATE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/channel.h"
#include "engine/migrate.h"
#include "engine/multichan.h"
#include "protocol/tscale.h"
#include "stream/io.h"
#include "stream/stream.h"

#define DEFAULT_DOWNTIME_MS 300
#define DEFAULT_MAX_ROUNDS 30
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_DEVICE_BUDGET (64ull << 20)
#define LOG_PAGE 4096u
/* While only acknowledgements hold a switchover back, each round waits
 * this long for them on the return path. */
#define ACK_WAIT_MS 20
/* RESUMED's verdict when the destination verifies after the resume; the
 * verdict follows in a VERIFIED message. */
#define VERDICT_PENDING "pending"
/* STREAM_INFO key by which a source says it answers RESUMED with COMMIT
 * (value "1"); a destination that did not see it starts its guest once
 * RESUMED is sent, as before COMMIT existed. */
#define COMMIT_INFO_KEY "resume-commit"
/* How long the source waits for the destination to catch up with the
 * stream before the last pre-copy round (a destination that never
 * answers is older than sync points: the run goes on without). */
#define SYNC_WAIT_MS 2000
/* A pre-copy round that sent less than this is not timed on its own. */
#define SMALL_ROUND_BYTES (1ull << 20)
/* RAM at the switchover goes in pieces of this many bytes of page data, so
 * that a cancel is noticed during a large VM's last copy (or a save). */
#define SWITCHOVER_RAM_CHUNK (64ull << 20)

/* ------------------------------------------------------------------ */
/* Shared state of one run                                             */
/* ------------------------------------------------------------------ */

struct dev_run {
	const struct vfmig_mig_dev *d;
	const struct vfmig_type_ops *type;
	struct vfmig_vmm_mig_caps caps;
	bool logging;       /* DMA logging started */
	bool precopy;       /* device is (or was) in PRE_COPY this run */
	bool touched;       /* state changed by this run */
	uint32_t initial;   /* source: state before the run (RUNNING/STOP) */
	unsigned sections;  /* pre-copy sections sent / loaded */
	unsigned acks;      /* switchover acks received */
	unsigned init_done; /* section after which the initial data was
			     * all sent; 0 while it is not */
	uint64_t last_bytes; /* device data in the last round */
	uint8_t *type_state; /* destination: TYPE_STATE bytes to apply */
	size_t type_state_len;
};

struct run {
	const struct vfmig_mig_vm *vm;
	const struct vfmig_typereg *reg;
	struct vfmig_mig_params p;
	struct vfmig_mig_progress *prog;
	struct vfmig_mig_progress local_prog;
	struct vfmig_mig_report *rep;
	struct dev_run *devs;
	struct vfmig_chan *chan;
	struct vfmig_stream_writer *w;
	struct vfmig_stream_reader *r;
	uint64_t *bitmap; /* DMA log report buffer */
	size_t words;
	bool paused;      /* we paused the guest */
	bool cpu_logging; /* source: ops->cpu_dirty_track is on */
	double t0, t_pause;
	double t_end; /* the migration was complete (0: at run_fini) */
	uint64_t pause_realtime_ns;
	/* Source: stream bytes and time when pre-copy began, and the stream
	 * bytes at the pause; what was sent in between over how long it
	 * took is the bandwidth the downtime is judged by. */
	double t_precopy;
	uint64_t precopy_stream_bytes, pause_stream_bytes;
	bool verdict_pending; /* source: RESUMED said "pending" */
	/* Destination: the source announced COMMIT (STREAM_INFO
	 * COMMIT_INFO_KEY), so the guest here waits for it after RESUMED.
	 * Source: COMMIT went out; the VM never runs here again. */
	bool commit;
	bool dst_commit; /* source: the destination said WAIT_COMMIT */
	/* Source: "sync" points written, the last one the destination
	 * answered, and whether it does not answer them (older). */
	uint64_t sync_sent, sync_seen;
	bool sync_off;
	bool synced; /* caught up since pre-copy last converged */
	uint16_t cur_dev; /* device of the section being written/read */
	int sink_err;     /* the stream write that failed a device section */
	/* Sealed device data (data channel version 2): the source moves it
	 * from the device's channel into the stream unread, the destination
	 * forwards it the same way; fwd_err is the device's answer to a
	 * forward that failed (device fwd_dev), for the report. */
	bool seal;
	int fwd_err;
	uint16_t fwd_dev;
	uint64_t dev_bytes;
	/* RAM channels (migrate_mchan.c): the group, when there is one; the
	 * destination's listener, open until the channels are in. */
	struct vfmig_mchan *mc;
	struct vfmig_chan_listener *listener;
	bool mc_decided; /* destination: the main stream's first record seen */
	/* Destination: bytes received on the main stream and the RAM
	 * channels together; each connection's read timeout counts from
	 * the last byte any of them got (vfmig_chan_share_progress). */
	_Atomic uint64_t rx_shared;
	/* Source, convergence (migrate_conv.c): the bandwidth limit, the
	 * parameters as they change, the policy's state, the prediction of
	 * the last round and whether it fit, why it switched over unfit. */
	struct vfmig_pace *pace;
	struct vfmig_mig_live *live, local_live;
	struct vfmig_conv_state conv;
	double predicted_ms;
	bool fits;
	bool forced;
};

/* Monotonic clock in ms; CLOCK_REALTIME in ns. */
double mig_mono_ms(void);
uint64_t mig_real_ns(void);
/* Copy a NUL-terminated text, cut to fit. */
void mig_copy_text(char *dst, size_t size, const char *src);

/* One device's step of the switchover (migrate_par.c): 0, or a negative
 * errno with the cause written to err (len bytes). */
typedef int (*mig_dev_step_fn)(struct run *run, size_t i, char *err,
			       size_t len);
/* Run fn for every device at once, each on a thread of its own (the
 * steps are round trips to separate processes; in a row their latencies
 * would add up in the downtime). Returns 0, or the first failed device's
 * error (in device order), recorded with mig_fail as "phase: cause".
 * Steps must touch only their own device's state. */
int mig_each_dev(struct run *run, mig_dev_step_fn fn, const char *phase);

/* Record the first error of the run as "phase: cause" in the report and
 * return err (-EIO for an err that is not negative). Later errors are
 * dropped: the first one says what went wrong. */
int mig_fail(struct run *run, int err, const char *phase, const char *fmt,
	     ...) __attribute__((format(printf, 4, 5)));
/* Put device i into state want after a failure (reset if it refuses); a
 * failure of that is added to the report and the VM told of the fault.
 * reset_ok: a reset that ends in want is no failure (the destination,
 * which drops what it loaded anyway). */
void mig_rollback_dev(struct run *run, size_t i, uint32_t want,
		      bool reset_ok);
void mig_set_status(struct run *run, enum vfmig_mig_status s);
bool mig_cancelled(struct run *run);
int mig_run_init(struct run *run, const struct vfmig_mig_vm *vm,
		 const struct vfmig_typereg *reg,
		 const struct vfmig_mig_params *p,
		 struct vfmig_mig_progress *prog,
		 struct vfmig_mig_report *rep);
void mig_run_fini(struct run *run);
/* Whether device i's connection works; if not, the cause in cause. */
bool mig_dev_connected(struct run *run, size_t i, char *cause, size_t len);
/* The connection to device i is gone: fail the run naming the device and
 * the cause; 0 when the connection is fine after all. */
int mig_dev_lost(struct run *run, size_t i, int err, const char *phase);
/* The same text ("device ID (PATH): connection lost: CAUSE") into buf, for
 * a step that reports through a buffer (mig_each_dev): true if the
 * connection is gone, false (buf untouched) if it is fine. */
bool mig_dev_lost_text(struct run *run, size_t i, int err, char *buf,
		       size_t len);
/* The device-state interface discovery found, as the stream names it. */
const char *mig_iface_name(vfmig_vmm_dev *dev);
/* Tests: wait at hold point `point` if the run was asked to
 * (migrate_hold.c, struct vfmig_mig_params.test_hold_*). */
void mig_test_hold(struct run *run, const char *point);

/* ---- RAM channels (migrate_mchan.c) ---- */

/* Source, before the main connection: check p.channels against uri and
 * make the group. */
int mig_mchan_src_setup(struct run *run, const char *uri);
/* The main STREAM_INFO's keys announcing the group (0 without one). */
size_t mig_mchan_src_info(struct run *run, struct vfmig_stream_kv *kv);
/* After the main stream's first records: flush them, open the channels. */
int mig_mchan_src_connect(struct run *run, const char *uri);
/* Send dirty RAM (up to budget bytes per channel, 0: all) on the main
 * stream or over the channels; progress and *st grow. *drained: nothing
 * stopped at the budget. phase names a failure. */
int mig_send_ram(struct run *run, uint64_t budget, struct vfmig_ram_stats *st,
		 bool *drained, const char *phase);
/* Source, before the main END: END on every channel. */
int mig_mchan_src_end(struct run *run);
/* Destination, every record of the main stream: the first one decides
 * whether channels come (and takes them); RAM_PAGES on the main stream of
 * a group, or a failed channel, fail the run. */
int mig_mchan_dst_record(struct run *run,
			 const struct vfmig_stream_record *rec);
/* Destination, after the main END: every channel at END. */
int mig_mchan_dst_finish(struct run *run);
/* Destination failure: a failed channel is the cause to report. */
void mig_mchan_dst_blame(struct run *run);
/* Stream bytes of the channels. */
uint64_t mig_mchan_bytes(const struct run *run);

/* ---- convergence (migrate_conv.c) ---- */

/* Source, once the channel (and its RAM channels) are open: the limit,
 * stall detection on every connection. */
int mig_conv_src_setup(struct run *run);
/* Before each pre-copy round: the current limit takes effect; the most
 * RAM (per channel) and device data a round may send (0: no bound). */
void mig_conv_round(struct run *run, uint64_t *ram_budget,
		    uint64_t *dev_budget);
/* The downtime limit now (ms). */
uint64_t mig_conv_downtime_ms(struct run *run);
/* The bandwidth limit now (bytes/s; 0: none). */
uint64_t mig_conv_max_bandwidth(struct run *run);
/* After a round whose prediction (predicted ms) fits or not: throttle the
 * guest a step, or say to switch over anyway (true). */
bool mig_conv_after_round(struct run *run, double predicted, bool fits);
/* The switchover starts: the limit is lifted (the guest is paused). */
void mig_conv_switchover(struct run *run);
/* The run ended with r: the throttle goes, the report gets the
 * convergence keys, and a stalled connection is named as the cause. */
void mig_conv_finish(struct run *run, int r);

#endif
