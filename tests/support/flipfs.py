#!/usr/bin/env python3
"""A pass-through FUSE filesystem that can turn read-only under its users.

    flipfs.py BACKING MOUNTPOINT CONTROL

Mounts BACKING at MOUNTPOINT (libfuse 3 through mfusepy; as root it mounts
without fusermount3). While the file CONTROL exists, every call that would
change the filesystem fails with EROFS, as on a filesystem the kernel has
remounted read-only after an error; once CONTROL is removed, writes work
again. Linux refuses to remount a real filesystem read-only while a process
has files open for writing on it, so this is how tests/drills.rs turns the
store's filesystem read-only under a running daemon.

Prints "ready" once mounted; unmount it with `umount MOUNTPOINT`.
"""

import errno
import os
import sys
import threading

import mfusepy as fuse

STAT_KEYS = ("st_gid", "st_mode", "st_nlink", "st_size", "st_uid")
STATVFS_KEYS = (
    "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
    "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax",
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND


class Flip(fuse.Operations):
    use_ns = True

    def __init__(self, root, control):
        self.root = os.path.realpath(root)
        self.control = control

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _writable(self):
        if os.path.exists(self.control):
            raise fuse.FuseOSError(errno.EROFS)

    # Reading.
    def access(self, path, amode):
        if amode & os.W_OK:
            self._writable()
        if not os.access(self._path(path), amode):
            raise fuse.FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None else os.lstat(self._path(path))
        attributes = {key: getattr(st, key) for key in STAT_KEYS}
        attributes["st_atime"] = st.st_atime_ns
        attributes["st_mtime"] = st.st_mtime_ns
        attributes["st_ctime"] = st.st_ctime_ns
        return attributes

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def statfs(self, path):
        sv = os.statvfs(self._path(path))
        return {key: getattr(sv, key) for key in STATVFS_KEYS}

    def open(self, path, flags):
        if flags & WRITE_FLAGS:
            self._writable()
        return os.open(self._path(path), flags)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)

    def flush(self, path, fh):
        return 0

    # Changing.
    def create(self, path, mode, fi=None):
        self._writable()
        # Read and write: the caller (SQLite) reads back what it wrote.
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def write(self, path, data, offset, fh):
        self._writable()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._writable()
        if fh is None:
            os.truncate(self._path(path), length)
        else:
            os.ftruncate(fh, length)

    def fsync(self, path, datasync, fh):
        self._writable()
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def unlink(self, path):
        self._writable()
        os.unlink(self._path(path))

    def rename(self, old, new):
        self._writable()
        os.rename(self._path(old), self._path(new))

    def mkdir(self, path, mode):
        self._writable()
        os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        self._writable()
        os.rmdir(self._path(path))

    def chmod(self, path, mode):
        self._writable()
        os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        self._writable()
        os.chown(self._path(path), uid, gid)

    def utimens(self, path, times=None):
        self._writable()
        os.utime(self._path(path), ns=times)


def main():
    # Absolute: libfuse changes the working directory to /.
    backing, mountpoint, control = (os.path.abspath(arg) for arg in sys.argv[1:4])
    os.makedirs(backing, exist_ok=True)
    os.makedirs(mountpoint, exist_ok=True)

    def announce():
        while not os.path.ismount(mountpoint):
            threading.Event().wait(0.02)
        print("ready", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    fuse.FUSE(
        Flip(backing, control),
        mountpoint,
        foreground=True,
        nothreads=False,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
    )


if __name__ == "__main__":
    main()
