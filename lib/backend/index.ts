/**
 * Chooses the backend: the native addon when it loads (or when forced with
 * --backend native / NODE_QGA_BACKEND=native), else the pure-TypeScript fallback.
 */
import type { AgentConfig } from '../config-types';
import type { Logger } from '../log';
import type { SystemBackend } from './types';
import { preadInto, readFileReply, writeBase64 } from './fallback-file';

export function createFallbackBackend(config: AgentConfig): SystemBackend {
  let system: Omit<SystemBackend, 'kind' | 'readFileReply' | 'writeBase64'>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    system = require('./fallback-system').createFallbackSystem(config);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
    system = unavailableSystem();
  }
  return { ...system, kind: 'fallback', readFileReply, writeBase64, preadInto };
}

function unavailableSystem(): Omit<SystemBackend, 'kind' | 'readFileReply' | 'writeBase64'> {
  const no = async (): Promise<never> => { throw new Error('this feature or command is not currently supported'); };
  return { freeze: no, thaw: no, trim: no, setSystemTime: no, systemTimeToRtc: no, rtcToSystemTime: no, setUserPassword: no, powerOff: no };
}

export interface BackendChoice {
  backend: SystemBackend;
  /** Why the native addon is not in use, when it is not. */
  nativeError?: string;
}

export function selectBackend(config: AgentConfig, log?: Logger): BackendChoice {
  if (config.backend === 'fallback') return { backend: createFallbackBackend(config), nativeError: 'fallback forced' };
  let reason: string;
  try {
    const loader = require('./load-addon');
    const loaded = loader.loadAddon();
    if (loaded.addon) {
      const backend: SystemBackend = require('./native').createNativeBackend(loaded.addon, config);
      return { backend };
    }
    reason = String(loaded.error?.message ?? loaded.error);
  } catch (e) {
    reason = (e as Error).message;
  }
  if (config.backend === 'native') throw new Error(`native backend requested but the addon cannot be loaded: ${reason}`);
  log?.warn(`native addon unavailable (${reason}); using the pure-TypeScript fallback`);
  return { backend: createFallbackBackend(config), nativeError: reason };
}
