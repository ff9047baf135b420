'use strict';
// Writer for the "newc" cpio format, the one the Linux kernel unpacks as an initramfs.
// Written here instead of shelling out to cpio(1) so the image needs no extra host tool and
// so every entry (device nodes, owners, modes) is decided by the builder, not by the host tree.

const fs = require('node:fs');

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n) {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function pad4(n) {
  return (4 - (n % 4)) % 4;
}

class CpioWriter {
  /** @param {string} file output path */
  constructor(file) {
    this.fd = fs.openSync(file, 'w');
    this.ino = 1;
    this.bytes = 0;
  }

  write(buf) {
    fs.writeSync(this.fd, buf);
    this.bytes += buf.length;
  }

  header(name, mode, { uid = 0, gid = 0, size = 0, rdevMajor = 0, rdevMinor = 0, nlink = 1 } = {}) {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [
      this.ino++, mode, uid, gid, nlink, 0 /* mtime: fixed, for reproducible images */, size,
      0, 0, rdevMajor, rdevMinor, nameBuf.length, 0,
    ];
    const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
    this.write(head);
    this.write(nameBuf);
    this.write(Buffer.alloc(pad4(head.length + nameBuf.length)));
  }

  dir(name, perm = 0o755, owner = {}) {
    this.header(name, S_IFDIR | perm, { ...owner, nlink: 2 });
  }

  symlink(name, target) {
    const data = Buffer.from(target);
    this.header(name, S_IFLNK | 0o777, { size: data.length });
    this.write(data);
    this.write(Buffer.alloc(pad4(data.length)));
  }

  charDevice(name, major, minor, perm = 0o600) {
    this.header(name, S_IFCHR | perm, { rdevMajor: major, rdevMinor: minor });
  }

  /** A regular file from a Buffer. */
  data(name, buf, perm = 0o644, owner = {}) {
    this.header(name, S_IFREG | perm, { ...owner, size: buf.length });
    this.write(buf);
    this.write(Buffer.alloc(pad4(buf.length)));
  }

  /** A regular file copied from the host, streamed in chunks (node alone is ~100 MB). */
  file(name, hostPath, perm, owner = {}) {
    const st = fs.statSync(hostPath);
    this.header(name, S_IFREG | (perm ?? st.mode & 0o7777), { ...owner, size: st.size });
    const src = fs.openSync(hostPath, 'r');
    const chunk = Buffer.allocUnsafe(1 << 20);
    let left = st.size;
    try {
      while (left > 0) {
        const n = fs.readSync(src, chunk, 0, Math.min(chunk.length, left), null);
        if (n <= 0) throw new Error(`short read on ${hostPath}`);
        this.write(chunk.subarray(0, n));
        left -= n;
      }
    } finally {
      fs.closeSync(src);
    }
    this.write(Buffer.alloc(pad4(st.size)));
  }

  close() {
    this.header('TRAILER!!!', 0);
    fs.closeSync(this.fd);
  }
}

module.exports = { CpioWriter };
