/**
 * guest-exec and guest-exec-status (qemu-ga 2.5; capture-output modes as in 8.0+).
 *
 * The program runs without a shell: argv is [path, ...arg], found by glib's PATH rules
 * (platform/exec-path). `env` replaces the whole environment. stdin is /dev/null, or a pipe
 * fed with input-data and then closed. Captured streams go to ExecTable (16 MiB each).
 * Error texts are qemu-ga 7.2's: spawn failures wrapped in "Guest agent command failed,
 * error was '…'", an unknown pid is "Invalid parameter 'pid'".
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { childProcess } from '../platform/lazy-builtins';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { defineCommand, type CommandContext, type Int } from './define';
import { T } from '../schema';
import { QgaError, strerror, type ErrnoError } from '../errors';
import { decodeBase64Qga } from '../base64';
import { asString, type RawString } from '../protocol/values';
import { resolveProgram, searchPathFor } from '../platform/exec-path';
import { ExecTable } from '../platform/exec-table';
import type { JsonValue } from '../protocol/values';

declare module './define' {
  interface AgentServices {
    exec?: ExecTable;
  }
}

const GuestExecCaptureOutputMode = T.enum('GuestExecCaptureOutputMode', ['none', 'stdout', 'stderr', 'separated', 'merged']);
const GuestExecCaptureOutput = T.alternate('GuestExecCaptureOutput', [T.bool, GuestExecCaptureOutputMode]);
const GuestExec = T.struct('GuestExec', { pid: T.int });
const GuestExecStatus = T.struct('GuestExecStatus', {
  exited: T.bool, '*exitcode': T.int, '*signal': T.int, '*out-data': T.str, '*err-data': T.str,
  '*out-truncated': T.bool, '*err-truncated': T.bool,
});

export type CaptureMode = 'none' | 'stdout' | 'stderr' | 'separated' | 'merged';

export function captureMode(v: boolean | string | undefined): CaptureMode {
  if (v === undefined || v === false) return 'none';
  if (v === true) return 'separated';
  return v as CaptureMode;
}

/** C strings: qemu-ga sees each argument up to its first NUL. */
const cString = (s: string | RawString): string => {
  const t = asString(s);
  const nul = t.indexOf('\0');
  return nul < 0 ? t : t.slice(0, nul);
};

/**
 * The child's environment from `env` entries. Node takes an object, so duplicates keep the
 * first entry (the one getenv() returns) and an entry without '=' cannot be passed (dropped).
 */
export function environmentFrom(entries: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const e of entries) {
    const eq = e.indexOf('=');
    if (eq < 0) continue;
    const key = e.slice(0, eq);
    if (!Object.prototype.hasOwnProperty.call(env, key)) env[key] = e.slice(eq + 1);
  }
  return env;
}

export function spawnFailure(path: string, e: unknown): QgaError {
  return new QgaError(`Guest agent command failed, error was 'Failed to execute child process \u201C${path}\u201D (${strerror(e)})'`);
}

/**
 * A connected pair of stream sockets, for "merged": the child gets one end as both stdout
 * and stderr (Node cannot hand one pipe to two child fds otherwise). The listening socket
 * lives in a fresh 0700 directory, so nobody else can connect first, and is gone before
 * the child starts.
 */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-exec-'));
  const sockPath = path.join(dir, 's');
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(sockPath, resolve); });
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect(sockPath);
    await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
    return [await accepted, client];
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface ExecRequest {
  path: string;
  arg?: string[];
  env?: string[];
  input?: Buffer;
  capture: CaptureMode;
}

/** Starts the child and registers it; resolves with its pid or throws qemu-ga's error. */
export async function startProcess(table: ExecTable, req: ExecRequest, agentEnv: NodeJS.ProcessEnv = process.env): Promise<number> {
  const resolved = resolveProgram(req.path, searchPathFor(req.env, agentEnv));
  if ('error' in resolved) throw spawnFailure(req.path, resolved.error);

  let pair: [net.Socket, net.Socket] | undefined;
  const stdin = req.input ? 'pipe' : 'ignore';
  let stdio: StdioOptions;
  switch (req.capture) {
    case 'none': stdio = [stdin, 'ignore', 'ignore']; break;
    case 'stdout': stdio = [stdin, 'pipe', 'ignore']; break;
    case 'stderr': stdio = [stdin, 'ignore', 'pipe']; break;
    case 'separated': stdio = [stdin, 'pipe', 'pipe']; break;
    case 'merged':
      pair = await socketPair();
      stdio = [stdin, pair[1], pair[1]];
      break;
  }

  let child: ChildProcess;
  try {
    child = childProcess().spawn(resolved.file, req.arg ?? [], {
      argv0: req.path,
      env: req.env ? environmentFrom(req.env) : agentEnv,
      stdio,
    });
  } catch (e) {
    pair?.forEach((s) => s.destroy());
    throw spawnFailure(req.path, e);
  } finally {
    // The child holds its own copy of the write end; ours must go so EOF can arrive.
    pair?.[1].destroy();
  }

  const started = await new Promise<ErrnoError | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e as ErrnoError));
  });
  if (started) {
    pair?.[0].destroy();
    throw spawnFailure(req.path, started);
  }
  child.on('error', () => { /* kill() failures and the like: nothing to report */ });

  let out: Readable | undefined, err: Readable | undefined;
  if (pair) out = pair[0];
  else {
    out = child.stdout ?? undefined;
    err = child.stderr ?? undefined;
  }
  const rec = table.add(child, out, err);

  if (req.input && child.stdin) {
    // A child that exits without reading makes the write fail with EPIPE: not an error here.
    child.stdin.on('error', () => {});
    child.stdin.end(req.input);
  }
  // A child that outlives the agent must not keep the agent's process from exiting.
  child.unref();
  for (const s of [out, err, child.stdin]) (s as net.Socket | undefined)?.unref?.();
  return rec.pid;
}

function table(ctx: CommandContext): ExecTable {
  return (ctx.services.exec ??= new ExecTable(undefined, (m) => ctx.log.warn(m)));
}

export const execCommands = [
  defineCommand<{ pid: Int }>({
    name: 'guest-exec-status',
    args: { pid: T.int },
    returns: GuestExecStatus,
    run: ({ pid }, ctx) => {
      const status = typeof pid === 'number' ? table(ctx).status(pid) : undefined;
      if (!status) throw new QgaError("Invalid parameter 'pid'");
      return status as unknown as JsonValue;
    },
  }),
  defineCommand<{ path: string | RawString; arg?: Array<string | RawString>; env?: Array<string | RawString>;
    'input-data'?: string | RawString; 'capture-output'?: boolean | string }>({
    name: 'guest-exec',
    args: { path: T.str, '*arg': T.list(T.str), '*env': T.list(T.str), '*input-data': T.str, '*capture-output': GuestExecCaptureOutput },
    returns: GuestExec,
    run: async (args, ctx) => {
      // Decoded before anything runs: bad base64 starts nothing.
      const input = args['input-data'] !== undefined ? decodeBase64Qga(asString(args['input-data'])) : undefined;
      const req: ExecRequest = {
        path: cString(args.path),
        arg: args.arg?.map(cString),
        env: args.env?.map(cString),
        input,
        capture: captureMode(args['capture-output']),
      };
      ctx.log.info(`guest-exec called: "${[req.path, ...(req.arg ?? [])].join(' ')}"`);
      return { pid: await startProcess(table(ctx), req) };
    },
  }),
];
