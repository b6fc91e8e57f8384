#!/usr/bin/env python3
# The channel between a migration's source and destination, with faults on
# command (tests/faults). It listens on a UNIX socket or a TCP port,
# connects every connection it accepts (the main one, then the RAM
# channels, in the order they come) to the destination's address, and
# forwards both ways. A line
# on the control socket changes what it does and is answered "ok" once
# that holds:
#   cut [N]     close both sides of connection N (all: every connection)
#   stall [N]   forward nothing either way on N and read no more of it,
#               keeping both sockets open (a network that stopped)
#   flip [N]    invert one byte of the next data toward the destination
#   release     stalls end: what was held back goes on, then the rest
#   count       how many connections came so far
#   addr        the address it listens on, as a migration URI
# N: 0 for the first connection (the main one), 1.. for the RAM channels
# in the order they connected; absent: the main one.
#   fault_proxy.py LISTEN DEST CONTROL
# LISTEN and DEST: a socket path, or tcp:HOST:PORT (LISTEN's port may be 0:
# any free one, which `addr` tells).
import os, signal, socket, sys, threading

lock = threading.Condition()
conns = []      # [source side, destination side] per connection
stalled = set()  # indexes of stalled connections
flips = set()    # indexes with a byte to flip toward the destination


def endpoint(spec):
    """A socket for spec and the address to bind or connect it to."""
    if spec.startswith("tcp:"):
        host, port = spec[4:].rsplit(":", 1)
        s = socket.socket(socket.AF_INET)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s, (host, int(port))
    return socket.socket(socket.AF_UNIX), spec


def pump(i, a, b, to_dst):
    while True:
        try:
            data = a.recv(65536)
        except OSError:
            data = b""
        with lock:
            while i in stalled:
                lock.wait()
            if data and to_dst and i in flips:
                flips.discard(i)
                data = bytes([data[0] ^ 0xFF]) + data[1:]
        if not data:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        try:
            b.sendall(data)
        except OSError:
            try:
                a.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return


def accept_loop(listener, dest):
    while True:
        src, _ = listener.accept()
        dst, where = endpoint(dest)
        try:
            dst.connect(where)
        except OSError:
            src.close()
            continue
        with lock:
            i = len(conns)
            conns.append((src, dst))
        for a, b, to_dst in ((src, dst, True), (dst, src, False)):
            threading.Thread(target=pump, args=(i, a, b, to_dst),
                             daemon=True).start()


def targets(arg):
    if arg == "all":
        return range(len(conns))
    i = int(arg) if arg else 0
    if i >= len(conns):
        raise ValueError("no connection %d (%d came)" % (i, len(conns)))
    return [i]


def command(line):
    words = line.split()
    op, arg = words[0], (words[1] if len(words) > 1 else "")
    with lock:
        if op == "count":
            return str(len(conns))
        if op == "addr":
            return listen_uri
        if op == "release":
            stalled.clear()
            lock.notify_all()
            return "ok"
        for i in targets(arg):
            if op == "cut":
                for s in conns[i]:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            elif op == "stall":
                stalled.add(i)
            elif op == "flip":
                flips.add(i)
            else:
                return "unknown command " + op
    return "ok"


listen_uri = ""


def main():
    global listen_uri
    listen, dest, control = sys.argv[1:4]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ls, where = endpoint(listen)
    if ls.family == socket.AF_INET:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(where)
    ls.listen(16)
    if ls.family == socket.AF_INET:
        listen_uri = "tcp:%s:%d" % ls.getsockname()
    else:
        listen_uri = "unix:" + listen
    cs = socket.socket(socket.AF_UNIX)
    cs.bind(control)
    cs.listen(4)
    threading.Thread(target=accept_loop, args=(ls, dest),
                     daemon=True).start()
    try:
        while True:
            c, _ = cs.accept()
            with c, c.makefile("rw") as f:
                for line in f:
                    try:
                        reply = command(line)
                    except (ValueError, IndexError) as e:
                        reply = "error: %s" % e
                    f.write(reply + "\n")
                    f.flush()
    finally:
        for p in (listen, control):
            if p.startswith("tcp:"):
                continue
            try:
                os.unlink(p)
            except OSError:
                pass


if __name__ == "__main__":
    main()
