'use strict';
// Starts and stops the test guest under QEMU (TCG only: nested KVM hangs on these machines).
// The guest's serial console is captured (lines starting "QGA-VM"/"QGA-CTL" are the guest's
// signals to the host); the agent's virtio-serial port is a unix socket in the run directory.
// The VM is always stopped by the pid QEMU wrote to its pidfile: on stop(), on process exit,
// and at the next start if a previous run crashed and left it behind.

const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { spawn, execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const RUN_BASE = path.join(ROOT, '.vm-cache', 'run');
const GUEST_MAC = '52:54:00:12:34:56';
const DATA_DISK_MIB = 64;
/** Fixed PCI slots, so get-fsinfo's pci-controller can be checked exactly. */
const PCI_SLOTS = { serial: 4, net: 5, data: 6 };

const live = new Set();
process.on('exit', () => {
  for (const vm of live) vm.killNow();
});
// A suite stopped from outside (CI timeout, Ctrl-C) still stops its VMs.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    for (const vm of live) vm.killNow();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function pidIsOurQemu(pid, runDir) {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('qemu-system') && cmd.includes(runDir);
  } catch {
    return false;
  }
}

/** A VM left running by a crashed earlier run in the same run directory: stop it by its pid. */
function reapStale(runDir) {
  const pidfile = path.join(runDir, 'qemu.pid');
  if (!fs.existsSync(pidfile)) return;
  const pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
  if (pid > 0 && pidIsOurQemu(pid, runDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  fs.rmSync(pidfile, { force: true });
}

function makeDataDisk(file) {
  fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, DATA_DISK_MIB * 1048576);
  fs.closeSync(fd);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'qgadata', file], { stdio: 'pipe' });
}

class Vm {
  constructor(opts) {
    this.opts = opts;
    this.label = opts.label;
    this.runDir = path.join(RUN_BASE, opts.label);
    this.socketPath = path.join(this.runDir, 'qga.sock');
    this.pidfile = path.join(this.runDir, 'qemu.pid');
    this.consolePath = path.join(this.runDir, 'console.log');
    this.qmpPath = path.join(this.runDir, 'qmp.sock');
    this.dataImage = path.join(this.runDir, 'data.img');
    this.mac = GUEST_MAC;
    this.pciSlots = PCI_SLOTS;
    this.console = '';
    this.waiters = [];
    this.exited = null; // {code, signal} once QEMU is gone
    this.exitWaiters = [];
  }

  start() {
    const { kernel, initrd, agent = 'node', backend = 'native', memoryMiB = 1024, cpus = 2, noReboot = true } = this.opts;
    fs.mkdirSync(this.runDir, { recursive: true });
    reapStale(this.runDir);
    fs.rmSync(this.socketPath, { force: true });
    fs.rmSync(this.qmpPath, { force: true });
    const dataImg = this.dataImage;
    makeDataDisk(dataImg);
    const append = ['console=ttyS0', 'edd=off', 'panic=-1', 'loglevel=4', `qga.agent=${agent}`, `qga.backend=${backend}`].join(' ');
    const args = [
      '-accel', 'tcg', '-m', String(memoryMiB), '-smp', String(cpus),
      '-nographic', '-no-user-config', '-nodefaults', '-serial', 'stdio',
      '-kernel', kernel, '-initrd', initrd, '-append', append,
      '-rtc', 'base=utc',
      '-pidfile', this.pidfile,
      // QMP, for what only the host side can see or do: run state, wake-up from suspend, reboot action.
      '-qmp', `unix:${this.qmpPath},server=on,wait=off`,
      '-device', `virtio-serial,addr=${PCI_SLOTS.serial}`,
      '-chardev', `socket,path=${this.socketPath},server=on,wait=off,id=qga0`,
      '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      '-drive', `file=${dataImg},if=none,id=d1,format=raw,discard=unmap`,
      '-device', `virtio-blk-pci,drive=d1,discard=on,serial=qga-data,addr=${PCI_SLOTS.data}`,
      '-netdev', 'user,id=n0',
      '-device', `virtio-net-pci,netdev=n0,mac=${this.mac},addr=${PCI_SLOTS.net}`,
    ];
    if (noReboot) args.push('-no-reboot');
    this.startedAt = Date.now();
    this.consoleFd = fs.openSync(this.consolePath, 'w');
    this.proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = this.proc.pid;
    live.add(this);
    const onData = (chunk) => {
      const text = chunk.toString('utf8');
      fs.writeSync(this.consoleFd, text);
      this.console += text;
      this.checkWaiters();
    };
    this.proc.stdout.on('data', onData);
    this.proc.stderr.on('data', onData);
    this.proc.on('exit', (code, signal) => {
      this.exited = { code, signal, at: Date.now() };
      live.delete(this);
      try {
        fs.closeSync(this.consoleFd);
      } catch {}
      fs.rmSync(this.pidfile, { force: true });
      for (const w of this.exitWaiters.splice(0)) w();
      this.checkWaiters();
    });
    return this;
  }

  checkWaiters() {
    for (const w of [...this.waiters]) {
      const m = w.regex.exec(this.console.slice(w.from));
      if (m) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(m);
      } else if (this.exited) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.reject(new Error(`QEMU exited (code ${this.exited.code}) while waiting for ${w.regex}; console tail:\n${this.tail()}`));
      }
    }
  }

  /** Console offset, to wait only for output that comes after a point in time. */
  mark() {
    return this.console.length;
  }

  /** Resolves with the match of `regex` in console output after offset `from`. */
  waitForConsole(regex, timeoutMs, from = 0) {
    return new Promise((resolve, reject) => {
      const w = { regex, from, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${regex} on the guest console; tail:\n${this.tail()}`));
      }, timeoutMs);
      this.waiters.push(w);
      this.checkWaiters();
    });
  }

  tail(lines = 15) {
    return this.console.split('\n').slice(-lines).join('\n');
  }

  /**
   * One QMP command on a fresh monitor connection (greeting, qmp_capabilities, command);
   * resolves with its "return", rejects with its "error". Events are skipped.
   */
  qmp(execute, args, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.qmpPath);
      let buf = '';
      let stage = 0; // 0: greeting, 1: capabilities reply, 2: command reply
      const timer = setTimeout(() => finish(new Error(`QMP ${execute} timed out`)), timeoutMs);
      const finish = (err, value) => {
        clearTimeout(timer);
        sock.destroy();
        if (err) reject(err);
        else resolve(value);
      };
      sock.on('error', (e) => finish(e));
      sock.on('data', (d) => {
        buf += d.toString('utf8');
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const msg = JSON.parse(line);
          if (msg.event) continue;
          if (stage === 0) {
            stage = 1;
            sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
          } else if (stage === 1) {
            stage = 2;
            sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
          } else {
            if (msg.error) finish(new Error(`QMP ${execute}: ${msg.error.class}: ${msg.error.desc}`));
            else finish(null, msg.return);
            return;
          }
        }
      });
    });
  }

  /** Resolves true if QEMU exits by itself within timeoutMs, false otherwise. */
  waitExit(timeoutMs) {
    if (this.exited) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** The pid QEMU wrote itself (falls back to the spawned pid before the file appears). */
  qemuPid() {
    try {
      const p = Number(fs.readFileSync(this.pidfile, 'utf8').trim());
      if (p > 0) return p;
    } catch {}
    return this.pid;
  }

  killNow() {
    if (this.exited) return;
    const pid = this.qemuPid();
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }

  /** Stop the VM by pid: SIGTERM, then SIGKILL after a grace period. */
  async stop() {
    if (this.exited) return;
    const pid = this.qemuPid();
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
    if (await this.waitExit(3000)) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    await this.waitExit(3000);
  }
}

function startVm(opts) {
  return new Vm(opts).start();
}

module.exports = { startVm, GUEST_MAC, PCI_SLOTS, DATA_DISK_MIB };
