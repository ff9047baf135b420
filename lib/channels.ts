import type { AgentConfig } from './config-types';
import type { Channel } from './transport/types';
import { UnixListenChannel } from './transport/unix';

export class ChannelConfigError extends Error {}

/** The channel for the configured method and path. */
export function createChannel(config: AgentConfig): Channel {
  switch (config.method) {
    case 'unix-listen':
      if (!config.path) throw new ChannelConfigError('must specify a path for this channel');
      return new UnixListenChannel(config.path);
    default: {
      // Device channels live in their own module (poll-based reading of character devices).
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const devices = require('./transport/devices') as { createDeviceChannel(c: AgentConfig): Channel };
      return devices.createDeviceChannel(config);
    }
  }
}
