/**
 * The thaw guardian: a tiny `sh` process started when the agent enters frozen state. It reads
 * a pipe from the agent; the agent tells it each mount point before freezing it and, on a clean
 * thaw, tells it to exit. If the pipe reaches EOF without that (the agent was SIGKILLed or
 * crashed), the guardian thaws every recorded mount point with `<tool> --unfreeze <mp>` (util-linux
 * and busybox fsfreeze both accept it; a compiled helper can take the same arguments), then
 * rewrites the marker so the restarted agent knows. It is outside Node on purpose: it must
 * survive whatever killed the agent, and must not need the agent's event loop.
 *
 * Pipe protocol, one line each: `M<mp>` adds a mount point, `U` forgets the last one, `J<json>` sets the marker text to
 * write after thawing, `R` releases (exit without thawing). Values are escaped for printf %b.
 */
import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../platform/lazy-builtins';
import * as fs from 'node:fs';
import { findTool, defaultSearchPath } from '../backend/fallback-system';

/** The process title tag the agent looks for in /proc/<pid>/cmdline. */
export const GUARDIAN_TAG = 'node-qga-thaw-guardian';

// $1: marker path, $2: thaw tool. Mount points are prepended, so "$@" runs parents first
// (the reverse of freeze order, like qemu-ga's thaw in mount order).
const SCRIPT = `
trap '' HUP INT TERM PIPE
marker=$1 tool=$2 json=
shift 2
set --
while IFS= read -r line; do
  case $line in
    M*) p=$(printf '%bx' "\${line#M}"); set -- "\${p%x}" "$@" ;;
    U) [ $# -gt 0 ] && shift ;;
    J*) json=\${line#J} ;;
    R) exit 0 ;;
  esac
done
thaw_all() {
  for mp in "$@"; do
    n=0
    while [ $n -lt 64 ] && "$tool" --unfreeze "$mp" >/dev/null 2>&1; do n=$((n+1)); done
  done
}
thaw_all "$@"
# A freeze still in progress when the agent died (a fallback fsfreeze child) lands late: retry once.
sleep 1
thaw_all "$@"
if [ -n "$json" ] && [ -e "$marker" ]; then
  printf '%b\\n' "$json" > "$marker.guardian" && mv -f "$marker.guardian" "$marker"
fi
exit 0
`;

/** Escape for the guardian's `printf %b`: backslash and newline. */
export function escapeForPrintfB(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export interface GuardianOptions {
  markerPath: string;
  /** Program run as `<tool> --unfreeze <mountpoint>`; default: fsfreeze from the search path. */
  thawTool?: string;
  shell?: string;
}

export class ThawGuardian {
  private exited = false;
  private readonly exitPromise: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    this.exitPromise = new Promise((resolve) => child.once('exit', () => { this.exited = true; resolve(); }));
    // A broken pipe (the guardian was killed) must not crash the agent.
    child.stdin!.on('error', () => { /* noted by isAlive */ });
    // The guardian must never keep the agent alive by itself.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
  }

  /** The thaw tool the guardian will use, or null when the guest has none. */
  static findThawTool(): string | null {
    return findTool('fsfreeze', defaultSearchPath());
  }

  /** Start a guardian; null when no thaw tool or shell is available. */
  static start(opts: GuardianOptions): ThawGuardian | null {
    const tool = opts.thawTool ?? ThawGuardian.findThawTool();
    const shell = opts.shell ?? '/bin/sh';
    if (!tool || !fs.existsSync(shell)) return null;
    const child = childProcess().spawn(shell, ['-c', SCRIPT, GUARDIAN_TAG, opts.markerPath, tool], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true, // its own session: a signal to the agent's process group spares it
    });
    if (child.pid === undefined) return null;
    return new ThawGuardian(child);
  }

  get pid(): number { return this.child.pid!; }
  get isAlive(): boolean { return !this.exited && this.child.exitCode === null && this.child.signalCode === null; }

  private send(line: string): Promise<void> {
    if (!this.isAlive || !this.child.stdin!.writable) return Promise.resolve();
    return new Promise((resolve) => this.child.stdin!.write(line + '\n', () => resolve()));
  }

  /** Record a mount point; resolves once the guardian's pipe holds it (before the FIFREEZE). */
  add(mountpoint: string): Promise<void> { return this.send('M' + escapeForPrintfB(mountpoint)); }

  /** Forget the mount point added last (its freeze was skipped: someone else froze it). */
  drop(): Promise<void> { return this.send('U'); }

  /** The marker text to write after a guardian thaw. */
  setMarker(json: string): Promise<void> { return this.send('J' + escapeForPrintfB(json)); }

  /** Clean thaw: the guardian exits without touching anything. */
  async release(): Promise<void> {
    await this.send('R');
    this.child.stdin!.end();
    await Promise.race([this.exitPromise, new Promise((r) => setTimeout(r, 2000).unref())]);
  }
}

/** Whether `pid` is a live guardian process (checked by its tag, so a reused pid is not mistaken). */
export function isGuardianRunning(pid: number, procRoot = '/proc'): boolean {
  try {
    const cmdline = fs.readFileSync(`${procRoot}/${pid}/cmdline`, 'latin1');
    if (!cmdline.split('\0').includes(GUARDIAN_TAG)) return false;
    const stat = fs.readFileSync(`${procRoot}/${pid}/stat`, 'latin1');
    return !/\) Z /.test(stat); // a zombie has finished its work
  } catch {
    return false;
  }
}
