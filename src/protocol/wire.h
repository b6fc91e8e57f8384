/* SPDX-License-Identifier: MIT */
/*
 * vfio-user wire layouts and constants.
 *
 * Facts (command numbers, field offsets, flag bits) come from the vfio-user
 * specification, qemu/qemu docs/interop/vfio-user.rst, and the Linux VFIO uAPI
 * header it borrows from. The specification says fields travel in host byte
 * order; every struct here uses fixed-width fields, is packed, and has its
 * size checked with static_assert so a compiler can never add padding.
 *
 * Shared by the device library and the VMM library; neither includes the
 * other.
 */
#ifndef VFMIG_PROTOCOL_WIRE_H
#define VFMIG_PROTOCOL_WIRE_H

#include <assert.h>
#include <stdint.h>

#define VFW_PACKED __attribute__((packed))

/* Protocol version we speak. Reply major must equal ours; minor may be lower. */
#define VFW_VERSION_MAJOR 0
#define VFW_VERSION_MINOR 2

/* Commands, spec table "Commands". 14 was DIRTY_PAGES in the old spec. */
enum vfw_command {
	VFW_CMD_VERSION = 1,
	VFW_CMD_DMA_MAP = 2,
	VFW_CMD_DMA_UNMAP = 3,
	VFW_CMD_DEVICE_GET_INFO = 4,
	VFW_CMD_DEVICE_GET_REGION_INFO = 5,
	VFW_CMD_DEVICE_GET_REGION_IO_FDS = 6,
	VFW_CMD_DEVICE_GET_IRQ_INFO = 7,
	VFW_CMD_DEVICE_SET_IRQS = 8,
	VFW_CMD_REGION_READ = 9,
	VFW_CMD_REGION_WRITE = 10,
	VFW_CMD_DMA_READ = 11,
	VFW_CMD_DMA_WRITE = 12,
	VFW_CMD_DEVICE_RESET = 13,
	VFW_CMD_REGION_WRITE_MULTI = 15,
	VFW_CMD_DEVICE_FEATURE = 16,
	VFW_CMD_MIG_DATA_READ = 17,
	VFW_CMD_MIG_DATA_WRITE = 18,
	VFW_CMD_MAX = 19, /* one past the highest command number */
};

/* ---- Message header (16 bytes on every request and reply) ---- */
#define VFW_FLAGS_TYPE_MASK 0xfu
#define VFW_FLAGS_TYPE_COMMAND 0x0u
#define VFW_FLAGS_TYPE_REPLY 0x1u
#define VFW_FLAGS_NO_REPLY 0x10u
#define VFW_FLAGS_ERROR 0x20u
#define VFW_FLAGS_KNOWN (VFW_FLAGS_TYPE_MASK | VFW_FLAGS_NO_REPLY | VFW_FLAGS_ERROR)

struct vfw_header {
	uint16_t msg_id;
	uint16_t command;
	uint32_t msg_size; /* whole message, header included */
	uint32_t flags;
	uint32_t error; /* errno; only meaningful in a reply with ERROR set */
} VFW_PACKED;
static_assert(sizeof(struct vfw_header) == 16, "vfw_header");

/* Defaults that apply when the peer's capabilities omit a key. */
#define VFW_DEFAULT_MAX_MSG_FDS 1u
#define VFW_DEFAULT_MAX_DATA_XFER (1u << 20)
#define VFW_DEFAULT_MAX_DMA_MAPS 65535u
#define VFW_DEFAULT_PGSIZES 4096u
#define VFW_MAX_MSG_FDS_LIMIT 1024u /* refuse capabilities above this */
#define VFW_MAX_DATA_XFER_LIMIT (64u << 20)

/* ---- VERSION ---- */
struct vfw_version {
	uint16_t major;
	uint16_t minor;
	/* followed by an optional NUL-terminated JSON capabilities text */
} VFW_PACKED;
static_assert(sizeof(struct vfw_version) == 4, "vfw_version");

/* ---- DMA_MAP / DMA_UNMAP ---- */
#define VFW_DMA_READABLE (1u << 0)
#define VFW_DMA_WRITEABLE (1u << 1)

struct vfw_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t offset; /* offset into the passed fd */
	uint64_t address;
	uint64_t size;
} VFW_PACKED;
static_assert(sizeof(struct vfw_dma_map) == 32, "vfw_dma_map");

struct vfw_dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t address;
	uint64_t size;
} VFW_PACKED;
static_assert(sizeof(struct vfw_dma_unmap) == 24, "vfw_dma_unmap");

/* ---- DEVICE_GET_INFO ---- */
#define VFW_DEVICE_FLAGS_RESET (1u << 0)
#define VFW_DEVICE_FLAGS_PCI (1u << 1)

struct vfw_device_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
} VFW_PACKED;
static_assert(sizeof(struct vfw_device_info) == 16, "vfw_device_info");

/* ---- DEVICE_GET_REGION_INFO ---- */
#define VFW_REGION_INFO_FLAG_READ (1u << 0)
#define VFW_REGION_INFO_FLAG_WRITE (1u << 1)
#define VFW_REGION_INFO_FLAG_MMAP (1u << 2)
#define VFW_REGION_INFO_FLAG_CAPS (1u << 3)

/* PCI region indices */
enum vfw_pci_region {
	VFW_PCI_BAR0_REGION = 0,
	VFW_PCI_BAR5_REGION = 5,
	VFW_PCI_ROM_REGION = 6,
	VFW_PCI_CONFIG_REGION = 7,
	VFW_PCI_VGA_REGION = 8,
	VFW_PCI_NUM_REGIONS = 9,
};

struct vfw_region_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t cap_offset; /* from the start of this struct; 0 = none */
	uint64_t size;
	uint64_t offset; /* mmap offset for the passed fd */
} VFW_PACKED;
static_assert(sizeof(struct vfw_region_info) == 32, "vfw_region_info");

#define VFW_REGION_INFO_CAP_SPARSE_MMAP 1
#define VFW_REGION_INFO_CAP_TYPE 2
#define VFW_REGION_INFO_CAP_MSIX_MAPPABLE 3

struct vfw_info_cap_header {
	uint16_t id;
	uint16_t version;
	uint32_t next; /* from the start of the region info struct; 0 = last */
} VFW_PACKED;
static_assert(sizeof(struct vfw_info_cap_header) == 8, "vfw_info_cap_header");

struct vfw_sparse_mmap_area {
	uint64_t offset; /* added to the region's mmap offset */
	uint64_t size;
} VFW_PACKED;
static_assert(sizeof(struct vfw_sparse_mmap_area) == 16, "vfw_sparse_mmap_area");

struct vfw_region_info_cap_sparse_mmap {
	struct vfw_info_cap_header header;
	uint32_t nr_areas;
	uint32_t reserved;
	/* followed by nr_areas struct vfw_sparse_mmap_area */
} VFW_PACKED;
static_assert(sizeof(struct vfw_region_info_cap_sparse_mmap) == 16, "sparse_mmap");

struct vfw_region_info_cap_type {
	struct vfw_info_cap_header header;
	uint32_t type;
	uint32_t subtype;
} VFW_PACKED;
static_assert(sizeof(struct vfw_region_info_cap_type) == 16, "cap_type");

/* ---- The 2019 region-based device-state interface
 * (docs/region-interface.md). Little-endian fields in the control region. */
#define VFW_REGION_TYPE_DEVICE_STATE 2u
#define VFW_REGION_SUBTYPE_DEVICE_STATE_CTL 1u
#define VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_CONFIG 2u
#define VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_MEMORY 3u
#define VFW_REGION_SUBTYPE_DEVICE_STATE_DATA_DIRTYBITMAP 4u
#define VFW_DEVICE_STATE_INTERFACE_VERSION 1u

/* Where vfmig devices put the four regions (VMMs find them by type). */
#define VFW_DS_REGION_CTL 9u
#define VFW_DS_REGION_CONFIG 10u
#define VFW_DS_REGION_MEMORY 11u
#define VFW_DS_REGION_BITMAP 12u
#define VFW_DS_NUM_REGIONS 13u

/* device_state bits; 0 is RUNNING. */
#define VFW_DS_STATE_STOP 1u
#define VFW_DS_STATE_LOGGING 2u
/* caps bits */
#define VFW_DS_CAP_DEVICE_MEMORY 1u
#define VFW_DS_CAP_SYSTEM_MEMORY 2u
/* device_config.action / device_memory.action */
#define VFW_DS_ACTION_GET_BUFFER 1u
#define VFW_DS_ACTION_SET_BUFFER 2u

/* struct vfio_device_state_ctl with natural alignment (x86-64 layout). */
#define VFW_DS_OFF_VERSION 0u
#define VFW_DS_OFF_DEVICE_STATE 4u
#define VFW_DS_OFF_CAPS 8u
#define VFW_DS_OFF_CONFIG_ACTION 16u
#define VFW_DS_OFF_CONFIG_SIZE 24u
#define VFW_DS_OFF_MEMORY_ACTION 32u
#define VFW_DS_OFF_MEMORY_SIZE 40u
#define VFW_DS_OFF_MEMORY_POS 48u
#define VFW_DS_OFF_SYS_START_ADDR 56u
#define VFW_DS_OFF_SYS_PAGE_NR 64u
#define VFW_DS_CTL_STRUCT_SIZE 72u

/* vfmig region sizes. */
#define VFW_DS_CTL_REGION_SIZE 4096u
#define VFW_DS_DATA_REGION_SIZE (1u << 20)
#define VFW_DS_BITMAP_REGION_SIZE 4096u
#define VFW_DS_PAGE_SIZE 4096u

/* The VMM's framing of region-interface data in the opaque device data:
 * u8 kind, be32 length, then length bytes. */
#define VFW_DS_CHUNK_MEMORY 1u
#define VFW_DS_CHUNK_CONFIG 2u
#define VFW_DS_CHUNK_HDR 5u

/* ---- DEVICE_GET_REGION_IO_FDS ---- */
struct vfw_region_io_fds_request {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} VFW_PACKED;
static_assert(sizeof(struct vfw_region_io_fds_request) == 16, "io_fds");
/* The reply is the request's four fields (argsz: the whole reply's size;
 * count: how many sub-regions) and count of these; the fds go with it
 * (SCM_RIGHTS), fd_index naming one. A reply for a too-small argsz has
 * the four fields only, and no fds. */
#define VFW_IO_FD_TYPE_IOEVENTFD 0u
#define VFW_IO_FD_TYPE_IOREGIONFD 1u
#define VFW_IO_FD_FLAG_DATAMATCH (1u << 0) /* as KVM_IOEVENTFD_FLAG_DATAMATCH */
#define VFW_IO_FD_FLAG_PIO (1u << 1)       /* as KVM_IOEVENTFD_FLAG_PIO */
struct vfw_sub_region_ioeventfd {
	uint64_t offset;
	uint64_t size;
	uint32_t fd_index;
	uint32_t type;
	uint32_t flags;
	uint32_t padding;
	uint64_t datamatch;
} VFW_PACKED;
static_assert(sizeof(struct vfw_sub_region_ioeventfd) == 40, "io_fd entry");

/* ---- DEVICE_GET_IRQ_INFO / DEVICE_SET_IRQS ---- */
#define VFW_IRQ_INFO_EVENTFD (1u << 0)
#define VFW_IRQ_INFO_MASKABLE (1u << 1)
#define VFW_IRQ_INFO_AUTOMASKED (1u << 2)
#define VFW_IRQ_INFO_NORESIZE (1u << 3)

enum vfw_pci_irq {
	VFW_PCI_INTX_IRQ_INDEX = 0,
	VFW_PCI_MSI_IRQ_INDEX = 1,
	VFW_PCI_MSIX_IRQ_INDEX = 2,
	VFW_PCI_ERR_IRQ_INDEX = 3,
	VFW_PCI_REQ_IRQ_INDEX = 4,
	VFW_PCI_NUM_IRQS = 5,
};

struct vfw_irq_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} VFW_PACKED;
static_assert(sizeof(struct vfw_irq_info) == 16, "vfw_irq_info");

#define VFW_IRQ_SET_DATA_NONE (1u << 0)
#define VFW_IRQ_SET_DATA_BOOL (1u << 1)
#define VFW_IRQ_SET_DATA_EVENTFD (1u << 2)
#define VFW_IRQ_SET_ACTION_MASK (1u << 3)
#define VFW_IRQ_SET_ACTION_UNMASK (1u << 4)
#define VFW_IRQ_SET_ACTION_TRIGGER (1u << 5)
#define VFW_IRQ_SET_DATA_MASK                                                  \
	(VFW_IRQ_SET_DATA_NONE | VFW_IRQ_SET_DATA_BOOL | VFW_IRQ_SET_DATA_EVENTFD)
#define VFW_IRQ_SET_ACTION_MASK_ALL                                            \
	(VFW_IRQ_SET_ACTION_MASK | VFW_IRQ_SET_ACTION_UNMASK |                 \
	 VFW_IRQ_SET_ACTION_TRIGGER)

struct vfw_irq_set {
	uint32_t argsz; /* size of the request including data */
	uint32_t flags;
	uint32_t index;
	uint32_t start;
	uint32_t count;
	/* DATA_BOOL: count bytes follow */
} VFW_PACKED;
static_assert(sizeof(struct vfw_irq_set) == 20, "vfw_irq_set");

/* ---- REGION_READ / REGION_WRITE ---- */
struct vfw_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	/* WRITE request and READ reply: count bytes of data follow */
} VFW_PACKED;
static_assert(sizeof(struct vfw_region_access) == 16, "vfw_region_access");

/* ---- DMA_READ / DMA_WRITE (server to client) ---- */
struct vfw_dma_access {
	uint64_t address;
	uint64_t count;
	/* DMA_WRITE request and DMA_READ reply: count bytes of data follow */
} VFW_PACKED;
static_assert(sizeof(struct vfw_dma_access) == 16, "vfw_dma_access");

/* ---- REGION_WRITE_MULTI ---- */
#define VFW_WRITE_MULTI_DATA_MAX 8
#define VFW_WRITE_MULTI_MAX 200
struct vfw_write_multi_entry {
	uint64_t offset;
	uint32_t region;
	uint32_t count; /* <= 8 */
	uint8_t data[VFW_WRITE_MULTI_DATA_MAX];
} VFW_PACKED;
static_assert(sizeof(struct vfw_write_multi_entry) == 24, "write_multi_entry");

/* ---- DEVICE_FEATURE ---- */
#define VFW_FEATURE_MASK 0xffffu
#define VFW_FEATURE_GET (1u << 16)
#define VFW_FEATURE_SET (1u << 17)
#define VFW_FEATURE_PROBE (1u << 18)

enum vfw_feature {
	VFW_FEATURE_MIGRATION = 1,
	VFW_FEATURE_MIG_DEVICE_STATE = 2,
	VFW_FEATURE_DMA_LOGGING_START = 6,
	VFW_FEATURE_DMA_LOGGING_STOP = 7,
	VFW_FEATURE_DMA_LOGGING_REPORT = 8,
	/* vfmig extension, only after "vfmig_mig_info" was negotiated
	 * (docs/protocol-extensions.md). MIG_DATA_SIZE keeps the kernel's
	 * index and layout; PRECOPY_INFO carries what the kernel returns from
	 * VFIO_MIG_GET_PRECOPY_INFO. */
	VFW_FEATURE_MIG_DATA_SIZE = 9,
	VFW_FEATURE_VFMIG_PRECOPY_INFO = 0xf001,
	/* vfmig extension, only after "vfmig_data_channel" was negotiated:
	 * SET with one fd, a stream socket that carries the session's
	 * migration data from then on (docs/protocol-extensions.md). */
	VFW_FEATURE_VFMIG_DATA_CHANNEL = 0xf002,
};

#define VFW_MIG_INFO_VERSION 1
/* 2: sealed frames (VFW_DC_F_SEAL, VFW_DC_SEALED). */
#define VFW_DATA_CHANNEL_VERSION 2

/* The SET payload of VFMIG_DATA_CHANNEL (the fd travels with it). */
struct vfw_data_channel {
	uint32_t flags;      /* VFW_DC_F_*; 0 in version 1 */
	uint16_t seal_index; /* VFW_DC_F_SEAL: the stream's device index */
	uint16_t seal_algo;  /* VFW_DC_F_SEAL: VFW_DC_SEAL_XXH3; else 0 */
} VFW_PACKED;

/* Version 2: the session's data goes in SEALED frames, each carrying the
 * migration stream's DEVICE_DATA record checksum for device seal_index
 * (docs/protocol-extensions.md, "Sealed frames"). */
#define VFW_DC_F_SEAL 1u
#define VFW_DC_SEAL_XXH3 1u
static_assert(sizeof(struct vfw_data_channel) == 8, "data_channel");

/* What the device sends on a data channel: frames of this header and size
 * bytes. The VMM sends raw stream bytes while loading (DATA and SEALED
 * frames in a sealed session), and single poke bytes while saving in
 * PRE_COPY. */
struct vfw_dc_frame {
	uint32_t kind; /* VFW_DC_* */
	uint32_t size; /* bytes after the header */
} VFW_PACKED;
static_assert(sizeof(struct vfw_dc_frame) == 8, "dc_frame");

enum vfw_dc_kind {
	VFW_DC_DATA = 1,    /* size 1..VFW_DC_FRAME_MAX bytes of the stream */
	VFW_DC_DRAINED = 2, /* PRE_COPY: nothing more for now (size 0) */
	VFW_DC_END = 3,     /* STOP_COPY: the stream is complete (size 0) */
	VFW_DC_DONE = 4,    /* loading: EOF seen, all loaded; u64 byte count */
	VFW_DC_ERROR = 5,   /* the session failed; u32 positive errno */
	/* Version 2, sealed sessions, both ways: size 5..VFW_DC_FRAME_MAX + 4,
	 * the data, then its DEVICE_DATA record checksum (big-endian u32). */
	VFW_DC_SEALED = 6,
};

#define VFW_DC_FRAME_MAX (1u << 20)

struct vfw_mig_data_size {
	uint64_t stop_copy_length;
} VFW_PACKED;
static_assert(sizeof(struct vfw_mig_data_size) == 8, "mig_data_size");

struct vfw_precopy_info {
	uint64_t initial_bytes;
	uint64_t dirty_bytes;
} VFW_PACKED;
static_assert(sizeof(struct vfw_precopy_info) == 16, "precopy_info");

struct vfw_device_feature {
	uint32_t argsz;
	uint32_t flags;
	/* feature data follows */
} VFW_PACKED;
static_assert(sizeof(struct vfw_device_feature) == 8, "vfw_device_feature");

/* MIGRATION feature flags (GET reply data, u64) */
#define VFW_MIGRATION_STOP_COPY (1ull << 0)
#define VFW_MIGRATION_P2P (1ull << 1)
#define VFW_MIGRATION_PRE_COPY (1ull << 2)

/* v2 migration states */
enum vfw_mig_state {
	VFW_MIG_STATE_ERROR = 0,
	VFW_MIG_STATE_STOP = 1,
	VFW_MIG_STATE_RUNNING = 2,
	VFW_MIG_STATE_STOP_COPY = 3,
	VFW_MIG_STATE_RESUMING = 4,
	VFW_MIG_STATE_RUNNING_P2P = 5,
	VFW_MIG_STATE_PRE_COPY = 6,
	VFW_MIG_STATE_PRE_COPY_P2P = 7,
	VFW_MIG_STATE_NUM = 8,
};

struct vfw_mig_device_state {
	uint32_t device_state;
	uint32_t data_fd; /* unused in vfio-user; echoed */
} VFW_PACKED;
static_assert(sizeof(struct vfw_mig_device_state) == 8, "mig_device_state");

struct vfw_dma_logging_range {
	uint64_t iova;
	uint64_t length;
} VFW_PACKED;
static_assert(sizeof(struct vfw_dma_logging_range) == 16, "logging_range");

struct vfw_dma_logging_start {
	uint64_t page_size;
	uint32_t num_ranges;
	uint32_t reserved;
	/* followed by num_ranges struct vfw_dma_logging_range */
} VFW_PACKED;
static_assert(sizeof(struct vfw_dma_logging_start) == 16, "logging_start");

struct vfw_dma_logging_report {
	uint64_t iova;
	uint64_t length;
	uint64_t page_size;
	/* reply: bitmap of u64 words, bit i = page iova + i * page_size */
} VFW_PACKED;
static_assert(sizeof(struct vfw_dma_logging_report) == 24, "logging_report");

/* ---- MIG_DATA_READ / MIG_DATA_WRITE ---- */
struct vfw_mig_data {
	uint32_t argsz;
	uint32_t size;
	/* data follows */
} VFW_PACKED;
static_assert(sizeof(struct vfw_mig_data) == 8, "vfw_mig_data");

#endif /* VFMIG_PROTOCOL_WIRE_H */
