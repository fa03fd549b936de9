#!/usr/bin/env python3
"""Send one fixed scenario of raw SFTP v3 requests to a server on stdio.

Usage: sftp_probe.py --strip PREFIX --owner UID:GID --other-uid UID -- SERVER...

The server command is started with pipes for stdin and stdout.  Every
request of the scenario prints one line, "label: outcome", where the
outcome is the reply reduced to what a client observes: the status code,
or the data's length and SHA-256, or the attributes that matter.  Paths in
replies lose PREFIX, so that OpenSSH's sftp-server started in a directory
and sshfsd-sftp-server on an image print the same lines.  The scenario
uses relative paths only.  It leaves out what the two servers are known to
do differently: symbolic links, hard links, unknown request types, a
directory opened as a file, malformed requests, and empty paths outside
REALPATH (OpenSSH passes those to the system as they are).
"""

import argparse
import hashlib
import struct
import subprocess
import sys

FXP_INIT, FXP_VERSION, FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE = 1, 2, 3, 4, 5, 6
FXP_LSTAT, FXP_FSTAT, FXP_SETSTAT, FXP_FSETSTAT = 7, 8, 9, 10
FXP_OPENDIR, FXP_READDIR, FXP_REMOVE, FXP_MKDIR, FXP_RMDIR = 11, 12, 13, 14, 15
FXP_REALPATH, FXP_STAT, FXP_RENAME = 16, 17, 18
FXP_STATUS, FXP_HANDLE, FXP_DATA, FXP_NAME, FXP_ATTRS = 101, 102, 103, 104, 105
FXP_EXTENDED, FXP_EXTENDED_REPLY = 200, 201

READ, WRITE, APPEND, CREAT, TRUNC, EXCL = 1, 2, 4, 8, 0x10, 0x20

ATTR_SIZE, ATTR_UIDGID, ATTR_PERMISSIONS, ATTR_ACMODTIME = 1, 2, 4, 8


def u32(value):
    return struct.pack(">I", value)


def u64(value):
    return struct.pack(">Q", value)


def string(value):
    if isinstance(value, str):
        value = value.encode()
    return u32(len(value)) + value


def attrs(size=None, owner=None, perm=None, times=None):
    flags, body = 0, b""
    if size is not None:
        flags |= ATTR_SIZE
        body += u64(size)
    if owner is not None:
        flags |= ATTR_UIDGID
        body += u32(owner[0]) + u32(owner[1])
    if perm is not None:
        flags |= ATTR_PERMISSIONS
        body += u32(perm)
    if times is not None:
        flags |= ATTR_ACMODTIME
        body += u32(times[0]) + u32(times[1])
    return u32(flags) + body


class Reader:
    """Bounds-checked reads from a reply body."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, count):
        if self.pos + count > len(self.data):
            raise ValueError("reply is truncated")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def string(self):
        return self.take(self.u32())

    def attrs(self):
        flags = self.u32()
        found = {}
        if flags & ATTR_SIZE:
            found["size"] = self.u64()
        if flags & ATTR_UIDGID:
            found["uid"], found["gid"] = self.u32(), self.u32()
        if flags & ATTR_PERMISSIONS:
            found["perm"] = self.u32()
        if flags & ATTR_ACMODTIME:
            found["atime"], found["mtime"] = self.u32(), self.u32()
        return found


class Client:
    def __init__(self, argv, strip):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.strip = strip.encode()
        self.next_id = 1
        self.send(FXP_INIT, u32(3))
        kind, _ = self.receive()
        if kind != FXP_VERSION:
            raise RuntimeError("server did not answer INIT with VERSION")

    def send(self, kind, body):
        packet = bytes([kind]) + body
        self.proc.stdin.write(u32(len(packet)) + packet)
        self.proc.stdin.flush()

    def receive(self):
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            raise RuntimeError("server closed the connection")
        length = struct.unpack(">I", header)[0]
        packet = self.proc.stdout.read(length)
        return packet[0], packet[1:]

    def request(self, kind, body):
        request_id = self.next_id
        self.next_id += 1
        self.send(kind, u32(request_id) + body)
        reply_kind, reply = self.receive()
        reader = Reader(reply)
        if reader.u32() != request_id:
            raise RuntimeError("reply id does not match the request")
        return reply_kind, reader

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def path(self, raw):
        if raw.startswith(self.strip):
            raw = raw[len(self.strip):] or b"/"
        return raw.decode(errors="replace")


def describe(client, kind, reader):
    """The outcome of a reply as one line of text."""
    if kind == FXP_STATUS:
        return "STATUS %d" % reader.u32()
    if kind == FXP_HANDLE:
        return "HANDLE"
    if kind == FXP_DATA:
        data = reader.string()
        return "DATA %d %s" % (len(data), hashlib.sha256(data).hexdigest()[:16])
    if kind == FXP_ATTRS:
        found = reader.attrs()
        return "ATTRS " + " ".join(
            "%s=%s" % (key, oct(value) if key == "perm" else value)
            for key, value in sorted(found.items()))
    if kind == FXP_NAME:
        count = reader.u32()
        names = []
        for _ in range(count):
            names.append(client.path(reader.string()))
            reader.string()
            reader.attrs()
        return "NAME " + " ".join(names)
    return "REPLY %d" % kind


class Scenario:
    def __init__(self, client, owner, other_uid):
        self.client = client
        self.owner = owner
        self.other_uid = other_uid
        self.handles = {}

    def say(self, label, outcome):
        print("%s: %s" % (label, outcome))

    def run(self, label, kind, body, keep=None):
        reply_kind, reader = self.client.request(kind, body)
        if keep and reply_kind == FXP_HANDLE:
            self.handles[keep] = reader.string()
            reader.pos -= 4 + len(self.handles[keep])
        self.say(label, describe(self.client, reply_kind, reader))

    def ext(self, label, name, body, keep=None):
        self.run(label, FXP_EXTENDED, string(name) + body, keep)

    def h(self, name):
        return string(self.handles.get(name, b"\0" * 8))

    def readdir_names(self, label, path):
        """List a directory: names with type, permissions and file sizes."""
        kind, reader = self.client.request(FXP_OPENDIR, string(path))
        if kind != FXP_HANDLE:
            self.say(label, describe(self.client, kind, reader))
            return
        handle = reader.string()
        entries = []
        while True:
            kind, reader = self.client.request(FXP_READDIR, string(handle))
            if kind != FXP_NAME:
                status = describe(self.client, kind, reader)
                break
            for _ in range(reader.u32()):
                name = reader.string().decode(errors="replace")
                longname = reader.string()
                found = reader.attrs()
                perm = found.get("perm", 0)
                size = found.get("size") if perm & 0o170000 == 0o100000 else "-"
                entries.append("%s:%s:%o:%s" % (name, chr(longname[0]),
                                                perm, size))
        self.client.request(FXP_CLOSE, string(handle))
        self.say(label, "%s then %s" % (" ".join(sorted(entries)), status))

    def steps(self):
        other = (self.other_uid, self.owner[1])
        self.run("realpath dot", FXP_REALPATH, string("."))
        self.run("realpath empty", FXP_REALPATH, string(""))
        self.run("realpath missing leaf", FXP_REALPATH, string("missing"))
        self.run("realpath missing parent", FXP_REALPATH, string("missing/x"))

        self.run("mkdir", FXP_MKDIR, string("d") + attrs(perm=0o755))
        self.run("mkdir existing", FXP_MKDIR, string("d") + attrs())
        self.run("mkdir dot", FXP_MKDIR, string(".") + attrs())
        self.run("mkdir in missing", FXP_MKDIR, string("nope/x") + attrs())
        self.run("mkdir default perm", FXP_MKDIR, string("e") + attrs())
        self.run("stat mkdir default perm", FXP_STAT, string("e"))

        self.run("open create", FXP_OPEN, string("f") + u32(WRITE | CREAT)
                 + attrs(perm=0o640), keep="f")
        self.run("write", FXP_WRITE, self.h("f") + u64(0) + string("hello"))
        self.run("write past end", FXP_WRITE, self.h("f") + u64(10)
                 + string("!"))
        self.run("close", FXP_CLOSE, self.h("f"))
        self.run("close again", FXP_CLOSE, self.h("f"))
        self.run("read closed", FXP_READ, self.h("f") + u64(0) + u32(1))
        self.run("fstat closed", FXP_FSTAT, self.h("f"))
        self.run("open excl existing", FXP_OPEN, string("f")
                 + u32(WRITE | CREAT | EXCL) + attrs())
        self.run("open missing", FXP_OPEN, string("missing") + u32(READ)
                 + attrs())
        self.run("open in missing dir", FXP_OPEN, string("nope/f")
                 + u32(WRITE | CREAT) + attrs())
        self.run("open under file", FXP_OPEN, string("f/x")
                 + u32(WRITE | CREAT) + attrs())
        self.run("open name too long", FXP_OPEN, string("x" * 300)
                 + u32(WRITE | CREAT) + attrs())

        self.run("open read", FXP_OPEN, string("f") + u32(READ) + attrs(),
                 keep="r")
        self.run("read all", FXP_READ, self.h("r") + u64(0) + u32(100))
        self.run("read at end", FXP_READ, self.h("r") + u64(11) + u32(100))
        self.run("read past end", FXP_READ, self.h("r") + u64(500) + u32(1))
        self.run("read zero bytes", FXP_READ, self.h("r") + u64(0) + u32(0))
        self.run("write on read handle", FXP_WRITE, self.h("r") + u64(0)
                 + string("x"))
        self.run("fstat", FXP_FSTAT, self.h("r"))
        self.run("fsetstat size on read handle", FXP_FSETSTAT, self.h("r")
                 + attrs(size=1))
        self.run("fsetstat perm on read handle", FXP_FSETSTAT, self.h("r")
                 + attrs(perm=0o600))
        self.ext("fsync", "fsync@openssh.com", self.h("r"))
        self.ext("fstatvfs", "fstatvfs@openssh.com", self.h("r"))

        self.run("open write only", FXP_OPEN, string("f") + u32(WRITE)
                 + attrs(), keep="w")
        self.run("read on write handle", FXP_READ, self.h("w") + u64(0)
                 + u32(1))
        self.run("open append", FXP_OPEN, string("log")
                 + u32(WRITE | CREAT | APPEND) + attrs(), keep="a")
        self.run("append at 0", FXP_WRITE, self.h("a") + u64(0)
                 + string("one"))
        self.run("append at 0 again", FXP_WRITE, self.h("a") + u64(0)
                 + string("two"))
        self.run("close append", FXP_CLOSE, self.h("a"))
        self.run("open log", FXP_OPEN, string("log") + u32(READ) + attrs(),
                 keep="l")
        self.run("read appended", FXP_READ, self.h("l") + u64(0) + u32(100))
        self.run("open trunc", FXP_OPEN, string("log")
                 + u32(WRITE | TRUNC) + attrs(), keep="t")
        self.run("stat truncated", FXP_STAT, string("log"))
        self.run("open without access flags", FXP_OPEN, string("log")
                 + u32(0) + attrs(), keep="z")
        self.run("open create read only", FXP_OPEN, string("ro-new")
                 + u32(READ | CREAT) + attrs(), keep="n")
        self.run("read new file", FXP_READ, self.h("n") + u64(0) + u32(1))

        self.ext("copy-data", "copy-data", self.h("r") + u64(0) + u64(0)
                 + self.h("t") + u64(0))
        self.ext("copy-data same file", "copy-data", self.h("r") + u64(0)
                 + u64(0) + self.h("w") + u64(0))
        self.ext("copy-data to read handle", "copy-data", self.h("l")
                 + u64(0) + u64(0) + self.h("r") + u64(0))
        self.ext("copy-data past end", "copy-data", self.h("r") + u64(999)
                 + u64(5) + self.h("t") + u64(0))
        self.run("stat copy", FXP_STAT, string("log"))

        self.run("stat", FXP_STAT, string("f"))
        self.run("lstat", FXP_LSTAT, string("f"))
        self.run("stat missing", FXP_STAT, string("missing"))
        self.run("stat under file", FXP_STAT, string("f/x"))
        self.run("setstat size", FXP_SETSTAT, string("f") + attrs(size=3))
        self.run("setstat grow", FXP_SETSTAT, string("f") + attrs(size=7))
        self.run("setstat other owner", FXP_SETSTAT, string("f")
                 + attrs(owner=other))
        self.run("setstat same owner", FXP_SETSTAT, string("f")
                 + attrs(owner=self.owner))
        self.run("setstat times", FXP_SETSTAT, string("f")
                 + attrs(times=(1000000000, 1200000000)))
        self.run("setstat perm", FXP_SETSTAT, string("f")
                 + attrs(perm=0o604))
        self.run("stat after setstat", FXP_STAT, string("f"))
        self.run("setstat size on dir", FXP_SETSTAT, string("d")
                 + attrs(size=0))
        self.run("setstat missing", FXP_SETSTAT, string("missing")
                 + attrs(perm=0o600))
        self.ext("lsetstat perm", "lsetstat@openssh.com", string("d")
                 + attrs(perm=0o700))
        self.run("stat dir", FXP_STAT, string("d"))

        self.run("remove dir", FXP_REMOVE, string("d"))
        self.run("remove missing", FXP_REMOVE, string("missing"))
        self.run("remove dot", FXP_REMOVE, string("."))
        self.run("rmdir file", FXP_RMDIR, string("f"))
        self.run("rmdir missing", FXP_RMDIR, string("missing"))
        self.run("mkdir sub", FXP_MKDIR, string("d/sub") + attrs())
        self.run("rmdir not empty", FXP_RMDIR, string("d"))
        self.run("rmdir sub", FXP_RMDIR, string("d/sub"))

        self.run("rename", FXP_RENAME, string("f") + string("g"))
        self.run("rename onto itself", FXP_RENAME, string("g") + string("g"))
        self.run("rename onto existing", FXP_RENAME, string("g")
                 + string("log"))
        self.run("rename missing", FXP_RENAME, string("missing")
                 + string("x"))
        self.ext("posix-rename onto existing", "posix-rename@openssh.com",
                 string("g") + string("log"))
        self.ext("posix-rename missing", "posix-rename@openssh.com",
                 string("missing") + string("x"))
        self.ext("posix-rename dir into itself", "posix-rename@openssh.com",
                 string("d") + string("d/sub"))
        self.run("mkdir e/x", FXP_MKDIR, string("e/x") + attrs())
        self.ext("posix-rename onto non-empty dir",
                 "posix-rename@openssh.com", string("d") + string("e"))
        self.ext("posix-rename dir onto file", "posix-rename@openssh.com",
                 string("d") + string("log"))
        self.ext("posix-rename file onto dir", "posix-rename@openssh.com",
                 string("log") + string("d"))
        self.ext("posix-rename onto empty dir", "posix-rename@openssh.com",
                 string("e/x") + string("d"))

        self.run("opendir file", FXP_OPENDIR, string("log"))
        self.run("opendir missing", FXP_OPENDIR, string("missing"))
        self.readdir_names("list home", ".")
        self.readdir_names("list e", "e")

        self.ext("statvfs missing", "statvfs@openssh.com", string("missing"))
        self.ext("expand-path tilde", "expand-path@openssh.com", string("~"))
        self.ext("expand-path tilde dir", "expand-path@openssh.com",
                 string("~/e"))
        self.ext("unknown extension", "frobnicate@example.com", b"")
        self.users_groups()

        for name in ("r", "w", "l", "t", "z", "n"):
            self.run("close " + name, FXP_CLOSE, self.h(name))

    def users_groups(self):
        kind, reader = self.client.request(
            FXP_EXTENDED, string("users-groups-by-id@openssh.com")
            + string(u32(self.owner[0])) + string(u32(self.owner[1])))
        if kind != FXP_EXTENDED_REPLY:
            self.say("users-groups-by-id", describe(self.client, kind, reader))
            return
        users = Reader(reader.string()).string().decode()
        groups = Reader(reader.string()).string().decode()
        self.say("users-groups-by-id", "%s %s" % (users, groups))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strip", default="",
                        help="prefix removed from paths in replies")
    parser.add_argument("--owner", required=True,
                        help="UID:GID the files belong to")
    parser.add_argument("--other-uid", type=int, required=True,
                        help="a uid the server must refuse to give files")
    parser.add_argument("server", nargs="+", help="server command")
    args = parser.parse_args()

    owner = tuple(int(part) for part in args.owner.split(":"))
    client = Client(args.server, args.strip)
    Scenario(client, owner, args.other_uid).steps()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
