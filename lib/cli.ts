#!/usr/bin/env node
/**
 * The node-qga command: parses qemu-ga's options, starts the agent, handles signals.
 * The only place that calls process.exit.
 */
// File and device work runs on libuv's pool; a blocked device read must not starve it.
process.env.UV_THREADPOOL_SIZE ??= '8';

import { parseCommandLine, dumpConfig, UsageError, USAGE } from './config';
import { allCommands } from './commands';
import { Logger } from './log';
import { StateStore } from './state';
import { selectBackend } from './backend';
import { createChannel, ChannelConfigError } from './channels';
import { Agent } from './agent';
import { PACKAGE_VERSION } from './version';
import { isDaemonChild, spawnDaemon, prepareDaemonChild, writePidFile, daemonReady, whenDaemonMessagesSent, socketActivationFd } from './daemon';

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`node-qga: ${e.message}\nTry 'node-qga --help' for more information.\n`);
      return 1;
    }
    throw e;
  }
  const { config } = parsed;
  if (parsed.showHelp) { process.stdout.write(USAGE); return 0; }
  if (parsed.showVersion) { process.stdout.write(`QEMU Guest Agent ${PACKAGE_VERSION} (node-qga)\n`); return 0; }
  if (parsed.listCommands) { process.stdout.write(allCommands.map((c) => c.name).join('\n') + '\n'); return 0; }
  if (parsed.dumpConfig) { process.stdout.write(dumpConfig(config)); return 0; }

  // -d: this process re-runs itself detached and exits once that child serves (daemon.ts).
  const daemonChild = config.daemon && isDaemonChild();
  if (config.daemon && !daemonChild) return spawnDaemon(argv);
  if (daemonChild) prepareDaemonChild(config);

  const log = new Logger(config.verbose, config.logfile);
  activeLog = log;
  if (daemonChild) {
    try {
      writePidFile(config.pidfile);
    } catch (e) {
      log.error((e as Error).message);
      return 1;
    }
  }
  let state: StateStore;
  try {
    state = StateStore.open(config.statedir);
  } catch (e) {
    log.error(`failed to load persistent state: ${(e as Error).message}`);
    return 1;
  }
  let choice;
  try {
    choice = selectBackend(config, log);
  } catch (e) {
    log.error((e as Error).message);
    return 1;
  }
  let channel;
  try {
    // systemd socket activation (LISTEN_PID/LISTEN_FDS) overrides -m/-p, as in qemu-ga.
    const activatedFd = socketActivationFd();
    // transport/devices (serial, virtio-serial, vsock) loads only for an activated socket.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    channel = activatedFd !== undefined ? (require('./transport/devices') as typeof import('./transport/devices')).createActivatedChannel(config, activatedFd) : createChannel(config);
  } catch (e) {
    if (e instanceof ChannelConfigError || (e instanceof Error && /only supports listening on one socket/.test(e.message))) { log.error(e.message); return 1; }
    throw e;
  }
  (channel as { setLogger?: (l: Logger) => void }).setLogger?.(log);
  const agent = new Agent({ config, backend: choice.backend, channel, log, state });

  // Signal handlers go in before the channel exists (qemu-ga registers its handlers before it
  // opens the channel): whoever sees the socket appear may signal the agent at once, and the
  // default action would kill it (no clean exit, no SIGHUP log reopen).
  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => { finish = resolve; });
  let started = false;
  let exitWhenStarted = false;
  const exit = () => void agent.stop().then(() => finish(0));
  // A signal while frozen is held (qemu-ga ignores it): the agent exits after the next thaw.
  agent.onDeferredExit(exit);
  const onSignal = (sig: string) => {
    if (!agent.freeze.requestExit()) {
      log.warn(`${sig} received while filesystems are frozen: exiting after guest-fsfreeze-thaw`);
      return;
    }
    log.info(`${sig} received, exiting`);
    if (started) exit();
    else exitWhenStarted = true;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // logrotate-friendly: SIGHUP starts a new log file.
  process.on('SIGHUP', () => { log.reopen(); log.info('SIGHUP: log file reopened'); });
  process.on('SIGINT', () => onSignal('SIGINT'));

  try {
    await agent.start();
  } catch (e) {
    log.error(`failed to open channel ${channel.description}: ${(e as Error).message}`);
    return 1;
  }
  started = true;
  log.info(`backend: ${choice.backend.kind}${choice.nativeError ? ` (native unavailable: ${choice.nativeError})` : ''}`);
  daemonReady();
  // A device channel lost without --retry-path ends the agent (qemu-ga leaves its main loop).
  channel.on('fatal', (e: Error) => { log.error(e.message); void agent.stop().then(() => finish(1)); });
  if (exitWhenStarted) exit();
  return finished;
}

/** The logger of the running agent, so its last lines reach the file before the process exits. */
let activeLog: Logger | undefined;

main(process.argv.slice(2)).then(
  async (code) => { await activeLog?.close(); await whenDaemonMessagesSent(); process.exit(code); },
  (e) => { process.stderr.write(`node-qga: fatal: ${(e as Error)?.stack ?? e}\n`); process.exit(1); },
);
