#!/usr/bin/env python3
"""File I/O on sshfs mounts for tests/main/test_concurrent.sh and
tests/main/test_crash.sh.

Every file's expected content is computed from its name, so a writer and
a checker in other processes agree on it without sharing state.  Each
command prints one summary line and exits 0 on success, or prints what
differs on stderr and exits 1.

  write-files DIR PREFIX COUNT   write DIR/PREFIX-0 .. DIR/PREFIX-(COUNT-1)
  verify-files DIR PREFIX COUNT  compare those files with their content
  fill PATH BYTE SIZE CHUNK START PASSES
                                 overwrite the first SIZE bytes of PATH in
                                 place with BYTE, CHUNK bytes per pwrite,
                                 starting at chunk START and wrapping,
                                 PASSES times over
  byte-counts PATH               print the size and how often each byte
                                 value occurs ("size 1048576 41:524288 ...")
  stream SOURCE DEST SYNC_EVERY KILL_PID KILL_AT KILL_DURING_SYNC
                                 copy SOURCE to DEST in 256 KiB writes and
                                 fsync after every SYNC_EVERY bytes (0:
                                 never).  Once KILL_AT bytes are written,
                                 send SIGKILL to KILL_PID: right away, or
                                 with KILL_DURING_SYNC=1 while the next
                                 fsync is in progress.  Prints "synced N"
                                 after each fsync that returned
  small-files DIR PREFIX COUNT KILL_PID KILL_AFTER
                                 write DIR/PREFIX-0 .. DIR/PREFIX-(COUNT-1),
                                 each with an fsync before its close, and
                                 send SIGKILL to KILL_PID about 1 ms after
                                 file KILL_AFTER is opened.  Prints
                                 "synced N" after each closed file
  verify-synced DIR PREFIX COUNT SYNCED
                                 the first SYNCED files of small-files have
                                 their content.  Each later one is missing
                                 or contains the start of its content
  random-ops DIR SEED SECONDS     create, write, truncate and remove
                                 files, and make and remove empty
                                 directories, at random in DIR, DIR/d0,
                                 DIR/d1 and DIR/d0/e for SECONDS; expected
                                 errors (ENOENT, EEXIST, ...) are counted,
                                 but an I/O error fails
  prefix SOURCE PATH             read PATH to its end and require it to be
                                 the first bytes of SOURCE; prints
                                 "prefix N" with its size
"""
import errno
import hashlib
import os
import random
import signal
import sys
import threading
import time

STREAM_WRITE = 256 * 1024


def content(name):
    """Return the content of the file called name: 0 to 24575 bytes of a
    pattern derived from the name, so sizes cover inline files and files
    of several blocks."""
    digest = hashlib.sha256(name.encode()).digest()
    size = int.from_bytes(digest[:4], "little") % 24576
    return (digest * (size // len(digest) + 1))[:size]


def write_files(directory, prefix, count):
    for i in range(count):
        name = "%s-%d" % (prefix, i)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(content(name))
    print("wrote %d files" % count)
    return 0


def verify_files(directory, prefix, count):
    bad = 0
    for i in range(count):
        name = "%s-%d" % (prefix, i)
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            print("%s: %s" % (path, e.strerror), file=sys.stderr)
            bad += 1
            continue
        expected = content(name)
        if data != expected:
            print("%s: %d bytes differ from the expected %d bytes" %
                  (path, len(data), len(expected)), file=sys.stderr)
            bad += 1
    print("%d of %d files match" % (count - bad, count))
    return 1 if bad else 0


def fill(path, byte, size, chunk, start, passes):
    chunks = size // chunk
    block = bytes([byte]) * chunk
    fd = os.open(path, os.O_WRONLY)
    try:
        for _ in range(passes):
            for k in range(chunks):
                index = (start + k) % chunks
                if os.pwrite(fd, block, index * chunk) != chunk:
                    print("%s: short write" % path, file=sys.stderr)
                    return 1
    finally:
        os.close(fd)
    print("filled %s with %02x" % (path, byte))
    return 0


def byte_counts(path):
    with open(path, "rb") as f:
        data = f.read()
    counts = [0] * 256
    for value in set(data):
        counts[value] = data.count(value)
    parts = ["%02x:%d" % (v, n) for v, n in enumerate(counts) if n]
    print(" ".join(["size %d" % len(data)] + parts))
    return 0


def stream(source, dest, sync_every, kill_pid, kill_at, kill_during_sync):
    """Write until the server is killed.  The writes after the kill fail,
    and that ends the copy with status 0.  Status 1 means the whole file
    was written without the kill happening."""
    written = 0
    synced = 0
    killed = False

    def kill():
        os.kill(kill_pid, signal.SIGKILL)

    with open(source, "rb") as src:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while True:
                data = src.read(STREAM_WRITE)
                if not data:
                    break
                os.write(fd, data)
                written += len(data)
                at_sync = sync_every and written - synced >= sync_every
                if not killed and written >= kill_at:
                    if kill_during_sync and at_sync:
                        # The fsync below is in flight after about 1 ms.
                        threading.Timer(0.001, kill).start()
                        killed = True
                    elif not kill_during_sync:
                        kill()
                        killed = True
                if at_sync:
                    os.fsync(fd)
                    synced = written
                    print("synced %d" % synced, flush=True)
        except OSError as e:
            print("stopped after %d bytes: %s" % (written, e.strerror),
                  flush=True)
            return 0 if killed else 1
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
    if killed:
        # The kill came after the last write; wait until the server is
        # gone so that the caller sees the same state either way.
        time.sleep(0.5)
        print("wrote all %d bytes before the server died" % written)
        return 0
    print("wrote all %d bytes and the server was not killed" % written,
          file=sys.stderr)
    return 1


def small_files(directory, prefix, count, kill_pid, kill_after):
    """Like stream, but each file is small: the kill lands among creates,
    writes, fsyncs and closes, which commit metadata."""
    killed = False
    for i in range(count):
        name = "%s-%d" % (prefix, i)
        try:
            fd = os.open(os.path.join(directory, name),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            if i == kill_after:
                threading.Timer(0.001, os.kill,
                                (kill_pid, signal.SIGKILL)).start()
                killed = True
            try:
                os.write(fd, content(name))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            print("stopped at file %d: %s" % (i, e.strerror), flush=True)
            return 0 if killed else 1
        print("synced %d" % (i + 1), flush=True)
    print("wrote all %d files and the server was not stopped" % count,
          file=sys.stderr)
    return 1


def verify_synced(directory, prefix, count, synced):
    bad = 0
    present = 0
    for i in range(count):
        name = "%s-%d" % (prefix, i)
        path = os.path.join(directory, name)
        expected = content(name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if i < synced:
                print("%s: missing after its fsync" % path, file=sys.stderr)
                bad += 1
            continue
        except OSError as e:
            print("%s: %s" % (path, e.strerror), file=sys.stderr)
            bad += 1
            continue
        present += 1
        if i < synced and data != expected:
            print("%s: %d bytes differ from the %d bytes synced" %
                  (path, len(data), len(expected)), file=sys.stderr)
            bad += 1
        elif i >= synced and data != expected[:len(data)]:
            print("%s: its %d bytes are not the start of its content" %
                  (path, len(data)), file=sys.stderr)
            bad += 1
    print("%d files present, %d synced, %d wrong" % (present, synced, bad))
    return 1 if bad else 0


def random_ops(directory, seed, seconds):
    """Several of these on one directory through different mounts race
    on a small set of names, so most operations meet each other.  Files
    are in the fixed directories DIR, DIR/d0, DIR/d1 and DIR/d0/e, which
    must exist.  Directories are only made and removed, as leaves (x0 to
    x3).

    NOTE: there are no renames.  With renames, two such processes on two
    sshfs 3.7.3 mounts (libfuse 3.14) hung within seconds: a rename
    waited inside libfuse and never reached the server, whose queues were
    empty."""
    rnd = random.Random(seed)
    names = ["n%d" % i for i in range(12)]
    leaves = ["x%d" % i for i in range(4)]
    subdirs = ["", "d0/", "d1/", "d0/e/"]
    counts = {}
    failures = 0
    end = time.monotonic() + seconds

    def path():
        return os.path.join(directory, rnd.choice(subdirs) + rnd.choice(names))

    def leaf():
        return os.path.join(directory, rnd.choice(subdirs) + rnd.choice(leaves))

    def write(p):
        with open(p, "wb") as f:
            f.write(bytes([rnd.randrange(256)]) * rnd.randrange(20000))

    def append(p):
        with open(p, "ab") as f:
            f.write(b"a" * rnd.randrange(9000))

    def pwrite(p):
        fd = os.open(p, os.O_WRONLY)
        try:
            os.pwrite(fd, b"p" * rnd.randrange(9000), rnd.randrange(30000))
        finally:
            os.close(fd)

    def read(p):
        with open(p, "rb") as f:
            f.read()

    ops = {
        "write": write,
        "append": append,
        "pwrite": pwrite,
        "truncate": lambda p: os.truncate(p, rnd.randrange(30000)),
        "unlink": os.unlink,
        "mkdir": lambda p: os.mkdir(leaf()),
        "rmdir": lambda p: os.rmdir(leaf()),
        "read": read,
        "list": lambda p: os.listdir(os.path.dirname(p)),
    }
    while time.monotonic() < end:
        op = rnd.choice(sorted(ops))
        p = path()
        try:
            ops[op](p)
            counts[op] = counts.get(op, 0) + 1
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            counts[name] = counts.get(name, 0) + 1
            if e.errno in (errno.EIO, errno.ENOTCONN, errno.ECONNABORTED):
                print("%s %s: %s" % (op, p, e.strerror), file=sys.stderr)
                failures += 1
    print(" ".join("%s:%d" % item for item in sorted(counts.items())))
    return 1 if failures else 0


def prefix(source, path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        print("%s: %s" % (path, e.strerror), file=sys.stderr)
        return 1
    with open(source, "rb") as f:
        expected = f.read(len(data))
    if data != expected:
        print("%s: its %d bytes are not the start of %s" %
              (path, len(data), source), file=sys.stderr)
        return 1
    print("prefix %d" % len(data))
    return 0


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "write-files":
        return write_files(args[0], args[1], int(args[2]))
    if command == "verify-files":
        return verify_files(args[0], args[1], int(args[2]))
    if command == "fill":
        return fill(args[0], int(args[1], 16), int(args[2]), int(args[3]),
                    int(args[4]), int(args[5]))
    if command == "byte-counts":
        return byte_counts(args[0])
    if command == "stream":
        return stream(args[0], args[1], int(args[2]), int(args[3]),
                      int(args[4]), args[5] == "1")
    if command == "small-files":
        return small_files(args[0], args[1], int(args[2]), int(args[3]),
                           int(args[4]))
    if command == "verify-synced":
        return verify_synced(args[0], args[1], int(args[2]), int(args[3]))
    if command == "random-ops":
        return random_ops(args[0], int(args[1]), float(args[2]))
    if command == "prefix":
        return prefix(args[0], args[1])
    print("mount_io.py: unknown command %s (the commands are listed at "
          "the top of mount_io.py)" % command, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
