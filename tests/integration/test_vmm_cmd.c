/* SPDX-License-Identifier: MIT */
/*
 * `vfmig vmm` as a real process with real `vfmig device regs` processes,
 * driven over its JSON control socket: run state, the guest driver's
 * progress and verification, stop/cont with their events, malformed
 * requests, incoming mode, quit and SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MAX_DEVS 2

struct fx {
	pid_t dev_pid[MAX_DEVS];
	unsigned int ndevs;
	pid_t vmm_pid;
	char ctl_path[108]; /* sun_path */
	int fd;
	char buf[1 << 17];
	size_t len;
};

static pid_t vmm_children[16];

static void kill_vmms(void)
{
	for (size_t i = 0; i < 16; i++)
		if (vmm_children[i] > 0) {
			kill(vmm_children[i], SIGKILL);
			waitpid(vmm_children[i], NULL, 0);
		}
}

static void remember(pid_t pid, bool add)
{
	for (size_t i = 0; i < 16; i++)
		if (add ? vmm_children[i] == 0 : vmm_children[i] == pid) {
			vmm_children[i] = add ? pid : 0;
			return;
		}
}

/* Sleep ms, times harness_patience(): every wait here is for the VMM and
 * its guest to get something done. */
static void msleep(int ms)
{
	ms *= harness_patience();
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Start `vfmig vmm` with the given extra arguments (NULL-terminated). */
static pid_t spawn_vmm(struct fx *f, const char *const *extra)
{
	static int n;
	const char *bin = getenv("VFMIG");
	const char *argv[40];
	char devs[MAX_DEVS][256], log[256], name[32];
	size_t k = 0;
	pid_t pid;

	snprintf(name, sizeof(name), "vmm%d.log", n);
	snprintf(log, sizeof(log), "%s", harness_path(name));
	snprintf(name, sizeof(name), "ctl%d.sock", n++);
	snprintf(f->ctl_path, sizeof(f->ctl_path), "%s", harness_path(name));
	argv[k++] = bin;
	argv[k++] = "vmm";
	for (unsigned int i = 0; i < f->ndevs; i++) {
		snprintf(name, sizeof(name), "dev%d-%u.sock", n - 1, i);
		snprintf(devs[i], sizeof(devs[i]), "%s", harness_path(name));
		argv[k++] = "--device";
		argv[k++] = devs[i];
	}
	argv[k++] = "--control";
	argv[k++] = f->ctl_path;
	argv[k++] = "--ram";
	argv[k++] = "8M";
	argv[k++] = "--guest-interval-us";
	argv[k++] = "500";
	for (size_t i = 0; extra && extra[i]; i++)
		argv[k++] = extra[i];
	argv[k] = NULL;

	for (unsigned int i = 0; i < f->ndevs; i++) {
		f->dev_pid[i] = harness_spawn_device("regs", devs[i], NULL);
		if (f->dev_pid[i] < 0)
			return -1;
	}
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	remember(pid, true);
	for (int i = 0; i < 500; i++) {
		struct stat st;
		if (stat(f->ctl_path, &st) == 0 && S_ISSOCK(st.st_mode))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			remember(pid, false);
			fprintf(stderr, "vmm exited early; log in %s\n", log);
			return -1;
		}
		msleep(10);
	}
	return -1;
}

/* Read one line (without '\n') within 5 s (times harness_patience());
 * NULL on timeout/EOF. The
 * returned string is valid until the next call. */
static char *read_line(struct fx *f)
{
	static char line[1 << 17];

	for (;;) {
		char *nl = memchr(f->buf, '\n', f->len);
		if (nl) {
			size_t n = (size_t)(nl - f->buf);
			memcpy(line, f->buf, n);
			line[n] = '\0';
			memmove(f->buf, nl + 1, f->len - n - 1);
			f->len -= n + 1;
			return line;
		}
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		if (poll(&p, 1, 5000 * harness_patience()) != 1)
			return NULL;
		ssize_t r = read(f->fd, f->buf + f->len, sizeof(f->buf) - f->len);
		if (r <= 0)
			return NULL;
		f->len += (size_t)r;
	}
}

static struct json_object *read_json(struct fx *f)
{
	char *l = read_line(f);
	return l ? json_tokener_parse(l) : NULL;
}

static void send_raw(struct fx *f, const char *s)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t n = write(f->fd, s + off, len - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* Send a request line and return the next reply (events skipped). */
static struct json_object *call(struct fx *f, const char *req)
{
	char line[512];

	snprintf(line, sizeof(line), "%s\n", req);
	send_raw(f, line);
	for (;;) {
		struct json_object *o = read_json(f), *ev;
		assert_non_null(o);
		if (!json_object_object_get_ex(o, "event", &ev))
			return o;
		json_object_put(o);
	}
}

/* Expect an event named name as the next line. MIGRATION events come
 * from the migration thread whenever it gets there (an --incoming VMM's
 * failed file read, say), so they may come first and are passed over
 * unless they are the one expected. */
static void expect_event(struct fx *f, const char *name)
{
	struct json_object *o, *ev, *ts;

	for (;;) {
		o = read_json(f);
		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "event", &ev));
		if (!strcmp(name, "MIGRATION") ||
		    strcmp(json_object_get_string(ev), "MIGRATION") != 0)
			break;
		json_object_put(o);
	}
	assert_string_equal(json_object_get_string(ev), name);
	assert_true(json_object_object_get_ex(o, "timestamp", &ts));
	json_object_put(o);
}

static struct json_object *ret_of(struct json_object *reply)
{
	struct json_object *r;
	if (!json_object_object_get_ex(reply, "return", &r)) {
		fprintf(stderr, "not a return: %s\n",
			json_object_to_json_string(reply));
		fail();
	}
	return r;
}

static const char *error_class(struct json_object *reply, const char **desc)
{
	struct json_object *e, *c, *d;
	if (!json_object_object_get_ex(reply, "error", &e) ||
	    !json_object_object_get_ex(e, "class", &c) ||
	    !json_object_object_get_ex(e, "desc", &d))
		return NULL;
	if (desc)
		*desc = json_object_get_string(d);
	return json_object_get_string(c);
}

static const char *status_of(struct fx *f)
{
	static char s[32];
	struct json_object *o = call(f, "{\"execute\": \"query-status\"}"), *st;
	assert_true(json_object_object_get_ex(ret_of(o), "status", &st));
	snprintf(s, sizeof(s), "%s", json_object_get_string(st));
	json_object_put(o);
	return s;
}

/* migration_state of device 0 per query-devices. */
static const char *dev_state(struct fx *f)
{
	static char s[32];
	struct json_object *o = call(f, "{\"execute\": \"query-devices\"}");
	struct json_object *devs, *d, *v;

	assert_true(json_object_object_get_ex(ret_of(o), "devices", &devs));
	d = json_object_array_get_idx(devs, 0);
	assert_non_null(d);
	assert_true(json_object_object_get_ex(d, "migratable", &v));
	assert_true(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(d, "migration_state", &v));
	snprintf(s, sizeof(s), "%s", json_object_get_string(v));
	json_object_put(o);
	return s;
}

struct guest {
	char state[32];
	uint64_t iterations, stamps;
	uint64_t doorbells[MAX_DEVS], fills[MAX_DEVS], raised[MAX_DEVS],
		received[MAX_DEVS];
	unsigned int ndevs;
	bool verified;
	char verify[320];
};

static uint64_t u64_of(struct json_object *o, const char *key)
{
	struct json_object *v;
	assert_true(json_object_object_get_ex(o, key, &v));
	return (uint64_t)json_object_get_int64(v);
}

static void query_guest(struct fx *f, struct guest *g)
{
	struct json_object *o = call(f, "{\"execute\": \"query-guest\"}");
	struct json_object *r = ret_of(o), *v, *devs;

	memset(g, 0, sizeof(*g));
	assert_true(json_object_object_get_ex(r, "state", &v));
	snprintf(g->state, sizeof(g->state), "%s", json_object_get_string(v));
	g->iterations = u64_of(r, "iterations");
	g->stamps = u64_of(r, "ram_stamps");
	assert_true(json_object_object_get_ex(r, "verified", &v));
	g->verified = json_object_get_boolean(v);
	assert_true(json_object_object_get_ex(r, "verify", &v));
	snprintf(g->verify, sizeof(g->verify), "%s", json_object_get_string(v));
	assert_true(json_object_object_get_ex(r, "devices", &devs));
	g->ndevs = (unsigned int)json_object_array_length(devs);
	for (unsigned int i = 0; i < g->ndevs && i < MAX_DEVS; i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		g->doorbells[i] = u64_of(d, "doorbells");
		g->fills[i] = u64_of(d, "fills");
		g->raised[i] = u64_of(d, "irq_raised");
		g->received[i] = u64_of(d, "irq_received");
	}
	json_object_put(o);
}

static int connect_ctl(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct json_object *hello, *v;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->ctl_path);
	/* The control socket file appears only once it listens: one connect
	 * attempt must do. */
	f->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->fd < 0 || connect(f->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "connect %s: %s\n", f->ctl_path, strerror(errno));
		return -1;
	}
	f->len = 0;
	hello = read_json(f);
	if (!hello || !json_object_object_get_ex(hello, "vfmig", &v)) {
		fprintf(stderr, "no greeting on %s\n", f->ctl_path);
		json_object_put(hello);
		return -1;
	}
	json_object_put(hello);
	return 0;
}

static int teardown(void **state);

static int start(void **state, unsigned int ndevs, const char *const *extra)
{
	struct fx *f = calloc(1, sizeof(*f));

	*state = f;
	f->fd = -1;
	f->ndevs = ndevs;
	f->vmm_pid = spawn_vmm(f, extra);
	if (f->vmm_pid < 0 || connect_ctl(f) < 0) {
		/* cmocka skips the teardown of a failed setup. */
		teardown(state);
		return -1;
	}
	return 0;
}

static int setup1(void **state)
{
	return start(state, 1, NULL);
}

static int setup2(void **state)
{
	return start(state, 2, NULL);
}

static int setup_incoming(void **state)
{
	static const char *const extra[] = { "--incoming", "file:/nonexistent",
					     NULL };
	return start(state, 1, extra);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int rc = 0;

	if (f->fd >= 0)
		close(f->fd);
	if (f->vmm_pid > 0) {
		/* Every test ends with a clean SIGTERM exit (no crash, no
		 * sanitizer report). */
		int st = harness_stop(f->vmm_pid);
		remember(f->vmm_pid, false);
		if (st != 0) {
			fprintf(stderr, "vmm exit status %d\n", st);
			rc = -1;
		}
	}
	for (unsigned int i = 0; i < f->ndevs; i++)
		harness_stop(f->dev_pid[i]);
	free(f);
	return rc;
}

/* ---- tests ---- */

static void test_status_running(void **state)
{
	struct fx *f = *state;
	assert_string_equal(dev_state(f), "RUNNING");
	struct json_object *o = call(f, "{\"execute\": \"query-status\"}"), *v;

	assert_true(json_object_object_get_ex(ret_of(o), "running", &v));
	assert_true(json_object_get_boolean(v));
	json_object_put(o);
	assert_string_equal(status_of(f), "running");
}

/* The driver keeps going, and everything it checks holds. */
static void test_guest_progress(void **state)
{
	struct fx *f = *state;
	struct guest a, b;

	query_guest(f, &a);
	msleep(300);
	query_guest(f, &b);
	assert_string_equal(b.state, "running");
	assert_true(b.iterations > a.iterations + 10);
	assert_true(b.stamps > a.stamps);
	assert_true(b.doorbells[0] > a.doorbells[0]);
	assert_true(b.fills[0] > a.fills[0]);
	assert_true(b.raised[0] > a.raised[0]);
	assert_int_equal(b.raised[0], b.received[0]);
	if (!b.verified)
		fprintf(stderr, "verify: %s\n", b.verify);
	assert_true(b.verified);
	assert_string_equal(b.verify, "ok");
}

/* stop freezes the guest and its devices; cont resumes both. */
static void test_stop_cont(void **state)
{
	struct fx *f = *state;
	struct guest a, b, c;
	struct json_object *o;

	o = call(f, "{\"execute\": \"stop\"}");
	ret_of(o);
	json_object_put(o);
	expect_event(f, "STOP");
	assert_string_equal(status_of(f), "paused");
	assert_string_equal(dev_state(f), "STOP");
	query_guest(f, &a);
	assert_string_equal(a.state, "paused");
	assert_true(a.verified); /* device COUNTER == ledger doorbells */
	msleep(300);
	query_guest(f, &b);
	assert_true(b.iterations == a.iterations);
	assert_true(b.doorbells[0] == a.doorbells[0]);
	assert_true(b.stamps == a.stamps);
	assert_true(b.verified); /* so COUNTER did not move either */

	/* stop again: nothing to do, no event. */
	o = call(f, "{\"execute\": \"stop\"}");
	ret_of(o);
	json_object_put(o);

	o = call(f, "{\"execute\": \"cont\", \"id\": 42}");
	struct json_object *id;
	assert_true(json_object_object_get_ex(o, "id", &id));
	assert_int_equal(json_object_get_int(id), 42);
	ret_of(o);
	json_object_put(o);
	expect_event(f, "RESUME");
	assert_string_equal(status_of(f), "running");
	assert_string_equal(dev_state(f), "RUNNING");
	msleep(200);
	query_guest(f, &c);
	assert_string_equal(c.state, "running");
	assert_true(c.iterations > b.iterations);
	assert_true(c.doorbells[0] > b.doorbells[0]);
	assert_true(c.verified);
}

static void expect_error(struct fx *f, const char *req, const char *cls,
			 const char *needle)
{
	struct json_object *o = call(f, req);
	const char *desc = NULL;
	const char *c = error_class(o, &desc);

	if (!c || strcmp(c, cls) || !strstr(desc, needle)) {
		fprintf(stderr, "%s -> %s\n", req, json_object_to_json_string(o));
		fail();
	}
	json_object_put(o);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;

	expect_error(f, "{bad", "GenericError", "malformed JSON");
	expect_error(f, "{\"execute\": \"query-status\"} x", "GenericError",
		     "extra text");
	expect_error(f, "[1, 2]", "GenericError", "not a JSON object");
	expect_error(f, "{\"arguments\": {}}", "GenericError", "execute");
	expect_error(f, "{\"execute\": 7}", "GenericError", "execute");
	expect_error(f, "{\"execute\": \"no-such\"}", "CommandNotFound",
		     "no-such");
	expect_error(f, "{\"execute\": \"stop\", \"arguments\": {\"x\": 1}}",
		     "GenericError", "unexpected argument 'x'");
	expect_error(f, "{\"execute\": \"stop\", \"arguments\": 3}",
		     "GenericError", "arguments");
	expect_error(f, "{\"execute\": \"stop\", \"bogus\": 1}",
		     "GenericError", "bogus");
	expect_error(f, "{\"execute\": \"query-guest\", \"arguments\": "
			"{\"verify\": 1}}",
		     "GenericError", "type boolean");

	/* An over-long line is refused; the rest of it is dropped. */
	size_t big = (64u << 10) + 100;
	char *line = malloc(big + 2);
	memset(line, 'x', big);
	line[big] = '\n';
	line[big + 1] = '\0';
	send_raw(f, line);
	free(line);
	struct json_object *o = read_json(f);
	const char *desc = NULL;
	assert_non_null(o);
	assert_string_equal(error_class(o, &desc), "GenericError");
	assert_non_null(strstr(desc, "longer than"));
	json_object_put(o);

	/* Still usable, and in sync: exactly one reply per request. */
	assert_string_equal(status_of(f), "running");
	o = call(f, "{\"execute\": \"query-guest\", \"arguments\": "
		    "{\"verify\": false}}");
	ret_of(o);
	json_object_put(o);
	assert_string_equal(status_of(f), "running");
}

/* The command table is what query-commands lists. */
static void test_query_commands(void **state)
{
	static const char *const want[] = { "query-status", "stop", "cont",
					    "query-guest", "query-devices",
					    "query-commands", "quit",
					    "migrate", "migrate-set-parameters",
					    "migrate-cancel",
					    "query-migrate" };
	struct fx *f = *state;
	struct json_object *o = call(f, "{\"execute\": \"query-commands\"}");
	struct json_object *cmds;

	assert_true(json_object_object_get_ex(ret_of(o), "commands", &cmds));
	assert_int_equal(json_object_array_length(cmds),
			 sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct json_object *c = json_object_array_get_idx(cmds, i), *n;
		assert_true(json_object_object_get_ex(c, "name", &n));
		assert_string_equal(json_object_get_string(n), want[i]);
	}
	json_object_put(o);
}

/* Two devices, both driven; a second client sees the events too. */
static void test_two_devices(void **state)
{
	struct fx *f = *state;
	struct guest a, b;
	struct fx *f2 = calloc(1, sizeof(*f2));
	struct json_object *o;

	query_guest(f, &a);
	msleep(300);
	query_guest(f, &b);
	assert_int_equal(b.ndevs, 2);
	for (unsigned int i = 0; i < 2; i++) {
		assert_true(b.doorbells[i] > a.doorbells[i]);
		assert_int_equal(b.raised[i], b.received[i]);
	}
	assert_true(b.verified);

	snprintf(f2->ctl_path, sizeof(f2->ctl_path), "%s", f->ctl_path);
	assert_int_equal(connect_ctl(f2), 0);
	o = call(f, "{\"execute\": \"stop\"}");
	ret_of(o);
	json_object_put(o);
	expect_event(f, "STOP");
	expect_event(f2, "STOP");
	o = call(f2, "{\"execute\": \"cont\"}");
	ret_of(o);
	json_object_put(o);
	expect_event(f2, "RESUME");
	expect_event(f, "RESUME");
	close(f2->fd);
	free(f2);
}

/* Incoming: the guest waits; stop is refused; cont starts it. */
static void test_incoming(void **state)
{
	struct fx *f = *state;
	struct guest a, b;

	assert_string_equal(status_of(f), "incoming");
	query_guest(f, &a);
	assert_string_equal(a.state, "not-started");
	assert_int_equal(a.iterations, 0);
	assert_false(a.verified); /* no ledger in RAM yet */
	expect_error(f, "{\"execute\": \"stop\"}", "GenericError",
		     "incoming migration");
	struct json_object *o = call(f, "{\"execute\": \"cont\"}");
	ret_of(o);
	json_object_put(o);
	expect_event(f, "RESUME");
	msleep(300);
	query_guest(f, &b);
	assert_string_equal(b.state, "running");
	assert_true(b.iterations > 10);
	assert_true(b.verified);
}

static void test_quit(void **state)
{
	struct fx *f = *state;
	struct json_object *o = call(f, "{\"execute\": \"quit\"}");
	int status = -1;

	ret_of(o);
	json_object_put(o);
	for (int i = 0; i < 500; i++) {
		if (waitpid(f->vmm_pid, &status, WNOHANG) == f->vmm_pid)
			break;
		msleep(10);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	remember(f->vmm_pid, false);
	f->vmm_pid = -1;
	struct stat st;
	assert_int_not_equal(stat(f->ctl_path, &st), 0); /* socket removed */
}

static void test_sigterm(void **state)
{
	struct fx *f = *state;
	struct stat st;

	assert_int_equal(harness_stop(f->vmm_pid), 0);
	remember(f->vmm_pid, false);
	f->vmm_pid = -1;
	assert_int_not_equal(stat(f->ctl_path, &st), 0);
	/* The devices are still fine after the VMM left. */
	for (unsigned int i = 0; i < f->ndevs; i++) {
		assert_int_equal(harness_stop(f->dev_pid[i]), 0);
		f->dev_pid[i] = -1;
	}
}

static void test_bad_command_line(void **state)
{
	const char *bin = getenv("VFMIG");
	char cmd[512];
	(void)state;

	/* Usage errors exit 2; a missing device exits 1. */
	snprintf(cmd, sizeof(cmd), "'%s' vmm 2>/dev/null", bin);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "'%s' vmm --device x --ram 12Q 2>/dev/null",
		 bin);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "'%s' vmm --device x --fill 12Q 2>/dev/null",
		 bin);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	/* An incoming VM's RAM comes from the migration. */
	snprintf(cmd, sizeof(cmd),
		 "'%s' vmm --device x --incoming unix:x --fill all 2>/dev/null",
		 bin);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd),
		 "'%s' vmm --device %s 2>/dev/null", bin,
		 harness_path("missing.sock"));
	assert_int_equal(WEXITSTATUS(system(cmd)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_running, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_guest_progress, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_cont, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_query_commands, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_two_devices, setup2,
						teardown),
		cmocka_unit_test_setup_teardown(test_incoming, setup_incoming,
						teardown),
		cmocka_unit_test_setup_teardown(test_quit, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm, setup1, teardown),
		cmocka_unit_test(test_bad_command_line),
	};

	signal(SIGPIPE, SIG_IGN);
	atexit(kill_vmms);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
