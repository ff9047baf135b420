/**
 * The system half of the fallback backend: the same mechanism as the native addon, done with
 * the standard tools every Linux distribution ships (util-linux fsfreeze/fstrim/hwclock,
 * coreutils date, shadow's chpasswd, shutdown or busybox poweroff/halt/reboot). Errors are
 * turned back into ErrnoError shapes (code, syscall 'open' or 'ioctl', path) by reading the
 * tools' `: <strerror>` suffixes, so commands cannot tell this backend from the native one.
 * A missing tool is reported as a QgaError naming the tool.
 */
import { childProcess } from '../platform/lazy-builtins';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SystemBackend, TrimResult } from './types';
import type { AgentConfig } from '../config-types';
import { ERRNO_NUMBERS, errnoError, strerror, QgaError, type ErrnoError } from '../errors';

export interface ToolResult {
  /** Exit status, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr together, as qemu-ga 10.x collects them. */
  output: string;
}

export interface FallbackSystemOptions {
  /**
   * Directories searched for the tools, in order. Default: $PATH, then /sbin, /usr/sbin,
   * /bin, /usr/bin (qemu-ga itself hard-codes /sbin/hwclock and /sbin/shutdown).
   * Tests pass only a directory of fake tools here.
   */
  searchPath?: string[];
}

/** Find an executable by name in `dirs`; absolute names are checked as they are. */
export function findTool(name: string, dirs: string[]): string | null {
  const candidates = name.includes('/') ? [name] : dirs.filter(Boolean).map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      const st = fs.statSync(c);
      if (st.isFile()) { fs.accessSync(c, fs.constants.X_OK); return c; }
    } catch { /* try the next one */ }
  }
  return null;
}

export function defaultSearchPath(): string[] {
  const fromEnv = (process.env.PATH ?? '').split(':').filter(Boolean);
  const extra = ['/sbin', '/usr/sbin', '/bin', '/usr/bin'].filter((d) => !fromEnv.includes(d));
  return [...fromEnv, ...extra];
}

/**
 * Run a tool with stdin from `input` (or /dev/null), collecting stdout+stderr. Rejects only
 * when the process cannot be started (ENOENT, EACCES...).
 */
export function runTool(file: string, args: string[], input?: string | Buffer): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(file, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      // Like qemu-ga's helpers: a session of its own, so a tty's signals never reach it.
      detached: true,
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    const out: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => out.push(b));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, output: Buffer.concat(out).toString('utf8') }));
    if (input !== undefined) {
      child.stdin!.on('error', () => { /* the tool exited early; its status tells why */ });
      child.stdin!.end(input);
    }
  });
}

const CODE_BY_TEXT: Map<string, string> = (() => {
  const m = new Map<string, string>();
  for (const code of Object.keys(ERRNO_NUMBERS)) {
    const text = strerror(errnoError(code));
    if (!m.has(text)) m.set(text, code);
  }
  return m;
})();

/** The errno code for a tool message ending in `: <strerror>`, or null. */
export function codeFromMessage(output: string): string | null {
  const lines = output.trim().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i];
    for (let at = line.indexOf(': '); at >= 0; at = line.indexOf(': ', at + 2)) {
      const code = CODE_BY_TEXT.get(line.slice(at + 2).trim());
      if (code) return code;
    }
  }
  return null;
}

/** util-linux messages: "cannot open X" / "stat of X failed" are open failures, the rest the ioctl's. */
function toolErrnoError(output: string, op: string, mountpoint: string, fallbackCode = 'EIO'): ErrnoError {
  let code = codeFromMessage(output);
  if (!code && /not supported/.test(output)) code = 'EOPNOTSUPP';
  const isOpen = /cannot open|stat of .* failed|not a directory/.test(output);
  const e = errnoError(code ?? fallbackCode, isOpen ? 'open' : `ioctl(${op})`, mountpoint);
  if (!code) e.message = output.trim() || e.message;
  return e;
}

/** The split a dev_t from fs.stat into major:minor (glibc's encoding). */
export function devNumbers(dev: number): { major: number; minor: number } {
  const d = BigInt(dev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

/** The guest lacks the program a fallback operation needs (the native backend may do without it). */
export class MissingToolError extends QgaError {}

function missingTool(action: string, tool: string): QgaError {
  // qemu-ga 10.x's wording when exec fails, naming the tool the guest lacks.
  return new MissingToolError(`child process has failed to ${action}: failed to exec '${tool}': No such file or directory`);
}

function helperFailure(action: string, r: ToolResult): QgaError {
  if (r.code === null) return new QgaError(`child process has terminated abnormally${r.output ? `: ${r.output}` : ''}`);
  return new QgaError(`child process has failed to ${action}: ${r.output || `exit status ${r.code}`}`);
}

export function createFallbackSystem(config: AgentConfig, options: FallbackSystemOptions = {}): Omit<SystemBackend, 'kind' | 'readFileReply' | 'writeBase64'> {
  const dirs = () => options.searchPath ?? defaultSearchPath();
  const tool = (name: string) => findTool(name, dirs());
  const require = (name: string, action: string): string => {
    const found = tool(name);
    if (!found) throw missingTool(action, name);
    return found;
  };

  /** Run fsfreeze once; resolves with success, rejects when the tool cannot run. */
  async function fsfreeze(flag: '--freeze' | '--unfreeze', mountpoint: string): Promise<ToolResult> {
    const bin = require('fsfreeze', flag === '--freeze' ? `freeze ${mountpoint}` : `thaw ${mountpoint}`);
    return runTool(bin, [flag, mountpoint]);
  }

  return {
    async freeze(mountpoint) {
      const r = await fsfreeze('--freeze', mountpoint);
      if (r.code !== 0) throw toolErrnoError(r.output, 'FIFREEZE', mountpoint);
    },

    async thaw(mountpoint) {
      // FITHAW until it fails: a filesystem frozen several times needs several thaws.
      let thawed = false;
      for (let i = 0; i < 64; i++) {
        const r = await fsfreeze('--unfreeze', mountpoint);
        if (r.code === 0) { thawed = true; continue; }
        const e = toolErrnoError(r.output, 'FITHAW', mountpoint, 'EINVAL');
        if (e.syscall === 'open') throw e;
        break;
      }
      return thawed;
    },

    async trim(mountpoint, minimum) {
      const bin = require('fstrim', `trim ${mountpoint}`);
      const r = await runTool(bin, ['-v', '-m', BigInt.asUintN(64, minimum).toString(), mountpoint]);
      if (r.code !== 0) throw toolErrnoError(r.output, 'FITRIM', mountpoint);
      const m = /\((\d+) bytes\) trimmed/.exec(r.output);
      if (!m) throw errnoError('EIO', 'ioctl(FITRIM)', mountpoint);
      const result: TrimResult = { trimmed: BigInt(m[1]), minimum: reportedMinimum(config.sysfsRoot, mountpoint, BigInt.asUintN(64, minimum)) };
      return result;
    },

    async setSystemTime(ns) {
      const bin = require('date', 'set system time');
      // guest-set-time copies the clock to the RTC next: refuse before touching the clock
      // when that step cannot run (qemu-ga 7.2 checks hwclock first too).
      require('hwclock', 'set hardware clock to system time');
      const neg = ns < 0n;
      const abs = neg ? -ns : ns;
      const stamp = `@${neg ? '-' : ''}${abs / 1_000_000_000n}.${String(abs % 1_000_000_000n).padStart(9, '0')}`;
      const r = await runTool(bin, ['-u', '-s', stamp]);
      if (r.code !== 0) {
        const code = codeFromMessage(r.output);
        if (code) throw errnoError(code, 'settimeofday');
        throw new QgaError(`Failed to set time to guest: ${r.output.trim() || `date exit status ${r.code}`}`);
      }
    },

    async systemTimeToRtc() {
      const bin = require('hwclock', 'set hardware clock to system time');
      const r = await runTool(bin, ['--systohc']);
      if (r.code !== 0) throw helperFailure('set hardware clock to system time', r);
    },

    async rtcToSystemTime() {
      const bin = require('hwclock', 'set hardware clock to system time');
      const r = await runTool(bin, ['--hctosys']);
      if (r.code !== 0) throw helperFailure('set hardware clock to system time', r);
    },

    async setUserPassword(user, password, crypted) {
      const bin = tool('chpasswd');
      if (!bin) throw new QgaError("cannot find 'passwd' program in PATH");
      const args = crypted ? ['-e'] : [];
      // Tests (and chroot setups) point shadowFile at <root>/etc/shadow: chpasswd -R edits that
      // tree. PAM cannot start inside such a root, so clear text is hashed by chpasswd itself.
      const shadow = path.resolve(config.shadowFile);
      const root = rootOfShadow(shadow);
      if (shadow !== '/etc/shadow' && !root) {
        throw new QgaError(`cannot set user password: chpasswd can only edit /etc/shadow or <root>/etc/shadow, not ${shadow}`);
      }
      const input = `${user}:${password}\n`; // on stdin only, never in argv or the log
      if (!root) {
        const r = await runTool(bin, args, input);
        if (r.code !== 0) throw helperFailure('set user password', r);
        return;
      }
      const methods = crypted ? [[]] : [['-c', 'YESCRYPT'], ['-c', 'SHA512']];
      let last: ToolResult | undefined;
      for (const method of methods) {
        last = await runTool(bin, [...args, ...method, '-R', root], input);
        if (last.code === 0) return;
        if (!/unsupported crypt method/.test(last.output)) break;
      }
      throw helperFailure('set user password', last!);
    },

    async powerOff(mode) {
      const shutdown = tool('shutdown');
      if (shutdown) {
        const flag = mode === 'halt' ? '-H' : mode === 'reboot' ? '-r' : '-P';
        const r = await runTool(shutdown, ['-h', flag, '+0', 'hypervisor initiated shutdown']);
        if (r.code !== 0) throw helperFailure('shutdown', r);
        return;
      }
      // Minimal guests (busybox) have poweroff/halt/reboot but no shutdown.
      const name = mode === 'halt' ? 'halt' : mode === 'reboot' ? 'reboot' : 'poweroff';
      const bin = tool(name);
      if (!bin) throw missingTool('shutdown', '/sbin/shutdown');
      const r = await runTool(bin, []);
      if (r.code !== 0) throw helperFailure('shutdown', r);
    },
  };
}

const EXT4_SUPER_MAGIC = 0xef53;

/**
 * FITRIM's minlen as the kernel hands it back: ext4 returns it unchanged, xfs, btrfs and f2fs
 * raise it to the device's discard granularity (fstrim does not print it, so it is rebuilt here).
 */
function reportedMinimum(sysfsRoot: string, mountpoint: string, minimum: bigint): bigint {
  try {
    if (fs.statfsSync(mountpoint).type === EXT4_SUPER_MAGIC) return minimum;
    const { major, minor } = devNumbers(fs.statSync(mountpoint).dev);
    const dev = `${sysfsRoot}/dev/block/${major}:${minor}`;
    const queue = fs.existsSync(`${dev}/partition`) ? `${dev}/../queue` : `${dev}/queue`;
    const granularity = BigInt(fs.readFileSync(`${queue}/discard_granularity`, 'latin1').trim());
    return granularity > minimum ? granularity : minimum;
  } catch {
    return minimum;
  }
}

/** `/x/etc/shadow` → `/x` (chpasswd -R root); the real `/etc/shadow` → null. */
export function rootOfShadow(shadowFile: string): string | null {
  const abs = path.resolve(shadowFile);
  if (abs === '/etc/shadow') return null;
  const suffix = `${path.sep}etc${path.sep}shadow`;
  return abs.endsWith(suffix) ? abs.slice(0, -suffix.length) || null : null;
}
