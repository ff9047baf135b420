import type { CommandDef } from './define';
import { coreCommands, infoCommand } from './core';
import { timeCommands } from './time';
import { shutdownCommands, suspendCommands } from './power';
import { fileCommands } from './file';
import { fsfreezeCommands, fstrimCommands } from './fsfreeze';
import { passwordCommands } from './password';
import { networkCommands } from './network';
import { vcpuCommands } from './vcpus';
import { fsinfoCommands } from './fsinfo';
import { memoryCommands } from './memory';
import { sysinfoCommands } from './sysinfo';
import { getDisksCommand, diskstatsCommands } from './disks';
import { statsCommands } from './stats';
import { execCommands } from './exec';
import { sshCommands } from './ssh';

/**
 * Every command, in schema order (qemu-ga registers them in this order and guest-info lists
 * them reversed). Each module exports its commands as an array.
 */
export const allCommands: CommandDef[] = [
  ...coreCommands,
  ...timeCommands,
  infoCommand,
  ...shutdownCommands,
  ...fileCommands,
  ...fsfreezeCommands,
  ...fstrimCommands,
  ...suspendCommands,
  ...networkCommands,
  ...vcpuCommands,
  getDisksCommand, // qemu-ga 7.2 registers it here, between the vcpu and fsinfo commands
  ...fsinfoCommands,
  ...passwordCommands,
  ...memoryCommands,
  ...execCommands, // guest-exec-status, guest-exec (after the memory commands, as qemu-ga registers them)
  ...sysinfoCommands,
  ...sshCommands, // guest-ssh-get/add/remove-authorized-keys (after guest-get-devices, as qemu-ga registers them)
  ...diskstatsCommands,
  ...statsCommands,
];
