/**
 * Coverage-guided mutation fuzzer for the request path: bytes → StreamDecoder → Dispatcher →
 * command handlers → reply writer, through a real Agent on an in-memory channel. Jazzer.js does
 * not run here (its 4.x prebuilt addon needs glibc 2.38, 2.x downloads its addon at install
 * time), so this is a small libFuzzer-style loop of its own: V8's precise block coverage (via
 * node:inspector) is the feedback, an input that reaches a new (block, hit-count bucket) pair
 * joins the corpus, and mutations are byte edits, dictionary tokens, splices and re-chunking.
 *
 * Oracle, per input: every decoded message gets exactly one reply; the reply stream is lines of
 * pure-ASCII JSON objects with exactly one of "return"/"error" (a 0xFF only right before a
 * guest-sync-delimited reply); no handler throws a non-protocol error ("failed unexpectedly"),
 * the agent's queue never hits its internal-error path; no exception escapes.
 *
 * Only harmless commands are registered (ping, sync, info, time, file I/O): guest-file-open is
 * wrapped so every path lands in a private temp directory. Nothing else on the machine is touched.
 *
 * Usage: node --import tsx fuzz/js/fuzz-protocol.ts [--seconds 60] [--seed N] [--no-coverage]
 *        [--corpus DIR (extra inputs, new ones saved there)] [--replay FILE...]
 * Findings go to fuzz/js/out/finding-<hash>.bin with the reason in a .txt beside it.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as os from 'node:os';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import { Agent } from '../../lib/agent';
import { allCommands } from '../../lib/commands';
import type { CommandDef } from '../../lib/commands/define';
import { defaultConfig, type AgentConfig } from '../../lib/config-types';
import { createFallbackBackend } from '../../lib/backend';
import { Logger } from '../../lib/log';
import { StreamDecoder } from '../../lib/protocol/decoder';
import type { Channel } from '../../lib/transport/types';
import type { FileTable } from '../../lib/commands/file';

// ---- options ------------------------------------------------------------------

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const SECONDS = Number(opt('--seconds', '60'));
const SEED = Number(opt('--seed', String(Date.now() % 1e9)));
const COVERAGE = !argv.includes('--no-coverage');
const EXTRA_CORPUS = argv.includes('--corpus') ? opt('--corpus', '') : undefined;
const REPLAY = argv.includes('--replay') ? argv.slice(argv.indexOf('--replay') + 1) : undefined;
const HERE = __dirname;
const OUT = path.join(HERE, 'out');
const MAX_LEN = 4096;

let rngState = (SEED >>> 0) || 1;
function rand(n: number): number {
  rngState ^= rngState << 13; rngState >>>= 0;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5; rngState >>>= 0;
  return rngState % n;
}

// ---- the target ----------------------------------------------------------------

/** A channel with no OS behind it: the fuzzer plays the host. */
class MemoryChannel extends EventEmitter implements Channel {
  readonly description = 'memory';
  written: Buffer[] = [];
  async start(): Promise<void> {}
  async write(chunks: ReadonlyArray<Buffer | string>): Promise<void> {
    for (const c of chunks) this.written.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : Buffer.from(c));
  }
  pause(): void {}
  resume(): void {}
  async close(): Promise<void> {}
}

/** Records error-level log lines (a handler failing unexpectedly is a finding). */
class RecordingLogger extends Logger {
  errors: string[] = [];
  override log(level: Parameters<Logger['log']>[0], msg: string): void {
    if (level === 'error' || level === 'critical') this.errors.push(msg);
  }
}

const SAFE = new Set([
  'guest-ping', 'guest-sync', 'guest-sync-delimited', 'guest-info', 'guest-get-time',
  'guest-file-open', 'guest-file-close', 'guest-file-read', 'guest-file-write', 'guest-file-seek', 'guest-file-flush',
]);
const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'qga-fuzz-'));
const sandboxFiles = path.join(sandbox, 'files');
fs.mkdirSync(sandboxFiles);
fs.writeFileSync(path.join(sandboxFiles, 'a'), 'hello fuzzer\n'.repeat(100));

/** Handles opened by the current input: handle k (1..8) in a later request means the k-th of them. */
let opened: number[] = [];

/**
 * guest-file-open confined to the sandbox (the name keeps only a few characters, so a handful
 * of files exist), and small handle numbers mapped to this input's handles: the real counter
 * keeps growing across inputs, so seeds could otherwise never name an open file twice.
 */
function confine(def: CommandDef): CommandDef {
  if (def.name === 'guest-file-open') {
    return {
      ...def,
      run: async (args: { path: { toString(): string }; mode?: unknown }, ctx) => {
        const name = args.path.toString().replace(/[^a-c]/g, '').slice(0, 2) || 'a';
        const handle = await def.run({ ...args, path: path.join(sandboxFiles, name) }, ctx);
        if (typeof handle === 'number') opened.push(handle);
        return handle;
      },
    };
  }
  if (!def.name.startsWith('guest-file-')) return def;
  return {
    ...def,
    run: (args: { handle: number | bigint }, ctx) => {
      const k = Number(args.handle);
      const handle = k >= 1 && k <= 8 && opened[k - 1] !== undefined ? opened[k - 1] : args.handle;
      return def.run({ ...args, handle }, ctx);
    },
  };
}
const commands = allCommands.filter((c) => SAFE.has(c.name)).map(confine);

const config: AgentConfig = { ...defaultConfig(), method: 'unix-listen', statedir: sandbox, path: path.join(sandbox, 'unused.sock') };
const channel = new MemoryChannel();
const log = new RecordingLogger(false);
const agent = new Agent({ config, backend: createFallbackBackend(config), channel, log, commands });

/** Splits `data` into chunks at positions derived from the input itself (deterministic). */
function chunksOf(data: Buffer): Buffer[] {
  if (data.length < 2) return [data];
  const mode = data[data.length - 1] % 4;
  if (mode === 0) return [data];
  const step = 1 + (data[0] % (mode === 1 ? 3 : 97));
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += step) out.push(data.subarray(i, i + step));
  return out;
}

/** Replies that carried an inf/nan double (qemu-compatible, counted for the summary). */
let nonJsonDoubles = 0;

/** Runs one input; returns a reason string when the oracle fails. */
async function runOne(data: Buffer): Promise<string | undefined> {
  channel.written = [];
  log.errors = [];
  opened = [];
  channel.emit('connect');
  const expected = new StreamDecoder();
  let messages = 0;
  for (const c of chunksOf(data)) {
    for (const m of expected.push(c)) { messages++; if ('value' in m) m.release?.(); }
    channel.emit('data', c);
  }
  await agent.whenIdle();
  (agent.services.files as FileTable | undefined)?.closeAll();
  const out = Buffer.concat(channel.written);
  if (log.errors.length) return `logged error: ${log.errors[0].split('\n')[0]}`;
  // Split into replies: lines, each maybe preceded by one 0xFF (guest-sync-delimited).
  let replies = 0;
  let at = 0;
  while (at < out.length) {
    let delimited = false;
    if (out[at] === 0xff) { delimited = true; at++; }
    const nl = out.indexOf(0x0a, at);
    if (nl < 0) return 'reply without a final newline';
    const line = out.subarray(at, nl);
    at = nl + 1;
    for (const b of line) if (b >= 0x80) return `non-ASCII byte 0x${b.toString(16)} in a reply`;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line.toString('latin1'));
    } catch {
      // qemu-ga prints doubles with %.17g, so an id such as 1e999 comes back as inf (qemu's own
      // FIXME in qnum_to_string): compatible, not a finding. Anything else is.
      const patched = line.toString('latin1').replace(/(?<=[:[,] ?)-?(inf|nan)(?=[,}\]])/g, 'null');
      try { obj = JSON.parse(patched); nonJsonDoubles++; } catch { return `reply is not JSON: ${line.toString('latin1').slice(0, 200)}`; }
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return 'reply is not an object';
    const keys = Object.keys(obj).filter((k) => k !== 'id');
    if (keys.length !== 1 || (keys[0] !== 'return' && keys[0] !== 'error')) return `reply members ${JSON.stringify(Object.keys(obj))}`;
    if (delimited && keys[0] !== 'return') return '0xFF before an error reply';
    replies++;
  }
  if (replies !== messages) return `${messages} messages decoded but ${replies} replies`;
  return undefined;
}

// ---- coverage feedback ------------------------------------------------------------

const session = new inspector.Session();
const post = <T>(method: string, params?: object): T => {
  let result: T | undefined;
  let error: Error | null = null;
  session.post(method, params ?? {}, (err, res) => { error = err; result = res as T; });
  if (error) throw error;
  return result as T;
};
interface Range { startOffset: number; endOffset: number; count: number }
interface Coverage { result: Array<{ url: string; functions: Array<{ ranges: Range[] }> }> }
const LIB = path.resolve(HERE, '..', '..', 'lib');
const seen = new Set<string>();
/** Blocks of lib/ ever executed, per file (for the summary). */
const blocksHit = new Map<string, Set<string>>();
const blocksAll = new Map<string, Set<string>>();

const bucket = (n: number) => (n <= 3 ? n : n < 8 ? 4 : n < 16 ? 5 : n < 32 ? 6 : n < 128 ? 7 : 8);

/** New (block, count bucket) features since the last call; resets V8's counters. */
function newFeatures(): number {
  const cov = post<Coverage>('Profiler.takePreciseCoverage');
  let fresh = 0;
  for (const script of cov.result) {
    if (!script.url.includes(LIB)) continue;
    const file = path.relative(LIB, script.url.replace(/^file:\/\//, ''));
    let hit = blocksHit.get(file);
    let all = blocksAll.get(file);
    if (!hit) { hit = new Set(); blocksHit.set(file, hit); all = new Set(); blocksAll.set(file, all); }
    for (const fn of script.functions) {
      for (const r of fn.ranges) {
        const block = `${r.startOffset}:${r.endOffset}`;
        all!.add(block);
        if (r.count === 0) continue;
        hit.add(block);
        const key = `${file}:${block}:${bucket(r.count)}`;
        if (!seen.has(key)) { seen.add(key); fresh++; }
      }
    }
  }
  return fresh;
}

// ---- mutation ------------------------------------------------------------------

const DICT = [
  '{', '}', '[', ']', ',', ':', '"', "'", '\\', '\\u0000', '\\ud800', '\\udc00', '\\u00e9', '\xff', '\xfe', '\xc0\x80', '\xe9',
  '"execute"', '"arguments"', '"id"', '"guest-ping"', '"guest-sync"', '"guest-sync-delimited"', '"guest-info"',
  '"guest-get-time"', '"guest-file-open"', '"guest-file-read"', '"guest-file-write"', '"guest-file-seek"',
  '"guest-file-close"', '"guest-file-flush"', '"path"', '"mode"', '"handle"', '"count"', '"buf-b64"', '"offset"',
  '"whence"', '"set"', '"cur"', '"end"', '"r"', '"w+"', '"a"', '"r+"', '"x"', '"aGVsbG8="', '"=aGV\\nsbG8"', 'true', 'false', 'null',
  '0', '-1', '1.5e3', '18446744073709551615', '18446744073709551616', '-9223372036854775808', '-9223372036854775809',
  '9007199254740993', '1e999', '-0', '1000000000', '"\\n"', ' ', '\n', '\t', '\r',
];

function mutate(input: Buffer, corpus: Buffer[]): Buffer {
  let b = Buffer.from(input);
  const rounds = 1 + rand(4);
  for (let r = 0; r < rounds; r++) {
    const at = rand(b.length + 1);
    switch (rand(9)) {
      case 0: if (b.length) b[rand(b.length)] ^= 1 << rand(8); break;
      case 1: if (b.length) b[rand(b.length)] = rand(256); break;
      case 2: b = Buffer.concat([b.subarray(0, at), Buffer.from([rand(256)]), b.subarray(at)]); break;
      case 3: { const n = 1 + rand(8); b = Buffer.concat([b.subarray(0, at), b.subarray(at + n)]); break; }
      case 4: case 5: b = Buffer.concat([b.subarray(0, at), Buffer.from(DICT[rand(DICT.length)], 'latin1'), b.subarray(at)]); break;
      case 6: { const o = corpus[rand(corpus.length)]; const s = rand(o.length + 1); b = Buffer.concat([b.subarray(0, at), o.subarray(s, s + 1 + rand(64)), b.subarray(at)]); break; }
      case 7: { const s = rand(b.length + 1); const e = Math.min(b.length, s + 1 + rand(32)); const piece = b.subarray(s, e); b = Buffer.concat([b.subarray(0, at), piece, piece, b.subarray(at)]); break; }
      case 8: { if (b.length > 1) { const s = rand(b.length); const e = s + rand(b.length - s); b = Buffer.concat([b.subarray(0, s), b.subarray(e)]); } break; }
    }
  }
  return b.length > MAX_LEN ? b.subarray(0, MAX_LEN) : b;
}

// ---- main loop -------------------------------------------------------------------

function loadDir(dir: string): Buffer[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f)));
}

function saveFinding(data: Buffer, reason: string): string {
  fs.mkdirSync(OUT, { recursive: true });
  const hash = crypto.createHash('sha1').update(data).digest('hex').slice(0, 12);
  const file = path.join(OUT, `finding-${hash}.bin`);
  fs.writeFileSync(file, data);
  fs.writeFileSync(file.replace(/\.bin$/, '.txt'), reason + '\n');
  return file;
}

async function main(): Promise<void> {
  await agent.start();
  process.on('unhandledRejection', (e) => { console.log(`UNHANDLED REJECTION ${(e as Error)?.stack ?? e}`); process.exitCode = 1; });

  if (REPLAY) {
    let bad = 0;
    for (const f of REPLAY) {
      const reason = await runOne(fs.readFileSync(f));
      console.log(`${f}: ${reason ?? 'ok'}`);
      if (reason) bad++;
    }
    process.exitCode = bad ? 1 : 0;
    return;
  }

  if (COVERAGE) {
    session.connect();
    post('Profiler.enable');
    post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }
  const corpus: Buffer[] = [];
  const seeds = [...loadDir(path.join(HERE, 'seeds')), ...(EXTRA_CORPUS ? loadDir(EXTRA_CORPUS) : [])];
  let findings = 0;
  const report = async (data: Buffer, reason: string) => {
    findings++;
    console.log(`FINDING: ${reason}\n  saved as ${saveFinding(data, reason)}`);
  };
  for (const s of seeds) {
    const reason = await runOne(s);
    if (reason) await report(s, reason);
    if (COVERAGE) newFeatures();
    corpus.push(s);
  }
  const started = Date.now();
  let execs = 0;
  let lastPrint = started;
  while (Date.now() - started < SECONDS * 1000) {
    const input = mutate(corpus[rand(corpus.length)], corpus);
    let reason: string | undefined;
    try {
      reason = await runOne(input);
    } catch (e) {
      reason = `exception: ${(e as Error)?.stack ?? e}`;
    }
    execs++;
    if (reason) { await report(input, reason); if (findings > 20) break; }
    if (COVERAGE && newFeatures() > 0) {
      corpus.push(input);
      if (EXTRA_CORPUS) {
        fs.mkdirSync(EXTRA_CORPUS, { recursive: true });
        fs.writeFileSync(path.join(EXTRA_CORPUS, crypto.createHash('sha1').update(input).digest('hex').slice(0, 16)), input);
      }
    }
    if (Date.now() - lastPrint > 10_000) {
      lastPrint = Date.now();
      console.log(`#${execs} ${Math.round(execs / ((lastPrint - started) / 1000))} exec/s corpus ${corpus.length} features ${seen.size} findings ${findings}`);
    }
  }
  const secs = (Date.now() - started) / 1000;
  console.log(`done: ${execs} execs in ${secs.toFixed(0)} s (${Math.round(execs / secs)} exec/s), seed ${SEED}, corpus ${corpus.length}, features ${seen.size}, findings ${findings}, replies with inf/nan (as qemu-ga) ${nonJsonDoubles}`);
  if (COVERAGE) {
    const files = [...blocksAll.keys()].filter((f) => /^(protocol\/|dispatcher|agent|base64|commands\/(core|file)|backend\/fallback-file)/.test(f)).sort();
    for (const f of files) console.log(`  blocks hit ${f}: ${blocksHit.get(f)!.size}/${blocksAll.get(f)!.size}`);
  }
  process.exitCode = findings ? 1 : 0;
}

main().then(() => { fs.rmSync(sandbox, { recursive: true, force: true }); setImmediate(() => process.exit()); },
  (e) => { console.log(`fuzzer crashed: ${(e as Error).stack}`); fs.rmSync(sandbox, { recursive: true, force: true }); process.exit(2); });
