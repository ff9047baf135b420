'use strict';
/**
 * Loop-mounted ext4 images for the freeze scenario, created under the benchmark's temporary
 * directory and removed afterwards. Freezing a real filesystem of this machine (its root
 * above all) would hang it, so before any freeze `assertOnlyOurLoops` re-reads the mount
 * table and refuses unless every mount point is one of these loops, under our directory.
 */
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function which(tool) {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    const p = path.join(dir, tool);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** null when loop filesystems can be made here, else the reason they cannot. */
function loopsUnavailable() {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'needs root (loop devices, mount, FIFREEZE)';
  if (!fs.existsSync('/dev/loop-control')) return 'no /dev/loop-control (no loop device support)';
  for (const t of ['losetup', 'mkfs.ext4', 'mount', 'umount', 'fsfreeze']) if (!which(t)) return `${t} not found`;
  return null;
}

function run(tool, args) {
  return execFileSync(which(tool), args, { encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Mount table rows as { mountpoint, source }. Octal escapes in paths are decoded. */
function mountTable() {
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return fs.readFileSync('/proc/self/mountinfo', 'latin1').split('\n').filter(Boolean).map((line) => {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    return { line, mountpoint: unescape(f[4]), source: unescape(f[dash + 2]) };
  });
}

class LoopSet {
  constructor(dir) {
    this.dir = fs.realpathSync(dir);
    /** { image, device, mountpoint } for each loop made so far. */
    this.loops = [];
  }

  /** Creates `n` more 16 MiB ext4 loops. */
  add(n) {
    for (let i = 0; i < n; i++) {
      const k = this.loops.length;
      const image = path.join(this.dir, `loop-${k}.img`);
      const mountpoint = path.join(this.dir, `mnt-${k}`);
      fs.writeFileSync(image, '');
      fs.truncateSync(image, 16 * 1024 * 1024);
      run('mkfs.ext4', ['-q', '-F', image]);
      const device = run('losetup', ['--find', '--show', image]);
      const entry = { image, device, mountpoint, mounted: false };
      this.loops.push(entry);
      fs.mkdirSync(mountpoint);
      run('mount', ['-t', 'ext4', device, mountpoint]);
      entry.mounted = true;
      fs.writeFileSync(path.join(mountpoint, 'data'), 'benchmark\n');
    }
  }

  mountpoints(n) { return this.loops.slice(0, n).map((l) => l.mountpoint); }

  /** Throws unless every path in `mountpoints` is mounted from one of our loop devices, under our dir. */
  assertOnlyOurLoops(mountpoints) {
    const table = mountTable();
    for (const mp of mountpoints) {
      const ours = this.loops.find((l) => l.mountpoint === mp);
      if (!ours) throw new Error(`refusing to freeze ${mp}: not a loop filesystem this benchmark made`);
      if (!mp.startsWith(this.dir + path.sep) || mp === '/' || path.dirname(mp) !== this.dir) throw new Error(`refusing to freeze ${mp}: outside ${this.dir}`);
      const rows = table.filter((r) => r.mountpoint === mp);
      if (rows.length !== 1 || rows[0].source !== ours.device) throw new Error(`refusing to freeze ${mp}: mount table says ${rows.map((r) => r.source).join(', ') || 'not mounted'}, expected ${ours.device}`);
    }
  }

  /** A proc-root fixture whose self/mountinfo lists only our loops (node-qga's --proc-root). */
  procFixture() {
    const root = path.join(this.dir, 'proc-fixture');
    fs.mkdirSync(path.join(root, 'self'), { recursive: true });
    const devices = new Set(this.loops.map((l) => l.device));
    const lines = mountTable().filter((r) => devices.has(r.source) && this.loops.some((l) => l.mountpoint === r.mountpoint)).map((r) => r.line);
    fs.writeFileSync(path.join(root, 'self', 'mountinfo'), lines.join('\n') + '\n');
    return root;
  }

  /** Thaws (ours only), unmounts and detaches everything; never throws. */
  cleanup() {
    for (const l of [...this.loops].reverse()) {
      if (l.mounted) {
        try { run('fsfreeze', ['--unfreeze', l.mountpoint]); } catch { /* was not frozen: the normal case */ }
        try { run('umount', [l.mountpoint]); l.mounted = false; } catch (e) { process.stderr.write(`bench: could not unmount ${l.mountpoint}: ${e.message}\n`); }
      }
      try { run('losetup', ['-d', l.device]); } catch { /* already detached */ }
      try { fs.rmSync(l.image, { force: true }); fs.rmdirSync(l.mountpoint); } catch { /* best effort */ }
    }
    this.loops = [];
  }
}

module.exports = { LoopSet, loopsUnavailable };
