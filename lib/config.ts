/**
 * Configuration as qemu-ga reads it: the key file ($QGA_CONF, /etc/qemu/qemu-ga.conf, or -c)
 * first, then the command line on top (scalars replaced, rpc lists joined); -D prints the
 * result in the key-file format. node-qga's own options use long names only.
 */
import * as fs from 'node:fs';
import { defaultConfig, type AgentConfig, type ChannelMethod } from './config-types';

export class UsageError extends Error {}

export const DEFAULT_CONFIG_FILE = '/etc/qemu/qemu-ga.conf';
export const DEFAULT_FSFREEZE_HOOK = '/etc/qemu/fsfreeze-hook';
const METHODS: readonly ChannelMethod[] = ['virtio-serial', 'isa-serial', 'unix-listen', 'vsock-listen'];

export interface ParsedCommandLine {
  config: AgentConfig;
  showVersion: boolean;
  showHelp: boolean;
  dumpConfig: boolean;
  /** -b help / -b ?: list the commands and exit. */
  listCommands: boolean;
}

interface OptionSpec {
  short?: string;
  long: string;
  /** 'none': a flag; 'required': takes a value; 'optional': value only when attached (-F/path, --x=v). */
  arg: 'none' | 'required' | 'optional';
}

const OPTIONS: OptionSpec[] = [
  { short: 'm', long: 'method', arg: 'required' },
  { short: 'p', long: 'path', arg: 'required' },
  { short: 'l', long: 'logfile', arg: 'required' },
  { short: 'f', long: 'pidfile', arg: 'required' },
  { short: 'F', long: 'fsfreeze-hook', arg: 'optional' },
  { short: 't', long: 'statedir', arg: 'required' },
  { short: 'v', long: 'verbose', arg: 'none' },
  { short: 'V', long: 'version', arg: 'none' },
  { short: 'd', long: 'daemonize', arg: 'none' },
  { short: 'b', long: 'block-rpcs', arg: 'required' },
  { long: 'blacklist', arg: 'required' },
  { short: 'a', long: 'allow-rpcs', arg: 'required' },
  { short: 'D', long: 'dump-conf', arg: 'none' },
  { short: 'r', long: 'retry-path', arg: 'none' },
  { short: 'c', long: 'config', arg: 'required' },
  { short: 'h', long: 'help', arg: 'none' },
  { long: 'backend', arg: 'required' },
  { long: 'fsfreeze-timeout', arg: 'required' },
  { long: 'sysfs-root', arg: 'required' },
  { long: 'proc-root', arg: 'required' },
  { long: 'dev-root', arg: 'required' },
  { long: 'shadow-file', arg: 'required' },
  { long: 'passwd-file', arg: 'required' },
];

export const USAGE = `Usage: node-qga [-m <method> -p <path>] [<options>]
QEMU Guest Agent (node-qga)

  -m, --method      transport method: one of unix-listen, virtio-serial,
                    isa-serial, or vsock-listen (virtio-serial is the default)
  -p, --path        device/socket path (the default for virtio-serial is:
                    /dev/virtio-ports/org.qemu.guest_agent.0,
                    the default for isa-serial is: /dev/ttyS0). Socket addresses
                    for vsock-listen are written as <cid>:<port>.
  -l, --logfile     set logfile path, logs to stderr by default
  -f, --pidfile     specify pidfile (default is /var/run/qemu-ga.pid)
  -F, --fsfreeze-hook
                    enable fsfreeze hook. Accepts an optional argument that
                    specifies script to run on freeze/thaw. Script will be
                    called with 'freeze'/'thaw' arguments accordingly.
                    (default is ${DEFAULT_FSFREEZE_HOOK})
                    If using -F with an argument, do not follow -F with a
                    space. (for example: -F/var/run/fsfreezehook.sh)
  -t, --statedir    specify dir to store state information (absolute paths
                    only, default is /var/run)
  -v, --verbose     log extra debugging information
  -V, --version     print version information and exit
  -d, --daemonize   become a daemon
  -b, --block-rpcs  comma-separated list of RPCs to disable (no spaces,
                    use "help" to list available RPCs)
  -a, --allow-rpcs  comma-separated list of RPCs to enable (no spaces,
                    use "help" to list available RPCs)
  -D, --dump-conf   dump a qemu-ga config file based on current config
                    options / command-line parameters to stdout
  -r, --retry-path  attempt re-opening path if it's unavailable or closed
                    due to an error which may be recoverable in the future
  -c, --config      configuration file path (default is
                    $QGA_CONF or ${DEFAULT_CONFIG_FILE})
  -h, --help        display this help and exit

node-qga options:
      --backend native|fallback|auto
                    which implementation does the system work (default auto;
                    also the environment variable NODE_QGA_BACKEND)
      --fsfreeze-timeout SECONDS
                    thaw automatically when no thaw arrives in time (0: never)
      --sysfs-root, --proc-root, --dev-root DIR
                    read (and write) these trees instead of /sys, /proc, /dev
      --shadow-file, --passwd-file FILE
                    the account files guest-set-user-password edits (native backend)
`;

interface RawOption { name: string; value?: string }

function parseArgv(argv: readonly string[]): RawOption[] {
  const out: RawOption[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = OPTIONS.find((o) => o.long === name);
      if (!spec) throw new UsageError(`Unknown option '${a}'`);
      if (spec.arg === 'none') { if (eq >= 0) throw new UsageError(`option '--${name}' takes no argument`); out.push({ name }); continue; }
      if (eq >= 0) { out.push({ name, value: a.slice(eq + 1) }); continue; }
      if (spec.arg === 'optional') { out.push({ name }); continue; }
      if (i + 1 >= argv.length) throw new UsageError(`option '--${name}' requires an argument`);
      out.push({ name, value: argv[++i] });
    } else if (a.startsWith('-') && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const spec = OPTIONS.find((o) => o.short === a[k]);
        if (!spec) throw new UsageError(`invalid option -- '${a[k]}'`);
        if (spec.arg === 'none') { out.push({ name: spec.long }); continue; }
        const rest = a.slice(k + 1);
        if (rest) { out.push({ name: spec.long, value: rest }); break; }
        if (spec.arg === 'optional') { out.push({ name: spec.long }); break; }
        if (i + 1 >= argv.length) throw new UsageError(`option requires an argument -- '${a[k]}'`);
        out.push({ name: spec.long, value: argv[++i] });
        break;
      }
    } else {
      throw new UsageError(`unexpected argument '${a}'`);
    }
  }
  return out;
}

/** glib key-file booleans: true/false/1/0. */
function parseBool(v: string, key: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new UsageError(`Key file contains key “${key}” which has a value that cannot be interpreted.`);
}

function splitList(v: string): string[] {
  return v.split(',').filter((s) => s.length > 0);
}

/** Reads the `[general]` group of a glib key file. */
export function parseKeyFile(text: string): Map<string, string> {
  const values = new Map<string, string>();
  let group = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim() || line.trimStart().startsWith('#')) continue;
    const g = /^\[([^\]]+)\]\s*$/.exec(line);
    if (g) { group = g[1]; continue; }
    const eq = line.indexOf('=');
    if (eq < 0) throw new UsageError(`Key file contains line “${line}” which is not a key-value pair, group, or comment`);
    if (!group) throw new UsageError('Key file does not start with a group');
    if (group === 'general') values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return values;
}

function applyKeyFile(config: AgentConfig, values: Map<string, string>): void {
  for (const [key, v] of values) {
    switch (key) {
      case 'daemon': config.daemon = parseBool(v, key); break;
      case 'method': config.method = v as ChannelMethod; break;
      case 'path': config.path = v; break;
      case 'logfile': config.logfile = v; break;
      case 'pidfile': config.pidfile = v; break;
      case 'fsfreeze-hook': config.fsfreezeHook = v; break;
      case 'statedir': config.statedir = v; break;
      case 'verbose': config.verbose = parseBool(v, key); break;
      case 'retry-path': config.retryPath = parseBool(v, key); break;
      case 'block-rpcs': case 'blacklist': config.blockRpcs.push(...splitList(v)); break;
      case 'allow-rpcs': config.allowRpcs = [...(config.allowRpcs ?? []), ...splitList(v)]; break;
      case 'backend': config.backend = v as AgentConfig['backend']; break;
      case 'fsfreeze-timeout': config.fsfreezeTimeout = Number(v); break;
      default: break; // qemu-ga ignores keys it does not know
    }
  }
}

export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedCommandLine {
  const opts = parseArgv(argv);
  const config = defaultConfig();
  const result: ParsedCommandLine = { config, showVersion: false, showHelp: false, dumpConfig: false, listCommands: false };

  const explicitFile = [...opts].reverse().find((o) => o.name === 'config')?.value;
  const file = explicitFile ?? env.QGA_CONF ?? DEFAULT_CONFIG_FILE;
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (explicitFile !== undefined || (e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UsageError(`error loading configuration from path: ${file}, ${(e as Error).message}`);
    }
  }
  if (text !== undefined) applyKeyFile(config, parseKeyFile(text));

  if (env.NODE_QGA_BACKEND) config.backend = env.NODE_QGA_BACKEND as AgentConfig['backend'];

  for (const { name, value } of opts) {
    switch (name) {
      case 'method': config.method = value as ChannelMethod; break;
      case 'path': config.path = value; break;
      case 'logfile': config.logfile = value; break;
      case 'pidfile': config.pidfile = value!; break;
      case 'fsfreeze-hook': config.fsfreezeHook = value ?? DEFAULT_FSFREEZE_HOOK; break;
      case 'statedir': config.statedir = value!; break;
      case 'verbose': config.verbose = true; break;
      case 'version': result.showVersion = true; break;
      case 'daemonize': config.daemon = true; break;
      case 'block-rpcs': case 'blacklist':
        if (value === 'help' || value === '?') result.listCommands = true;
        else config.blockRpcs.push(...splitList(value!));
        break;
      case 'allow-rpcs':
        if (value === 'help' || value === '?') result.listCommands = true;
        else config.allowRpcs = [...(config.allowRpcs ?? []), ...splitList(value!)];
        break;
      case 'dump-conf': result.dumpConfig = true; break;
      case 'retry-path': config.retryPath = true; break;
      case 'config': break;
      case 'help': result.showHelp = true; break;
      case 'backend': config.backend = value as AgentConfig['backend']; break;
      case 'fsfreeze-timeout': config.fsfreezeTimeout = Number(value); break;
      case 'sysfs-root': config.sysfsRoot = value!; break;
      case 'proc-root': config.procRoot = value!; break;
      case 'dev-root': config.devRoot = value!; break;
      case 'shadow-file': config.shadowFile = value!; break;
      case 'passwd-file': config.passwdFile = value!; break;
    }
  }

  if (!METHODS.includes(config.method)) throw new UsageError(`unsupported channel method/type: ${config.method}`);
  if (!['native', 'fallback', 'auto'].includes(config.backend)) throw new UsageError(`invalid backend '${config.backend}' (native, fallback or auto)`);
  if (!Number.isFinite(config.fsfreezeTimeout) || config.fsfreezeTimeout < 0) throw new UsageError('invalid --fsfreeze-timeout: a number of seconds >= 0');
  if (config.path === undefined) {
    if (config.method === 'virtio-serial') config.path = '/dev/virtio-ports/org.qemu.guest_agent.0';
    else if (config.method === 'isa-serial') config.path = '/dev/ttyS0';
  }
  return result;
}

/** The effective configuration in qemu-ga's key-file format (what -D prints). */
export function dumpConfig(c: AgentConfig): string {
  const lines = ['[general]', `daemon=${c.daemon}`, `method=${c.method}`];
  if (c.path !== undefined) lines.push(`path=${c.path}`);
  if (c.logfile !== undefined) lines.push(`logfile=${c.logfile}`);
  lines.push(`pidfile=${c.pidfile}`);
  if (c.fsfreezeHook !== undefined) lines.push(`fsfreeze-hook=${c.fsfreezeHook}`);
  lines.push(`statedir=${c.statedir}`, `verbose=${c.verbose}`, `retry-path=${c.retryPath}`);
  // qemu-ga prints its lists in reverse order of entry.
  lines.push(`block-rpcs=${[...c.blockRpcs].reverse().join(',')}`);
  if (c.allowRpcs !== undefined) lines.push(`allow-rpcs=${[...c.allowRpcs].reverse().join(',')}`);
  return lines.join('\n') + '\n';
}
