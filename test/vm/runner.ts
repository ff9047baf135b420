/**
 * Runs the VM suite: boots the guest once per target (node-qga with the native backend, with the
 * forced fallback backend, and optionally Debian's qemu-ga for the differential run), runs every
 * case file in test/vm in name order (the shutdown case file sorts last), prints one line per case
 * and a closing "N passed, N failed" line. Started by scripts/vm/run-suite.js.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Ctx, Target, Vm, VmCase, connectWithRetry } from './harness';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { buildImage } = require('../../scripts/vm/build-image.js');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startVm } = require('../../scripts/vm/vm.js');

interface Result { target: Target; file: string; name: string; ok: boolean; ms: number; error?: string; notes: string[] }

function parseArgs(argv: string[]) {
  const opts = { targets: ['native', 'fallback'] as Target[], only: null as RegExp | null, json: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--targets') opts.targets = argv[++i].split(',') as Target[];
    else if (a === '--only') opts.only = new RegExp(argv[++i]);
    else if (a === '--json') opts.json = argv[++i];
    else throw new Error(`unknown option ${a}`);
  }
  return opts;
}

function loadCases(): Array<{ file: string; cases: VmCase[] }> {
  const dir = __dirname;
  return fs.readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort().map((file) => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(path.join(dir, file));
    return { file: file.replace(/\.test\.ts$/, ''), cases: mod.cases as VmCase[] };
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]);
}

async function runTarget(target: Target, image: any, files: Array<{ file: string; cases: VmCase[] }>, only: RegExp | null, results: Result[]) {
  const agent = target === 'qemu-ga' ? 'qemu-ga' : 'node';
  const backend = target === 'qemu-ga' ? 'native' : target;
  const t0 = Date.now();
  const vm = startVm({ kernel: image.kernel, initrd: image.initrd, label: target, agent, backend }) as Vm & { stop(): Promise<void>; consolePath: string };
  const record = (r: Result) => {
    results.push(r);
    const head = `${r.ok ? 'ok  ' : 'FAIL'} [${target}] ${r.file}: ${r.name} (${r.ms} ms)${r.notes.length ? ` — ${r.notes.join('; ')}` : ''}`;
    console.log(head);
    if (!r.ok) console.log(`     ${String(r.error).split('\n').join('\n     ')}`);
  };
  try {
    let booted = false;
    let unresponsive = '';
    try {
      await vm.waitForConsole(/QGA-VM ready uptime=([\d.]+)/, 120000);
      const ready = Date.now() - t0;
      // Fail fast when the agent dies at start-up over and over (init respawns it).
      const crashLoop = vm.waitForConsole(/QGA-VM agent-exit[^]*?QGA-VM agent-exit[^]*?QGA-VM agent-exit/, 60000).then(() => {
        throw new Error('the agent exited three times in a row at start-up');
      });
      crashLoop.catch(() => {});
      const first = await Promise.race([connectWithRetry(vm.socketPath, 60000), crashLoop]);
      first.close();
      const synced = Date.now() - t0;
      record({ target, file: 'boot', name: `guest ready, agent answers guest-sync-delimited`, ok: true, ms: synced, notes: [`init ready ${ready} ms`, `boot-to-first-sync ${synced} ms`] });
      booted = true;
    } catch (e) {
      record({ target, file: 'boot', name: 'guest ready, agent answers guest-sync-delimited', ok: false, ms: Date.now() - t0, error: `${(e as Error).message}\nguest console tail:\n${vm.tail(12)}`, notes: [] });
    }
    for (const { file, cases } of files) {
      for (const c of cases) {
        if (only && !only.test(`${file}: ${c.name}`)) continue;
        if (c.targets && !c.targets.includes(target)) continue;
        const ctx = new Ctx(vm, target);
        const start = Date.now();
        if (!booted) {
          record({ target, file, name: c.name, ok: false, ms: 0, error: 'not run: the guest did not boot', notes: [] });
          continue;
        }
        if (vm.exited) {
          record({ target, file, name: c.name, ok: false, ms: 0, error: `not run: QEMU already exited (code ${vm.exited.code})`, notes: [] });
          continue;
        }
        if (unresponsive) {
          record({ target, file, name: c.name, ok: false, ms: 0, error: `not run: ${unresponsive}`, notes: [] });
          continue;
        }
        try {
          await withTimeout(c.run(ctx), c.timeoutMs ?? 60000, 'case');
          record({ target, file, name: c.name, ok: true, ms: Date.now() - start, notes: ctx.notes });
        } catch (e) {
          const err = e as Error & { errorClass?: string; desc?: string };
          const msg = err.errorClass ? `${err.errorClass}: ${err.desc}` : err.message;
          record({ target, file, name: c.name, ok: false, ms: Date.now() - start, error: msg, notes: ctx.notes });
          // After a failure, make sure the agent still answers; otherwise do not spend a timeout on every later case.
          ctx.close();
          if (!vm.exited) {
            try {
              (await connectWithRetry(vm.socketPath, 30000)).close();
            } catch (h) {
              unresponsive = `the agent stopped answering after "${c.name}" (${(h as Error).message})`;
            }
          }
        } finally {
          ctx.close();
        }
      }
    }
  } finally {
    await vm.stop();
    console.log(`     [${target}] VM stopped; console log: ${path.relative(process.cwd(), vm.consolePath)}; ${((Date.now() - t0) / 1000).toFixed(1)} s for this target`);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const suiteStart = Date.now();
  const image = buildImage();
  console.log(`     image ${image.key} (${image.built ? 'built' : 'cached'} in ${image.ms} ms, initrd ${(image.bytes / 1048576).toFixed(0)} MiB, kernel ${image.kver})`);
  const files = loadCases();
  const results: Result[] = [];
  for (const target of opts.targets) await runTarget(target, image, files, opts.only, results);
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  const total = ((Date.now() - suiteStart) / 1000).toFixed(1);
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ total_s: Number(total), image: image.key, results }, null, 2));
  console.log(`${passed} passed, ${failed} failed (${total} s)`);
  return failed ? 1 : 0;
}

// Exit explicitly: timers of cases that failed half-way must not keep the run alive.
main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
