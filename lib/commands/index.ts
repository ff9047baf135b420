/**
 * Every command, in schema order (qemu-ga registers them in this order and guest-info lists
 * them reversed).
 *
 * The table holds only what the dispatcher needs before a command first runs (its name and
 * the flags guest-info and the frozen/block checks read); the module that defines it
 * (arguments, handler) is required on first use. Loading all of them at start-up cost ≈30 ms
 * and ≈1.5 MiB (benchmarks/NOTES.md). test/commands-table.test.ts checks the table against
 * the modules' own definitions.
 */
import type { CommandDef, CommandContext } from './define';

/* eslint-disable @typescript-eslint/no-require-imports -- lazy loading is the point */
const modules = {
  core: () => require('./core') as typeof import('./core'),
  time: () => require('./time') as typeof import('./time'),
  power: () => require('./power') as typeof import('./power'),
  file: () => require('./file') as typeof import('./file'),
  fsfreeze: () => require('./fsfreeze') as typeof import('./fsfreeze'),
  network: () => require('./network') as typeof import('./network'),
  vcpus: () => require('./vcpus') as typeof import('./vcpus'),
  disks: () => require('./disks') as typeof import('./disks'),
  fsinfo: () => require('./fsinfo') as typeof import('./fsinfo'),
  password: () => require('./password') as typeof import('./password'),
  memory: () => require('./memory') as typeof import('./memory'),
  exec: () => require('./exec') as typeof import('./exec'),
  sysinfo: () => require('./sysinfo') as typeof import('./sysinfo'),
  ssh: () => require('./ssh') as typeof import('./ssh'),
  stats: () => require('./stats') as typeof import('./stats'),
};
/* eslint-enable @typescript-eslint/no-require-imports */

export type CommandModule = keyof typeof modules;

/** Every CommandDef a module exports (as arrays or single definitions). */
export function definitionsOf(module: CommandModule): CommandDef[] {
  const defs: CommandDef[] = [];
  for (const value of Object.values(modules[module]()) as unknown[]) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item && typeof item === 'object' && typeof (item as CommandDef).run === 'function' && typeof (item as CommandDef).name === 'string') defs.push(item as CommandDef);
    }
  }
  return defs;
}

/** Flags that differ from defineCommand's defaults. */
interface Flags { successResponse?: false; allowedWhileFrozen?: true; unsupported?: true }

const FROZEN_OK: Flags = { allowedWhileFrozen: true };
const NO_REPLY: Flags = { successResponse: false };

/** [name, module, flags]: the registration order is qemu-ga 7.2's. */
export const COMMAND_TABLE: ReadonlyArray<readonly [string, CommandModule, Flags?]> = [
  ['guest-sync-delimited', 'core', FROZEN_OK],
  ['guest-sync', 'core', FROZEN_OK],
  ['guest-ping', 'core', FROZEN_OK],
  ['guest-get-time', 'core'],
  ['guest-set-time', 'time'],
  ['guest-info', 'core', FROZEN_OK],
  ['guest-shutdown', 'power', NO_REPLY],
  ['guest-file-open', 'file'],
  ['guest-file-close', 'file'],
  ['guest-file-read', 'file'],
  ['guest-file-write', 'file'],
  ['guest-file-seek', 'file'],
  ['guest-file-flush', 'file'],
  ['guest-fsfreeze-status', 'fsfreeze', FROZEN_OK],
  ['guest-fsfreeze-freeze', 'fsfreeze'],
  ['guest-fsfreeze-freeze-list', 'fsfreeze'],
  ['guest-fsfreeze-thaw', 'fsfreeze', FROZEN_OK],
  ['guest-fstrim', 'fsfreeze'],
  ['guest-suspend-disk', 'power', NO_REPLY],
  ['guest-suspend-ram', 'power', NO_REPLY],
  ['guest-suspend-hybrid', 'power', NO_REPLY],
  ['guest-network-get-interfaces', 'network'],
  ['guest-get-vcpus', 'vcpus'],
  ['guest-set-vcpus', 'vcpus'],
  ['guest-get-disks', 'disks'], // qemu-ga 7.2 registers it here, between the vcpu and fsinfo commands
  ['guest-get-fsinfo', 'fsinfo'],
  ['guest-set-user-password', 'password'],
  ['guest-get-memory-blocks', 'memory'],
  ['guest-set-memory-blocks', 'memory'],
  ['guest-get-memory-block-info', 'memory'],
  ['guest-exec-status', 'exec'], // after the memory commands, as qemu-ga registers them
  ['guest-exec', 'exec'],
  ['guest-get-host-name', 'sysinfo'],
  ['guest-get-users', 'sysinfo'],
  ['guest-get-timezone', 'sysinfo'],
  ['guest-get-osinfo', 'sysinfo'],
  ['guest-get-devices', 'sysinfo', { unsupported: true }],
  ['guest-ssh-get-authorized-keys', 'ssh'], // after guest-get-devices, as qemu-ga registers them
  ['guest-ssh-add-authorized-keys', 'ssh'],
  ['guest-ssh-remove-authorized-keys', 'ssh'],
  ['guest-get-diskstats', 'disks'],
  ['guest-get-cpustats', 'stats'],
  ['guest-get-load', 'stats'],
  ['guest-network-get-route', 'stats'],
];

/** A CommandDef whose arguments, return type and handler come from its module on first use. */
function lazyCommand(name: string, module: CommandModule, flags: Flags = {}): CommandDef {
  let real: CommandDef | undefined;
  const load = (): CommandDef => {
    real ??= definitionsOf(module).find((c) => c.name === name);
    if (!real) throw new Error(`command table: ${name} is not defined in commands/${module}`);
    return real;
  };
  return {
    name,
    successResponse: flags.successResponse ?? true,
    allowedWhileFrozen: flags.allowedWhileFrozen ?? false,
    unsupported: flags.unsupported,
    get args() { return load().args; },
    get returns() { return load().returns; },
    get delimited() { return load().delimited; },
    run: (args: unknown, ctx: CommandContext) => load().run(args, ctx),
  };
}

export const allCommands: CommandDef[] = COMMAND_TABLE.map(([name, module, flags]) => lazyCommand(name, module, flags));
