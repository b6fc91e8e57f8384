#!/usr/bin/env python3
# A hostile peer for RAM channel tests (cli_channels.sh): a fake source
# that announces RAM channels on a main stream and then gets them wrong,
# or a fake destination that takes a real source's channels and drops one
# mid-migration. Streams are format 1.0 (CRC-32 records), written here
# from docs/stream-format.md.
#   mchan_peer.py src MODE SOCKET     MODE: wrong-id | missing | dup | cut
#   mchan_peer.py dst SOCKET N        listen; drop RAM channel N-1 after 1 MiB
import os, socket, struct, sys, time, zlib

INFO, DEVICE_LIST, RAM_PAGES, END = 1, 2, 7, 9
ID = "0123456789abcdef0123456789abcdef"


def header():
    h = b"VFMIGSTR" + struct.pack(">HHI", 1, 0, 0)
    return h + struct.pack(">I", zlib.crc32(h))


def record(rtype, payload, flags=0):
    r = struct.pack(">HHI", rtype, flags, len(payload)) + payload
    return r + struct.pack(">I", zlib.crc32(r))


def s16(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def info(**kv):
    p = struct.pack(">H", len(kv))
    for k, v in kv.items():
        p += s16(k.replace("_", "-")) + s16(v)
    return record(INFO, p)


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def channel(path, idx, n, mig_id=ID):
    s = connect(path)
    s.sendall(header() + info(producer="fake", migration_id=mig_id,
                              channel=str(idx), channels=str(n)) +
              record(DEVICE_LIST, struct.pack(">H", 0), 1))
    return s


def fake_source(mode, path):
    main = connect(path)
    main.sendall(header() + info(producer="fake", ram="ram0", channels="2",
                                 migration_id=ID))
    time.sleep(0.2)
    if mode == "wrong-id":
        chans = [channel(path, 0, 2, "f" * 32)]
    elif mode == "missing":
        chans = [channel(path, 0, 2)]
    elif mode == "dup":
        chans = [channel(path, 0, 2), channel(path, 0, 2)]
    elif mode == "cut":
        chans = [channel(path, 0, 2), channel(path, 1, 2)]
        time.sleep(0.2)
        # A RAM_PAGES record on channel 1 that ends half-way.
        rec = record(RAM_PAGES, s16("ram0") + struct.pack(">II", 4096, 1) +
                     struct.pack(">QIB", 2 << 20, 1, 0) + b"\x55" * 4096, 1)
        chans[1].sendall(rec[:len(rec) // 2])
        chans[1].close()
    else:
        sys.exit("unknown mode " + mode)
    # Wait for the destination to give up: it closes the main connection.
    main.settimeout(30)
    try:
        while main.recv(65536):
            pass
    except OSError:
        pass


def fake_destination(path, n):
    srv = socket.socket(socket.AF_UNIX)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv.bind(path)
    srv.listen(32)
    conns = [srv.accept()[0] for _ in range(n + 1)]
    victim = conns[-1]
    got = 0
    while got < (1 << 20):
        b = victim.recv(65536)
        if not b:
            break
        got += len(b)
    victim.close()
    # Drain the others until the source gives up and closes them.
    for c in conns[:-1]:
        c.settimeout(30)
        try:
            while c.recv(1 << 20):
                pass
        except OSError:
            pass
    print("dropped a channel after %d bytes" % got, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "src":
        fake_source(sys.argv[2], sys.argv[3])
    else:
        fake_destination(sys.argv[2], int(sys.argv[3]))
