/**
 * The channels other than unix-listen: virtio-serial and isa-serial devices, vsock, and the
 * socket systemd hands over (socket activation).
 */
import * as fs from 'node:fs';
import type { AgentConfig } from '../config-types';
import type { Channel } from './types';
import { ChannelConfigError } from '../channels';
import { VirtioSerialChannel } from './virtio-serial';
import { IsaSerialChannel } from './serial';
import { UnixListenChannel } from './unix';
import { checkVsockAddress, vsockUnsupported, loadVsockNative, VsockListenChannel } from './vsock';

export function createDeviceChannel(config: AgentConfig): Channel {
  const opts = { retryPath: config.retryPath, verbose: config.verbose, logfile: config.logfile };
  switch (config.method) {
    case 'virtio-serial':
      return new VirtioSerialChannel(config.path ?? '/dev/virtio-ports/org.qemu.guest_agent.0', opts);
    case 'isa-serial':
      return new IsaSerialChannel(config.path ?? '/dev/ttyS0', opts);
    case 'vsock-listen': {
      const addr = checkVsockAddress(config.path);
      const native = loadVsockNative();
      if ('error' in native) return vsockUnsupported(config.path!, native.error);
      return new VsockListenChannel(addr, config.path!, native);
    }
    default:
      throw new ChannelConfigError(`unsupported channel method/type: ${String(config.method)}`);
  }
}

/**
 * The listening socket systemd passed as `fd` (socket activation). A unix socket serves as
 * unix-listen whatever -m said, as in qemu-ga. Node can tell a socket from other files but not
 * its family; a socket Node cannot listen on (vsock) fails when the channel starts.
 */
export function createActivatedChannel(config: AgentConfig, fd: number): Channel {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    throw new ChannelConfigError(`socket activation: fd ${fd} is not open (${(e as Error).message})`);
  }
  if (!st.isSocket()) throw new ChannelConfigError(`socket activation: fd ${fd} is not a socket`);
  const name = config.method === 'unix-listen' && config.path ? config.path : `fd ${fd}`;
  config.method = 'unix-listen';
  return new UnixListenChannel(name, fd);
}
