/**
 * The freeze controller: policy of guest-fsfreeze-* (qemu-ga's order, hooks, counting, rollback,
 * error texts) plus what qemu-ga lacks: a thaw guardian outside Node for crashes while frozen,
 * a --fsfreeze-timeout watchdog, and startup recovery that tells a guardian-thawed marker from a
 * real frozen one. One instance per agent; freeze, thaw and the watchdog run one at a time.
 *
 * The marker (`<statedir>/qga.state.isfrozen`) is written before the first FIFREEZE and updated
 * with each mount point before its FIFREEZE, until the filesystem holding the state directory is
 * itself frozen (writing there then would hang the agent); the guardian's pipe always has the
 * complete list.
 */
import * as fs from 'node:fs';
import type { SystemBackend } from '../backend/types';
import type { AgentConfig } from '../config-types';
import { QgaError, isErrnoError, strerror } from '../errors';
import type { Logger } from '../log';
import type { FrozenRecord, StateStore } from '../state';
import type { MountEntry } from '../platform/mountinfo';
import { runFsfreezeHook } from './hook';
import { ThawGuardian, isGuardianRunning } from './guardian';
import { listLocalMounts, mountOf, sameFilesystem } from './mounts';

export interface FreezeDeps {
  backend: Pick<SystemBackend, 'freeze' | 'thaw'>;
  config: AgentConfig;
  state: StateStore;
  log: Logger;
}

export interface FreezeControllerOptions {
  /** Start a thaw guardian while frozen (default true). */
  guardian?: boolean;
  /** Program the guardian runs as `<tool> --unfreeze <mp>` (default: fsfreeze on the search path). */
  guardianThawTool?: string;
  /**
   * Called (once, soon after the thaw reply) when SIGTERM/SIGINT arrived while frozen and the
   * guest has since been thawed. Without it a signal while frozen is simply ignored, as qemu-ga does.
   */
  onDeferredExit?: () => void;
  /** How long startup recovery waits for a previous instance's guardian to finish (ms). */
  guardianWaitMs?: number;
}

/** The marker's JSON: node-qga's FrozenRecord plus the guardian's pid. */
export interface GuardedFrozenRecord extends FrozenRecord {
  guardianPid?: number;
}

export type FreezeStatus = 'thawed' | 'frozen';

export interface FreezeController {
  /** Startup: settle a marker left by a previous instance. Call before serving requests. */
  recover(): Promise<void>;
  /** guest-fsfreeze-freeze(-list): the count frozen; undefined `mountpoints` means all. */
  freeze(mountpoints?: readonly string[]): Promise<number>;
  /** guest-fsfreeze-thaw: the count thawed. */
  thaw(): Promise<number>;
  status(): FreezeStatus;
  /**
   * SIGTERM/SIGINT policy: true when the agent may exit now; false while frozen (qemu-ga
   * ignores the signal then; with onDeferredExit the exit happens after the next thaw).
   */
  requestExit(): boolean;
  /** Clean agent exit: thaw if frozen (with the hook, as qemu-ga's cleanup), stop watchdog and guardian. */
  shutdown(): Promise<void>;
  /** The live guardian's pid (tests, diagnostics). */
  readonly guardianPid: number | undefined;
}

const SKIPPED_FREEZE_ERRORS = new Set(['EOPNOTSUPP', 'ENOTSUP', 'EBUSY']);

export function createFreezeController(deps: FreezeDeps, options: FreezeControllerOptions = {}): FreezeController {
  return new Controller(deps, options);
}

class Controller implements FreezeController {
  private queue: Promise<unknown> = Promise.resolve();
  private guardian: ThawGuardian | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private exitRequested = false;
  private guardianWarned = false;

  constructor(private readonly deps: FreezeDeps, private readonly options: FreezeControllerOptions) {}

  get guardianPid(): number | undefined { return this.guardian?.isAlive ? this.guardian.pid : undefined; }

  status(): FreezeStatus { return this.deps.state.frozen ? 'frozen' : 'thawed'; }

  /** Run `fn` after every earlier freeze/thaw/watchdog step. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  recover(): Promise<void> {
    return this.exclusive(async () => {
      const { state, log } = this.deps;
      if (!state.frozen) return;
      let record = state.frozenInfo as GuardedFrozenRecord;
      if (record.guardianPid && isGuardianRunning(record.guardianPid)) {
        // The previous agent just died and its guardian is still thawing: let it finish.
        const deadline = Date.now() + (this.options.guardianWaitMs ?? 10_000);
        while (isGuardianRunning(record.guardianPid) && Date.now() < deadline) await sleep(50);
        const reread = readMarkerFile(state.markerPath);
        if (!reread) { await this.clearMarker(); return; }
        record = reread;
      }
      if (record.thawedByGuardian) {
        log.setMuted(false);
        await this.clearMarker();
        log.warn(`previous instance was killed with frozen filesystems; its thaw guardian thawed them (${record.mountpoints.join(', ') || 'none recorded'})`);
        return;
      }
      // A marker without a guardian thaw (qemu-ga's, or the guest rebooted): start frozen as
      // qemu-ga does; the host's guest-fsfreeze-thaw clears it. Said on stderr like qemu-ga,
      // since the log file may sit on a frozen filesystem.
      process.stderr.write('previous instance appears to have exited with frozen filesystems. deferring logging/pidfile creation and disabling non-fsfreeze-safe commands\n');
      log.setMuted(true);
      if (this.options.guardian !== false && record.mountpoints.length > 0) {
        // Guard again what the marker lists, so another crash still ends thawed. The marker is
        // not rewritten: the state directory may be on one of those frozen filesystems.
        this.guardian = ThawGuardian.start({ markerPath: state.markerPath, thawTool: this.options.guardianThawTool });
        if (this.guardian) {
          for (const mp of [...record.mountpoints]) await this.guardian.add(mp);
          await this.guardian.setMarker(JSON.stringify({ ...record, thawedByGuardian: true }));
        }
      }
      this.startWatchdog();
    });
  }

  freeze(mountpoints?: readonly string[]): Promise<number> {
    return this.exclusive(() => this.doFreeze(mountpoints));
  }

  private async doFreeze(wanted?: readonly string[]): Promise<number> {
    const { backend, config, state, log } = this.deps;
    log.info('guest-fsfreeze called');
    await runFsfreezeHook(config.fsfreezeHook, 'freeze', log);
    const mounts = listLocalMounts(config.procRoot);
    const stateMount = mountOf(config.procRoot, state.dir);

    // Enter frozen state before the first FIFREEZE: marker, guardian, muted log.
    const record: GuardedFrozenRecord = { mountpoints: [], since: Date.now() };
    this.startGuardian();
    if (this.guardian) record.guardianPid = this.guardian.pid;
    try {
      await state.markFrozen(record);
    } catch (e) {
      // Without the marker the frozen state could not survive a restart: refuse before freezing.
      const guardian = this.guardian;
      this.guardian = null;
      if (guardian) await guardian.release();
      try { await runFsfreezeHook(config.fsfreezeHook, 'thaw', log); } catch { /* the error below says more */ }
      throw new QgaError(`unable to create ${state.markerPath}: ${strerror(e)}`);
    }
    log.setMuted(true);

    let markerWritable = true;
    // A marker that can no longer be updated (state directory full or read-only) would hide
    // frozen filesystems from a restarted agent: treated like failing to create it.
    const writeMarker = async () => {
      if (!markerWritable) return;
      try { await state.updateFrozen(record); } catch (e) { throw new QgaError(`unable to create ${state.markerPath}: ${strerror(e)}`); }
    };
    // With a guardian the progress lives in its pipe (it thaws and rewrites the marker if the
    // agent dies), so the marker on disk is written once more after the loop, not per mount.
    const recordProgress = () => (this.guardian ? Promise.resolve() : writeMarker());
    const frozenNow: string[] = [];
    let count = 0;
    try {
      // Reverse mount order: children before the filesystems they are mounted on.
      for (const m of [...mounts].reverse()) {
        if (wanted && !wanted.includes(m.mountpoint)) continue;
        record.mountpoints.push(m.mountpoint);
        if (this.guardian) {
          await this.guardian.add(m.mountpoint);
          await this.guardian.setMarker(JSON.stringify({ ...record, thawedByGuardian: true }));
        }
        await recordProgress();
        try {
          await backend.freeze(m.mountpoint);
        } catch (e) {
          // Not freezable (tmpfs-like) or already frozen by someone else: skipped, not counted,
          // and not ours to thaw after a crash.
          if (isErrnoError(e) && SKIPPED_FREEZE_ERRORS.has(e.code)) {
            record.mountpoints.pop();
            if (this.guardian) {
              await this.guardian.drop();
              await this.guardian.setMarker(JSON.stringify({ ...record, thawedByGuardian: true }));
            }
            await recordProgress();
            continue;
          }
          throw freezeError(m, e);
        }
        count++;
        frozenNow.push(m.mountpoint);
        if (stateMount && sameFilesystem(m, stateMount)) markerWritable = false;
      }
      if (this.guardian && count > 0) await writeMarker();
    } catch (e) {
      // Never leave the guest half-frozen: thaw what this call froze, then the thaw hook.
      for (const mp of [...frozenNow].reverse()) {
        try { await backend.thaw(mp); } catch { /* nothing more to do for it */ }
      }
      await this.leaveFrozen();
      try { await runFsfreezeHook(config.fsfreezeHook, 'thaw', log); } catch (he) { log.warn(`fsfreeze hook failed after a failed freeze: ${(he as Error).message}`); }
      throw e;
    }
    if (count === 0) {
      await this.leaveFrozen();
      // qemu-ga skips the thaw hook here, leaving hooked applications quiesced with nothing
      // frozen and no thaw to come; node-qga runs it.
      try { await runFsfreezeHook(config.fsfreezeHook, 'thaw', log); } catch (he) { log.warn(`fsfreeze hook: ${(he as Error).message}`); }
      return 0;
    }
    this.startWatchdog();
    return count;
  }

  thaw(): Promise<number> {
    return this.exclusive(() => this.doThaw());
  }

  private async doThaw(): Promise<number> {
    const { backend, config, state, log } = this.deps;
    const mounts = listLocalMounts(config.procRoot); // on failure the state stays frozen, as in qemu-ga
    let count = 0;
    for (const m of mounts) {
      try {
        if (await backend.thaw(m.mountpoint)) count++;
      } catch { /* could not open it: nothing to thaw there */ }
    }
    await this.leaveFrozen();
    log.info('guest-fsthaw called');
    await runFsfreezeHook(config.fsfreezeHook, 'thaw', log);
    return count;
  }

  private async leaveFrozen(): Promise<void> {
    const { state, log } = this.deps;
    this.stopWatchdog();
    const wasFrozen = state.frozen;
    log.setMuted(false);
    await this.clearMarker();
    // After the marker is gone, so a crash in between never leaves a stale "frozen" behind.
    const guardian = this.guardian;
    this.guardian = null;
    if (guardian) await guardian.release();
    if (wasFrozen && this.exitRequested && this.options.onDeferredExit) {
      this.exitRequested = false;
      const exit = this.options.onDeferredExit;
      setTimeout(exit, 0); // after the thaw reply has been handed to the channel
    }
  }

  /** Leave frozen state; a marker that cannot be deleted gets qemu-ga's warning, nothing more. */
  private async clearMarker(): Promise<void> {
    const { state, log } = this.deps;
    try {
      await state.clearFrozen();
    } catch {
      log.warn(`unable to delete ${state.markerPath}, fsfreeze may not function properly`);
    }
  }

  private startGuardian(): void {
    if (this.options.guardian === false) return;
    if (this.guardian?.isAlive) return;
    this.guardian = ThawGuardian.start({ markerPath: this.deps.state.markerPath, thawTool: this.options.guardianThawTool });
    if (!this.guardian && !this.guardianWarned) {
      this.guardianWarned = true;
      this.deps.log.warn('no thaw guardian: neither fsfreeze nor a thaw helper was found; a crash while frozen will leave filesystems frozen');
    }
  }

  private startWatchdog(): void {
    const seconds = this.deps.config.fsfreezeTimeout;
    this.stopWatchdog();
    if (!seconds || seconds <= 0) return;
    this.watchdog = setTimeout(() => {
      this.watchdog = null;
      void this.exclusive(async () => {
        const { log } = this.deps;
        if (!this.deps.state.frozen) return;
        log.setMuted(false);
        log.log('critical', `fsfreeze timeout: no guest-fsfreeze-thaw within ${seconds} s, thawing filesystems now`);
        try {
          const n = await this.doThaw();
          log.log('critical', `fsfreeze timeout: ${n} filesystem(s) thawed`);
        } catch (e) {
          log.log('critical', `fsfreeze timeout: thaw reported: ${(e as Error).message}`);
        }
      });
    }, seconds * 1000);
  }

  private stopWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  requestExit(): boolean {
    if (!this.deps.state.frozen) return true;
    this.exitRequested = true;
    return false;
  }

  shutdown(): Promise<void> {
    return this.exclusive(async () => {
      this.stopWatchdog();
      this.exitRequested = false;
      if (this.deps.state.frozen) {
        try { await this.doThaw(); } catch (e) { this.deps.log.info(`failed to clean up frozen filesystems: ${(e as Error).message}`); }
      }
      const guardian = this.guardian;
      this.guardian = null;
      if (guardian) await guardian.release();
    });
  }
}

function freezeError(m: MountEntry, e: unknown): Error {
  if (e instanceof QgaError) return e;
  if (isErrnoError(e) && e.syscall === 'open') return new QgaError(`failed to open ${m.mountpoint}: ${strerror(e)}`);
  return new QgaError(`failed to freeze ${m.mountpoint}: ${strerror(e)}`);
}

function readMarkerFile(p: string): GuardedFrozenRecord | null {
  let text: string;
  try { text = fs.readFileSync(p, 'utf8').trim(); } catch { return null; }
  try {
    const r = JSON.parse(text) as GuardedFrozenRecord;
    if (Array.isArray(r.mountpoints)) return r;
  } catch { /* an empty qemu-ga marker */ }
  return { mountpoints: [], since: 0 };
}

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }
