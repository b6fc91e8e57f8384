/* SPDX-License-Identifier: MIT */
/* The usage texts; see help.h. Keep them in step with docs/vfmig.1. */
#include <string.h>

#include "help.h"

struct usage {
	const char *cmd;
	const char *text;
};

static const struct usage usages[] = {
	{ "vfmig",
	  "usage: vfmig COMMAND [options]\n"
	  "       vfmig COMMAND --help       the options of COMMAND\n"
	  "\n"
	  "commands:\n"
	  "  demo      migrate a VM with sample devices live between two "
	  "VMMs, report\n"
	  "  device    run a sample device (regs, vram, dma)\n"
	  "  vmm       run a VMM with guest RAM, devices and a guest driver\n"
	  "  migrate   migrate a running VMM live, or to a file\n"
	  "  save      stop a VMM and save it to a file\n"
	  "  inspect   print and verify a migration stream\n"
	  "\n"
	  "See vfmig(1).\n" },
	{ "demo",
	  "usage: vfmig demo [--json] [--interface v2|region] [--ram SIZE]\n"
	  "                  [--vram-size SIZE] [--downtime-ms N] [--no-dma] "
	  "[--kvm]\n"
	  "Start a regs, a vram and a dma device and two VMMs, migrate the VM\n"
	  "live,\n"
	  "verify it on the destination and print a report.\n"
	  "  --json                 the report as one JSON object on the "
	  "last line\n"
	  "  --interface v2|region  the devices' device-state interface "
	  "(default v2)\n"
	  "  --ram SIZE             guest RAM (default 64M)\n"
	  "  --vram-size SIZE       the vram device's memory (default 256M)\n"
	  "  --downtime-ms N        the downtime limit (default 30)\n"
	  "  --no-dma               leave the dma device out\n"
	  "  --kvm                  the guest is a KVM guest driving the dma "
	  "device\n"
	  "                         (regs and dma only; without usable KVM: "
	  "the\n"
	  "                         demo without it, saying so)\n" },
	{ "device",
	  "usage: vfmig device NAME (--socket-path PATH | --fd N)\n"
	  "                    [--interface v2|region] [--quiet | --verbose]\n"
	  "                    [--socket-mode MODE] [--allow-uid UID,...]\n"
	  "                    [device options]\n"
	  "NAME: regs, vram, dma (vfmig device NAME --help: its options).\n"
	  "  --socket-path PATH     listen on a UNIX socket at PATH (mode "
	  "0600; a\n"
	  "                         missing directory is made 0700)\n"
	  "  --fd N                 serve the connected socket N\n"
	  "  --socket-mode MODE     the socket file's mode instead of 0600, "
	  "e.g. 0660\n"
	  "  --allow-uid UID,...    serve only clients with these uids (or "
	  "user\n"
	  "                         names, or self); others are closed at "
	  "accept\n"
	  "  --interface v2|region  offer the v2 state machine (default) or\n"
	  "                         the region-based device-state interface\n"
	  "  --quiet, --verbose     log less, or every protocol step\n" },
	{ "device regs",
	  "usage: vfmig device regs (--socket-path PATH | --fd N)\n"
	  "                         [--interface v2|region] "
	  "[--quiet | --verbose]\n"
	  "                         [--fail-transition STATE] "
	  "[--endless-stop-copy]\n"
	  "                         [--no-dirty-log]\n"
	  "A register device: counters, a small DMA engine, MSI-X.\n"
	  "  --fail-transition STATE  refuse every arc into STATE (STOP, "
	  "RUNNING,\n"
	  "                           STOP_COPY or RESUMING), for tests\n"
	  "  --endless-stop-copy      STOP_COPY data never ends, for tests\n"
	  "  --no-dirty-log           offer no DMA dirty logging, for tests\n" },
	{ "device vram",
	  "usage: vfmig device vram (--socket-path PATH | --fd N) "
	  "[--size SIZE]\n"
	  "                         [--interface v2|region] "
	  "[--quiet | --verbose]\n"
	  "A device with large memory, migrated in pre-copy rounds.\n"
	  "  --size SIZE   device memory, 64K..64G in 4 KiB steps "
	  "(default 256M)\n" },
	{ "device dma",
	  "usage: vfmig device dma (--socket-path PATH | --fd N) "
	  "[--rate MBPS]\n"
	  "                        [--interface v2|region] "
	  "[--quiet | --verbose]\n"
	  "                        [--test-skip-dirty-log]\n"
	  "A DMA engine driven by a descriptor ring in guest RAM (copy, fill,\n"
	  "checksum), completions and MSI-X per completion queue.\n"
	  "  --rate MBPS             the engine's speed, 1..100000 MB/s "
	  "(default 500)\n"
	  "  --test-skip-dirty-log   DMA writes are not dirty-logged, for "
	  "tests\n"
	  "                          (migrations then lose data)\n" },
	{ "vmm",
	  "usage: vfmig vmm --device SOCKET [--device SOCKET...] [--ram SIZE]\n"
	  "                 [--control PATH]\n"
	  "                 [--incoming URI [--paused] [--verify before|after]]\n"
	  "                 [--guest-interval-us N] [--seed N] "
	  "[--fill SIZE|all]\n"
	  "                 [--guest-dirty-pages N] [--no-data-channel]\n"
	  "                 [--prealloc] [--kvm] [--socket-mode MODE]\n"
	  "                 [--allow-uid UID,...] [--quiet | --verbose]\n"
	  "  --device SOCKET      attach the vfio-user device at SOCKET "
	  "(up to 8)\n"
	  "  --ram SIZE           guest RAM (e.g. 64M, 1G)\n"
	  "  --control PATH       the JSON control socket\n"
	  "  --incoming URI       wait for a migration on URI\n"
	  "  --paused             an incoming VM stays paused until `cont`\n"
	  "  --verify before|after  check an incoming VM before its guest "
	  "runs\n"
	  "                       (default; part of the downtime) or right "
	  "after\n"
	  "  --guest-interval-us N  pause between two guest driver "
	  "iterations\n"
	  "  --guest-dirty-pages N  RAM pages the guest writes per iteration "
	  "(default 4)\n"
	  "  --seed N             seed of the guest driver's data\n"
	  "  --fill SIZE|all      the guest starts by writing SIZE bytes (or "
	  "all)\n"
	  "                       of its RAM above 1 MiB with pseudo-random "
	  "data\n"
	  "  --no-data-channel    offer the devices no migration data "
	  "channel: their\n"
	  "                       state moves in MIG_DATA_READ/WRITE "
	  "messages\n"
	  "  --prealloc           allocate all guest RAM at start (an incoming "
	  "VM's\n"
	  "                       pages then exist before the migration "
	  "arrives)\n"
	  "  --kvm                run the project's guest on a KVM vCPU "
	  "instead of\n"
	  "                       the driver thread; it drives dma devices "
	  "and\n"
	  "                       migrates live (with --incoming: resumes a "
	  "--kvm\n"
	  "                       VM's vCPU); needs /dev/kvm, RAM 8M..3584M\n"
	  "  --socket-mode MODE   mode of the control and unix: incoming "
	  "sockets\n"
	  "                       instead of 0600, e.g. 0660\n"
	  "  --allow-uid UID,...  serve the control socket only to these "
	  "uids (or\n"
	  "                       user names, or self)\n"
	  "  --quiet, --verbose   log warnings only, or everything\n"
	  "URI: tcp:HOST:PORT | unix:PATH | file:PATH\n" },
	{ "migrate",
	  "usage: vfmig migrate --control PATH URI [--downtime-ms N] "
	  "[--max-rounds N]\n"
	  "       [--connect-timeout-ms N] [--precopy all|ram|none]\n"
	  "       [--max-stop-copy-bytes N] [--stream-checksum crc32|xxh3]\n"
	  "       [--channels N] [--report FILE.svg] [--json]\n"
	  "       [--max-bandwidth SIZE] [--auto-converge off|throttle|force]\n"
	  "       [--converge-rounds N] [--cpu-throttle-initial PCT]\n"
	  "       [--cpu-throttle-increment PCT] [--max-cpu-throttle PCT]\n"
	  "       [--stall-timeout-ms N]\n"
	  "URI: tcp:HOST:PORT | unix:PATH | file:PATH\n"
	  "  --control PATH         the source VMM's control socket\n"
	  "  --downtime-ms N        switch over once the predicted downtime "
	  "fits\n"
	  "                         (default 300)\n"
	  "  --max-rounds N         then switch over anyway (default 30)\n"
	  "  --connect-timeout-ms N  retry a destination not listening yet\n"
	  "                         (default 3000)\n"
	  "  --precopy all|ram|none  what is copied while the guest runs\n"
	  "  --max-stop-copy-bytes N  the most stop-copy data of one device\n"
	  "  --stream-checksum crc32|xxh3  record checksum (crc32: format "
	  "1.0)\n"
	  "  --channels N           RAM pages over N more connections to URI\n"
	  "                         (1..16; tcp: and unix: only), device data "
	  "on\n"
	  "                         the main one; default 1: one stream\n"
	  "  --report FILE.svg      draw the migration's timeline into "
	  "FILE.svg\n"
	  "  --max-bandwidth SIZE   bytes/s of pre-copy (e.g. 40M; K, M, G: "
	  "1024^n);\n"
	  "                         0: unlimited; the stop-copy is not "
	  "limited\n"
	  "  --auto-converge off|throttle|force  when the predicted downtime "
	  "stays\n"
	  "                         above the limit for --converge-rounds N "
	  "rounds\n"
	  "                         (default 3): throttle the guest, switch "
	  "over\n"
	  "                         anyway with a warning, or (off, default) "
	  "go on\n"
	  "                         to --max-rounds\n"
	  "  --cpu-throttle-initial PCT  first throttle step (default 20)\n"
	  "  --cpu-throttle-increment PCT  each further step (default 10)\n"
	  "  --max-cpu-throttle PCT  the most throttle (default 99)\n"
	  "  --stall-timeout-ms N   fail when the destination takes no data "
	  "for N ms\n"
	  "                         (default 10000; -1: never)\n"
	  "  --json                 print the report as one JSON object\n"
	  "On a terminal a progress line is redrawn on stderr while it runs\n"
	  "(not with --json).\n" },
	{ "save",
	  "usage: vfmig save --control PATH FILE [--max-stop-copy-bytes N]\n"
	  "       [--stream-checksum crc32|xxh3]\n"
	  "Stop the VM and save it to FILE (whole or not at all); restore "
	  "with\n"
	  "vfmig vmm ... --incoming file:FILE.\n" },
	{ "inspect",
	  "usage: vfmig inspect FILE\n"
	  "Print every record of a migration stream and verify it; exit 1 if "
	  "it\n"
	  "is corrupt.\n" },
};

bool cli_usage(FILE *out, const char *cmd)
{
	for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
		if (!strcmp(cmd, usages[i].cmd)) {
			fputs(usages[i].text, out);
			return true;
		}
	return false;
}

bool cli_help_asked(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}
