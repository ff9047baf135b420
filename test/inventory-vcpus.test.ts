import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { getVcpus, setVcpus, vcpuCommands } from '../lib/commands/vcpus';
import { QgaError } from '../lib/errors';
import { buildTree, tempRoot, removeTree, rawOrder } from './inventory-fixture';

let root = '';
const cpuDir = () => `${root}/devices/system/cpu`;

test.before.each(() => {
  root = tempRoot('vcpus');
  // Created in an order unlike the sorted one; cpu0 has no `online` (it cannot be offlined).
  buildTree(root, {
    'devices/system/cpu': {
      cpu3: { online: '0\n' },
      cpufreq: {},
      cpu0: { topology: {} },
      online: '0-1,3\n',
      cpu12: { online: '1\n' },
      cpuidle: {},
      cpu1: { online: '1\n' },
      possible: '0-12\n',
    },
  });
});
test.after.each(() => removeTree(root));

function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.instance(e, QgaError);
    return (e as QgaError).desc;
  }
  throw new Error('expected an error');
}

test('get-vcpus: directory order, cpu0 without online, offline cpu', () => {
  const expectedOrder = rawOrder(cpuDir()).filter((n) => /^cpu\d+$/.test(n)).map((n) => Number(n.slice(3)));
  const got = getVcpus(root);
  assert.equal(got.map((v) => v['logical-id']), expectedOrder);
  const byId = new Map(got.map((v) => [v['logical-id'], v]));
  assert.equal(byId.get(0), { 'logical-id': 0, online: true, 'can-offline': false });
  assert.equal(byId.get(1), { 'logical-id': 1, online: true, 'can-offline': true });
  assert.equal(byId.get(3), { 'logical-id': 3, online: false, 'can-offline': true });
  assert.equal(byId.get(12), { 'logical-id': 12, online: true, 'can-offline': true });
  // Members built in schema order.
  assert.equal(Object.keys(got[0]), ['logical-id', 'online', 'can-offline']);
});

test('get-vcpus: errors name the path like qemu-ga', () => {
  fs.writeFileSync(`${cpuDir()}/cpu1/online`, '');
  assert.is(thrown(() => getVcpus(root)), `pread("${cpuDir()}/cpu1//online"): unexpected EOF`);
  removeTree(`${root}/devices`);
  assert.is(thrown(() => getVcpus(root)), `failed to list entries: ${cpuDir()}: No such file or directory`);
});

test('get-vcpus: a cpuN that is a file fails to open as a directory', () => {
  fs.writeFileSync(`${cpuDir()}/cpu7`, '');
  assert.is(thrown(() => getVcpus(root)), `open("${cpuDir()}/cpu7/"): Not a directory`);
});

test('set-vcpus: writes only changed states and counts processed entries', () => {
  const past = new Date(2000, 0, 1);
  fs.utimesSync(`${cpuDir()}/cpu12/online`, past, past);
  const n = setVcpus(root, [
    { 'logical-id': 1, online: false },
    { 'logical-id': 3, online: true, 'can-offline': false }, // can-offline is ignored on input
    { 'logical-id': 12, online: true }, // already online: no write
    { 'logical-id': 0, online: true }, // no `online` file: re-onlining succeeds
  ]);
  assert.is(n, 4);
  assert.is(fs.readFileSync(`${cpuDir()}/cpu1/online`, 'utf8'), '0\n');
  assert.is(fs.readFileSync(`${cpuDir()}/cpu3/online`, 'utf8'), '1\n');
  assert.is(fs.statSync(`${cpuDir()}/cpu12/online`).mtimeMs, past.getTime());
  assert.is(setVcpus(root, []), 0);
});

test('set-vcpus: partial success drops the error, a first failure reports it', () => {
  const n = setVcpus(root, [
    { 'logical-id': 1, online: false },
    { 'logical-id': 0, online: false }, // cannot be offlined: processing stops here
    { 'logical-id': 12, online: false },
  ]);
  assert.is(n, 1);
  assert.is(fs.readFileSync(`${cpuDir()}/cpu1/online`, 'utf8'), '0\n');
  assert.is(fs.readFileSync(`${cpuDir()}/cpu12/online`, 'utf8'), '1\n', 'entries after the failure are untouched');

  assert.is(thrown(() => setVcpus(root, [{ 'logical-id': 0, online: false }])), "logical processor #0 can't be offlined");
  assert.is(thrown(() => setVcpus(root, [{ 'logical-id': 9, online: true }, { 'logical-id': 1, online: true }])),
    `open("${cpuDir()}/cpu9/"): No such file or directory`);
  assert.is(fs.readFileSync(`${cpuDir()}/cpu1/online`, 'utf8'), '0\n', 'nothing changed after a first-entry failure');
  fs.writeFileSync(`${cpuDir()}/cpu3/online`, '');
  assert.is(thrown(() => setVcpus(root, [{ 'logical-id': 3, online: true }])), `pread("${cpuDir()}/cpu3//online"): unexpected EOF`);
});

test('command definitions: names, args and returns', () => {
  assert.equal(vcpuCommands.map((c) => c.name), ['guest-get-vcpus', 'guest-set-vcpus']);
  const set = vcpuCommands[1];
  assert.equal(set.args.map((m) => m.name), ['vcpus']);
  const t = set.args[0].type;
  assert.is(t.kind, 'list');
  if (t.kind === 'list' && t.of.kind === 'struct') {
    assert.equal(t.of.members.map((m) => [m.name, m.type.kind, !!m.optional]),
      [['logical-id', 'int', false], ['online', 'bool', false], ['can-offline', 'bool', true]]);
  } else assert.unreachable('vcpus is a list of GuestLogicalProcessor');
  const ctx = { config: { sysfsRoot: root } } as any;
  assert.is(set.run({ vcpus: [{ 'logical-id': 1, online: false }] }, ctx), 1);
  assert.equal((vcpuCommands[0].run({}, ctx) as any[]).find((v) => v['logical-id'] === 1).online, false);
});

test.run();
