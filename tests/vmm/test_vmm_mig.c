/* SPDX-License-Identifier: MIT */
/*
 * The VMM library's device migration driver against a hostile server:
 * extension negotiation, capability discovery and blockers, state changes
 * with the recovery rule (the child checks the exact command sequence: SET
 * target, SET recover, RESET, GET), the save pump, the size estimates and
 * DMA logging, with replies that lie about states, sizes and echoes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <vfmig/vmm_mig.h>

#include "fake_server.h"

#define EXT_JSON(v)                                                            \
	"{\"capabilities\":{\"max_data_xfer_size\":4096,"                      \
	"\"vfmig_mig_info\":{\"version\":" #v "}}}"

static const struct vfmig_vmm_dev_opts opts = {
	.version = VFMIG_VMM_OPTS_VERSION,
	.reply_timeout_ms = 5000,
};

static vfmig_vmm_dev *open_dev(struct session *s, script_fn script, int rc)
{
	vfmig_vmm_dev *dev = NULL;

	*s = start(script);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(s->fd, &opts, &dev), rc);
	return dev;
}

static void srv_version_ext(int fd)
{
	srv_version_with(fd, 0, 2, EXT_JSON(1), 0);
}

/* ---- server-side DEVICE_FEATURE helpers ---- */

struct feat {
	struct vfw_msg m;
	struct vfw_device_feature f;
	const uint8_t *data; /* request data after the feature header */
	size_t len;
};

/* Receive a DEVICE_FEATURE and check its flags. */
static void srv_feature(int fd, struct feat *q, uint32_t flags)
{
	srv_recv(fd, &q->m, VFW_CMD_DEVICE_FEATURE);
	CHECK(q->m.len >= sizeof(q->f));
	memcpy(&q->f, q->m.payload, sizeof(q->f));
	if (q->f.flags != flags)
		fprintf(stderr, "feature flags 0x%x, want 0x%x\n", q->f.flags,
			flags);
	CHECK(q->f.flags == flags);
	q->data = q->m.payload + sizeof(q->f);
	q->len = q->m.len - sizeof(q->f);
}

/* Reply with the feature header and len bytes of data; release. */
static void feat_reply(int fd, struct feat *q, const void *data, size_t len)
{
	uint8_t *buf = malloc(sizeof(q->f) + len);
	struct vfw_device_feature f = { (uint32_t)(sizeof(f) + len),
					q->f.flags };

	CHECK(buf);
	memcpy(buf, &f, sizeof(f));
	if (len)
		memcpy(buf + sizeof(f), data, len);
	CHECK(vfw_send_reply(fd, &q->m.hdr, buf, sizeof(f) + len) == 0);
	free(buf);
	vfw_msg_release(&q->m);
}

static void feat_error(int fd, struct feat *q, int err)
{
	CHECK(vfw_send_error(fd, &q->m.hdr, err) == 0);
	vfw_msg_release(&q->m);
}

#define GET(feat) (VFW_FEATURE_GET | (feat))
#define SET(feat) (VFW_FEATURE_SET | (feat))
#define PROBE(feat, ops) (VFW_FEATURE_PROBE | (ops) | (feat))

/* Expect a GET of MIG_DEVICE_STATE and answer state (and data_fd). */
static void srv_get_state(int fd, uint32_t state)
{
	struct feat q;
	struct vfw_mig_device_state st = { state, 0xffffffffu };

	srv_feature(fd, &q, GET(VFW_FEATURE_MIG_DEVICE_STATE));
	CHECK(q.f.argsz == 16 && q.len == 0);
	feat_reply(fd, &q, &st, sizeof(st));
}

/* Expect a SET of MIG_DEVICE_STATE to want; answer err or the echo. */
static void srv_set_state(int fd, uint32_t want, int err)
{
	struct feat q;
	struct vfw_mig_device_state st;

	srv_feature(fd, &q, SET(VFW_FEATURE_MIG_DEVICE_STATE));
	CHECK(q.len == sizeof(st));
	memcpy(&st, q.data, sizeof(st));
	CHECK(st.device_state == want && st.data_fd == 0xffffffffu);
	if (err)
		feat_error(fd, &q, err);
	else
		feat_reply(fd, &q, q.data, q.len);
}

static void srv_reset(int fd, int err)
{
	struct vfw_msg m;

	srv_recv(fd, &m, VFW_CMD_DEVICE_RESET);
	CHECK(m.len == 0);
	if (err)
		CHECK(vfw_send_error(fd, &m.hdr, err) == 0);
	else
		CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);
}

/* ---- extension negotiation ---- */

static void s_ext_on(int fd)
{
	struct vfw_caps proposal;
	struct feat q;
	struct vfw_mig_data_size ds = { 12345 };
	struct vfw_precopy_info pi = { 100, 7 };

	srv_version_caps(fd, 0, 2, EXT_JSON(1), 0, &proposal);
	CHECK(proposal.mig_info_version == VFW_MIG_INFO_VERSION);
	srv_feature(fd, &q, GET(VFW_FEATURE_MIG_DATA_SIZE));
	CHECK(q.f.argsz == 16);
	feat_reply(fd, &q, &ds, sizeof(ds));
	srv_feature(fd, &q, GET(VFW_FEATURE_VFMIG_PRECOPY_INFO));
	CHECK(q.f.argsz == 24);
	feat_reply(fd, &q, &pi, sizeof(pi));
	/* not in PRE_COPY: the device refuses, connection stays */
	srv_feature(fd, &q, GET(VFW_FEATURE_VFMIG_PRECOPY_INFO));
	feat_error(fd, &q, EINVAL);
	/* a 16-byte answer to an 8-byte feature */
	srv_feature(fd, &q, GET(VFW_FEATURE_MIG_DATA_SIZE));
	feat_reply(fd, &q, &pi, sizeof(pi));
	srv_expect_eof(fd);
}

static void test_ext_on(void **state)
{
	struct session s;
	struct vfmig_vmm_caps caps;
	uint64_t a = 0, b = 0;
	vfmig_vmm_dev *dev = open_dev(&s, s_ext_on, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_caps(dev, &caps), 0);
	assert_int_equal(caps.mig_info_version, 1);
	assert_int_equal(vfmig_vmm_mig_stop_copy_size(dev, &a), 0);
	assert_int_equal(a, 12345);
	assert_int_equal(vfmig_vmm_mig_precopy_info(dev, &a, &b), 0);
	assert_int_equal(a, 100);
	assert_int_equal(b, 7);
	assert_int_equal(vfmig_vmm_mig_precopy_info(dev, &a, &b), -EINVAL);
	assert_true(vfmig_vmm_dev_connected(dev));
	assert_int_equal(vfmig_vmm_mig_stop_copy_size(dev, &a), -EPROTO);
	assert_false(vfmig_vmm_dev_connected(dev));
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* Extension absent: the estimates fail without a message. */
static void s_ext_off(int fd)
{
	srv_version(fd);
	srv_expect_eof(fd);
}

static void test_ext_off(void **state)
{
	struct session s;
	struct vfmig_vmm_caps caps;
	uint64_t a, b;
	vfmig_vmm_dev *dev = open_dev(&s, s_ext_off, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_caps(dev, &caps), 0);
	assert_int_equal(caps.mig_info_version, 0);
	assert_int_equal(vfmig_vmm_mig_precopy_info(dev, &a, &b), -EOPNOTSUPP);
	assert_int_equal(vfmig_vmm_mig_stop_copy_size(dev, &a), -EOPNOTSUPP);
	assert_true(vfmig_vmm_dev_connected(dev));
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

static void s_ext_higher(int fd)
{
	srv_version_with(fd, 0, 2, EXT_JSON(2), 0);
	srv_expect_eof(fd);
}

static void s_ext_malformed(int fd)
{
	srv_version_with(fd, 0, 2,
			 "{\"capabilities\":{\"vfmig_mig_info\":{}}}", 0);
	srv_expect_eof(fd);
}

static void test_ext_bad(void **state)
{
	struct session s;

	(void)state;
	assert_null(open_dev(&s, s_ext_higher, -EPROTO));
	finish(&s);
	assert_null(open_dev(&s, s_ext_malformed, -EPROTO));
	finish(&s);
}

/* ---- discovery ---- */

static void srv_migration_flags(int fd, uint64_t flags)
{
	struct feat q;

	srv_feature(fd, &q, GET(VFW_FEATURE_MIGRATION));
	CHECK(q.f.argsz == 16 && q.len == 0);
	feat_reply(fd, &q, &flags, sizeof(flags));
}

static void srv_probe(int fd, uint32_t feature, uint32_t ops, int err)
{
	struct feat q;

	srv_feature(fd, &q, PROBE(feature, ops));
	CHECK(q.len == 0);
	if (err)
		feat_error(fd, &q, err);
	else
		feat_reply(fd, &q, NULL, 0);
}

static void s_disc_refused(int fd)
{
	struct feat q;

	struct vfw_msg m;
	struct vfw_device_info di = { sizeof(di), 0, 9, 5 };

	srv_version(fd);
	srv_feature(fd, &q, GET(VFW_FEATURE_MIGRATION));
	feat_error(fd, &q, ENOTSUP);
	/* then the region interface is looked for: no regions past 8 */
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	CHECK(vfw_send_reply(fd, &m.hdr, &di, sizeof(di)) == 0);
	vfw_msg_release(&m);
	srv_migration_flags(fd, VFW_MIGRATION_PRE_COPY); /* no STOP_COPY */
	srv_migration_flags(fd, VFW_MIGRATION_STOP_COPY);
	srv_probe(fd, VFW_FEATURE_MIG_DEVICE_STATE,
		  VFW_FEATURE_GET | VFW_FEATURE_SET, EINVAL);
	srv_expect_eof(fd);
}

static void test_discover_blockers(void **state)
{
	struct session s;
	struct vfmig_vmm_mig_caps mc;
	vfmig_vmm_dev *dev = open_dev(&s, s_disc_refused, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	assert_false(mc.migratable);
	assert_non_null(strstr(mc.blocker, "DEVICE_FEATURE MIGRATION refused"));
	assert_non_null(strstr(mc.blocker, "not supported"));
	assert_int_equal(vfmig_vmm_mig_interface(dev), VFMIG_VMM_MIG_IFACE_NONE);
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	assert_false(mc.migratable);
	assert_int_equal(mc.flags, VFMIG_VMM_MIG_FLAG_PRE_COPY);
	assert_non_null(strstr(mc.blocker, "does not report STOP_COPY"));
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	assert_false(mc.migratable);
	assert_non_null(strstr(mc.blocker, "MIG_DEVICE_STATE"));
	assert_true(vfmig_vmm_dev_connected(dev));
	vfmig_vmm_dev_close(dev);
	finish(&s);
	assert_int_equal(vfmig_vmm_mig_discover(NULL, &mc), -EINVAL);
}

static void s_disc_full(int fd)
{
	srv_version_ext(fd);
	/* first: everything works */
	srv_migration_flags(fd, VFW_MIGRATION_STOP_COPY |
					VFW_MIGRATION_PRE_COPY);
	srv_probe(fd, VFW_FEATURE_MIG_DEVICE_STATE,
		  VFW_FEATURE_GET | VFW_FEATURE_SET, 0);
	srv_probe(fd, VFW_FEATURE_DMA_LOGGING_START, VFW_FEATURE_SET, 0);
	srv_probe(fd, VFW_FEATURE_DMA_LOGGING_STOP, VFW_FEATURE_SET, 0);
	srv_probe(fd, VFW_FEATURE_DMA_LOGGING_REPORT, VFW_FEATURE_GET, 0);
	srv_probe(fd, VFW_FEATURE_MIG_DATA_SIZE, VFW_FEATURE_GET, 0);
	srv_probe(fd, VFW_FEATURE_VFMIG_PRECOPY_INFO, VFW_FEATURE_GET, 0);
	/* then: no REPORT, no size info; STOP_COPY only (no PRECOPY probe) */
	srv_migration_flags(fd, VFW_MIGRATION_STOP_COPY);
	srv_probe(fd, VFW_FEATURE_MIG_DEVICE_STATE,
		  VFW_FEATURE_GET | VFW_FEATURE_SET, 0);
	srv_probe(fd, VFW_FEATURE_DMA_LOGGING_START, VFW_FEATURE_SET, 0);
	srv_probe(fd, VFW_FEATURE_DMA_LOGGING_STOP, VFW_FEATURE_SET, 0);
	srv_probe(fd, VFW_FEATURE_DMA_LOGGING_REPORT, VFW_FEATURE_GET,
		  ENOTSUP);
	srv_probe(fd, VFW_FEATURE_MIG_DATA_SIZE, VFW_FEATURE_GET, ENOTSUP);
	/* then: a GET MIGRATION reply of 4 bytes */
	{
		struct feat q;
		srv_feature(fd, &q, GET(VFW_FEATURE_MIGRATION));
		feat_reply(fd, &q, "\1\0\0\0", 4);
	}
	srv_expect_eof(fd);
}

static void test_discover_full(void **state)
{
	struct session s;
	struct vfmig_vmm_mig_caps mc;
	vfmig_vmm_dev *dev = open_dev(&s, s_disc_full, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	assert_true(mc.migratable);
	assert_true(mc.dirty_logging);
	assert_true(mc.size_info);
	assert_string_equal(mc.blocker, "");
	assert_int_equal(mc.flags, VFMIG_VMM_MIG_FLAG_STOP_COPY |
					   VFMIG_VMM_MIG_FLAG_PRE_COPY);
	assert_int_equal(vfmig_vmm_mig_interface(dev), VFMIG_VMM_MIG_IFACE_V2);
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), 0);
	assert_true(mc.migratable);
	assert_false(mc.dirty_logging);
	assert_false(mc.size_info);
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), -EPROTO);
	assert_false(mc.migratable);
	assert_true(mc.blocker[0] != '\0');
	assert_int_equal(vfmig_vmm_mig_discover(dev, &mc), -ENOTCONN);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- state: hostile replies ---- */

static void s_state_lies(int fd)
{
	srv_version(fd);
	srv_get_state(fd, VFW_MIG_STATE_PRE_COPY);
	srv_get_state(fd, 8); /* out of range: connection dropped */
	srv_expect_eof(fd);
}

static void s_state_wrong_echo(int fd)
{
	struct feat q;
	struct vfw_mig_device_state st;

	srv_version(fd);
	srv_feature(fd, &q, SET(VFW_FEATURE_MIG_DEVICE_STATE));
	memcpy(&st, q.data, sizeof(st));
	st.device_state = VFW_MIG_STATE_RUNNING; /* asked STOP */
	feat_reply(fd, &q, &st, sizeof(st));
	srv_expect_eof(fd);
}

static void s_state_short(int fd)
{
	struct feat q;

	srv_version(fd);
	srv_feature(fd, &q, GET(VFW_FEATURE_MIG_DEVICE_STATE));
	feat_reply(fd, &q, "\2\0\0\0", 4);
	srv_expect_eof(fd);
}

static void test_state_lies(void **state)
{
	struct session s;
	uint32_t st = 99, fin = 0;
	vfmig_vmm_dev *dev = open_dev(&s, s_state_lies, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_PRE_COPY);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), -EPROTO);
	assert_false(vfmig_vmm_dev_connected(dev));
	vfmig_vmm_dev_close(dev);
	finish(&s);

	dev = open_dev(&s, s_state_wrong_echo, 0);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 -EPROTO);
	assert_int_equal(fin, VFMIG_VMM_MIG_UNKNOWN);
	vfmig_vmm_dev_close(dev);
	finish(&s);

	dev = open_dev(&s, s_state_short, 0);
	assert_int_equal(vfmig_vmm_mig_get_state(dev, &st), -EPROTO);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- state: the recovery rule, command by command ---- */

static void s_recovery(int fd)
{
	srv_version(fd);
	/* 1: target works */
	srv_set_state(fd, VFW_MIG_STATE_STOP_COPY, 0);
	/* 2: target fails, recover works */
	srv_set_state(fd, VFW_MIG_STATE_RESUMING, EBUSY);
	srv_set_state(fd, VFW_MIG_STATE_RUNNING, 0);
	/* 3: target fails, recover fails, reset, GET */
	srv_set_state(fd, VFW_MIG_STATE_STOP, EIO);
	srv_set_state(fd, VFW_MIG_STATE_RUNNING, EINVAL);
	srv_reset(fd, 0);
	srv_get_state(fd, VFW_MIG_STATE_RUNNING);
	/* 4: recover ERROR: straight to reset, GET */
	srv_set_state(fd, VFW_MIG_STATE_STOP_COPY, EINVAL);
	srv_reset(fd, 0);
	srv_get_state(fd, VFW_MIG_STATE_RUNNING);
	/* 5: reset refused: unknown */
	srv_set_state(fd, VFW_MIG_STATE_PRE_COPY, EINVAL);
	srv_set_state(fd, VFW_MIG_STATE_RUNNING, EINVAL);
	srv_reset(fd, EIO);
	/* 6: after the reset GET answers garbage */
	srv_set_state(fd, VFW_MIG_STATE_STOP, EINVAL);
	srv_reset(fd, 0);
	srv_get_state(fd, 0x1234);
	srv_expect_eof(fd);
}

static void test_recovery(void **state)
{
	struct session s;
	uint32_t fin = 0;
	vfmig_vmm_dev *dev = open_dev(&s, s_recovery, 0);

	(void)state;
	/* invalid requests send nothing */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_ERROR,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 -EINVAL);
	assert_int_equal(fin, VFMIG_VMM_MIG_UNKNOWN);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, 8, VFMIG_VMM_MIG_RUNNING,
						 &fin),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP, 9,
						 &fin),
			 -EINVAL);
	/* 1 */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
						 VFMIG_VMM_MIG_STOP, &fin),
			 0);
	assert_int_equal(fin, VFMIG_VMM_MIG_STOP_COPY);
	/* 2 */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 -EBUSY);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	/* 3 */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 -EIO);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	/* 4 */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
						 VFMIG_VMM_MIG_ERROR, &fin),
			 -EINVAL);
	assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
	/* 5 */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_PRE_COPY,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 -EINVAL);
	assert_int_equal(fin, VFMIG_VMM_MIG_UNKNOWN);
	assert_true(vfmig_vmm_dev_connected(dev));
	/* 6: the original errno is returned, the connection is gone */
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP,
						 VFMIG_VMM_MIG_ERROR, NULL),
			 -EINVAL);
	assert_false(vfmig_vmm_dev_connected(dev));
	assert_string_equal(vfmig_vmm_mig_state_name(VFMIG_VMM_MIG_UNKNOWN),
			    "UNKNOWN");
	assert_string_equal(vfmig_vmm_mig_state_name(VFMIG_VMM_MIG_STOP_COPY),
			    "STOP_COPY");
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- the save pump ---- */

/* Answer one MIG_DATA_READ (asked must be 4096) with n bytes of fill. */
static void srv_data(int fd, uint32_t n, uint8_t fill)
{
	struct vfw_msg m;
	struct vfw_mig_data md;
	static uint8_t buf[8 + 4096];

	srv_recv(fd, &m, VFW_CMD_MIG_DATA_READ);
	CHECK(m.len == sizeof(md));
	memcpy(&md, m.payload, sizeof(md));
	CHECK(md.size == 4096 && md.argsz == 8 + 4096);
	md = (struct vfw_mig_data){ 8 + n, n };
	memcpy(buf, &md, sizeof(md));
	memset(buf + 8, fill, n);
	CHECK(vfw_send_reply(fd, &m.hdr, buf, 8 + n) == 0);
	vfw_msg_release(&m);
}

static void s_save(int fd)
{
	struct vfw_msg m;

	srv_version(fd);
	/* STOP_COPY: two full chunks and a short one */
	srv_get_state(fd, VFW_MIG_STATE_STOP_COPY);
	srv_data(fd, 4096, 'a');
	srv_data(fd, 4096, 'b');
	srv_data(fd, 100, 'c');
	/* PRE_COPY: nothing now */
	srv_get_state(fd, VFW_MIG_STATE_PRE_COPY);
	srv_data(fd, 0, 0);
	/* PRE_COPY with a budget of 5000: stops after two chunks */
	srv_get_state(fd, VFW_MIG_STATE_PRE_COPY);
	srv_data(fd, 4096, 'd');
	srv_data(fd, 4096, 'e');
	/* RUNNING: refused before any read */
	srv_get_state(fd, VFW_MIG_STATE_RUNNING);
	/* the sink fails on the first chunk */
	srv_get_state(fd, VFW_MIG_STATE_STOP_COPY);
	srv_data(fd, 10, 'f');
	/* a huge size field */
	srv_get_state(fd, VFW_MIG_STATE_STOP_COPY);
	srv_recv(fd, &m, VFW_CMD_MIG_DATA_READ);
	{
		struct vfw_mig_data md = { 0xffffffffu, 0xfffffff0u };
		uint8_t buf[8 + 32] = { 0 };
		memcpy(buf, &md, sizeof(md));
		CHECK(vfw_send_reply(fd, &m.hdr, buf, sizeof(buf)) == 0);
	}
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

struct sink {
	uint8_t buf[16384];
	size_t len;
	int calls;
	int fail; /* errno to return, 0 = accept */
};

static int sink_fn(void *priv, const void *buf, size_t len)
{
	struct sink *k = priv;

	k->calls++;
	if (k->fail)
		return -k->fail;
	assert_true(len > 0 && k->len + len <= sizeof(k->buf));
	memcpy(k->buf + k->len, buf, len);
	k->len += len;
	return 0;
}

static void test_save(void **state)
{
	struct session s;
	static struct sink k;
	struct vfmig_vmm_mig_save_result res;
	vfmig_vmm_dev *dev = open_dev(&s, s_save, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_END);
	assert_int_equal(res.bytes, 8192 + 100);
	assert_int_equal(res.state, VFMIG_VMM_MIG_STOP_COPY);
	assert_int_equal(k.len, 8192 + 100);
	assert_int_equal(k.buf[0], 'a');
	assert_int_equal(k.buf[4096], 'b');
	assert_int_equal(k.buf[8192 + 99], 'c');

	k.len = 0;
	k.calls = 0;
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_DRAINED);
	assert_int_equal(res.bytes, 0);
	assert_int_equal(k.calls, 0);

	assert_int_equal(vfmig_vmm_mig_save(dev, 5000, sink_fn, &k, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_BUDGET);
	assert_int_equal(res.bytes, 8192);
	assert_int_equal(k.buf[8191], 'e');

	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res),
			 -EINVAL);
	assert_int_equal(res.state, VFMIG_VMM_MIG_RUNNING);
	assert_int_equal(res.bytes, 0);

	k.fail = ENOSPC;
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res),
			 -ENOSPC);
	k.fail = 0;
	assert_true(vfmig_vmm_dev_connected(dev));

	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res),
			 -EPROTO);
	assert_false(vfmig_vmm_dev_connected(dev));
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, NULL, &k, &res), -EINVAL);
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, NULL),
			 -EINVAL);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- DMA logging ---- */

static void s_log(int fd)
{
	struct feat q;
	struct vfw_dma_logging_start ls;
	struct vfw_dma_logging_range rg[2];

	srv_version(fd);
	/* START with two ranges; the device picks 8 KiB pages */
	srv_feature(fd, &q, SET(VFW_FEATURE_DMA_LOGGING_START));
	CHECK(q.len == sizeof(ls) + sizeof(rg));
	CHECK(q.f.argsz == 8 + q.len);
	memcpy(&ls, q.data, sizeof(ls));
	memcpy(rg, q.data + sizeof(ls), sizeof(rg));
	CHECK(ls.page_size == 4096 && ls.num_ranges == 2);
	CHECK(rg[0].iova == 0x100000 && rg[0].length == 0x200000);
	CHECK(rg[1].iova == 0x80000000ull && rg[1].length == 0x1000);
	{
		uint8_t echo[sizeof(ls) + sizeof(rg)];
		memcpy(echo, q.data, sizeof(echo));
		ls.page_size = 8192;
		memcpy(echo, &ls, sizeof(ls));
		feat_reply(fd, &q, echo, sizeof(echo));
	}
	/* START "all" whose echo changes the range count */
	srv_feature(fd, &q, SET(VFW_FEATURE_DMA_LOGGING_START));
	CHECK(q.len == sizeof(ls));
	memcpy(&ls, q.data, sizeof(ls));
	CHECK(ls.num_ranges == 0);
	ls.num_ranges = 1;
	feat_reply(fd, &q, &ls, sizeof(ls));
	srv_expect_eof(fd);
}

static void s_report(int fd)
{
	struct feat q;
	struct vfw_dma_logging_report rep;
	uint8_t out[24 + 24];
	uint64_t w[3] = { 0x8000000000000001ull, 0, 0xfffffffffffffffeull };

	srv_version(fd);
	/* 130 pages: 3 words; the last word has stray bits past page 129 */
	srv_feature(fd, &q, GET(VFW_FEATURE_DMA_LOGGING_REPORT));
	CHECK(q.len == sizeof(rep) && q.f.argsz == 8 + 24 + 24);
	memcpy(&rep, q.data, sizeof(rep));
	CHECK(rep.iova == 0x100000 && rep.length == 130 * 4096ull &&
	      rep.page_size == 4096);
	memcpy(out, &rep, sizeof(rep));
	memcpy(out + 24, w, sizeof(w));
	feat_reply(fd, &q, out, sizeof(out));
	/* STOP */
	srv_feature(fd, &q, SET(VFW_FEATURE_DMA_LOGGING_STOP));
	CHECK(q.len == 0);
	feat_reply(fd, &q, NULL, 0);
	/* REPORT with logging off: refused */
	srv_feature(fd, &q, GET(VFW_FEATURE_DMA_LOGGING_REPORT));
	feat_error(fd, &q, EINVAL);
	/* REPORT whose reply is one word short */
	srv_feature(fd, &q, GET(VFW_FEATURE_DMA_LOGGING_REPORT));
	memcpy(out, q.data, sizeof(rep));
	feat_reply(fd, &q, out, sizeof(out) - 8);
	srv_expect_eof(fd);
}

static void s_report_echo(int fd)
{
	struct feat q;
	struct vfw_dma_logging_report rep;
	uint8_t out[24 + 8] = { 0 };

	srv_version(fd);
	srv_feature(fd, &q, GET(VFW_FEATURE_DMA_LOGGING_REPORT));
	memcpy(&rep, q.data, sizeof(rep));
	rep.iova += 4096;
	memcpy(out, &rep, sizeof(rep));
	feat_reply(fd, &q, out, sizeof(out));
	srv_expect_eof(fd);
}

/* A report too big for one message is split on a word boundary. */
#define SPLIT_PAGES ((uint64_t)((1u << 20) - 64u) / 8u * 64u)

static void s_report_split(int fd)
{
	static uint8_t out[24 + (1u << 20)];
	struct feat q;
	struct vfw_dma_logging_report rep;
	uint64_t one = 1;

	srv_version(fd);
	for (int i = 0; i < 2; i++) {
		srv_feature(fd, &q, GET(VFW_FEATURE_DMA_LOGGING_REPORT));
		memcpy(&rep, q.data, sizeof(rep));
		uint64_t pages = i == 0 ? SPLIT_PAGES : 10;
		CHECK(rep.page_size == 4096);
		CHECK(rep.iova == (i == 0 ? 0 : SPLIT_PAGES * 4096));
		CHECK(rep.length == pages * 4096);
		size_t words = (size_t)((pages + 63) / 64);
		CHECK(q.f.argsz == 8 + 24 + words * 8);
		memset(out, 0, 24 + words * 8);
		memcpy(out, &rep, sizeof(rep));
		memcpy(out + 24, &one, 8);
		feat_reply(fd, &q, out, 24 + words * 8);
	}
	srv_expect_eof(fd);
}

static void test_dma_log_start(void **state)
{
	struct session s;
	const struct vfmig_vmm_dma_range rg[2] = {
		{ 0x100000, 0x200000 },
		{ 0x80000000ull, 0x1000 },
	};
	static struct vfmig_vmm_dma_range many[257];
	const struct vfmig_vmm_dma_range odd = { 0x1800, 0x1000 };
	uint64_t chosen = 0;
	vfmig_vmm_dev *dev = open_dev(&s, s_log, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 1000, rg, 2, &chosen),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, &odd, 1, &chosen),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 1, &chosen),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, many, 257,
						 &chosen),
			 -E2BIG);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, rg, 2, &chosen), 0);
	assert_int_equal(chosen, 8192);
	assert_int_equal(vfmig_vmm_dma_log_start(dev, 4096, NULL, 0, &chosen),
			 -EPROTO);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

static void test_dma_log_report(void **state)
{
	struct session s;
	uint64_t bm[3] = { 0x10, 0, 0 };
	uint64_t *big;
	vfmig_vmm_dev *dev = open_dev(&s, s_report, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0x100000, 130 * 4096,
						  4096, bm, 2),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0x100000, 0, 4096, bm,
						  3),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, ~0ull - 4095, 8192,
						  4096, bm, 3),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0x100000, 130 * 4096,
						  3000, bm, 3),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0x100000, 130 * 4096,
						  4096, bm, 3),
			 0);
	/* OR-ed in; bits past page 129 dropped */
	assert_int_equal(bm[0], 0x8000000000000011ull);
	assert_int_equal(bm[1], 0);
	assert_int_equal(bm[2], 0x2);
	assert_int_equal(vfmig_vmm_dma_log_stop(dev), 0);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0x100000, 130 * 4096,
						  4096, bm, 3),
			 -EINVAL);
	assert_true(vfmig_vmm_dev_connected(dev));
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0x100000, 130 * 4096,
						  4096, bm, 3),
			 -EPROTO);
	assert_false(vfmig_vmm_dev_connected(dev));
	vfmig_vmm_dev_close(dev);
	finish(&s);

	dev = open_dev(&s, s_report_echo, 0);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0, 4096, 4096, bm, 1),
			 -EPROTO);
	vfmig_vmm_dev_close(dev);
	finish(&s);

	size_t words = (size_t)((SPLIT_PAGES + 10 + 63) / 64);
	big = calloc(words, 8);
	assert_non_null(big);
	dev = open_dev(&s, s_report_split, 0);
	assert_int_equal(vfmig_vmm_dma_log_report(dev, 0,
						  (SPLIT_PAGES + 10) * 4096,
						  4096, big, words),
			 0);
	assert_int_equal(big[0], 1);
	assert_int_equal(big[SPLIT_PAGES / 64], 1);
	for (size_t i = 1; i < words; i++)
		if (i != SPLIT_PAGES / 64)
			assert_int_equal(big[i], 0);
	free(big);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- the data channel against a hostile device ---- */

#define DC_JSON                                                                \
	"{\"capabilities\":{\"max_data_xfer_size\":4096,"                    \
	"\"vfmig_data_channel\":{\"version\":1}}}"

enum dc_mode { DC_EARLY_CLOSE, DC_OVERSIZE, DC_AFTER_END, DC_ERROR };
static enum dc_mode dc_mode;

/* Send a frame header and n bytes of fill, all in one write. */
static void dc_send(int ch, uint32_t kind, uint32_t size, size_t n)
{
	static uint8_t buf[8 + 8192];
	struct vfw_dc_frame h = { kind, size };

	CHECK(n <= 8192);
	memcpy(buf, &h, sizeof(h));
	memset(buf + 8, 'x', n);
	CHECK(write(ch, buf, 8 + n) == (ssize_t)(8 + n));
}

static void s_dc(int fd)
{
	struct feat q;
	int ch;

	srv_version_with(fd, 0, 2, DC_JSON, 0);
	srv_set_state(fd, VFW_MIG_STATE_STOP_COPY, 0);
	srv_feature(fd, &q, SET(VFW_FEATURE_VFMIG_DATA_CHANNEL));
	CHECK(q.m.nfds == 1 && q.len == 8);
	/* Version 1: no seal, though the client asked for one. */
	static const uint8_t zero[8];
	CHECK(memcmp(q.data, zero, 8) == 0);
	ch = vfw_msg_take_fd(&q.m, 0);
	feat_reply(fd, &q, q.data, q.len);
	srv_get_state(fd, VFW_MIG_STATE_STOP_COPY);
	switch (dc_mode) {
	case DC_EARLY_CLOSE: /* announces 4096, sends 100, closes */
		dc_send(ch, VFW_DC_DATA, 4096, 100);
		break;
	case DC_OVERSIZE:
		dc_send(ch, VFW_DC_DATA, VFW_DC_FRAME_MAX + 1, 0);
		break;
	case DC_AFTER_END: { /* 10 bytes, END, then 5 more */
		uint8_t b[8 + 10 + 8 + 5] = { 0 };
		struct vfw_dc_frame d = { VFW_DC_DATA, 10 }, e = { VFW_DC_END, 0 };
		memcpy(b, &d, 8);
		memcpy(b + 18, &e, 8);
		CHECK(write(ch, b, sizeof(b)) == (ssize_t)sizeof(b));
		break;
	}
	case DC_ERROR: {
		uint32_t err = EIO;
		uint8_t b[12];
		struct vfw_dc_frame h = { VFW_DC_ERROR, 4 };
		memcpy(b, &h, 8);
		memcpy(b + 8, &err, 4);
		CHECK(write(ch, b, sizeof(b)) == (ssize_t)sizeof(b));
		break;
	}
	}
	close(ch);
	srv_get_state(fd, VFW_MIG_STATE_STOP_COPY); /* the second save */
	/* the source goes back to RUNNING over the intact connection */
	srv_set_state(fd, VFW_MIG_STATE_RUNNING, 0);
	srv_expect_eof(fd);
}

static void test_dc_hostile(void **state)
{
	static const int want[] = { -EPIPE, -EPROTO, -EPROTO, -EIO };
	struct vfmig_vmm_mig_save_result res;
	static struct sink k;
	struct vfmig_vmm_caps caps;
	struct session s;
	uint32_t fin;

	(void)state;
	for (int m = DC_EARLY_CLOSE; m <= DC_ERROR; m++) {
		dc_mode = (enum dc_mode)m;
		k.len = 0;
		vfmig_vmm_dev *dev = open_dev(&s, s_dc, 0);
		assert_int_equal(vfmig_vmm_dev_get_caps(dev, &caps), 0);
		assert_int_equal(caps.data_channel_version, 1);
		assert_int_equal(vfmig_vmm_dev_set_seal(dev, 5), 0);
		assert_int_equal(vfmig_vmm_mig_set_state(dev,
							 VFMIG_VMM_MIG_STOP_COPY,
							 VFMIG_VMM_MIG_RUNNING,
							 &fin), 0);
		assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res),
				 want[m]);
		assert_true(vfmig_vmm_dev_connected(dev));
		/* the session stays lost, without a new request */
		assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res),
				 want[m]);
		assert_int_equal(vfmig_vmm_mig_set_state(dev,
							 VFMIG_VMM_MIG_RUNNING,
							 VFMIG_VMM_MIG_ERROR,
							 &fin), 0);
		assert_int_equal(fin, VFMIG_VMM_MIG_RUNNING);
		vfmig_vmm_dev_close(dev);
		finish(&s);
	}
}

/* ---- sealed sessions (version 2) against a strict device ---- */

#define DC2_JSON                                                               \
	"{\"capabilities\":{\"max_data_xfer_size\":4096,"                    \
	"\"vfmig_data_channel\":{\"version\":2}}}"

enum seal_mode {
	SEAL_MOVED,    /* a 10-byte frame, moved */
	SEAL_READ,     /* the same, read by a pump without a moved callback */
	SEAL_SHORT,    /* size 4: no data */
	SEAL_OVERSIZE, /* size 1 MiB + 5 */
	SEAL_NOT_MOVED, /* the callback returns 0 without moving */
	SEAL_PEER_GONE, /* moved into a socket whose reader has gone: -EPIPE,
			 * and no SIGPIPE (this test does not ignore it) */
	SEAL_APPEND     /* moved into a file opened O_APPEND, which splice()
			 * refuses: the bytes go through a buffer instead */
};
static enum seal_mode seal_mode;

static void s_seal(int fd)
{
	struct vfw_data_channel req;
	struct feat q;
	uint8_t b[8 + 10 + 4 + 8];
	struct vfw_dc_frame d = { VFW_DC_SEALED, 14 }, e = { VFW_DC_END, 0 };
	int ch;

	srv_version_with(fd, 0, 2, DC2_JSON, 0);
	srv_set_state(fd, VFW_MIG_STATE_STOP_COPY, 0);
	srv_feature(fd, &q, SET(VFW_FEATURE_VFMIG_DATA_CHANNEL));
	CHECK(q.m.nfds == 1 && q.len == sizeof(req));
	memcpy(&req, q.data, sizeof(req));
	CHECK(req.flags == VFW_DC_F_SEAL && req.seal_index == 3 &&
	      req.seal_algo == VFW_DC_SEAL_XXH3);
	ch = vfw_msg_take_fd(&q.m, 0);
	feat_reply(fd, &q, q.data, q.len);
	srv_get_state(fd, VFW_MIG_STATE_STOP_COPY);
	if (seal_mode == SEAL_SHORT)
		d.size = 4;
	if (seal_mode == SEAL_OVERSIZE)
		d.size = VFW_DC_FRAME_MAX + 5;
	memcpy(b, &d, 8);
	memcpy(b + 8, "0123456789wxyz", 14);
	memcpy(b + 22, &e, 8);
	CHECK(write(ch, b, sizeof(b)) == (ssize_t)sizeof(b));
	close(ch);
	if (seal_mode != SEAL_MOVED && seal_mode != SEAL_READ &&
	    seal_mode != SEAL_PEER_GONE && seal_mode != SEAL_APPEND)
		srv_get_state(fd, VFW_MIG_STATE_STOP_COPY); /* the second save */
	srv_set_state(fd, VFW_MIG_STATE_RUNNING, 0);
	srv_expect_eof(fd);
}

struct moved {
	int fd; /* where the callback moves to; -1: it does not move */
	size_t len;
};

static int moved_fn(void *priv, size_t len, vfmig_vmm_move *mv)
{
	struct moved *m = priv;

	m->len = len;
	if (m->fd < 0)
		return 0;
	int r = vfmig_vmm_mig_move(mv, m->fd, 0);
	/* Once only. */
	assert_int_equal(vfmig_vmm_mig_move(mv, m->fd, 0), -EINVAL);
	return r;
}

static int moved_sink(void *priv, const void *buf, size_t len)
{
	(void)priv;
	(void)buf;
	(void)len;
	fail_msg("a sealed session's data went to the plain sink");
	return -EIO;
}

static void test_dc_sealed(void **state)
{
	struct vfmig_vmm_mig_save_result res;
	static struct sink k;
	struct vfmig_vmm_caps caps;
	struct session s;
	uint32_t fin;

	(void)state;
	for (int m = SEAL_MOVED; m <= SEAL_APPEND; m++) {
		int p[2];
		struct moved mv = { -1, 0 };
		uint8_t got[32];

		seal_mode = (enum seal_mode)m;
		k.len = 0;
		if (m == SEAL_PEER_GONE) {
			assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
			close(p[0]);
			p[0] = -1;
		} else if (m == SEAL_APPEND) {
			char path[] = "/tmp/vfmig-seal-XXXXXX";
			p[0] = mkstemp(path);
			assert_true(p[0] >= 0);
			p[1] = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
			unlink(path);
			assert_true(p[1] >= 0);
			assert_int_equal(write(p[0], "head", 4), 4);
		} else {
			assert_int_equal(pipe(p), 0);
		}
		if (m != SEAL_NOT_MOVED)
			mv.fd = p[1];
		vfmig_vmm_dev *dev = open_dev(&s, s_seal, 0);
		assert_int_equal(vfmig_vmm_dev_get_caps(dev, &caps), 0);
		assert_int_equal(caps.data_channel_version, 2);
		assert_int_equal(vfmig_vmm_dev_set_seal(dev, 65536), -EINVAL);
		assert_int_equal(vfmig_vmm_dev_set_seal(dev, 3), 0);
		assert_int_equal(vfmig_vmm_mig_set_state(dev,
							 VFMIG_VMM_MIG_STOP_COPY,
							 VFMIG_VMM_MIG_RUNNING,
							 &fin), 0);
		int r = m == SEAL_READ
				? vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res)
				: vfmig_vmm_mig_save_moved(dev, 0, moved_sink,
							   moved_fn, &mv, &res);
		switch (m) {
		case SEAL_MOVED:
			assert_int_equal(r, 0);
			assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_END);
			assert_int_equal(res.bytes, 10);
			assert_int_equal(mv.len, 10);
			/* data and checksum, as they came */
			assert_int_equal(read(p[0], got, sizeof(got)), 14);
			assert_memory_equal(got, "0123456789wxyz", 14);
			break;
		case SEAL_READ:
			assert_int_equal(r, 0);
			assert_int_equal(res.bytes, 10);
			assert_int_equal(k.len, 10); /* the checksum dropped */
			assert_memory_equal(k.buf, "0123456789", 10);
			break;
		case SEAL_PEER_GONE:
			assert_int_equal(r, -EPIPE);
			assert_true(vfmig_vmm_dev_connected(dev));
			break;
		case SEAL_APPEND:
			assert_int_equal(r, 0);
			assert_int_equal(res.bytes, 10);
			assert_int_equal(pread(p[0], got, sizeof(got), 0), 18);
			assert_memory_equal(got, "head0123456789wxyz", 18);
			break;
		default:
			assert_int_equal(r, -EPROTO);
			assert_true(vfmig_vmm_dev_connected(dev));
			/* the session stays lost */
			assert_int_equal(vfmig_vmm_mig_save_moved(dev, 0, moved_sink,
								  moved_fn, &mv,
								  &res),
					 -EPROTO);
			break;
		}
		assert_int_equal(vfmig_vmm_mig_set_state(dev,
							 VFMIG_VMM_MIG_RUNNING,
							 VFMIG_VMM_MIG_ERROR,
							 &fin), 0);
		vfmig_vmm_dev_close(dev);
		finish(&s);
		if (p[0] >= 0)
			close(p[0]);
		close(p[1]);
	}
}

/* A device that leaves the key out: no channel, MIG_DATA_READ as ever. */
static void s_dc_fallback(int fd)
{
	struct vfw_caps proposal;

	srv_version_caps(fd, 0, 2,
			 "{\"capabilities\":{\"max_data_xfer_size\":4096}}",
			 0, &proposal);
	CHECK(proposal.data_channel_version == VFW_DATA_CHANNEL_VERSION);
	srv_set_state(fd, VFW_MIG_STATE_STOP_COPY, 0);
	srv_get_state(fd, VFW_MIG_STATE_STOP_COPY);
	srv_data(fd, 4096, 'a');
	srv_data(fd, 7, 'b');
	srv_expect_eof(fd);
}

/* The opts flag: the key is not even proposed. */
static void s_dc_off(int fd)
{
	struct vfw_caps proposal;

	srv_version_caps(fd, 0, 2, DC_JSON, 0, &proposal);
	CHECK(proposal.data_channel_version == 0);
	srv_expect_eof(fd);
}

static void test_dc_fallback(void **state)
{
	struct vfmig_vmm_mig_save_result res;
	static struct sink k;
	struct vfmig_vmm_caps caps;
	struct session s;
	uint32_t fin;

	(void)state;
	vfmig_vmm_dev *dev = open_dev(&s, s_dc_fallback, 0);
	assert_int_equal(vfmig_vmm_dev_get_caps(dev, &caps), 0);
	assert_int_equal(caps.data_channel_version, 0);
	assert_int_equal(vfmig_vmm_mig_set_state(dev, VFMIG_VMM_MIG_STOP_COPY,
						 VFMIG_VMM_MIG_RUNNING, &fin),
			 0);
	assert_int_equal(vfmig_vmm_mig_save(dev, 0, sink_fn, &k, &res), 0);
	assert_int_equal(res.status, VFMIG_VMM_MIG_SAVE_END);
	assert_int_equal(res.bytes, 4096 + 7);
	vfmig_vmm_dev_close(dev);
	finish(&s);

	/* A device that echoes the key unasked is a protocol error. */
	struct vfmig_vmm_dev_opts off = opts;
	off.flags = VFMIG_VMM_OPT_NO_DATA_CHANNEL;
	s = start(s_dc_off);
	dev = NULL;
	assert_int_equal(vfmig_vmm_dev_adopt_fd(s.fd, &off, &dev), -EPROTO);
	finish(&s);
	off.flags = 1u << 7; /* unknown flag */
	assert_int_equal(vfmig_vmm_dev_adopt_fd(-1, &off, &dev), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ext_on),
		cmocka_unit_test(test_ext_off),
		cmocka_unit_test(test_ext_bad),
		cmocka_unit_test(test_discover_blockers),
		cmocka_unit_test(test_discover_full),
		cmocka_unit_test(test_state_lies),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_save),
		cmocka_unit_test(test_dc_hostile),
		cmocka_unit_test(test_dc_sealed),
		cmocka_unit_test(test_dc_fallback),
		cmocka_unit_test(test_dma_log_start),
		cmocka_unit_test(test_dma_log_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
