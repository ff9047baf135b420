import type { CommandDef } from './define';
import { coreCommands, infoCommand } from './core';
import { fileCommands } from './file';
import { networkCommands } from './network';
import { vcpuCommands } from './vcpus';
import { fsinfoCommands } from './fsinfo';
import { memoryCommands } from './memory';

/**
 * Every command, in schema order (qemu-ga registers them in this order and guest-info lists
 * them reversed). Each module exports its commands as an array.
 */
export const allCommands: CommandDef[] = [
  ...coreCommands,
  infoCommand,
  ...fileCommands,
  ...networkCommands,
  ...vcpuCommands,
  ...fsinfoCommands,
  ...memoryCommands,
];
