/* SPDX-License-Identifier: MIT */
/*
 * Integration: a device listening on a UNIX socket path (vfmig_dev_run on a
 * thread of this process, public API only) while one client is attached.
 * A second client, raw or through the VMM library, must see its connection
 * closed at once instead of waiting for a reply; the device logs one
 * warning per refused client; the first client keeps working, and once it
 * leaves the next client is served.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfmig/device.h>
#include <vfmig/vmm.h>

#define FAST_MS 1000  /* "at once": well under any reply timeout */
#define REPLY_MS 5000 /* the VMM client's reply timeout in this test */

static const char refusal[] = "refused a second client";

struct fx {
	char dir[64], path[128];
	vfmig_dev *dev;
	pthread_t thread;
	volatile sig_atomic_t stop;
	pthread_mutex_t lock;
	int refusals; /* warnings naming a refused client */
	int serve_rc;
	bool vmm_said_why; /* the VMM library logged the early close */
};

static int t_access(vfmig_dev *dev, void *priv, unsigned int bar,
		    uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off;
	if (!is_write)
		memset(buf, 0x5a, len);
	return 0;
}

static void on_log(void *priv, int level, const char *msg)
{
	struct fx *f = priv;

	if (!strstr(msg, refusal))
		return;
	pthread_mutex_lock(&f->lock);
	if (level == VFMIG_LOG_WARNING)
		f->refusals++;
	pthread_mutex_unlock(&f->lock);
}

static int refusals(struct fx *f)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->refusals;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void *serve(void *arg)
{
	struct fx *f = arg;

	f->serve_rc = vfmig_dev_run(f->dev, &f->stop);
	return NULL;
}

static int setup(void **state)
{
	static const struct vfmig_dev_ops ops = {
		.version = VFMIG_DEV_OPS_VERSION,
		.region_access = t_access,
	};
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION,
				    .vendor_id = 0x1b36,
				    .device_id = 0x1234 };
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	d.bars[0] = (struct vfmig_dev_bar){ .size = 4096 };
	pthread_mutex_init(&f->lock, NULL);
	strcpy(f->dir, "/tmp/vfmig-second-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/dev.sock", f->dir);
	assert_int_equal(vfmig_dev_create(&d, &ops, f, &f->dev), 0);
	vfmig_dev_set_log(f->dev, on_log, f, VFMIG_LOG_DEBUG);
	assert_int_equal(vfmig_dev_listen(f->dev, f->path), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	f->stop = 1;
	pthread_join(f->thread, NULL);
	assert_int_equal(f->serve_rc, 0);
	vfmig_dev_destroy(f->dev);
	rmdir(f->dir);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The VMM library's log: did it say why the connection ended? */
static void on_vmm_log(void *priv, int level, const char *msg)
{
	if (level == VFMIG_LOG_ERR &&
	    strstr(msg, "closed the connection before answering VERSION"))
		*(bool *)priv = true;
}

static vfmig_vmm_dev *vmm_connect(struct fx *f, int *err)
{
	struct vfmig_vmm_dev_opts o = { .version = VFMIG_VMM_OPTS_VERSION,
					.log_fn = on_vmm_log,
					.log_priv = &f->vmm_said_why,
					.log_level = VFMIG_LOG_ERR,
					.reply_timeout_ms = REPLY_MS };
	vfmig_vmm_dev *c = NULL;

	*err = vfmig_vmm_dev_connect(f->path, &o, &c);
	return c;
}

/* The client works: IDs from config space, a BAR0 read. */
static void check_works(vfmig_vmm_dev *c)
{
	uint16_t ids[2];
	uint32_t v;

	assert_int_equal(vfmig_vmm_dev_region_read(c, VFMIG_VMM_PCI_CONFIG, 0,
						   ids, sizeof(ids)), 0);
	assert_int_equal(le16toh(ids[0]), 0x1b36);
	assert_int_equal(le16toh(ids[1]), 0x1234);
	assert_int_equal(vfmig_vmm_dev_region_read(c, VFMIG_VMM_PCI_BAR0, 0,
						   &v, 4), 0);
	assert_int_equal(v, 0x5a5a5a5a);
}

/* A raw connection that never sends: it must be closed within FAST_MS. */
static void raw_refused(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	assert_true(fd >= 0);
	strcpy(sa.sun_path, f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (poll(&p, 1, FAST_MS) != 1)
		fail_msg("second client not refused within %d ms", FAST_MS);
	ssize_t n = read(fd, &c, 1);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	close(fd);
}

static void test_second_client_refused(void **state)
{
	struct fx *f = *state;
	vfmig_vmm_dev *first, *second;
	int64_t t0;
	int r;

	first = vmm_connect(f, &r);
	assert_int_equal(r, 0);
	check_works(first);
	assert_false(f->vmm_said_why);

	raw_refused(f);
	/* The VMM library: its VERSION goes unanswered, the close is seen. */
	t0 = now_ms();
	second = vmm_connect(f, &r);
	assert_null(second);
	assert_int_equal(r, -ECONNRESET);
	assert_true(now_ms() - t0 < FAST_MS);
	assert_true(f->vmm_said_why);

	check_works(first);
	for (int i = 0; i < 100 && refusals(f) < 2; i++)
		usleep(10000);
	assert_int_equal(refusals(f), 2);

	/* A client that reconnects at once is not taken for a second one:
	 * its old connection is closed before the new one arrives. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(vfmig_vmm_dev_reconnect(first), 0);
		check_works(first);
	}
	assert_int_equal(refusals(f), 2);

	/* Once the first client leaves, the next one is served. */
	vfmig_vmm_dev_close(first);
	second = vmm_connect(f, &r);
	assert_int_equal(r, 0);
	check_works(second);
	vfmig_vmm_dev_close(second);
	assert_int_equal(refusals(f), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_second_client_refused,
						setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
