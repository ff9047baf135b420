import type { BackendKind } from './backend/types';

export type ChannelMethod = 'virtio-serial' | 'isa-serial' | 'unix-listen' | 'vsock-listen';

/** Everything the agent runs with: qemu-ga's options plus node-qga's own. */
export interface AgentConfig {
  daemon: boolean;
  method: ChannelMethod;
  path?: string;
  logfile?: string;
  pidfile: string;
  /** Set when -F/--fsfreeze-hook was given (qemu-ga's default /etc/qemu/fsfreeze-hook when no path). */
  fsfreezeHook?: string;
  statedir: string;
  verbose: boolean;
  retryPath: boolean;
  blockRpcs: string[];
  /** undefined: no allow-list (everything allowed). */
  allowRpcs?: string[];

  // node-qga's own options
  backend: BackendKind | 'auto';
  /** Thaw automatically when no thaw arrives within this many seconds (0: off). */
  fsfreezeTimeout: number;
  /** Roots of the system trees commands read and write, so tests can point them at fixtures. */
  sysfsRoot: string;
  procRoot: string;
  devRoot: string;
  /** Shadow and passwd files that set-user-password edits (native backend). */
  shadowFile: string;
  passwdFile: string;
  /** Mode bits a new file from guest-file-open gets before the umask (qemu-ga forces 0666). */
  fileCreateMode: number;
}

export function defaultConfig(): AgentConfig {
  return {
    daemon: false,
    method: 'virtio-serial',
    pidfile: '/var/run/qemu-ga.pid',
    statedir: '/var/run',
    verbose: false,
    retryPath: false,
    blockRpcs: [],
    backend: 'auto',
    fsfreezeTimeout: 0,
    sysfsRoot: '/sys',
    procRoot: '/proc',
    devRoot: '/dev',
    shadowFile: '/etc/shadow',
    passwdFile: '/etc/passwd',
    fileCreateMode: 0o666,
  };
}
