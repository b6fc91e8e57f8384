/* SPDX-License-Identifier: MIT */
/* Device-type registry (typereg.h): a small array of ops tables by name. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/typereg.h"

struct vfmig_typereg {
	const struct vfmig_type_ops **types;
	size_t n, cap;
};

__attribute__((format(printf, 3, 4)))
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
}

int vfmig_typereg_create(struct vfmig_typereg **out)
{
	if (!out)
		return -EINVAL;
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void vfmig_typereg_destroy(struct vfmig_typereg *reg)
{
	if (!reg)
		return;
	free(reg->types);
	free(reg);
}

const struct vfmig_type_ops *vfmig_typereg_find(const struct vfmig_typereg *reg,
						const char *name)
{
	if (!reg || !name)
		return NULL;
	for (size_t i = 0; i < reg->n; i++)
		if (strcmp(reg->types[i]->name, name) == 0)
			return reg->types[i];
	return NULL;
}

size_t vfmig_typereg_count(const struct vfmig_typereg *reg)
{
	return reg ? reg->n : 0;
}

int vfmig_typereg_add(struct vfmig_typereg *reg, const struct vfmig_type_ops *ops,
		      char *err, size_t errlen)
{
	int r;

	if (!reg || !ops || !ops->name || !ops->desc) {
		fail(err, errlen, "type registration without a name or description");
		return -EINVAL;
	}
	if (ops->version != VFMIG_TYPE_OPS_VERSION) {
		fail(err, errlen, "type \"%s\": ops version %u, this engine knows %u",
		     ops->name, ops->version, VFMIG_TYPE_OPS_VERSION);
		return -EINVAL;
	}
	if (!ops->save || !ops->load) {
		fail(err, errlen, "type \"%s\": save and load are required", ops->name);
		return -EINVAL;
	}
	if (!ops->desc->name || strcmp(ops->desc->name, ops->name) != 0) {
		fail(err, errlen, "type \"%s\": its field table is named \"%s\"",
		     ops->name, ops->desc->name ? ops->desc->name : "(null)");
		return -EINVAL;
	}
	r = vfmig_fields_check_desc(ops->desc, err, errlen);
	if (r < 0)
		return r;
	if (vfmig_typereg_find(reg, ops->name)) {
		fail(err, errlen, "type \"%s\" is already registered", ops->name);
		return -EEXIST;
	}
	if (reg->n == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 4;
		const struct vfmig_type_ops **t = realloc(reg->types, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		reg->types = t;
		reg->cap = cap;
	}
	reg->types[reg->n++] = ops;
	return 0;
}

void *vfmig_type_state_new(const struct vfmig_type_ops *ops)
{
	void *s = calloc(1, ops->desc->size ? ops->desc->size : 1);

	if (s && ops->init)
		ops->init(s);
	return s;
}

int vfmig_type_save_encoded(const struct vfmig_type_ops *ops, vfmig_vmm_dev *dev,
			    uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
	void *s = vfmig_type_state_new(ops);
	int r;

	if (!s)
		return -ENOMEM;
	r = ops->save(dev, s, err, errlen);
	if (r >= 0)
		r = vfmig_fields_encode(ops->desc, s, out, outlen, err, errlen);
	free(s);
	return r < 0 ? r : 0;
}

int vfmig_type_decode_load(const struct vfmig_type_ops *ops, vfmig_vmm_dev *dev,
			   const void *buf, size_t len, void *state,
			   char *err, size_t errlen)
{
	int r = vfmig_fields_decode(ops->desc, buf, len, state, err, errlen);

	if (r < 0)
		return r;
	if (ops->check) {
		r = ops->check(dev, state, err, errlen);
		if (r < 0)
			return r;
	}
	r = ops->load(dev, state, err, errlen);
	return r < 0 ? r : 0;
}
