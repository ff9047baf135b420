#!/usr/bin/env node
/**
 * The benchmark driver: starts node-qga (native backend), node-qga (fallback backend), Debian's
 * qemu-ga and an echo server (the client's ceiling) on unix sockets, runs the same scenarios
 * through the same lean client, alternating agents within each repetition, and writes the
 * table (benchmarks/RESULTS.md) and the figures (benchmarks/results.json).
 *
 *   node benchmarks/driver.js [--quick] [options]      (npm run bench -- [--quick] [options])
 *
 *   --quick            small sizes, < 2 minutes (CI); writes RESULTS.quick.md / results.quick.json
 *   --reps N           repetitions per scenario (default 3; medians are reported)
 *   --only a,b         run only scenarios whose id starts with one of these (startup, ping, sync,
 *                      read, write, inventory, malformed, freeze, micro)
 *   --agents a,b       subset of native,fallback,qemu-ga,echo
 *   --no-install       do not apt-get install qemu-guest-agent when it is missing
 *   --freeze           run the loop-device freeze scenario in --quick mode too
 *   --no-freeze        never run it
 *   --profile DIR      run the node-qga agents under --cpu-prof, profiles written to DIR
 *   --out PREFIX       write PREFIX.md and PREFIX.json instead of the default files
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
const { execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const { agentSpecs, startAgent, findQemuGa, prepareEcho, ROOT } = require('./lib/agents');
const S = require('./lib/scenarios');
const { LoopSet, loopsUnavailable } = require('./lib/loops');
const { median } = require('./lib/stats');
const report = require('./lib/report');

const KiB = 1024, MiB = 1024 * 1024;

function parseArgs(argv) {
  const o = { quick: false, reps: 3, only: null, agents: null, install: true, freeze: null, profile: null, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '--quick') o.quick = true;
    else if (a === '--reps') o.reps = Math.max(1, Number(next()) | 0);
    else if (a === '--only') o.only = next().split(',');
    else if (a === '--agents') o.agents = next().split(',');
    else if (a === '--no-install') o.install = false;
    else if (a === '--freeze') o.freeze = true;
    else if (a === '--no-freeze') o.freeze = false;
    else if (a === '--profile') o.profile = path.resolve(next());
    else if (a === '--out') o.out = path.resolve(next());
    else if (a === '--help' || a === '-h') { process.stdout.write(fs.readFileSync(__filename, 'utf8').split('*/')[0].replace(/^#!.*\n\/\*\*?/, '').replace(/^ \* ?/gm, '')); process.exit(0); }
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

/** Sizes and counts for each mode. */
function plan(quick) {
  return quick ? {
    pingCount: 3000, pipeCount: 20000, syncCount: 2000,
    readFile: 48 * MiB, readCounts: [4 * KiB, 64 * KiB, MiB, 16 * MiB, 48 * MiB], smallReadLimit: 2 * MiB, midReadLimit: 16 * MiB,
    writeFile: 16 * MiB, writeChunks: [64 * KiB, MiB, 16 * MiB],
    inventoryMs: 100, inventoryMax: 200, malformedCount: 500, idleWaitMs: 500, startupReps: 3,
    freezeCycles: 3, microBudgetMs: 40, microArgs: ['--quick'],
  } : {
    pingCount: 20000, pipeCount: 100000, syncCount: 10000,
    readFile: 256 * MiB, readCounts: [4 * KiB, 64 * KiB, MiB, 16 * MiB, 48 * MiB], smallReadLimit: 32 * MiB, midReadLimit: 256 * MiB,
    writeFile: 256 * MiB, writeChunks: [64 * KiB, MiB, 16 * MiB],
    inventoryMs: 600, inventoryMax: 3000, malformedCount: 5000, idleWaitMs: 1500, startupReps: 5,
    freezeCycles: 10, microBudgetMs: 250, microArgs: [],
  };
}

const INVENTORY = ['guest-info', 'guest-get-time', 'guest-get-fsinfo', 'guest-network-get-interfaces', 'guest-get-vcpus',
  'guest-get-memory-blocks', 'guest-get-memory-block-info', 'guest-fsfreeze-status'];

function sizeLabel(n) { return n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`; }

function machineInfo() {
  const cpu = (/^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'latin1')) || [])[1] || os.cpus()[0]?.model || 'unknown';
  let kernel = os.release();
  let distro = '';
  try { distro = (/^PRETTY_NAME="?([^"\n]*)/m.exec(fs.readFileSync('/etc/os-release', 'latin1')) || [])[1] || ''; } catch { /* none */ }
  let commit = '';
  try { commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { /* not a checkout */ }
  return { commit, cores: os.cpus().length, cpu, node: process.version, kernel, distro, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), loadavg: os.loadavg().map((x) => +x.toFixed(2)) };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const P = plan(opts.quick);
  const wants = (id) => !opts.only || opts.only.some((p) => id.startsWith(p));
  const started = performance.now();
  const machine = machineInfo();
  log(`${opts.quick ? 'quick' : 'full'} run, ${opts.reps} repetitions; ${machine.cores} cores, ${machine.cpu}, Node ${machine.node}`);

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-qga-bench-'));
  const qemuGa = findQemuGa({ allowInstall: opts.install, log });
  if (!qemuGa.path) log(`qemu-ga unavailable: ${qemuGa.why}; ratios against it are left out`);
  const echo = prepareEcho(workDir, log);
  const nodeFlags = [];
  if (opts.profile) { fs.mkdirSync(opts.profile, { recursive: true }); nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${opts.profile}`); }
  let specs = agentSpecs({ qemuGa, echo, nodeFlags });
  if (opts.agents) specs = specs.filter((s) => opts.agents.includes(s.id));
  else specs = specs.filter((s) => !s.onlyWhenAsked);
  const agentSpecsRun = specs.filter((s) => s.available);
  const realAgents = agentSpecsRun.filter((s) => s.kind !== 'echo');

  const results = { machine, mode: opts.quick ? 'quick' : 'full', reps: opts.reps, date: new Date().toISOString(),
    agents: specs.map((s) => ({ id: s.id, label: s.label, available: s.available, why: s.why })),
    plan: P, scenarios: {}, skipped: {}, errors: [], micro: null };
  const record = (scenario, agentId, rep, data) => {
    const sc = (results.scenarios[scenario.id] ??= { id: scenario.id, title: scenario.title, group: scenario.group, runs: {} });
    (sc.runs[agentId] ??= []).push({ rep, ...data });
  };

  const running = new Map();
  const loops = { set: null };
  const cleanup = async () => {
    for (const a of running.values()) await a.stop().catch(() => {});
    running.clear();
    if (loops.set) loops.set.cleanup();
    fs.rmSync(workDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)); });

  try {
    // Start to first reply, and idle RSS, on fresh processes (alternating, like everything else).
    if (wants('startup')) {
      const sc = { id: 'startup', title: 'Start to first reply; idle RSS', group: 'startup' };
      for (let rep = 0; rep < Math.max(opts.reps, P.startupReps); rep++) {
        for (const spec of rotate(realAgents, rep)) {
          try {
            const { agent, firstReplyMs } = await startAgent(spec, workDir, `start${rep}`);
            await sleep(P.idleWaitMs);
            const st = agent.stats();
            record(sc, spec.id, rep, { metrics: { firstReplyMs, idleRssMiB: st.rssKiB / 1024 }, cpuSec: st.cpuSec });
            await agent.stop();
          } catch (e) { fail(results, sc.id, spec.id, e); }
        }
      }
    }

    // The long-running instances every other scenario talks to.
    for (const spec of agentSpecsRun) {
      try {
        const { agent } = await startAgent(spec, workDir, 'main');
        running.set(spec.id, agent);
      } catch (e) { fail(results, 'start', spec.id, e); }
    }

    const scenarios = [];
    scenarios.push({ id: 'ping-seq', title: `guest-ping, sequential (${P.pingCount})`, group: 'ping', echo: true, run: (a) => S.pingSequential(a, { count: P.pingCount }) });
    scenarios.push({ id: 'ping-pipelined', title: `guest-ping, pipelined (${P.pipeCount} back to back)`, group: 'ping', echo: true, run: (a) => S.pingPipelined(a, { count: P.pipeCount }) });
    scenarios.push({ id: 'sync', title: `guest-sync, random ids (${P.syncCount})`, group: 'ping', echo: true, run: (a) => S.syncRandom(a, { count: P.syncCount }) });

    let readData = null, readPath = null;
    const sizeId = (n) => sizeLabel(n).replace(' ', '');
    const needData = P.readCounts.some((c) => wants(`read-${sizeId(c)}`)) || P.writeChunks.some((c) => wants(`write-${sizeId(c)}`));
    if (needData) {
      const bytes = Math.max(P.readFile, P.writeFile);
      readData = Buffer.allocUnsafe(bytes);
      for (let off = 0; off < bytes; off += 16 * MiB) crypto.randomFillSync(readData, off, Math.min(16 * MiB, bytes - off));
      // The largest reply (48 MiB as base64 plus framing) fits the client's assembly buffer.
      require('./lib/client').LeanClient.reserve(Math.ceil(Math.max(...P.readCounts) / 3) * 4 + 4096);
      readPath = path.join(workDir, 'random.bin');
      fs.writeFileSync(readPath, readData.subarray(0, P.readFile));
      log(`random file: ${sizeLabel(P.readFile)}, crc32 ${zlib.crc32(readData.subarray(0, P.readFile)).toString(16)}`);
    }
    for (const count of P.readCounts) {
      const limit = count < 64 * KiB ? P.smallReadLimit : count < 16 * MiB ? P.midReadLimit : P.readFile;
      scenarios.push({
        id: `read-${sizeLabel(count).replace(' ', '')}`, title: `guest-file-read, count ${sizeLabel(count)} (${sizeLabel(limit)} of a ${sizeLabel(P.readFile)} random file)`,
        group: 'read', echo: true, size: count,
        run: (a) => S.fileRead(a, { file: readPath, data: readData.subarray(0, P.readFile), count, limit, verify: a.spec.kind !== 'echo' }),
      });
    }
    for (const chunk of P.writeChunks) {
      let bodies = null;
      const writeData = () => readData.subarray(0, P.writeFile);
      scenarios.push({
        id: `write-${sizeLabel(chunk).replace(' ', '')}`, title: `guest-file-write, ${sizeLabel(chunk)} chunks (${sizeLabel(P.writeFile)})`,
        group: 'write', echo: true, size: chunk,
        setup: () => { bodies = S.writeBodies(writeData(), chunk); },
        teardown: () => { bodies = null; },
        run: (a) => S.fileWrite(a, { target: path.join(workDir, `written-${a.spec.id}.bin`), data: writeData(), bodies, verify: a.spec.kind !== 'echo' }),
      });
    }
    for (const command of INVENTORY) {
      scenarios.push({ id: `inventory-${command.replace(/^guest-/, '')}`, title: command, group: 'inventory', run: (a) => S.inventory(a, { command, ms: P.inventoryMs, max: P.inventoryMax }) });
    }
    scenarios.push({ id: 'malformed', title: `malformed requests (${P.malformedCount}, ${S.MALFORMED.length} kinds)`, group: 'malformed', run: (a) => S.malformed(a, { count: P.malformedCount }) });

    for (const sc of scenarios) {
      if (!wants(sc.id)) continue;
      const t0 = performance.now();
      sc.setup?.();
      for (let rep = 0; rep < opts.reps; rep++) {
        for (const spec of rotate(agentSpecsRun, rep)) {
          if (spec.kind === 'echo' && !sc.echo) continue;
          const agent = running.get(spec.id);
          if (!agent) continue;
          await runOne(results, sc, agent, rep, record);
        }
      }
      sc.teardown?.();
      log(`${sc.id}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }

    // RSS after everything (not a target; shows what the heavy scenarios left behind).
    for (const [id, agent] of running) {
      if (agent.exited) continue;
      const st = agent.stats();
      results.afterRssMiB = { ...(results.afterRssMiB || {}), [id]: st.rssKiB / 1024 };
    }

    // Freeze + thaw of loop filesystems.
    const freezeWanted = wants('freeze') && opts.freeze !== false && (!opts.quick || opts.freeze === true);
    if (!freezeWanted) {
      results.skipped.freeze = opts.quick ? 'not run in --quick mode (pass --freeze to include it)' : 'disabled with --no-freeze or --only';
    } else {
      const why = loopsUnavailable();
      if (why) results.skipped.freeze = why;
      else {
        try { await runFreeze(results, P, opts, realAgents, workDir, loops, record); } catch (e) { results.skipped.freeze = `failed: ${e.message}`; results.errors.push({ scenario: 'freeze', agent: '-', error: e.message }); }
      }
    }
    if (results.skipped.freeze) log(`freeze scenario skipped: ${results.skipped.freeze}`);

    for (const a of running.values()) await a.stop();
    running.clear();

    if (wants('micro')) {
      log('micro-benchmarks (native vs fallback, in-process)');
      try {
        const out = execFileSync(process.execPath, [path.join(__dirname, 'micro.js'), '--json', '--budget-ms', String(P.microBudgetMs), ...P.microArgs], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
        results.micro = JSON.parse(out.trim().split('\n').pop());
      } catch (e) { results.errors.push({ scenario: 'micro', agent: '-', error: e.message }); }
    }
  } finally {
    await cleanup();
  }

  results.elapsedSec = +((performance.now() - started) / 1000).toFixed(1);
  const prefix = opts.out ?? path.join(__dirname, opts.quick ? 'RESULTS.quick' : 'RESULTS');
  const jsonPath = opts.out ? `${opts.out}.json` : path.join(__dirname, opts.quick ? 'results.quick.json' : 'results.json');
  const summary = report.summarize(results);
  const md = report.markdown(results, summary);
  fs.writeFileSync(`${prefix}.md`, md);
  fs.writeFileSync(jsonPath, JSON.stringify({ ...results, summary }, null, 1) + '\n');
  process.stdout.write(md);
  log(`wrote ${path.relative(ROOT, `${prefix}.md`)} and ${path.relative(ROOT, jsonPath)} in ${results.elapsedSec} s`);
  if (results.errors.length) { log(`${results.errors.length} error(s): see the table`); process.exitCode = 1; }
}

async function runOne(results, sc, agent, rep, record) {
  if (agent.exited) return;
  const resetOk = agent.resetPeak();
  const before = agent.stats();
  const t0 = performance.now();
  try {
    const metrics = await sc.run(agent);
    const after = agent.stats();
    const error = metrics.error; delete metrics.error;
    record(sc, agent.spec.id, rep, { metrics, cpuSec: after.cpuSec - before.cpuSec, peakRssMiB: (resetOk ? after.hwmKiB : Math.max(before.rssKiB, after.rssKiB)) / 1024, wallMs: performance.now() - t0, ...(error ? { error } : {}) });
  } catch (e) {
    fail(results, sc.id, agent.spec.id, e);
    // A failed exchange may leave the connection out of step: start over on a fresh one.
    try {
      agent.client.close();
      agent.client = await require('./lib/client').LeanClient.connect(agent.sock, { timeoutMs: 5000 });
    } catch { /* the agent is gone; later scenarios skip it */ }
  }
}

async function runFreeze(results, P, opts, realAgents, workDir, loops, record) {
  const counts = [1, 8];
  loops.set = new LoopSet(fs.mkdtempSync(path.join(workDir, 'loops-')));
  loops.set.add(Math.max(...counts));
  const procRoot = loops.set.procFixture();
  for (const n of counts) {
    const mountpoints = loops.set.mountpoints(n);
    loops.set.assertOnlyOurLoops(mountpoints);
    const sc = { id: `freeze-${n}`, title: `guest-fsfreeze-freeze-list + thaw of ${n} loop filesystem${n > 1 ? 's' : ''}`, group: 'freeze',
      run: (a) => { loops.set.assertOnlyOurLoops(mountpoints); return S.freezeThaw(a, { mountpoints, cycles: P.freezeCycles }); } };
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const spec of rotate(realAgents, rep)) {
        // Dedicated instances: node-qga sees only the loops (fixture mount table) besides the list.
        const extra = spec.kind === 'node-qga' ? ['--proc-root', procRoot] : [];
        let agent;
        try {
          ({ agent } = await startAgent(spec, workDir, `freeze${n}-${rep}`, extra));
          await runOne(results, sc, agent, rep, record);
        } catch (e) { fail(results, sc.id, spec.id, e); } finally {
          if (agent) await agent.stop();
          // Whatever happened, none of our loops stays frozen.
          for (const mp of mountpoints) { try { execFileSync('fsfreeze', ['--unfreeze', mp], { stdio: 'ignore' }); } catch { /* not frozen */ } }
        }
      }
    }
  }
}

function fail(results, scenario, agent, e) {
  const msg = e instanceof Error ? e.message : String(e);
  results.errors.push({ scenario, agent, error: msg });
  log(`${scenario} on ${agent} failed: ${msg.split('\n')[0]}`);
}

function rotate(list, k) {
  const n = list.length;
  return n ? list.map((_, i) => list[(i + k) % n]) : [];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

main().catch((e) => { process.stderr.write(`bench: fatal: ${e.stack || e}\n`); process.exit(1); });
