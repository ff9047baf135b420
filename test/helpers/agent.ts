/** Starts node-qga in-process on a temp unix socket, for protocol and command tests. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from '../../lib/agent';
import { defaultConfig, type AgentConfig } from '../../lib/config-types';
import { createFallbackBackend, selectBackend } from '../../lib/backend';
import type { SystemBackend } from '../../lib/backend/types';
import { UnixListenChannel } from '../../lib/transport/unix';
import { Logger } from '../../lib/log';
import { QgaClient } from '../../lib/client';

export interface TestAgent {
  agent: Agent;
  dir: string;
  sock: string;
  config: AgentConfig;
  connect(opts?: { sync?: boolean }): Promise<QgaClient>;
  stop(): Promise<void>;
}

/** The backends these tests can run on here: the fallback always, native when the addon loads. */
export function availableBackends(): Array<'native' | 'fallback'> {
  const list: Array<'native' | 'fallback'> = ['fallback'];
  try {
    const cfg = defaultConfig();
    cfg.backend = 'native';
    if (selectBackend(cfg).backend.kind === 'native') list.unshift('native');
  } catch (e) {
    console.log(`  (native backend not available here, its runs are skipped: ${(e as Error).message.split('\n')[0]})`);
  }
  return list;
}

export function makeBackend(kind: 'native' | 'fallback', config: AgentConfig): SystemBackend {
  if (kind === 'fallback') return createFallbackBackend(config);
  return selectBackend({ ...config, backend: 'native' }).backend;
}

export function tempDir(prefix = 'qga-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startAgent(kind: 'native' | 'fallback' = 'fallback', over: Partial<AgentConfig> = {}, dir = tempDir()): Promise<TestAgent> {
  const config: AgentConfig = { ...defaultConfig(), method: 'unix-listen', statedir: dir, path: path.join(dir, 'sock'), ...over };
  const backend = makeBackend(kind, config);
  const channel = new UnixListenChannel(config.path!);
  const log = new Logger(false, path.join(dir, 'agent.log'));
  const agent = new Agent({ config, backend, channel, log });
  await agent.start();
  return {
    agent, dir, sock: config.path!, config,
    connect: (opts) => QgaClient.connect(config.path!, { timeout: 20000, ...opts }),
    stop: async () => { await agent.stop(); await log.close(); },
  };
}

/** Sends raw bytes on a fresh connection and collects what comes back until `lines` newlines arrived. */
export async function rawExchange(sock: string, data: Buffer | string, lines: number, timeout = 5000): Promise<Buffer> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    const parts: Buffer[] = [];
    let count = 0;
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`timeout; got ${Buffer.concat(parts).toString('latin1')}`)); }, timeout);
    s.on('connect', () => s.write(data));
    s.on('data', (d) => {
      parts.push(d);
      for (const b of d) if (b === 0x0a) count++;
      if (count >= lines) { clearTimeout(timer); s.destroy(); resolve(Buffer.concat(parts)); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}
