#!/usr/bin/env node
'use strict';
// Builds the guest for the VM suite: the Debian kernel plus an initramfs holding busybox, the
// kernel modules the guest needs, Node.js with its libraries, node-qga (dist + addon), the host
// tools the fallback backend runs, and Debian's qemu-ga for the differential run.
//
// Nothing is installed on the host except qemu-system-x86 / e2fsprogs when missing: the kernel and
// busybox packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into
// .vm-cache/, so the host's /boot is never touched. The image is cached under a key made of
// everything that goes into it, so it is rebuilt exactly when the project (or the host) changes.
//
// Usage: node scripts/vm/build-image.js [--force]

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { CpioWriter } = require('./cpio');

const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = path.join(ROOT, '.vm-cache');
const GUEST_FILES = path.join(__dirname, 'guest');
const PROJECT_IN_GUEST = '/opt/node-qga';

/** Kernel modules the guest loads; their dependencies come from modules.dep. crc32c_generic is
 * a soft dependency of ext4 (metadata checksums) that modules.dep does not list. */
const WANTED_MODULES = ['virtio_pci', 'virtio_console', 'virtio_blk', 'virtio_net', 'ext4', 'crc32c_generic', 'rtc-cmos'];
/** Host programs copied in with their libraries (the fallback backend and qemu-ga run them), by guest dir.
 * coreutils' date replaces busybox's: the fallback sets the clock with `date -s @<sec>.<ns>`, which
 * busybox date refuses (fractional seconds), and a Debian guest has coreutils. */
const HOST_TOOLS = { 'usr/sbin': ['fsfreeze', 'fstrim', 'hwclock', 'chpasswd'], 'usr/bin': ['date'] };
const PAM_MODULES = ['pam_unix.so', 'pam_deny.so', 'pam_permit.so'];
/** Runtime npm dependencies of dist/ (the addon loader). */
const RUNTIME_NPM = ['bindings', 'file-uri-to-path'];
const TEST_USER = { name: 'qgatest', uid: 1000, gid: 1000 };

function log(msg) {
  process.stderr.write(`[vm-image] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

function which(name) {
  for (const dir of (process.env.PATH || '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin'])) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

function aptInstall(pkgs) {
  log(`apt-get install ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env, stdio: 'inherit' });
  } catch {
    run('apt-get', ['update', '-qq'], { env, stdio: 'inherit' });
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env, stdio: 'inherit' });
  }
}

/** Host tools the suite itself needs; installed only when missing. */
function ensureHostTools() {
  const need = [];
  if (!which('qemu-system-x86_64')) need.push('qemu-system-x86');
  if (!which('mkfs.ext4')) need.push('e2fsprogs');
  if (!which('dpkg-deb')) need.push('dpkg');
  if (need.length) aptInstall(need);
}

/** `linux-image-amd64` is a metapackage: resolve the real versioned kernel package. */
function kernelPackageName() {
  const out = run('apt-cache', ['depends', 'linux-image-amd64']);
  const m = out.match(/Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b/);
  if (!m) throw new Error(`cannot resolve linux-image-amd64:\n${out}`);
  return m[1];
}

/** Download a .deb into the cache (once) and unpack it (once); returns the unpack dir. */
function fetchDeb(pkg) {
  const debDir = path.join(CACHE, 'debs');
  fs.mkdirSync(debDir, { recursive: true });
  const findDeb = () => fs.readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  let deb = findDeb();
  if (!deb) {
    log(`apt-get download ${pkg}`);
    try {
      run('apt-get', ['download', pkg], { cwd: debDir });
    } catch {
      run('apt-get', ['update', '-qq']);
      run('apt-get', ['download', pkg], { cwd: debDir });
    }
    deb = findDeb();
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb`);
  }
  const dir = path.join(CACHE, 'pkgs', deb.replace(/\.deb$/, ''));
  if (!fs.existsSync(path.join(dir, '.unpacked'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    run('dpkg-deb', ['-x', path.join(debDir, deb), dir]);
    fs.writeFileSync(path.join(dir, '.unpacked'), deb);
  }
  return { dir, deb };
}

/** Shared libraries of an ELF file, including the loader, as absolute host paths. */
function sharedLibs(file) {
  let out;
  try {
    out = run('ldd', [file]);
  } catch (e) {
    if (/not a dynamic executable/.test(String(e.stdout) + String(e.stderr))) return [];
    throw e;
  }
  const libs = [];
  for (const line of out.split('\n')) {
    const m = line.match(/=>\s*(\/\S+)/) || line.match(/^\s*(\/\S+)\s+\(/);
    if (m) libs.push(m[1]);
    if (/not found/.test(line)) throw new Error(`ldd ${file}: ${line.trim()}`);
  }
  return libs;
}

/** Modules (paths relative to lib/modules/<ver>) in load order, dependencies first. */
function resolveModules(modDir) {
  const dep = new Map();
  for (const line of fs.readFileSync(path.join(modDir, 'modules.dep'), 'utf8').split('\n')) {
    const m = line.match(/^([^:]+):\s*(.*)$/);
    if (m) dep.set(m[1], m[2].split(/\s+/).filter(Boolean));
  }
  const builtin = fs.readFileSync(path.join(modDir, 'modules.builtin'), 'utf8');
  const byName = new Map();
  for (const mod of dep.keys()) byName.set(path.basename(mod).replace(/\.ko(\.[a-z]+)?$/, '').replace(/-/g, '_'), mod);
  const order = [];
  const seen = new Set();
  const visit = (mod) => {
    if (seen.has(mod)) return;
    seen.add(mod);
    for (const d of dep.get(mod) || []) visit(d);
    order.push(mod);
  };
  for (const want of WANTED_MODULES) {
    const key = want.replace(/-/g, '_');
    const mod = byName.get(key);
    if (mod) visit(mod);
    else if (!new RegExp(`/${want.replace(/[-_]/g, '[-_]')}\\.ko`).test(builtin)) {
      throw new Error(`kernel module ${want} is neither in modules.dep nor built in`);
    }
  }
  return order;
}

/** Every file of a directory tree, relative paths, sorted. */
function walk(dir, rel = '') {
  const out = [];
  for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const r = path.posix.join(rel, ent.name);
    if (ent.isDirectory()) out.push(...walk(dir, r));
    else out.push(r);
  }
  return out;
}

/**
 * The guest file tree as a plan (guest path → entry), so the cache key and the cpio come from
 * the same list. Entries: {host}, {data}, {link}, {dir}, {chr}.
 */
function planImage({ busyboxDir, kernelDir, kver }) {
  const plan = new Map();
  const add = (guestPath, entry) => plan.set(guestPath.replace(/^\/+/, ''), entry);
  const addHost = (guestPath, hostPath, extra = {}) => add(guestPath, { host: hostPath, ...extra });
  const addWithLibs = (guestPath, hostPath) => {
    addHost(guestPath, fs.realpathSync(hostPath));
    for (const lib of sharedLibs(hostPath)) addLib(lib);
  };
  const addLib = (lib) => {
    // Keep the path ldd printed (the loader looks there); /lib is a symlink to usr/lib in the guest.
    const guest = lib.replace(/^\/(lib|lib64)\//, '/usr/$1/');
    if (!plan.has(guest.slice(1))) addHost(guest, fs.realpathSync(lib), { mode: 0o755 });
  };

  // Merged-/usr layout like Debian's, so paths printed by ldd and tools resolve the same way.
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'etc', 'dev', 'proc', 'sys', 'run', 'tmp', 'data', 'root', 'var', 'opt', 'home']) {
    add(d, { dir: true, mode: d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755 });
  }
  for (const [l, t] of [['bin', 'usr/bin'], ['sbin', 'usr/sbin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64'], ['var/run', '/run']]) add(l, { link: t });
  add('dev/console', { chr: [5, 1] });
  add('dev/null', { chr: [1, 3], mode: 0o666 });

  // busybox: every applet as a symlink, unless a real program takes that name below.
  addHost('usr/bin/busybox', path.join(busyboxDir, 'bin', 'busybox'), { mode: 0o755 });
  const applets = run(path.join(busyboxDir, 'bin', 'busybox'), ['--list']).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') add(`usr/bin/${a}`, { link: 'busybox' });
  add('init', { link: '/usr/bin/busybox' });

  // Kernel modules.
  const modDir = path.join(kernelDir, 'lib', 'modules', kver);
  const modules = resolveModules(modDir);
  for (const m of modules) addHost(`usr/lib/modules/${kver}/${m}`, path.join(modDir, m), { mode: 0o644 });
  add('etc/qga/modules.list', { data: `${modules.join('\n')}\n` });

  // Node.js and the project.
  addWithLibs('usr/bin/node', fs.realpathSync(process.execPath));
  add(`${PROJECT_IN_GUEST}/package.json`, { host: path.join(ROOT, 'package.json') });
  const dist = path.join(ROOT, 'dist');
  if (fs.existsSync(dist)) for (const f of walk(dist)) if (!f.endsWith('.map')) addHost(`${PROJECT_IN_GUEST}/dist/${f}`, path.join(dist, f));
  const release = path.join(ROOT, 'build', 'Release');
  if (fs.existsSync(release)) {
    for (const f of fs.readdirSync(release).filter((f) => f.endsWith('.node')).sort()) {
      addHost(`${PROJECT_IN_GUEST}/build/Release/${f}`, path.join(release, f));
      for (const lib of sharedLibs(path.join(release, f))) addLib(lib);
    }
  }
  for (const pkg of RUNTIME_NPM) {
    const dir = path.join(ROOT, 'node_modules', pkg);
    if (!fs.existsSync(dir)) continue;
    for (const f of walk(dir)) addHost(`${PROJECT_IN_GUEST}/node_modules/${pkg}/${f}`, path.join(dir, f));
  }

  // Host tools (util-linux, passwd) for the fallback backend and qemu-ga, PAM for chpasswd.
  for (const [dir, tools] of Object.entries(HOST_TOOLS)) {
    for (const t of tools) {
      const p = which(t);
      if (!p) throw new Error(`host tool ${t} is missing (apt-get install util-linux util-linux-extra passwd coreutils)`);
      addWithLibs(`${dir}/${t}`, p);
    }
  }
  const pamDir = ['/usr/lib/x86_64-linux-gnu/security', '/lib/x86_64-linux-gnu/security'].find((d) => fs.existsSync(d));
  if (pamDir) {
    for (const m of PAM_MODULES) if (fs.existsSync(path.join(pamDir, m))) addWithLibs(`usr/lib/x86_64-linux-gnu/security/${m}`, path.join(pamDir, m));
  }
  add('etc/pam.d/chpasswd', { data: 'password [success=1 default=ignore] pam_unix.so obscure yescrypt\npassword requisite pam_deny.so\npassword required pam_permit.so\n' });
  add('etc/pam.d/other', { data: 'auth required pam_deny.so\naccount required pam_deny.so\npassword required pam_deny.so\nsession required pam_deny.so\n' });
  add('etc/login.defs', { data: 'ENCRYPT_METHOD YESCRYPT\nPASS_MAX_DAYS 99999\nPASS_MIN_DAYS 0\nPASS_WARN_AGE 7\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n' });
  const qemuGa = which('qemu-ga');
  if (qemuGa) addWithLibs('usr/sbin/qemu-ga', qemuGa);

  // Accounts: root, a test user for set-user-password, shadow readable by group shadow only.
  const u = TEST_USER;
  add('etc/passwd', { data: `root:x:0:0:root:/root:/bin/sh\n${u.name}:x:${u.uid}:${u.gid}:qga test:/home/${u.name}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n` });
  add('etc/group', { data: `root:x:0:\nshadow:x:42:\n${u.name}:x:${u.gid}:\nnogroup:x:65534:\n` });
  add('etc/shadow', { data: `root:*:19000:0:99999:7:::\n${u.name}:!:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n`, mode: 0o640, gid: 42 });
  add(`home/${u.name}`, { dir: true, mode: 0o755, uid: u.uid, gid: u.gid });
  add('etc/nsswitch.conf', { data: 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' });
  add('etc/hostname', { data: 'qga-guest\n' });
  for (const osr of ['/etc/os-release', '/usr/lib/os-release']) if (fs.existsSync(osr)) { add('etc/os-release', { host: fs.realpathSync(osr) }); break; }

  // Init and the test control loop.
  add('etc/inittab', { host: path.join(GUEST_FILES, 'inittab') });
  add('etc/init.d/rcS', { host: path.join(GUEST_FILES, 'rcS'), mode: 0o755 });
  for (const f of ['agent.sh', 'ctl.sh', 'down.sh']) add(`etc/qga/${f}`, { host: path.join(GUEST_FILES, f), mode: 0o755 });
  add('etc/qga/echo.js', { host: path.join(GUEST_FILES, 'echo.js') });
  add('usr/sbin/shutdown', { host: path.join(GUEST_FILES, 'shutdown'), mode: 0o755 });
  return plan;
}

/** Parent directories first, as the kernel's initramfs unpacker needs them to exist. */
function withParents(plan) {
  const all = new Map(plan);
  for (const p of plan.keys()) {
    let d = path.posix.dirname(p);
    while (d !== '.' && !all.has(d)) {
      all.set(d, { dir: true, mode: 0o755 });
      d = path.posix.dirname(d);
    }
  }
  return [...all.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function cacheKey(entries, extra) {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify(extra));
  for (const [p, e] of entries) {
    h.update(`${p}\0${JSON.stringify({ ...e, data: undefined })}\0`);
    if (e.data !== undefined) h.update(e.data);
    if (e.host) h.update(fs.readFileSync(e.host)); // contents, not mtimes: a rebuild that changes nothing keeps the image
  }
  return h.digest('hex').slice(0, 16);
}

function writeCpio(entries, file) {
  const w = new CpioWriter(file);
  for (const [p, e] of entries) {
    const owner = { uid: e.uid ?? 0, gid: e.gid ?? 0 };
    if (e.dir) w.dir(p, e.mode ?? 0o755, owner);
    else if (e.link) w.symlink(p, e.link);
    else if (e.chr) w.charDevice(p, e.chr[0], e.chr[1], e.mode ?? 0o600);
    else if (e.data !== undefined) w.data(p, Buffer.from(e.data), e.mode ?? 0o644, owner);
    else w.file(p, e.host, e.mode, owner);
  }
  w.close();
  return w.bytes;
}

/**
 * Returns {kernel, initrd, key, built, ms, bytes}. Rebuilds only when the key changed.
 * @param {{force?: boolean}} opts
 */
function buildImage(opts = {}) {
  const t0 = Date.now();
  ensureHostTools();
  const kpkg = kernelPackageName();
  const kernel = fetchDeb(kpkg);
  const busybox = fetchDeb('busybox-static');
  const kver = fs.readdirSync(path.join(kernel.dir, 'lib', 'modules'))[0];
  const modDir = path.join(kernel.dir, 'lib', 'modules', kver);
  if (!fs.existsSync(path.join(modDir, 'modules.dep'))) {
    // The .deb carries no modules.dep (the postinst makes it); busybox's depmod writes it into our unpack dir only.
    run(path.join(busybox.dir, 'bin', 'busybox'), ['depmod', '-b', kernel.dir, kver]);
  }
  const entries = withParents(planImage({ busyboxDir: busybox.dir, kernelDir: kernel.dir, kver }));
  const key = cacheKey(entries, { kernel: kernel.deb, busybox: busybox.deb, format: 2 });
  const outDir = path.join(CACHE, 'images', key);
  const initrd = path.join(outDir, 'initrd.cpio');
  const vmlinuz = path.join(kernel.dir, 'boot', `vmlinuz-${kver}`);
  const result = { kernel: vmlinuz, initrd, key, kver, built: false, ms: 0, bytes: 0 };
  if (!opts.force && fs.existsSync(path.join(outDir, 'done'))) {
    result.bytes = fs.statSync(initrd).size;
    result.ms = Date.now() - t0;
    return result;
  }
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  result.bytes = writeCpio(entries, initrd);
  fs.writeFileSync(path.join(outDir, 'done'), `${new Date().toISOString()}\n`);
  // Keep only this image: each one is ~150 MB.
  for (const old of fs.readdirSync(path.join(CACHE, 'images'))) if (old !== key) fs.rmSync(path.join(CACHE, 'images', old), { recursive: true, force: true });
  result.built = true;
  result.ms = Date.now() - t0;
  return result;
}

module.exports = { buildImage, TEST_USER, PROJECT_IN_GUEST };

if (require.main === module) {
  const r = buildImage({ force: process.argv.includes('--force') });
  log(`${r.built ? 'built' : 'cached'} image ${r.key}: ${(r.bytes / 1048576).toFixed(1)} MiB initrd, kernel ${r.kver}, ${r.ms} ms`);
  console.log(JSON.stringify(r));
}
