/* SPDX-License-Identifier: MIT */
/*
 * Device-type registry: how the engine learns the VMM-side state of a device
 * type (PCI config, MSI/MSI-X, IRQ wiring) without knowing the type.
 *
 * A type registers a versioned ops table: its name, a field-table
 * description of its state struct (src/stream/fields.h; the description's
 * name, version and size are the type's), and save/check/load callbacks that
 * move that state between a struct and a device through libvfmig-vmm. The
 * engine creates one registry, lets each type add itself (for PCI:
 * vfmig_pci_type_register()), and looks types up by the name it finds in the
 * device list of a stream. There is no global state: every call takes the
 * registry handle.
 *
 * Lifecycle: vfmig_typereg_create() -> vfmig_typereg_add() per type ->
 * vfmig_typereg_find() ... -> vfmig_typereg_destroy(). A registry is not
 * locked: fill it before sharing it between threads, then only find().
 *
 * Errors are negative errno values. Functions that take err/errlen write a
 * human-readable message naming the problem there when they fail (err may
 * be NULL).
 */
#ifndef VFMIG_ENGINE_TYPEREG_H
#define VFMIG_ENGINE_TYPEREG_H

#include <stddef.h>
#include <stdint.h>

#include <vfmig/vmm.h>

#include "stream/fields.h"

#define VFMIG_TYPE_OPS_VERSION 1

/* Which IRQ index and how many vectors of it the VMM must bind to eventfds
 * after a load (count 0: nothing is enabled, bind nothing). */
struct vfmig_type_irq_wiring {
	uint32_t index; /* VFMIG_VMM_IRQ_* */
	uint32_t count;
};

struct vfmig_type_ops {
	unsigned version;                     /* VFMIG_TYPE_OPS_VERSION */
	const char *name;                     /* equal to desc->name, e.g. "pci" */
	const struct vfmig_fields_desc *desc; /* state struct: version, size, fields */
	/* Optional: set defaults in a zeroed state struct before a decode
	 * (fields absent from an older stream keep them). */
	void (*init)(void *state);
	/* Read the VMM-visible state of dev into state. Returns 0 or -errno. */
	int (*save)(vfmig_vmm_dev *dev, void *state, char *err, size_t errlen);
	/* Optional: check that dev can take state (same identity and layout)
	 * without changing dev. Returns 0 or -errno (-EINVAL: mismatch;
	 * -EBADMSG: state inconsistent in itself). */
	int (*check)(vfmig_vmm_dev *dev, const void *state, char *err,
		     size_t errlen);
	/* Write state into dev in the order the type requires. Called only
	 * after check() passed. Returns 0 or -errno. */
	int (*load)(vfmig_vmm_dev *dev, const void *state, char *err,
		    size_t errlen);
	/* Optional: the IRQ wiring the loaded state asks for. */
	int (*irq_wiring)(const void *state, struct vfmig_type_irq_wiring *out);
};

struct vfmig_typereg;

/* Returns 0 and a new empty registry in *out, or -EINVAL/-ENOMEM. */
int vfmig_typereg_create(struct vfmig_typereg **out);

/* Frees the registry (not the ops tables, which stay the types'). NULL ok. */
void vfmig_typereg_destroy(struct vfmig_typereg *reg);

/*
 * Adds a type. ops must stay valid for the registry's life (normally a
 * static const table). Returns 0, -EEXIST (a type of that name is already
 * registered), -EINVAL (NULL, unknown ops->version, a missing save/load,
 * name differing from desc->name, or a description that
 * vfmig_fields_check_desc() refuses), -ENOMEM.
 */
int vfmig_typereg_add(struct vfmig_typereg *reg, const struct vfmig_type_ops *ops,
		      char *err, size_t errlen);

/* Returns the type registered under name, or NULL. */
const struct vfmig_type_ops *vfmig_typereg_find(const struct vfmig_typereg *reg,
						const char *name);

/* Number of registered types. */
size_t vfmig_typereg_count(const struct vfmig_typereg *reg);

/*
 * A zeroed state struct of the type's size with init() applied. Returns it
 * (free() it) or NULL (out of memory).
 */
void *vfmig_type_state_new(const struct vfmig_type_ops *ops);

/* save() then encode through the description. On success *out is malloc'd
 * (caller frees). Errors as save() and vfmig_fields_encode(). */
int vfmig_type_save_encoded(const struct vfmig_type_ops *ops, vfmig_vmm_dev *dev,
			    uint8_t **out, size_t *outlen, char *err, size_t errlen);

/*
 * Decode buf into state (a vfmig_type_state_new() struct), check it against
 * dev, then load it. Nothing is written to dev unless decoding and the
 * check succeeded. Errors as vfmig_fields_decode(), check() and load().
 */
int vfmig_type_decode_load(const struct vfmig_type_ops *ops, vfmig_vmm_dev *dev,
			   const void *buf, size_t len, void *state,
			   char *err, size_t errlen);

#endif
