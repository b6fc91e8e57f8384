/* SPDX-License-Identifier: MIT */
/* The guest driver: the thread, the ledger in guest RAM, the RAM stamps,
 * statistics and verification. The device drivers come from the table the
 * VM was created with (src/guest has those of the sample devices). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/guest_drv.h"

#define IRQ_TIMEOUT_MS 2000
#define BAR0 0u /* register BAR of every driven device */

void guest__mark_dirty(struct vfmig_guest *g, uint64_t addr, uint64_t len)
{
	if (!g->test_skip_dirty)
		vfmig_ram_mark_dirty(g->ram, addr, len);
}

void guest__lset(struct vfmig_guest *g, uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, htole64(v), __ATOMIC_RELAXED);
	guest__mark_dirty(g, (uint64_t)((uint8_t *)p - g->ram->host),
			  sizeof(*p));
}

int guest__fail(struct vfmig_guest *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->msg, sizeof(g->msg), fmt, ap);
	va_end(ap);
	return -EIO;
}

/* ---- generated contents: everything follows from (seed, counters) ---- */

static uint64_t stamp_page(uint64_t seed, uint64_t n, uint64_t npages)
{
	return guest__mix64(seed ^ 0x5354414d50ull ^ (n * 0x100000001b3ull)) %
	       npages;
}

static uint64_t stamp_word(uint64_t seed, uint64_t n, uint64_t page, uint64_t w)
{
	return guest__mix64(seed + n) ^ (page << 16) ^ w;
}

/* The RAM fill: every word of a page from the page's key, so that words
 * are independent (the loops over a page pipeline well). */
static uint64_t fill_key(uint64_t seed, uint64_t page)
{
	return guest__mix64(seed ^ 0x46494c4cull ^ (page * 0x9e3779b97f4a7c15ull));
}

static uint64_t fill_word(uint64_t key, uint64_t w)
{
	return guest__mix64(key + w);
}

/* ---- device access ---- */

int guest__reg_read(struct vfmig_guest *g, struct gdev *d, uint32_t off,
		    uint32_t *val)
{
	int r = vfmig_vmm_dev_region_read(d->dev, BAR0, off, val, 4);
	if (r < 0)
		return guest__fail(g, "dev%u: read of register 0x%03x: %s",
				   d->index, off, vfmig_vmm_strerror(r));
	*val = le32toh(*val);
	return 0;
}

int guest__reg_write(struct vfmig_guest *g, struct gdev *d, uint32_t off,
		     uint32_t val)
{
	uint32_t le = htole32(val);
	int r = vfmig_vmm_dev_region_write(d->dev, BAR0, off, &le, 4);
	if (r < 0)
		return guest__fail(g, "dev%u: write of register 0x%03x: %s",
				   d->index, off, vfmig_vmm_strerror(r));
	return 0;
}

int guest__collect_irqs(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;

	for (uint32_t v = 0; v < guest__lget(&ld->nvec); v++) {
		uint64_t raised = guest__lget(&ld->irq_raised[v]);
		uint64_t got = guest__lget(&ld->irq_received[v]);
		int waited = 0;

		while (got < raised) {
			struct pollfd p = {.fd = d->irq_fds[v],
					   .events = POLLIN};
			uint64_t n;
			if (poll(&p, 1, 10) == 1 &&
			    read(d->irq_fds[v], &n, sizeof(n)) == sizeof(n)) {
				got += n;
				guest__lset(g, &ld->irq_received[v], got);
				continue;
			}
			waited += 10;
			if (waited >= IRQ_TIMEOUT_MS)
				return guest__fail(
					g,
					"dev%u: vector %u: interrupt "
					"lost (%llu raised, %llu received "
					"after %d ms)",
					d->index, v, (unsigned long long)raised,
					(unsigned long long)got,
					IRQ_TIMEOUT_MS);
		}
		if (got > raised)
			return guest__fail(g,
					   "dev%u: vector %u: %llu interrupts "
					   "received, only %llu raised",
					   d->index, v, (unsigned long long)got,
					   (unsigned long long)raised);
	}
	return 0;
}

/* ---- PCI ---- */

static int find_msix_cap(struct vfmig_guest *g, struct gdev *d, uint8_t *cap)
{
	uint8_t cfg[256];
	int r = vfmig_vmm_dev_region_read(d->dev, VFMIG_VMM_PCI_CONFIG, 0, cfg,
					  sizeof(cfg));
	if (r < 0)
		return guest__fail(g, "dev%u: config read: %s", d->index,
				   vfmig_vmm_strerror(r));
	*cap = 0;
	for (uint8_t pos = cfg[0x34] & 0xfc, n = 0; pos && n < 48;
	     pos = cfg[pos + 1] & 0xfc, n++)
		if (cfg[pos] == 0x11) {
			*cap = pos;
			return 0;
		}
	return guest__fail(g, "dev%u: no MSI-X capability", d->index);
}

static int cfg_rw(struct vfmig_guest *g, struct gdev *d, bool write,
		  uint32_t off, void *buf, size_t len)
{
	int r = write ? vfmig_vmm_dev_region_write(d->dev, VFMIG_VMM_PCI_CONFIG,
						   off, buf, len)
		      : vfmig_vmm_dev_region_read(d->dev, VFMIG_VMM_PCI_CONFIG,
						  off, buf, len);
	if (r < 0)
		return guest__fail(g, "dev%u: config %s at 0x%x: %s", d->index,
				   write ? "write" : "read", off,
				   vfmig_vmm_strerror(r));
	return 0;
}

int guest__pci_enable(struct vfmig_guest *g, struct gdev *d, uint32_t msix_bar,
		      uint32_t nvec)
{
	uint8_t cap;
	uint16_t ctrl, cmd;

	CHECK(find_msix_cap(g, d, &cap));
	CHECK(cfg_rw(g, d, false, cap + 2u, &ctrl, 2));
	ctrl = htole16((uint16_t)((le16toh(ctrl) | 0x8000) & ~0x4000));
	CHECK(cfg_rw(g, d, true, cap + 2u, &ctrl, 2));
	/* The VMM traps that write: MSI-X is on, so its vectors get bound. */
	int w = vfmig_vm_irq_refresh(g->vm, d->index);
	if (w < 0)
		return guest__fail(g, "dev%u: wiring MSI-X: %s", d->index,
				   vfmig_vmm_strerror(w));
	for (uint32_t v = 0; v < nvec; v++) {
		uint32_t vctl = 0;
		int r = vfmig_vmm_dev_region_write(d->dev, msix_bar,
						   v * 16 + 12, &vctl, 4);
		if (r < 0)
			return guest__fail(g, "dev%u: unmask vector %u: %s",
					   d->index, v, vfmig_vmm_strerror(r));
	}
	CHECK(cfg_rw(g, d, false, 4, &cmd, 2));
	cmd = htole16((uint16_t)(le16toh(cmd) | 0x6)); /* memory, master */
	return cfg_rw(g, d, true, 4, &cmd, 2);
}

bool guest__vm_running(struct vfmig_guest *g)
{
	return vfmig_vm_run_state(g->vm) == VFMIG_VM_RUNNING;
}

/* ---- binding, ledger ---- */

/* Match the device's PCI IDs against the table (config reads only). */
static void bind(struct vfmig_guest *g, struct gdev *d)
{
	uint16_t ids[2];

	d->drv = NULL;
	if (vfmig_vmm_dev_region_read(d->dev, VFMIG_VMM_PCI_CONFIG, 0, ids,
				      sizeof(ids)) < 0)
		return;
	for (size_t i = 0; g->drivers && g->drivers[i]; i++)
		if (le16toh(ids[0]) == g->drivers[i]->vendor &&
		    le16toh(ids[1]) == g->drivers[i]->device && d->nirqs >= 1)
			d->drv = g->drivers[i];
	vfmig_vm_log(g->vm, VFMIG_LOG_INFO, "guest: dev%u %04x:%04x -> %s",
		     d->index, le16toh(ids[0]), le16toh(ids[1]),
		     d->drv ? d->drv->name : "no driver");
}

static bool ledger_present(struct vfmig_guest *g)
{
	return guest__lget(&g->L->magic) == LEDGER_MAGIC;
}

/* Is the ledger in RAM usable by this VM? 0 or -EINVAL with g->msg. */
static int ledger_check(struct vfmig_guest *g)
{
	struct ledger *L = g->L;

	if (!ledger_present(g))
		return guest__fail(g, "no guest ledger in RAM");
	if (guest__lget(&L->version) != LEDGER_VERSION)
		return guest__fail(g, "ledger version %llu, driver knows %u",
				   (unsigned long long)guest__lget(&L->version),
				   LEDGER_VERSION);
	if (guest__lget(&L->ndevs) != g->ndevs)
		return guest__fail(g, "ledger has %llu devices, the VM %u",
				   (unsigned long long)guest__lget(&L->ndevs),
				   g->ndevs);
	if (guest__lget(&L->stamp_pages) != g->stamp_pages)
		return guest__fail(
			g, "ledger has %llu stamp pages, the RAM %llu",
			(unsigned long long)guest__lget(&L->stamp_pages),
			(unsigned long long)g->stamp_pages);
	if (guest__lget(&L->fill_pages) > g->stamp_pages)
		return guest__fail(
			g, "ledger's RAM fill has %llu pages, the RAM %llu "
			"stamp pages",
			(unsigned long long)guest__lget(&L->fill_pages),
			(unsigned long long)g->stamp_pages);
	for (unsigned int i = 0; i < g->ndevs; i++) {
		struct gdev *d = &g->devs[i];
		uint64_t kind = d->drv ? d->drv->kind : KIND_NONE;
		if (guest__lget(&L->dev[i].kind) != kind)
			return guest__fail(g,
					   "dev%u: ledger kind %llu, device is "
					   "%s",
					   i,
					   (unsigned long long)guest__lget(
						   &L->dev[i].kind),
					   d->drv ? d->drv->name : "unknown");
		if (guest__lget(&L->dev[i].nvec) > d->nirqs ||
		    guest__lget(&L->dev[i].nvec) > VFMIG_GUEST_MAX_VECTORS)
			return guest__fail(
				g,
				"dev%u: ledger uses %llu vectors, device "
				"has %u",
				i,
				(unsigned long long)guest__lget(
					&L->dev[i].nvec),
				d->nirqs);
	}
	g->seed = guest__lget(&L->seed);
	return 0;
}

/* The RAM fill of a fresh ledger: its pages, then its count. */
static void write_fill(struct vfmig_guest *g)
{
	for (uint64_t page = 0; page < g->fill_pages; page++) {
		uint64_t *p = (uint64_t *)(void *)guest__gpa(
			g, VFMIG_GUEST_STAMP_BASE + page * VFMIG_VM_PAGE_SIZE);
		uint64_t key = fill_key(g->seed, page);
		for (uint64_t w = 0; w < VFMIG_VM_PAGE_SIZE / 8; w++)
			p[w] = htole64(fill_word(key, w));
	}
	guest__mark_dirty(g, VFMIG_GUEST_STAMP_BASE,
			     g->fill_pages * VFMIG_VM_PAGE_SIZE);
	guest__lset(g, &g->L->fill_pages, g->fill_pages);
}

static int ledger_fresh(struct vfmig_guest *g)
{
	struct ledger *L = g->L;

	memset(L, 0, sizeof(*L));
	guest__mark_dirty(g, VFMIG_GUEST_LEDGER_ADDR, sizeof(*L));
	guest__lset(g, &L->version, LEDGER_VERSION);
	guest__lset(g, &L->ndevs, g->ndevs);
	guest__lset(g, &L->seed, g->seed);
	guest__lset(g, &L->stamp_pages, g->stamp_pages);
	write_fill(g);
	for (unsigned int i = 0; i < g->ndevs; i++)
		if (g->devs[i].drv)
			CHECK(g->devs[i].drv->init(g, &g->devs[i]));
	guest__lset(g, &L->magic, LEDGER_MAGIC); /* valid only once complete */
	return 0;
}

/* ---- the thread ---- */

static void write_stamp(struct vfmig_guest *g, uint64_t n)
{
	uint64_t page = stamp_page(g->seed, n, g->stamp_pages);
	uint64_t addr = VFMIG_GUEST_STAMP_BASE + page * VFMIG_VM_PAGE_SIZE;
	uint64_t *p = (uint64_t *)(void *)guest__gpa(g, addr);

	for (uint64_t w = 0; w < VFMIG_VM_PAGE_SIZE / 8; w++)
		p[w] = htole64(stamp_word(g->seed, n, page, w));
	guest__mark_dirty(g, addr, VFMIG_VM_PAGE_SIZE);
}

static int iterate(struct vfmig_guest *g)
{
	struct ledger *L = g->L;
	uint64_t it = guest__lget(&L->iterations);

	for (unsigned int i = 0; i < g->ndevs; i++)
		if (g->devs[i].drv)
			CHECK(g->devs[i].drv->iterate(g, &g->devs[i], it));
	unsigned int stamps = __atomic_load_n(&g->stamps, __ATOMIC_RELAXED);
	for (unsigned int k = 0; k < stamps; k++) {
		uint64_t n = guest__lget(&L->stamp_writes) + 1;
		write_stamp(g, n);
		guest__lset(g, &L->stamp_writes, n);
	}
	guest__lset(g, &L->iterations, it + 1);
	return 0;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *guest_main(void *arg)
{
	struct vfmig_guest *g = arg;

	pthread_mutex_lock(&g->lock);
	while (!g->quit) {
		if (g->pause_count || g->hold_count || g->failed) {
			pthread_cond_wait(&g->cond, &g->lock);
			continue;
		}
		g->busy = true;
		pthread_mutex_unlock(&g->lock);
		uint64_t t0 = mono_us();
		int r = iterate(g);
		uint64_t spent = mono_us() - t0;
		pthread_mutex_lock(&g->lock);
		g->busy = false;
		if (r < 0) {
			g->failed = true;
			snprintf(g->error, sizeof(g->error), "%s", g->msg);
			vfmig_vm_log(g->vm, VFMIG_LOG_ERR,
				     "guest driver failed: %s", g->msg);
		}
		pthread_cond_broadcast(&g->cond);
		if (g->interval_us && !g->quit && !g->pause_count &&
		    !g->hold_count) {
			struct timespec ts;
			uint64_t us = g->interval_us;
			/* Throttled: sleep that share of the whole time. */
			if (g->throttle_pct)
				us += (spent + us) * g->throttle_pct /
				      (100 - g->throttle_pct);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(us / 1000000);
			ts.tv_nsec += (long)(us % 1000000) * 1000;
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&g->cond, &g->lock, &ts);
		}
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/* Give each driven device its reserved RAM from the top down; the stamp
 * pages are what is left. -EINVAL when the RAM is too small for it. */
static int reserve_ram(struct vfmig_guest *g)
{
	uint64_t top = g->ram->size;

	for (unsigned int i = 0; i < g->ndevs; i++) {
		const struct vfmig_guest_driver *drv = g->devs[i].drv;
		uint64_t want = drv ? drv->ram_reserve : 0;
		if (want % VFMIG_VM_PAGE_SIZE ||
		    want > top - VFMIG_GUEST_STAMP_BASE - VFMIG_VM_PAGE_SIZE)
			return -EINVAL;
		top -= want;
		g->devs[i].ram_base = top;
	}
	g->stamp_pages = (top - VFMIG_GUEST_STAMP_BASE) / VFMIG_VM_PAGE_SIZE;
	return 0;
}

int vfmig_guest_create(struct vfmig_vm *vm,
		       const struct vfmig_guest_driver *const *drivers,
		       unsigned int interval_us, uint64_t seed,
		       uint64_t fill_pages, struct vfmig_guest **out)
{
	struct vfmig_guest *g;

	*out = NULL;
	if (fill_pages > (vfmig_vm_ram(vm)->size - VFMIG_GUEST_STAMP_BASE) /
				 VFMIG_VM_PAGE_SIZE)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->vm = vm;
	g->drivers = drivers;
	g->test_skip_dirty = vfmig_vm_test_skip_dirty(vm);
	g->ram = vfmig_vm_ram(vm);
	g->L = (struct ledger *)(void *)(g->ram->host +
					 VFMIG_GUEST_LEDGER_ADDR);
	g->interval_us = interval_us ? interval_us : 1000;
	g->stamps = VFMIG_GUEST_STAMPS_DEFAULT;
	if (!seed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = guest__mix64((uint64_t)ts.tv_sec * 1000000000ull +
				    (uint64_t)ts.tv_nsec + (uint64_t)getpid());
	}
	g->seed = seed;
	g->fill_pages = fill_pages;
	g->ndevs = vfmig_vm_ndevs(vm);
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->verify_lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	for (unsigned int i = 0; i < g->ndevs; i++) {
		struct gdev *d = &g->devs[i];
		d->index = i;
		d->dev = vfmig_vm_dev(vm, i);
		d->irq_fds = vfmig_vm_dev_irq_fds(vm, i, VFMIG_VMM_IRQ_MSIX,
						  &d->nirqs);
		d->ld = &g->L->dev[i];
		bind(g, d);
	}
	if (reserve_ram(g) < 0) {
		vfmig_guest_destroy(g);
		return -EINVAL;
	}
	if (g->fill_pages > g->stamp_pages)
		g->fill_pages = g->stamp_pages; /* reserved RAM is not filled */
	*out = g;
	return 0;
}

/* The backend's version 2 hook, or NULL (none, or a version 1 table). */
#define BE_HOOK(g, hook) \
	((g) && (g)->be && (g)->be->version >= 2 ? (g)->be->hook : NULL)

int vfmig_guest_set_backend(struct vfmig_guest *g,
			    const struct vfmig_guest_backend *be, void *priv)
{
	if (g->started || !be || !be->version ||
	    be->version > VFMIG_GUEST_BACKEND_VERSION ||
	    !be->name || !be->start || !be->pause || !be->resume ||
	    !be->stop || !be->stats || !be->verify)
		return -EINVAL;
	g->be = be;
	g->be_priv = priv;
	if (BE_HOOK(g, attach))
		be->attach(priv, g->vm);
	return 0;
}

const char *vfmig_guest_migration_blocker(struct vfmig_guest *g)
{
	return g && g->be ? g->be->migration_blocker : NULL;
}

int vfmig_guest_cpu_dirty_track(struct vfmig_guest *g, bool on, char *err,
				size_t errlen)
{
	if (!BE_HOOK(g, dirty_track))
		return 0;
	return g->be->dirty_track(g->be_priv, on, err, errlen);
}

int vfmig_guest_cpu_dirty_sync(struct vfmig_guest *g, char *err,
			       size_t errlen)
{
	if (!BE_HOOK(g, dirty_sync))
		return 0;
	return g->be->dirty_sync(g->be_priv, err, errlen);
}

int vfmig_guest_save_cpus(struct vfmig_guest *g, struct vfmig_stream_writer *w,
			  char *err, size_t errlen)
{
	if (!BE_HOOK(g, save_cpus))
		return 0;
	return g->be->save_cpus(g->be_priv, w, err, errlen);
}

bool vfmig_guest_has_cpus(struct vfmig_guest *g)
{
	return BE_HOOK(g, save_cpus);
}

int vfmig_guest_load_cpu(struct vfmig_guest *g, uint16_t vcpu,
			 const uint8_t *state, size_t len, char *err,
			 size_t errlen)
{
	if (!BE_HOOK(g, load_cpu)) {
		snprintf(err, errlen, "this VM's guest has no vCPU to take it "
			 "(%s; a --kvm VM migrates to `vfmig vmm --kvm`)",
			 g && g->be ? g->be->name : "the VMM's driver thread");
		return -EOPNOTSUPP;
	}
	return g->be->load_cpu(g->be_priv, vcpu, state, len, err, errlen);
}

int vfmig_guest_cpus_loaded(struct vfmig_guest *g, char *err, size_t errlen)
{
	if (!BE_HOOK(g, cpus_loaded))
		return 0;
	return g->be->cpus_loaded(g->be_priv, err, errlen);
}

void vfmig_guest_forget_cpus(struct vfmig_guest *g)
{
	if (BE_HOOK(g, forget_cpus))
		g->be->forget_cpus(g->be_priv);
}

static int backend_start(struct vfmig_guest *g, char *err, size_t errlen)
{
	int r = g->be->start(g->be_priv, g->vm, err, errlen);

	if (r < 0)
		return r;
	pthread_mutex_lock(&g->lock);
	g->started = true;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int vfmig_guest_start(struct vfmig_guest *g, char *err, size_t errlen)
{
	int r;

	if (g->started)
		return 0;
	if (g->be)
		return backend_start(g, err, errlen);
	if (ledger_present(g)) {
		r = ledger_check(g);
		if (r < 0) {
			snprintf(err, errlen, "guest: %s", g->msg);
			return -EINVAL;
		}
		vfmig_vm_log(
			g->vm, VFMIG_LOG_INFO,
			"guest: adopted the ledger in RAM (iteration "
			"%llu)",
			(unsigned long long)guest__lget(&g->L->iterations));
	} else {
		r = ledger_fresh(g);
		if (r < 0) {
			snprintf(err, errlen, "guest init: %s", g->msg);
			return r;
		}
	}
	r = -pthread_create(&g->thread, NULL, guest_main, g);
	if (r < 0) {
		snprintf(err, errlen, "guest thread: %s", strerror(-r));
		return r;
	}
	pthread_mutex_lock(&g->lock);
	g->started = true; /* read by stats on other threads */
	pthread_mutex_unlock(&g->lock);
	return 0;
}

/* Count one more reason to stay quiescent; wait until the thread is. */
static void quiesce(struct vfmig_guest *g, unsigned int *count)
{
	pthread_mutex_lock(&g->lock);
	(*count)++;
	while (g->busy)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void release(struct vfmig_guest *g, unsigned int *count)
{
	pthread_mutex_lock(&g->lock);
	if (*count)
		(*count)--;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void vfmig_guest_pause(struct vfmig_guest *g)
{
	if (g->be)
		g->be->pause(g->be_priv);
	else
		quiesce(g, &g->pause_count);
}

void vfmig_guest_resume(struct vfmig_guest *g)
{
	if (g->be)
		g->be->resume(g->be_priv);
	else
		release(g, &g->pause_count);
}

int vfmig_guest_set_throttle(struct vfmig_guest *g, unsigned int percent)
{
	if (g->be)
		return -ENOTSUP;
	if (percent > VFMIG_GUEST_THROTTLE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	g->throttle_pct = percent;
	pthread_cond_broadcast(&g->cond); /* a lower one applies at once */
	pthread_mutex_unlock(&g->lock);
	return 0;
}

unsigned int vfmig_guest_throttle(struct vfmig_guest *g)
{
	pthread_mutex_lock(&g->lock);
	unsigned int pct = g->throttle_pct;
	pthread_mutex_unlock(&g->lock);
	return pct;
}

int vfmig_guest_set_stamps(struct vfmig_guest *g, unsigned int pages)
{
	if (g->be)
		return -ENOTSUP;
	if (!pages || pages > VFMIG_GUEST_STAMPS_MAX)
		return -EINVAL;
	__atomic_store_n(&g->stamps, pages, __ATOMIC_RELAXED);
	return 0;
}

void vfmig_guest_destroy(struct vfmig_guest *g)
{
	if (!g)
		return;
	if (g->be) {
		g->be->stop(g->be_priv);
		g->started = false; /* no thread of ours to join */
	}
	if (g->started) {
		pthread_mutex_lock(&g->lock);
		g->quit = true;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		pthread_join(g->thread, NULL);
	}
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->verify_lock);
	pthread_cond_destroy(&g->cond);
	free(g);
}

/* ---- stats and verification ---- */

static const char *const guest_state_names[] = {
	[VFMIG_GUEST_NOT_STARTED] = "not-started",
	[VFMIG_GUEST_RUNNING] = "running",
	[VFMIG_GUEST_PAUSED] = "paused",
	[VFMIG_GUEST_FAILED] = "failed",
};

const char *vfmig_guest_state_name(enum vfmig_guest_state s)
{
	if ((unsigned)s > VFMIG_GUEST_FAILED)
		return "invalid";
	return guest_state_names[s];
}

void vfmig_guest_stats(struct vfmig_guest *g, struct vfmig_guest_stats *st)
{
	struct ledger *L = g->L;

	memset(st, 0, sizeof(*st));
	if (g->be) {
		g->be->stats(g->be_priv, st);
		snprintf(st->engine, sizeof(st->engine), "%s", g->be->name);
		return;
	}
	snprintf(st->engine, sizeof(st->engine), "thread");
	quiesce(g, &g->hold_count); /* a consistent snapshot */
	pthread_mutex_lock(&g->lock);
	st->state = !g->started	     ? VFMIG_GUEST_NOT_STARTED
		    : g->failed	     ? VFMIG_GUEST_FAILED
		    : g->pause_count ? VFMIG_GUEST_PAUSED
				     : VFMIG_GUEST_RUNNING;
	snprintf(st->error, sizeof(st->error), "%s", g->error);
	pthread_mutex_unlock(&g->lock);
	st->ndevs = g->ndevs;
	for (unsigned int i = 0; i < g->ndevs; i++)
		snprintf(st->dev[i].kind, sizeof(st->dev[i].kind), "%s",
			 g->devs[i].drv ? g->devs[i].drv->name : "none");
	if (!ledger_present(g)) {
		release(g, &g->hold_count);
		return;
	}
	st->iterations = guest__lget(&L->iterations);
	st->stamp_writes = guest__lget(&L->stamp_writes);
	for (unsigned int i = 0; i < g->ndevs; i++) {
		struct ledger_dev *ld = &L->dev[i];
		struct vfmig_guest_dev_stats *ds = &st->dev[i];
		ds->doorbells = guest__lget(&ld->doorbells);
		ds->fills = guest__lget(&ld->fills);
		ds->checksums = guest__lget(&ld->csums);
		ds->mem_writes = guest__lget(&ld->mem_writes);
		for (unsigned int v = 0; v < VFMIG_GUEST_MAX_VECTORS; v++) {
			ds->irq_raised += guest__lget(&ld->irq_raised[v]);
			ds->irq_received += guest__lget(&ld->irq_received[v]);
		}
	}
	release(g, &g->hold_count);
}

static int verify_irqs(struct vfmig_guest *g, struct gdev *d)
{
	struct ledger_dev *ld = d->ld;

	for (uint32_t v = 0; v < guest__lget(&ld->nvec); v++) {
		struct pollfd p = {.fd = d->irq_fds[v], .events = POLLIN};
		uint64_t raised = guest__lget(&ld->irq_raised[v]);
		uint64_t got = guest__lget(&ld->irq_received[v]);
		if (got != raised)
			return guest__fail(g,
					   "dev%u: vector %u: %llu interrupts "
					   "raised, %llu received",
					   d->index, v,
					   (unsigned long long)raised,
					   (unsigned long long)got);
		if (poll(&p, 1, 0) == 1)
			return guest__fail(
				g,
				"dev%u: vector %u: an interrupt is "
				"pending that the driver did not raise",
				d->index, v);
	}
	return 0;
}

/* What a page in a hole of the RAM memfd holds, without reading it. */
static const uint64_t zero_page[VFMIG_VM_PAGE_SIZE / 8];

static int verify_stamps(struct vfmig_guest *g)
{
	uint64_t n_all = guest__lget(&g->L->stamp_writes);
	uint64_t fill = guest__lget(&g->L->fill_pages);
	uint64_t *last = calloc(g->stamp_pages, sizeof(uint64_t));
	uint64_t ext_end = 0, len;
	bool ext_data = true;
	int r = 0;

	if (!last)
		return guest__fail(g, "out of memory");
	for (uint64_t n = 1; n <= n_all; n++)
		last[stamp_page(g->seed, n, g->stamp_pages)] = n;
	for (uint64_t page = 0; page < g->stamp_pages && !r; page++) {
		uint64_t addr = VFMIG_GUEST_STAMP_BASE +
				page * VFMIG_VM_PAGE_SIZE;
		/* A hole reads as zero: compared as such, not read (which
		 * would allocate and clear a page for it). */
		if (addr >= ext_end) {
			ext_data = vfmig_ram_extent(g->ram, addr, &len) != 0;
			ext_end = addr + len;
		}
		bool filled = !last[page] && page < fill;
		if (!ext_data && !last[page] && !filled)
			continue; /* zero, as it should be */
		const uint64_t *p =
			ext_data ? (const uint64_t *)(const void *)guest__gpa(
					   g, addr)
				 : zero_page;
		uint64_t key = filled ? fill_key(g->seed, page) : 0;
		for (uint64_t w = 0; w < VFMIG_VM_PAGE_SIZE / 8; w++) {
			uint64_t want =
				last[page] ? stamp_word(g->seed, last[page],
							page, w)
				: filled ? fill_word(key, w)
					 : 0;
			if (le64toh(p[w]) == want)
				continue;
			if (filled)
				r = guest__fail(
					g,
					"RAM page 0x%llx word %llu: "
					"0x%016llx, the RAM fill wrote "
					"0x%016llx",
					(unsigned long long)addr,
					(unsigned long long)w,
					(unsigned long long)le64toh(p[w]),
					(unsigned long long)want);
			else
				r = guest__fail(
					g,
					"RAM page 0x%llx word %llu: "
					"0x%016llx, stamp %llu wrote 0x%016llx",
					(unsigned long long)addr,
					(unsigned long long)w,
					(unsigned long long)le64toh(p[w]),
					(unsigned long long)last[page],
					(unsigned long long)want);
			break;
		}
	}
	free(last);
	return r;
}

static int verify_all(struct vfmig_guest *g)
{
	bool failed;

	pthread_mutex_lock(&g->lock);
	failed = g->failed;
	if (failed)
		snprintf(g->msg, sizeof(g->msg), "guest driver failed: %.200s",
			 g->error);
	pthread_mutex_unlock(&g->lock);
	if (failed)
		return -EIO;
	if (!ledger_present(g)) {
		guest__fail(g, "no guest ledger in RAM");
		return -EAGAIN;
	}
	CHECK(ledger_check(g));
	for (unsigned int i = 0; i < g->ndevs; i++) {
		struct gdev *d = &g->devs[i];
		if (!d->drv)
			continue;
		CHECK(d->drv->verify(g, d));
		CHECK(verify_irqs(g, d));
	}
	return verify_stamps(g);
}

int vfmig_guest_verify(struct vfmig_vm *vm, char *msg, size_t size)
{
	struct vfmig_guest *g = vfmig_vm_guest(vm);
	int r;

	if (g->be)
		return g->be->verify(g->be_priv, msg, size);
	pthread_mutex_lock(&g->verify_lock);
	quiesce(g, &g->hold_count);
	r = verify_all(g);
	release(g, &g->hold_count);
	snprintf(msg, size, "%s", r == 0 ? "ok" : g->msg);
	pthread_mutex_unlock(&g->verify_lock);
	return r;
}
