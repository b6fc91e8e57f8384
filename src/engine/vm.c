/* SPDX-License-Identifier: MIT */
/* The VM model: guest RAM, attached devices, run state. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/guest.h"
#include "engine/vm.h"

#define MAX_LISTENERS 8
#define MAX_IRQS 64u
#define IO_POLL_MS 100
#define BUSY_POLL_MS 5 /* a device in a call is looked at again */
#define NIRQ_KINDS 3 /* INTX, MSI, MSIX: the indexes a type may wire */

struct vm_dev {
	struct vfmig_vm *vm;
	char id[8];
	char *path;
	vfmig_vmm_dev *dev;
	struct vfmig_vmm_mig_caps caps;
	const char *type;                  /* "pci", or "unknown" */
	const struct vfmig_type_ops *ops;  /* NULL: type not registered */
	int *irq_fds[NIRQ_KINDS];          /* per IRQ index, owned */
	uint32_t nirqs[NIRQ_KINDS];
	struct vfmig_type_irq_wiring wired; /* what is bound now */
	char fault[160];                   /* "" or why the device is unusable */
	/* The library's last error message about this device, and, once
	 * its connection was found broken, the one that explains why (the
	 * library logs the cause as it breaks it). Both under state_lock. */
	char last_err[160];
	char lost[160];
};

struct listener {
	vfmig_vm_state_fn fn;
	void *priv;
};

struct vfmig_vm {
	vfmig_log_fn log_fn;
	void *log_priv;
	int log_level;
	bool test_skip_dirty; /* opts.test_skip_dirty_tracking */

	int ram_fd;
	uint8_t *ram_host;
	uint64_t ram_size; /* of the mapping */
	struct vfmig_ram ram;
	bool incoming;
	bool no_data_channel; /* VFMIG_VMM_OPT_NO_DATA_CHANNEL for each device */

	const struct vfmig_typereg *types;
	struct vm_dev devs[VFMIG_VM_MAX_DEVICES];
	unsigned int ndevs;

	struct vfmig_guest *guest;

	pthread_mutex_t op_lock;    /* serialises state operations */
	pthread_mutex_t state_lock; /* run_state, listeners */
	enum vfmig_vm_run_state run_state;
	bool guest_held; /* the run state's pause of the guest (op_lock) */
	bool migrating;  /* a migration owns the devices' states (op_lock) */
	vfmig_vm_stop_fn stop_fn; /* stop while migrating (op_lock) */
	void *stop_priv;
	struct listener listeners[MAX_LISTENERS];

	pthread_t io_thread;
	bool io_started;
	int io_stop_fd; /* eventfd: the I/O thread exits when it fires */
};

static const char *const state_names[VFMIG_VM_NUM_STATES] = {
	[VFMIG_VM_INCOMING] = "incoming",
	[VFMIG_VM_PAUSED] = "paused",
	[VFMIG_VM_RUNNING] = "running",
	[VFMIG_VM_FINISH_MIGRATE] = "finish-migrate",
	[VFMIG_VM_POSTMIGRATE] = "postmigrate",
};

const char *vfmig_vm_run_state_name(enum vfmig_vm_run_state s)
{
	if ((unsigned)s >= VFMIG_VM_NUM_STATES)
		return "invalid";
	return state_names[s];
}

void vfmig_vm_log(struct vfmig_vm *vm, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!vm->log_fn || level > vm->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vm->log_fn(vm->log_priv, level, msg);
}

#define ERRF(...)                                                              \
	do {                                                                   \
		if (err && errlen)                                             \
			snprintf(err, errlen, __VA_ARGS__);                    \
	} while (0)

bool vfmig_vm_test_skip_dirty(const struct vfmig_vm *vm)
{
	return vm->test_skip_dirty;
}

/* ---- devices ---- */

static void on_dma_write(void *priv, uint64_t iova, uint64_t len)
{
	struct vfmig_vm *vm = priv;

	/* The window is RAM at IOVA 0: IOVA is the RAM offset. */
	if (!vm->test_skip_dirty)
		vfmig_ram_mark_dirty(&vm->ram, iova, len);
}

/* The VMM library's messages about one device: named after it, and its
 * errors kept (see lost). May run with the device's mutex held: it must
 * not call the library. */
static void dev_log(void *priv, int level, const char *msg)
{
	struct vm_dev *d = priv;
	struct vfmig_vm *vm = d->vm;
	char line[600];

	if (level <= VFMIG_LOG_ERR) {
		pthread_mutex_lock(&vm->state_lock);
		snprintf(d->last_err, sizeof(d->last_err), "%s", msg);
		pthread_mutex_unlock(&vm->state_lock);
	}
	if (!vm->log_fn || level > vm->log_level)
		return;
	snprintf(line, sizeof(line), "%s: %s", d->id, msg);
	vm->log_fn(vm->log_priv, level, line);
}

/* The device's connection is broken: settle why, once (it is never
 * reconnected), and say so. Does not take the device's mutex. */
static void note_lost(struct vfmig_vm *vm, struct vm_dev *d)
{
	bool first = false;
	char cause[sizeof(d->lost)];

	pthread_mutex_lock(&vm->state_lock);
	if (!d->lost[0]) {
		snprintf(d->lost, sizeof(d->lost), "%s",
			 d->last_err[0] ? d->last_err : "the connection broke");
		first = true;
	}
	memcpy(cause, d->lost, sizeof(cause));
	pthread_mutex_unlock(&vm->state_lock);
	if (first)
		vfmig_vm_log(vm, VFMIG_LOG_ERR, "%s (%s): connection lost: %s",
			     d->id, d->path, cause);
}

/* One eventfd per vector of every index the device offers with eventfds
 * (INTx, MSI, MSI-X); which one is bound follows the wiring. */
static int make_irq_fds(struct vm_dev *d)
{
	for (uint32_t k = 0; k < NIRQ_KINDS; k++) {
		struct vfmig_vmm_irq_info ii;
		if (vfmig_vmm_dev_shadow_irq(d->dev, k, &ii) < 0 ||
		    !(ii.flags & VFMIG_VMM_IRQ_INFO_EVENTFD) || !ii.count)
			continue;
		d->nirqs[k] = ii.count < MAX_IRQS ? ii.count : MAX_IRQS;
		d->irq_fds[k] = malloc(d->nirqs[k] * sizeof(int));
		if (!d->irq_fds[k])
			return -ENOMEM;
		for (uint32_t i = 0; i < d->nirqs[k]; i++)
			d->irq_fds[k][i] = -1;
		for (uint32_t i = 0; i < d->nirqs[k]; i++) {
			d->irq_fds[k][i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (d->irq_fds[k][i] < 0)
				return -errno;
		}
	}
	return 0;
}

/* What the device's type says must be bound, from the VMM's shadow of the
 * device (no message is sent). Nothing for a type that has no opinion. */
static int wanted_wiring(struct vm_dev *d, struct vfmig_type_irq_wiring *w)
{
	char err[160] = "";
	void *state;
	int r;

	*w = (struct vfmig_type_irq_wiring){ VFMIG_VMM_IRQ_INTX, 0 };
	if (!d->ops || !d->ops->irq_wiring)
		return 0;
	state = vfmig_type_state_new(d->ops);
	if (!state)
		return -ENOMEM;
	r = d->ops->save(d->dev, state, err, sizeof(err));
	if (r == 0)
		r = d->ops->irq_wiring(state, w);
	free(state);
	return r;
}

/* Bind what the type wants, unbinding the index bound before. force: the
 * device lost its eventfds (a load, a reconnect): bind again even if the
 * wiring did not change. */
static int wire_irqs(struct vfmig_vm *vm, struct vm_dev *d, bool force)
{
	struct vfmig_type_irq_wiring w;
	uint32_t n;
	int r = wanted_wiring(d, &w);

	if (r < 0)
		return r;
	if (w.index >= NIRQ_KINDS)
		w.count = 0;
	n = w.count < d->nirqs[w.index] ? w.count : d->nirqs[w.index];
	if (!force && w.index == d->wired.index && n == d->wired.count)
		return 0;
	if (d->wired.count && (w.index != d->wired.index || !n)) {
		r = vfmig_vmm_dev_irq_disable(d->dev, d->wired.index);
		if (r < 0)
			vfmig_vm_log(vm, VFMIG_LOG_WARNING, "%s: unbinding IRQ "
				     "index %u: %s", d->id, d->wired.index,
				     vfmig_vmm_strerror(r));
	}
	d->wired = (struct vfmig_type_irq_wiring){ w.index, 0 };
	if (!n)
		return 0;
	r = vfmig_vmm_dev_set_irq_eventfds(d->dev, w.index, 0,
					   d->irq_fds[w.index], n);
	if (r < 0)
		return r;
	d->wired.count = n;
	vfmig_vm_log(vm, VFMIG_LOG_DEBUG, "%s: %u vector%s of IRQ index %u "
		     "bound", d->id, n, n == 1 ? "" : "s", w.index);
	return 0;
}

/* The device's type, from what it reports (DEVICE_GET_INFO, shadowed),
 * never from what we expect it to be. */
static void find_type(struct vfmig_vm *vm, struct vm_dev *d)
{
	struct vfmig_vmm_dev_info info;

	d->type = "unknown";
	if (vfmig_vmm_dev_shadow_info(d->dev, &info) == 0 &&
	    (info.flags & VFMIG_VMM_DEV_FLAG_PCI))
		d->type = "pci";
	d->ops = vfmig_typereg_find(vm->types, d->type);
}

/*
 * A device an earlier client left in ERROR (or any state but RUNNING) is
 * reset, or moved to RUNNING, and must then say RUNNING; otherwise it is
 * refused. Region-interface devices track their state on our side only.
 */
static int check_mig_state(struct vm_dev *d, char *err, size_t errlen)
{
	uint32_t st, final;
	int r;

	if (vfmig_vmm_mig_interface(d->dev) != VFMIG_VMM_MIG_IFACE_V2)
		return 0;
	r = vfmig_vmm_mig_get_state(d->dev, &st);
	if (r < 0) {
		ERRF("%s (%s): reading its migration state: %s", d->id,
		     d->path, vfmig_vmm_strerror(r));
		return r;
	}
	if (st == VFMIG_VMM_MIG_RUNNING)
		return 0;
	if (st == VFMIG_VMM_MIG_ERROR)
		r = vfmig_vmm_dev_reset(d->dev);
	else
		r = vfmig_vmm_mig_set_state(d->dev, VFMIG_VMM_MIG_RUNNING,
					    VFMIG_VMM_MIG_ERROR, &final);
	if (r == 0)
		r = vfmig_vmm_mig_get_state(d->dev, &final);
	if (r == 0 && final == VFMIG_VMM_MIG_RUNNING)
		return 0;
	ERRF("%s (%s): the device was left in %s by an earlier client and "
	     "%s did not bring it back to RUNNING (%s)", d->id, d->path,
	     vfmig_vmm_mig_state_name(st),
	     st == VFMIG_VMM_MIG_ERROR ? "a reset" : "a state change",
	     r < 0 ? vfmig_vmm_strerror(r) : vfmig_vmm_mig_state_name(final));
	return r < 0 ? r : -EIO;
}

static int attach(struct vfmig_vm *vm, unsigned int i, const char *path,
		  char *err, size_t errlen)
{
	struct vm_dev *d = &vm->devs[i];
	struct vfmig_vmm_dev_opts o = {
		.version = VFMIG_VMM_OPTS_VERSION,
		/* Errors always reach dev_log: they explain a lost device. */
		.log_fn = dev_log,
		.log_priv = d,
		.log_level = vm->log_level > VFMIG_LOG_ERR ? vm->log_level
							   : VFMIG_LOG_ERR,
		.on_dma_write = on_dma_write,
		.priv = vm,
		.flags = vm->no_data_channel ? VFMIG_VMM_OPT_NO_DATA_CHANNEL : 0,
	};
	int r;

	d->vm = vm;
	snprintf(d->id, sizeof(d->id), "dev%u", i);
	d->path = strdup(path);
	if (!d->path)
		return -ENOMEM;
	r = vfmig_vmm_dev_connect(path, &o, &d->dev);
	if (r < 0) {
		ERRF("%s (%s): connect: %s", d->id, path,
		     vfmig_vmm_strerror(r));
		return r;
	}
	r = vfmig_vmm_mig_discover(d->dev, &d->caps);
	if (r < 0) {
		ERRF("%s (%s): migration discovery: %s", d->id, path,
		     vfmig_vmm_strerror(r));
		return r;
	}
	if (!d->caps.migratable)
		vfmig_vm_log(vm, VFMIG_LOG_WARNING,
			     "%s: migration blocked: %s", d->id,
			     d->caps.blocker);
	r = check_mig_state(d, err, errlen);
	if (r < 0)
		return r;
	/* While it runs: what the VMM will save of it once it stopped. */
	r = vfmig_vmm_dev_shadow_capture(d->dev);
	if (r < 0) {
		ERRF("%s (%s): reading its description and config space: %s",
		     d->id, path, vfmig_vmm_strerror(r));
		return r;
	}
	find_type(vm, d);
	r = vfmig_vm_remap_ram(vm, i);
	if (r < 0) {
		ERRF("%s (%s): DMA_MAP of guest RAM: %s", d->id, path,
		     vfmig_vmm_strerror(r));
		return r;
	}
	r = make_irq_fds(d);
	if (r == 0)
		r = wire_irqs(vm, d, true);
	if (r < 0) {
		ERRF("%s (%s): interrupt eventfds: %s", d->id, path,
		     vfmig_vmm_strerror(r));
		return r;
	}
	vfmig_vm_log(vm, VFMIG_LOG_INFO, "%s: %s attached, type %s, IRQ "
		     "vectors INTx %u MSI %u MSI-X %u%s", d->id, path, d->type,
		     d->nirqs[0], d->nirqs[1], d->nirqs[2],
		     d->caps.migratable ? ", migratable" : "");
	return 0;
}

int vfmig_vm_remap_ram(struct vfmig_vm *vm, unsigned int i)
{
	if (i >= vm->ndevs)
		return -EINVAL;
	return vfmig_vmm_dev_dma_map(vm->devs[i].dev, 0, vm->ram.size,
				     vm->ram_fd, 0, vm->ram_host,
				     VFMIG_VMM_DMA_READ | VFMIG_VMM_DMA_WRITE);
}

int vfmig_vm_rewire_irqs(struct vfmig_vm *vm, unsigned int i)
{
	if (i >= vm->ndevs)
		return -EINVAL;
	return wire_irqs(vm, &vm->devs[i], true);
}

int vfmig_vm_irq_refresh(struct vfmig_vm *vm, unsigned int i)
{
	if (i >= vm->ndevs)
		return -EINVAL;
	return wire_irqs(vm, &vm->devs[i], false);
}

/* ---- I/O thread: serve device DMA messages between calls ---- */

/*
 * Serves the devices' DMA messages between calls. It never waits for a
 * device's lock: a device whose call is in progress (process() says
 * -EBUSY) is served by that call, and is left out of the next poll, which
 * then waits only BUSY_POLL_MS, so that one stuck device never delays the
 * others' service.
 */
static void *io_main(void *arg)
{
	struct vfmig_vm *vm = arg;
	struct pollfd p[VFMIG_VM_MAX_DEVICES + 1];
	bool busy[VFMIG_VM_MAX_DEVICES] = { false };

	for (;;) {
		unsigned int n = 0, map[VFMIG_VM_MAX_DEVICES];
		bool any_busy = false;
		p[n++] = (struct pollfd){ .fd = vm->io_stop_fd,
					  .events = POLLIN };
		for (unsigned int i = 0; i < vm->ndevs; i++) {
			int fd = vfmig_vmm_dev_get_poll_fd(vm->devs[i].dev);
			any_busy |= busy[i];
			if (fd < 0) {
				note_lost(vm, &vm->devs[i]);
				continue;
			}
			if (busy[i])
				continue;
			map[n - 1] = i;
			p[n++] = (struct pollfd){
				.fd = fd,
				.events = vfmig_vmm_dev_get_poll_events(
					vm->devs[i].dev) };
		}
		if (poll(p, n, any_busy ? BUSY_POLL_MS : IO_POLL_MS) < 0 &&
		    errno != EINTR)
			break;
		if (p[0].revents)
			break;
		for (unsigned int i = 0; i < vm->ndevs; i++)
			busy[i] = false;
		for (unsigned int k = 1; k < n; k++) {
			if (!(p[k].revents &
			      (POLLIN | POLLOUT | POLLHUP | POLLERR)))
				continue;
			struct vm_dev *d = &vm->devs[map[k - 1]];
			int r = vfmig_vmm_dev_process(d->dev);
			if (r == -EBUSY)
				busy[map[k - 1]] = true;
			else if (r < 0 && !vfmig_vmm_dev_connected(d->dev))
				note_lost(vm, d); /* says so, once */
			else if (r < 0)
				vfmig_vm_log(vm, VFMIG_LOG_ERR,
					     "%s: serving device messages: %s",
					     d->id, vfmig_vmm_strerror(r));
		}
	}
	return NULL;
}

/* ---- create / destroy ---- */

static int map_ram(struct vfmig_vm *vm, uint64_t size)
{
	int r;

	vm->ram_fd = memfd_create("vfmig-guest-ram", MFD_CLOEXEC);
	if (vm->ram_fd < 0)
		return -errno;
	if (ftruncate(vm->ram_fd, (off_t)size) < 0)
		return -errno;
	vm->ram_size = size;
	vm->ram_host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			    vm->ram_fd, 0);
	if (vm->ram_host == MAP_FAILED) {
		vm->ram_host = NULL;
		return -errno;
	}
	r = vfmig_ram_init(&vm->ram, VFMIG_VM_RAM_BLOCK, vm->ram_host, size,
			   VFMIG_VM_PAGE_SIZE);
	if (r == 0) /* pages in its holes are sent without being touched */
		vfmig_ram_set_fd(&vm->ram, vm->ram_fd);
	return r;
}

int vfmig_vm_create(const struct vfmig_vm_opts *o, struct vfmig_vm **out,
		    char *err, size_t errlen)
{
	struct vfmig_vm *vm;
	uint64_t size;
	int r;

	*out = NULL;
	if (!o || o->version != VFMIG_VM_OPTS_VERSION || !o->devices ||
	    !o->types || o->ndevices == 0 ||
	    o->ndevices > VFMIG_VM_MAX_DEVICES) {
		ERRF("bad VM options (1 to %u devices, a type registry)",
		     VFMIG_VM_MAX_DEVICES);
		return -EINVAL;
	}
	size = o->ram_size ? o->ram_size : VFMIG_VM_RAM_DEFAULT;
	if (size < VFMIG_VM_RAM_MIN || size % VFMIG_VM_PAGE_SIZE ||
	    size > (1ull << 40)) {
		ERRF("RAM size %llu: must be a multiple of 4 KiB from 2 MiB "
		     "to 1 TiB", (unsigned long long)size);
		return -EINVAL;
	}
	if (o->guest_fill > size - VFMIG_GUEST_STAMP_BASE) {
		ERRF("RAM fill of %llu bytes: only %llu bytes of RAM lie "
		     "above the guest's first 1 MiB",
		     (unsigned long long)o->guest_fill,
		     (unsigned long long)(size - VFMIG_GUEST_STAMP_BASE));
		return -EINVAL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->log_fn = o->log_fn;
	vm->log_priv = o->log_priv;
	vm->log_level = o->log_level;
	vm->no_data_channel = o->no_data_channel;
	vm->test_skip_dirty = o->test_skip_dirty_tracking;
	vm->types = o->types;
	vm->ram_fd = -1;
	vm->io_stop_fd = -1;
	vm->incoming = o->incoming;
	vm->run_state = o->incoming ? VFMIG_VM_INCOMING : VFMIG_VM_PAUSED;
	pthread_mutex_init(&vm->op_lock, NULL);
	pthread_mutex_init(&vm->state_lock, NULL);

	r = map_ram(vm, size);
	if (r < 0) {
		ERRF("guest RAM of %llu bytes: %s", (unsigned long long)size,
		     strerror(-r));
		goto fail;
	}
	if (o->prealloc_ram) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = vfmig_ram_prealloc_all(&vm->ram);
		if (r < 0) {
			ERRF("preallocating %llu MiB of guest RAM: %s",
			     (unsigned long long)(size >> 20), strerror(-r));
			goto fail;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		vfmig_vm_log(vm, VFMIG_LOG_INFO,
			     "guest RAM preallocated: %llu MiB in %.0f ms",
			     (unsigned long long)(size >> 20),
			     (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
				     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	}
	for (unsigned int i = 0; i < o->ndevices; i++) {
		vm->ndevs = i + 1;
		r = attach(vm, i, o->devices[i], err, errlen);
		if (r < 0)
			goto fail;
	}
	vm->io_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->io_stop_fd < 0) {
		r = -errno;
		ERRF("eventfd: %s", strerror(-r));
		goto fail;
	}
	r = -pthread_create(&vm->io_thread, NULL, io_main, vm);
	if (r < 0) {
		ERRF("I/O thread: %s", strerror(-r));
		goto fail;
	}
	vm->io_started = true;
	r = vfmig_guest_create(vm, o->guest_drivers, o->guest_interval_us,
			       o->guest_seed,
			       (o->guest_fill + VFMIG_VM_PAGE_SIZE - 1) /
				       VFMIG_VM_PAGE_SIZE,
			       &vm->guest);
	if (r == 0 && o->guest_backend)
		r = vfmig_guest_set_backend(vm->guest, o->guest_backend,
					    o->guest_backend_priv);
	if (r < 0) {
		ERRF("guest driver: %s", strerror(-r));
		goto fail;
	}
	if (!o->incoming) {
		r = vfmig_guest_start(vm->guest, err, errlen);
		if (r < 0)
			goto fail;
		vm->run_state = VFMIG_VM_RUNNING;
	} else {
		/* Not running: the run state holds the guest (it starts
		 * paused at cont and is released by entering RUNNING). */
		vfmig_guest_pause(vm->guest);
		vm->guest_held = true;
	}
	vfmig_vm_log(vm, VFMIG_LOG_INFO, "VM: %llu MiB RAM, %u device%s, %s",
		     (unsigned long long)(size >> 20), vm->ndevs,
		     vm->ndevs == 1 ? "" : "s",
		     vfmig_vm_run_state_name(vm->run_state));
	*out = vm;
	return 0;
fail:
	vfmig_vm_destroy(vm);
	return r;
}

void vfmig_vm_destroy(struct vfmig_vm *vm)
{
	if (!vm)
		return;
	vfmig_guest_destroy(vm->guest);
	if (vm->io_started) {
		uint64_t one = 1;
		if (write(vm->io_stop_fd, &one, sizeof(one)) != sizeof(one))
			vfmig_vm_log(vm, VFMIG_LOG_ERR,
				     "cannot stop I/O thread");
		pthread_join(vm->io_thread, NULL);
	}
	if (vm->io_stop_fd >= 0)
		close(vm->io_stop_fd);
	for (unsigned int i = 0; i < VFMIG_VM_MAX_DEVICES; i++) {
		struct vm_dev *d = &vm->devs[i];
		vfmig_vmm_dev_close(d->dev);
		for (uint32_t k = 0; k < NIRQ_KINDS; k++) {
			for (uint32_t v = 0; d->irq_fds[k] && v < d->nirqs[k]; v++)
				if (d->irq_fds[k][v] >= 0)
					close(d->irq_fds[k][v]);
			free(d->irq_fds[k]);
		}
		free(d->path);
	}
	vfmig_ram_fini(&vm->ram);
	if (vm->ram_host)
		munmap(vm->ram_host, vm->ram_size);
	if (vm->ram_fd >= 0)
		close(vm->ram_fd);
	pthread_mutex_destroy(&vm->op_lock);
	pthread_mutex_destroy(&vm->state_lock);
	free(vm);
}

/* ---- run state ---- */

enum vfmig_vm_run_state vfmig_vm_run_state(struct vfmig_vm *vm)
{
	enum vfmig_vm_run_state s;

	pthread_mutex_lock(&vm->state_lock);
	s = vm->run_state;
	pthread_mutex_unlock(&vm->state_lock);
	return s;
}

/* The run state's own pause of the guest. Caller holds op_lock. */
static void hold_guest(struct vfmig_vm *vm)
{
	if (!vm->guest_held) {
		vfmig_guest_pause(vm->guest);
		vm->guest_held = true;
	}
}

static void release_guest(struct vfmig_vm *vm)
{
	if (vm->guest_held) {
		vfmig_guest_resume(vm->guest);
		vm->guest_held = false;
	}
}

/* Every state but RUNNING holds the guest paused. Caller holds op_lock. */
static void enter_state(struct vfmig_vm *vm, enum vfmig_vm_run_state now)
{
	struct listener copy[MAX_LISTENERS];
	enum vfmig_vm_run_state old;

	if (now == VFMIG_VM_RUNNING)
		release_guest(vm);
	else
		hold_guest(vm); /* returns once the guest is quiescent */
	pthread_mutex_lock(&vm->state_lock);
	old = vm->run_state;
	vm->run_state = now;
	memcpy(copy, vm->listeners, sizeof(copy));
	pthread_mutex_unlock(&vm->state_lock);
	if (old == now)
		return;
	vfmig_vm_log(vm, VFMIG_LOG_INFO, "VM: %s -> %s",
		     vfmig_vm_run_state_name(old),
		     vfmig_vm_run_state_name(now));
	for (unsigned int i = 0; i < MAX_LISTENERS; i++)
		if (copy[i].fn)
			copy[i].fn(copy[i].priv, old, now);
}

int vfmig_vm_set_run_state(struct vfmig_vm *vm, enum vfmig_vm_run_state s)
{
	if ((unsigned)s >= VFMIG_VM_NUM_STATES)
		return -EINVAL;
	pthread_mutex_lock(&vm->op_lock);
	enter_state(vm, s);
	pthread_mutex_unlock(&vm->op_lock);
	return 0;
}

int vfmig_vm_add_listener(struct vfmig_vm *vm, vfmig_vm_state_fn fn,
			  void *priv)
{
	int r = -ENOSPC;

	if (!fn)
		return -EINVAL;
	pthread_mutex_lock(&vm->state_lock);
	for (unsigned int i = 0; i < MAX_LISTENERS; i++)
		if (!vm->listeners[i].fn) {
			vm->listeners[i] = (struct listener){ fn, priv };
			r = 0;
			break;
		}
	pthread_mutex_unlock(&vm->state_lock);
	return r;
}

void vfmig_vm_remove_listener(struct vfmig_vm *vm, vfmig_vm_state_fn fn,
			      void *priv)
{
	pthread_mutex_lock(&vm->state_lock);
	for (unsigned int i = 0; i < MAX_LISTENERS; i++)
		if (vm->listeners[i].fn == fn && vm->listeners[i].priv == priv)
			vm->listeners[i] = (struct listener){ 0 };
	pthread_mutex_unlock(&vm->state_lock);
}

/* Move devices [0, n) that set_device_states() moved back to prev[].
 * Caller holds op_lock. */
static void restore_device_states(struct vfmig_vm *vm, unsigned int n,
				  const uint32_t *prev, uint32_t target)
{
	while (n-- > 0) {
		struct vm_dev *d = &vm->devs[n];
		if (!d->caps.migratable || prev[n] == target)
			continue;
		uint32_t final = VFMIG_VMM_MIG_UNKNOWN;
		int b = vfmig_vmm_mig_set_state(d->dev, prev[n], target,
						&final);
		if (b < 0) {
			char msg[160];
			snprintf(msg, sizeof(msg), "could not return to %s: %s "
				 "(device now %s)",
				 vfmig_vmm_mig_state_name(prev[n]),
				 vfmig_vmm_strerror(b),
				 vfmig_vmm_mig_state_name(final));
			vfmig_vm_set_dev_fault(vm, n, msg);
		}
	}
}

/* Move every migratable device to target; prev[] gets the states they were
 * in. On failure the ones already moved go back. Caller holds op_lock. */
static int set_device_states(struct vfmig_vm *vm, uint32_t target,
			     uint32_t *prev, char *err, size_t errlen)
{
	unsigned int i;
	int r = 0;

	for (i = 0; i < vm->ndevs; i++) {
		struct vm_dev *d = &vm->devs[i];
		uint32_t final;
		if (!d->caps.migratable)
			continue;
		r = vfmig_vmm_mig_get_state(d->dev, &prev[i]);
		if (r < 0) {
			ERRF("%s: reading migration state: %s", d->id,
			     vfmig_vmm_strerror(r));
			break;
		}
		if (prev[i] == target)
			continue;
		r = vfmig_vmm_mig_set_state(d->dev, target, prev[i], &final);
		if (r < 0) {
			ERRF("%s: %s -> %s refused: %s (device now %s)", d->id,
			     vfmig_vmm_mig_state_name(prev[i]),
			     vfmig_vmm_mig_state_name(target),
			     vfmig_vmm_strerror(r),
			     vfmig_vmm_mig_state_name(final));
			if (final != prev[i]) {
				char msg[160];
				snprintf(msg, sizeof(msg), "%s -> %s failed: "
					 "%s (device now %s)",
					 vfmig_vmm_mig_state_name(prev[i]),
					 vfmig_vmm_mig_state_name(target),
					 vfmig_vmm_strerror(r),
					 vfmig_vmm_mig_state_name(final));
				vfmig_vm_set_dev_fault(vm, i, msg);
			}
			break;
		}
		vfmig_vm_set_dev_fault(vm, i, NULL); /* it works again */
	}
	if (r < 0)
		restore_device_states(vm, i, prev, target);
	return r;
}

int vfmig_vm_set_device_states(struct vfmig_vm *vm, uint32_t target,
			       char *err, size_t errlen)
{
	uint32_t prev[VFMIG_VM_MAX_DEVICES];
	int r;

	if (target == VFMIG_VMM_MIG_ERROR ||
	    target >= VFMIG_VMM_MIG_NUM_STATES) {
		ERRF("invalid device state %u", target);
		return -EINVAL;
	}
	pthread_mutex_lock(&vm->op_lock);
	r = set_device_states(vm, target, prev, err, errlen);
	pthread_mutex_unlock(&vm->op_lock);
	return r;
}

int vfmig_vm_stop(struct vfmig_vm *vm, char *err, size_t errlen)
{
	uint32_t prev[VFMIG_VM_MAX_DEVICES];
	int r = 0;

	pthread_mutex_lock(&vm->op_lock);
	if (vm->migrating && vfmig_vm_run_state(vm) == VFMIG_VM_RUNNING) {
		/* The migration owns the devices: it is told, and the guest
		 * pauses here and now. */
		if (!vm->stop_fn) {
			ERRF("a migration is running: cancel it first "
			     "(migrate-cancel)");
			r = -EBUSY;
		} else {
			r = vm->stop_fn(vm->stop_priv, err, errlen);
		}
		if (r == 0)
			enter_state(vm, VFMIG_VM_PAUSED);
		pthread_mutex_unlock(&vm->op_lock);
		return r;
	}
	switch (vfmig_vm_run_state(vm)) {
	case VFMIG_VM_RUNNING:
		hold_guest(vm);
		r = set_device_states(vm, VFMIG_VMM_MIG_STOP, prev, err,
				      errlen);
		if (r < 0) {
			release_guest(vm);
			break;
		}
		enter_state(vm, VFMIG_VM_PAUSED);
		break;
	case VFMIG_VM_INCOMING:
		ERRF("the VM is waiting for an incoming migration");
		r = -EBUSY;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&vm->op_lock);
	return r;
}

int vfmig_vm_cont(struct vfmig_vm *vm, char *err, size_t errlen)
{
	uint32_t prev[VFMIG_VM_MAX_DEVICES];
	enum vfmig_vm_run_state s;
	int r = 0;

	pthread_mutex_lock(&vm->op_lock);
	s = vfmig_vm_run_state(vm);
	if (vm->migrating) {
		ERRF("a migration is running: cancel it first "
		     "(migrate-cancel)");
		r = -EBUSY;
		goto out;
	}
	if (s == VFMIG_VM_RUNNING)
		goto out;
	if (s == VFMIG_VM_FINISH_MIGRATE) {
		ERRF("the VM is being migrated (switchover in progress)");
		r = -EBUSY;
		goto out;
	}
	r = set_device_states(vm, VFMIG_VMM_MIG_RUNNING, prev, err, errlen);
	if (r < 0)
		goto out;
	if (s == VFMIG_VM_INCOMING || s == VFMIG_VM_PAUSED) {
		/* First run (a no-op if it ran before): the guest adopts the
		 * ledger it finds in RAM, e.g. a migrated paused VM's. */
		r = vfmig_guest_start(vm->guest, err, errlen);
		if (r < 0) {
			restore_device_states(vm, vm->ndevs, prev,
					      VFMIG_VMM_MIG_RUNNING);
			goto out;
		}
	}
	enter_state(vm, VFMIG_VM_RUNNING); /* releases the guest */
out:
	pthread_mutex_unlock(&vm->op_lock);
	return r;
}

/* ---- guest ---- */

void vfmig_vm_pause_guest(struct vfmig_vm *vm)
{
	vfmig_guest_pause(vm->guest);
}

void vfmig_vm_resume_guest(struct vfmig_vm *vm)
{
	vfmig_guest_resume(vm->guest);
}

struct vfmig_guest *vfmig_vm_guest(struct vfmig_vm *vm)
{
	return vm->guest;
}

/* ---- accessors ---- */

struct vfmig_ram *vfmig_vm_ram(struct vfmig_vm *vm)
{
	return &vm->ram;
}

int vfmig_vm_ram_fd(struct vfmig_vm *vm)
{
	return vm->ram_fd;
}

bool vfmig_vm_incoming(struct vfmig_vm *vm)
{
	return vm->incoming;
}

unsigned int vfmig_vm_ndevs(struct vfmig_vm *vm)
{
	return vm->ndevs;
}

vfmig_vmm_dev *vfmig_vm_dev(struct vfmig_vm *vm, unsigned int i)
{
	return i < vm->ndevs ? vm->devs[i].dev : NULL;
}

const char *vfmig_vm_dev_id(struct vfmig_vm *vm, unsigned int i)
{
	return i < vm->ndevs ? vm->devs[i].id : NULL;
}

const char *vfmig_vm_dev_path(struct vfmig_vm *vm, unsigned int i)
{
	return i < vm->ndevs ? vm->devs[i].path : NULL;
}

const struct vfmig_vmm_mig_caps *vfmig_vm_dev_mig_caps(struct vfmig_vm *vm,
						       unsigned int i)
{
	return i < vm->ndevs ? &vm->devs[i].caps : NULL;
}

const int *vfmig_vm_dev_irq_fds(struct vfmig_vm *vm, unsigned int i,
				uint32_t index, uint32_t *count)
{
	if (i >= vm->ndevs || index >= NIRQ_KINDS) {
		if (count)
			*count = 0;
		return NULL;
	}
	if (count)
		*count = vm->devs[i].nirqs[index];
	return vm->devs[i].irq_fds[index];
}

void vfmig_vm_set_dev_fault(struct vfmig_vm *vm, unsigned int i,
			    const char *msg)
{
	if (i >= vm->ndevs)
		return;
	pthread_mutex_lock(&vm->state_lock);
	snprintf(vm->devs[i].fault, sizeof(vm->devs[i].fault), "%s",
		 msg ? msg : "");
	pthread_mutex_unlock(&vm->state_lock);
	if (msg && msg[0])
		vfmig_vm_log(vm, VFMIG_LOG_ERR, "%s: fault: %s",
			     vm->devs[i].id, msg);
}

bool vfmig_vm_dev_fault(struct vfmig_vm *vm, unsigned int i, char *buf,
			size_t len)
{
	bool faulty;

	if (i >= vm->ndevs)
		return false;
	pthread_mutex_lock(&vm->state_lock);
	faulty = vm->devs[i].fault[0] != '\0';
	if (buf && len)
		snprintf(buf, len, "%s", vm->devs[i].fault);
	pthread_mutex_unlock(&vm->state_lock);
	return faulty;
}

bool vfmig_vm_dev_connected(struct vfmig_vm *vm, unsigned int i, char *cause,
			    size_t len)
{
	if (cause && len)
		cause[0] = '\0';
	if (i >= vm->ndevs)
		return false;
	if (vfmig_vmm_dev_connected(vm->devs[i].dev))
		return true;
	note_lost(vm, &vm->devs[i]);
	if (cause && len) {
		pthread_mutex_lock(&vm->state_lock);
		snprintf(cause, len, "%s", vm->devs[i].lost);
		pthread_mutex_unlock(&vm->state_lock);
	}
	return false;
}

const char *vfmig_vm_dev_type(struct vfmig_vm *vm, unsigned int i)
{
	return i < vm->ndevs ? vm->devs[i].type : NULL;
}

const struct vfmig_typereg *vfmig_vm_types(struct vfmig_vm *vm)
{
	return vm->types;
}

void vfmig_vm_set_migrating(struct vfmig_vm *vm, bool on,
			    vfmig_vm_stop_fn stop_fn, void *priv)
{
	pthread_mutex_lock(&vm->op_lock);
	vm->migrating = on;
	vm->stop_fn = on ? stop_fn : NULL;
	vm->stop_priv = on ? priv : NULL;
	pthread_mutex_unlock(&vm->op_lock);
}
