/* SPDX-License-Identifier: MIT */
/*
 * What an operator watches during a migration: rates, the times QEMU users
 * know (setup time, total time, expected downtime, downtime), transferred
 * and remaining bytes for RAM and each device, and a timeline with one
 * entry per pre-copy round and one for the stop-copy.
 *
 * A tracker is made by the caller of the engine and handed to it in
 * struct vfmig_mig_progress (.track); the engine records into it while it
 * runs and another thread may take a snapshot at any time (it has its own
 * lock). Without a tracker the engine records nothing. Each run starts it
 * afresh (a source when the run starts, a destination when a source
 * connected), and what it holds after the run describes that run until the
 * next one begins.
 *
 * The recording functions take the time (ms on a monotonic clock) and the
 * byte counters from the caller, so that the bookkeeping is plain
 * arithmetic; the engine's small wrappers (mig_track_*, declared at the
 * end) read them from the run.
 */
#ifndef VFMIG_ENGINE_PROGRESS_H
#define VFMIG_ENGINE_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Devices tracked one by one; more are counted only in the engine's
 * device total. Equal to VFMIG_VM_MAX_DEVICES (engine/vm.h). */
#define VFMIG_MIG_TRACK_DEVS 8
#define VFMIG_MIG_TRACK_ID_MAX 32
/* Pre-copy rounds kept in the timeline; later rounds are counted in
 * rounds_dropped (the stop-copy entry is always kept). */
#define VFMIG_MIG_TIMELINE_MAX 256

struct vfmig_mig_track;

/* One entry of the timeline. */
struct vfmig_mig_round {
	unsigned round;       /* 1, 2, ... ; 0 for the stop-copy */
	bool stop_copy;       /* the switchover: guest paused to completion */
	double start_ms, end_ms; /* since the run started */
	uint64_t ram_bytes;   /* RAM page data sent (or loaded) in it */
	uint64_t dev_bytes[VFMIG_MIG_TRACK_DEVS]; /* device data in it */
	uint64_t dirty_pages; /* RAM pages still dirty at its end */
	/* Pages the guest and the devices dirtied per second, measured at
	 * the round's dirty sync (0 when not measured: the first round, and
	 * the stop-copy). */
	double dirty_pages_rate;
	/* The downtime predicted after the round, ms; -1 when there is no
	 * prediction (nothing measured, or the stop-copy). */
	double expected_downtime_ms;
	double mbps; /* the stream's rate the prediction used, Mbit/s */
};

struct vfmig_mig_dev_stats {
	char id[VFMIG_MIG_TRACK_ID_MAX];
	uint64_t transferred;    /* device data sent / loaded */
	uint64_t precopy_bytes;  /* of it, before the switchover */
	uint64_t downtime_bytes; /* of it, after */
	bool remaining_known;
	uint64_t remaining;      /* the source's last estimate of what is
				  * left (stop-copy size or pre-copy data) */
};

/* A snapshot. Times in ms; -1 means not (yet) known. */
struct vfmig_mig_stats {
	bool started; /* a run began since the tracker was made */
	bool ended;   /* the run ended (completed, failed or cancelled) */
	bool source;
	double total_ms;  /* since the run started; its whole length once
			   * it ended */
	double setup_ms;  /* start to the first pre-copy round (source) or
			   * to the device list (destination) */
	double expected_downtime_ms; /* the last prediction (source) */
	double switchover_ms; /* start to the guest's pause (source), to
			       * the switchover record (destination) */
	double downtime_ms;   /* source, completed: as the report says */
	uint64_t ram_total;   /* guest RAM size */
	uint32_t page_size;
	bool ram_remaining_known; /* source, after a round */
	uint64_t ram_remaining;   /* dirty pages × page size */
	uint64_t ram_precopy_bytes, ram_downtime_bytes;
	double dirty_pages_rate;  /* pages/s, the last measurement */
	double dirty_bytes_rate;  /* the same in bytes/s */
	unsigned dirty_syncs;     /* dirty bitmap syncs (pre-copy rounds) */
	double mbps;  /* the last measured stream rate (source), else the
		       * average so far */
	size_t ndev;
	struct vfmig_mig_dev_stats dev[VFMIG_MIG_TRACK_DEVS];
	size_t nrounds;          /* timeline entries (stop-copy included) */
	unsigned rounds_dropped; /* rounds past VFMIG_MIG_TIMELINE_MAX */
};

/* Make a tracker: 0 or -ENOMEM. Destroy: NULL is fine. */
int vfmig_mig_track_create(struct vfmig_mig_track **out);
void vfmig_mig_track_destroy(struct vfmig_mig_track *t);

/*
 * Take a snapshot at time now_ms. ram_bytes is the RAM page data the run
 * has moved so far (the engine's progress counter, which grows on other
 * threads too when RAM uses several channels).
 */
void vfmig_mig_track_stats(struct vfmig_mig_track *t, double now_ms,
			   uint64_t ram_bytes, struct vfmig_mig_stats *out);
/* Copy up to max timeline entries, oldest first (the stop-copy last);
 * returns how many. */
size_t vfmig_mig_track_timeline(struct vfmig_mig_track *t,
				struct vfmig_mig_round *out, size_t max);

/* ---- recording (the engine's side); t may be NULL: nothing happens ---- */

/* A run starts: forget the last one. ids: ndev device ids (copied, cut
 * to fit; devices past VFMIG_MIG_TRACK_DEVS are not tracked). */
void vfmig_mig_track_begin(struct vfmig_mig_track *t, double now_ms,
			   bool source, uint64_t ram_total, uint32_t page_size,
			   size_t ndev, const char *const *ids);
/* Setup is over (the first time only). */
void vfmig_mig_track_active(struct vfmig_mig_track *t, double now_ms);
/* The dirty bitmap was synced and holds dirty_pages pages. The first sync
 * after the run marked all of RAM is the baseline; each later one gives
 * the rate: pages found over the time since the one before. */
void vfmig_mig_track_sync(struct vfmig_mig_track *t, double now_ms,
			  uint64_t dirty_pages);
void vfmig_mig_track_round_start(struct vfmig_mig_track *t, double now_ms,
				 uint64_t ram_bytes);
/* Device i sent (loaded) len bytes of its data. */
void vfmig_mig_track_dev(struct vfmig_mig_track *t, size_t i, uint64_t len);
/* The source's estimate of what device i still has to send. */
void vfmig_mig_track_dev_remaining(struct vfmig_mig_track *t, size_t i,
				   uint64_t bytes);
/* The round ended with dirty_pages pages dirty; the engine predicted
 * expected_ms of downtime (negative: none) from a rate of bytes_per_s. */
void vfmig_mig_track_round_end(struct vfmig_mig_track *t, double now_ms,
			       uint64_t ram_bytes, uint64_t dirty_pages,
			       double expected_ms, double bytes_per_s);
/* The switchover: the guest paused (source), the switchover record was
 * read (destination). What moves from now on is downtime data. */
void vfmig_mig_track_pause(struct vfmig_mig_track *t, double now_ms,
			   uint64_t ram_bytes);
/* The run ended (completed, failed or cancelled); downtime_ms is the
 * downtime of a completed live migration, negative if unknown. */
void vfmig_mig_track_end(struct vfmig_mig_track *t, double now_ms,
			 uint64_t ram_bytes, double downtime_ms);

/* ---- the engine's wrappers (progress.c), used by migrate*.c ---- */

struct run;
void mig_track_begin(struct run *run, bool source);
void mig_track_active(struct run *run);
void mig_track_sync(struct run *run);
void mig_track_round_start(struct run *run);
void mig_track_dev(struct run *run, size_t i, uint64_t len);
void mig_track_dev_remaining(struct run *run, size_t i, uint64_t bytes);
void mig_track_round_end(struct run *run, double expected_ms,
			 double bytes_per_ms);
void mig_track_pause(struct run *run);
void mig_track_end(struct run *run, double end_ms, double downtime_ms);

#endif
