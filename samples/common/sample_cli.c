/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample_cli.h"
#include "access_opts.h"

static volatile sig_atomic_t stop_flag;

/* Match "--name VAL" or "--name=VAL"; advances *i past a separate VAL. */
static int opt_value(const struct sample_cli *c, int argc, char **argv,
		     int *i, const char *name, const char **val)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n))
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n])
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "%s: option %s needs a value\n", c->name, name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

/* Try the common value options, then the sample's own. */
static int match_value(struct sample_cli *c, int argc, char **argv, int *i)
{
	static const char *const names[] = { "--socket-path", "--fd",
					     "--interface", "--socket-mode",
					     "--allow-uid" };
	const char **slots[] = { &c->socket_path, &c->fd, &c->interface,
				 &c->socket_mode, &c->allow_uid };
	int m = 0;

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && m == 0; k++)
		m = opt_value(c, argc, argv, i, names[k], slots[k]);
	for (size_t k = 0; k < c->n_extra && m == 0; k++)
		m = opt_value(c, argc, argv, i, c->extra_names[k],
			      &c->extra_vals[k]);
	return m;
}

int sample_cli_parse(struct sample_cli *c, int argc, char **argv)
{
	char err[160];

	c->verbosity = VFMIG_LOG_INFO;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quiet")) {
			c->verbosity = VFMIG_LOG_ERR;
			continue;
		}
		if (!strcmp(argv[i], "--verbose")) {
			c->verbosity = VFMIG_LOG_DEBUG;
			continue;
		}
		size_t f;
		for (f = 0; f < c->n_flags; f++)
			if (!strcmp(argv[i], c->flag_names[f]))
				break;
		if (f < c->n_flags) {
			c->flag_vals[f] = true;
			continue;
		}
		int m = match_value(c, argc, argv, &i);
		if (m < 0)
			return -1;
		if (m == 0) {
			fprintf(stderr, "%s: unknown argument '%s'\n", c->name,
				argv[i]);
			return -1;
		}
	}
	if (!!c->socket_path == !!c->fd) {
		fprintf(stderr, "%s: give exactly one of --socket-path PATH "
				"or --fd N (%s)\n",
			c->name, c->socket_path ? "both given" : "neither given");
		return -1;
	}
	if (c->socket_mode && !c->socket_path) {
		fprintf(stderr, "%s: --socket-mode is for --socket-path (the "
				"socket of --fd N is not ours to chmod)\n",
			c->name);
		return -1;
	}
	if (c->socket_mode &&
	    access_opts_parse_mode(c->socket_mode, &c->mode, err,
				   sizeof(err)) < 0) {
		fprintf(stderr, "%s: --socket-mode: %s\n", c->name, err);
		return -1;
	}
	if (c->allow_uid &&
	    access_opts_parse_uids(c->allow_uid, c->uids, ACCESS_OPTS_MAX_UIDS,
				   &c->n_uids, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: --allow-uid: %s\n", c->name, err);
		return -1;
	}
	if (c->interface && strcmp(c->interface, "v2") &&
	    strcmp(c->interface, "region")) {
		fprintf(stderr, "%s: --interface %s: unknown interface "
				"(v2 or region)\n",
			c->name, c->interface);
		return -1;
	}
	return 0;
}

static int parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 1 << 20)
		return -1;
	return (int)v;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* The loop of sample_cli_serve_wake: the device's fds, its data channel
 * and wake_fd, at most 100 ms per wait so that a signal is seen. */
static int wake_loop(vfmig_dev *dev, int wake_fd,
		     void (*on_wake)(vfmig_dev *, void *), void *priv)
{
	while (!stop_flag) {
		struct pollfd p[3 + VFMIG_DEV_MAX_IOEVENTFDS] = {
			{ .fd = wake_fd, .events = POLLIN }
		};
		int n = 1, t = vfmig_dev_get_poll_timeout(dev);
		int fd = vfmig_dev_get_poll_fd(dev);
		int iofds[VFMIG_DEV_MAX_IOEVENTFDS];
		int nio = vfmig_dev_get_ioeventfd_fds(dev, iofds,
						      VFMIG_DEV_MAX_IOEVENTFDS);
		uint64_t cnt;

		if (fd < 0)
			return fd == -ENOTCONN ? 0 : fd;
		p[n++] = (struct pollfd){ fd, (short)vfmig_dev_get_poll_events(dev), 0 };
		fd = vfmig_dev_get_data_fd(dev);
		if (fd >= 0)
			p[n++] = (struct pollfd){
				fd, (short)vfmig_dev_get_data_events(dev), 0
			};
		for (int i = 0; i < nio; i++)
			p[n++] = (struct pollfd){ iofds[i], POLLIN, 0 };
		if (t < 0 || t > 100)
			t = 100;
		if (poll(p, (nfds_t)n, t) < 0 && errno != EINTR)
			return -errno;
		if (p[0].revents & POLLIN) {
			if (read(wake_fd, &cnt, sizeof(cnt)) < 0 &&
			    errno != EAGAIN)
				return -errno;
			on_wake(dev, priv);
		}
		int r = vfmig_dev_process(dev);
		if (r < 0)
			return r;
	}
	return 0;
}

static int serve(vfmig_dev *dev, const struct sample_cli *c, int wake_fd,
		 void (*on_wake)(vfmig_dev *, void *), void *priv);

int sample_cli_serve(vfmig_dev *dev, const struct sample_cli *c)
{
	return serve(dev, c, -1, NULL, NULL);
}

int sample_cli_serve_wake(vfmig_dev *dev, const struct sample_cli *c,
			  int wake_fd, void (*on_wake)(vfmig_dev *, void *),
			  void *priv)
{
	return serve(dev, c, wake_fd, on_wake, priv);
}

static int serve(vfmig_dev *dev, const struct sample_cli *c, int wake_fd,
		 void (*on_wake)(vfmig_dev *, void *), void *priv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	int r, fd;

	if (c->interface && !strcmp(c->interface, "region")) {
		r = vfmig_dev_set_mig_interface(dev, VFMIG_DEV_MIG_IFACE_REGION);
		if (r < 0) {
			fprintf(stderr, "%s: --interface region: %s\n", c->name,
				vfmig_dev_strerror(r));
			return r == -EINVAL ? 2 : 1;
		}
	}
	if (c->n_uids) {
		r = vfmig_dev_set_allowed_uids(dev, c->uids, c->n_uids);
		if (r < 0) {
			fprintf(stderr, "%s: --allow-uid: %s\n", c->name,
				vfmig_dev_strerror(r));
			return 1;
		}
	}
	if (c->socket_path) {
		struct vfmig_dev_listen_opts lo = {
			.version = VFMIG_DEV_LISTEN_OPTS_VERSION,
			.mode = c->mode,
		};
		r = vfmig_dev_listen_ex(dev, c->socket_path, &lo);
	} else {
		fd = parse_fd(c->fd);
		if (fd < 0) {
			fprintf(stderr, "%s: --fd '%s' is not a valid fd\n",
				c->name, c->fd);
			return 2;
		}
		r = vfmig_dev_attach_fd(dev, fd);
	}
	if (r < 0) {
		fprintf(stderr, "%s: cannot use %s: %s\n", c->name,
			c->socket_path ? c->socket_path : c->fd,
			vfmig_dev_strerror(r));
		return 1;
	}
	stop_flag = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	r = wake_fd >= 0 ? wake_loop(dev, wake_fd, on_wake, priv)
			 : vfmig_dev_run(dev, &stop_flag);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", c->name, vfmig_dev_strerror(r));
		return 1;
	}
	return 0;
}
