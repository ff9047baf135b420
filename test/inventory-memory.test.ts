import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { getMemoryBlocks, setMemoryBlocks, getMemoryBlockInfo, parseHexSize, memoryCommands } from '../lib/commands/memory';
import { QgaError } from '../lib/errors';
import { buildTree, tempRoot, removeTree, rawOrder } from './inventory-fixture';

let root = '';
const memDir = () => `${root}/devices/system/memory`;

test.before.each(() => {
  root = tempRoot('memory');
  buildTree(root, {
    'devices/system/memory': {
      memory32: { state: 'online\n', removable: '1\n' },
      block_size_bytes: '8000000\n',
      memory8: { state: 'offline\n', removable: '0\n' }, // removable=0: cannot be offlined
      memory3: { removable: '1\n' }, // no `state` (old kernels): online, fixed
      memory5: { state: 'online\n' }, // no `removable`: can-offline false
      memory_notes: 'a file named memory*, not a block\n',
      auto_online_blocks: 'offline\n',
      uevent: '',
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

test('get-memory-blocks: directory order, missing state/removable, removable=0', () => {
  const order = rawOrder(memDir()).filter((n) => /^memory\d+$/.test(n)).map((n) => Number(n.slice(6)));
  const got = getMemoryBlocks(root);
  assert.equal(got.map((b) => b['phys-index']), order);
  const byIndex = new Map(got.map((b) => [b['phys-index'], b]));
  assert.equal(byIndex.get(32), { 'phys-index': 32, online: true, 'can-offline': true });
  assert.equal(byIndex.get(8), { 'phys-index': 8, online: false, 'can-offline': false });
  assert.equal(byIndex.get(3), { 'phys-index': 3, online: true, 'can-offline': false });
  assert.equal(byIndex.get(5), { 'phys-index': 5, online: true, 'can-offline': false });
});

test('get-memory-blocks: no directory is an empty list, no blocks is an error', () => {
  removeTree(`${root}/devices`);
  assert.equal(getMemoryBlocks(root), []);
  buildTree(root, { 'devices/system/memory': { block_size_bytes: '8000000\n', memory_notes: '' } });
  assert.is(thrown(() => getMemoryBlocks(root)), 'guest reported zero memory blocks!');
});

test('get-memory-blocks: unreadable state fails the whole call', () => {
  fs.writeFileSync(`${memDir()}/memory32/state`, '');
  assert.is(thrown(() => getMemoryBlocks(root)), 'pread sysfs file "state": unexpected EOF');
  fs.writeFileSync(`${memDir()}/memory32/state`, 'online\n');
  fs.writeFileSync(`${memDir()}/memory32/removable`, '');
  assert.is(thrown(() => getMemoryBlocks(root)), 'pread sysfs file "removable": unexpected EOF');
  fs.rmSync(`${memDir()}/memory32/state`);
  fs.mkdirSync(`${memDir()}/memory32/state`);
  assert.is(thrown(() => getMemoryBlocks(root)), 'pread sysfs file "state": Is a directory');
});

test('set-memory-blocks: responses and error-code quirks', () => {
  const past = new Date(2000, 0, 1);
  fs.utimesSync(`${memDir()}/memory5/state`, past, past);
  const got = setMemoryBlocks(root, [
    { 'phys-index': 32, online: false },
    { 'phys-index': 8, online: true, 'can-offline': true },
    { 'phys-index': 5, online: true }, // already online: success, nothing written
    { 'phys-index': 77, online: true }, // no such block
    { 'phys-index': 3, online: false }, // no `state`: cannot offline
    { 'phys-index': 3, online: true }, // no `state`, online wanted: success yet error-code 2
  ]);
  assert.equal(got, [
    { 'phys-index': 32, response: 'success' },
    { 'phys-index': 8, response: 'success' },
    { 'phys-index': 5, response: 'success' },
    { 'phys-index': 77, response: 'not-found', 'error-code': 2 },
    { 'phys-index': 3, response: 'operation-not-supported', 'error-code': 2 },
    { 'phys-index': 3, response: 'success', 'error-code': 2 },
  ]);
  assert.is(fs.readFileSync(`${memDir()}/memory32/state`, 'utf8').slice(0, 7), 'offline');
  assert.is(fs.readFileSync(`${memDir()}/memory8/state`, 'utf8').slice(0, 6), 'online');
  assert.is(fs.statSync(`${memDir()}/memory5/state`).mtimeMs, past.getTime());
  assert.equal(Object.keys(got[3]), ['phys-index', 'response', 'error-code']);
  assert.equal(setMemoryBlocks(root, []), []);
});

test('set-memory-blocks: read and write failures', () => {
  fs.writeFileSync(`${memDir()}/memory32/state`, '');
  // An empty read leaves errno 0 behind, and qemu-ga reports exactly that.
  assert.equal(setMemoryBlocks(root, [{ 'phys-index': 32, online: false }]),
    [{ 'phys-index': 32, response: 'operation-failed', 'error-code': 0 }]);
  // /dev/full reads as zeros (not "online") and refuses writes with ENOSPC.
  fs.rmSync(`${memDir()}/memory32/state`);
  fs.symlinkSync('/dev/full', `${memDir()}/memory32/state`);
  assert.equal(setMemoryBlocks(root, [{ 'phys-index': 32, online: true }]),
    [{ 'phys-index': 32, response: 'operation-failed', 'error-code': 28 }]);
  fs.writeFileSync(`${memDir()}/memory3/placeholder`, '');
  fs.rmSync(`${memDir()}/memory3`, { recursive: true });
  fs.writeFileSync(`${memDir()}/memory3`, 'not a directory');
  assert.equal(setMemoryBlocks(root, [{ 'phys-index': 3, online: true }]),
    [{ 'phys-index': 3, response: 'operation-failed', 'error-code': 20 }]);
  removeTree(`${root}/devices`);
  assert.equal(setMemoryBlocks(root, [{ 'phys-index': 3, online: true }]),
    [{ 'phys-index': 3, response: 'operation-not-supported', 'error-code': 2 }]);
});

test('get-memory-block-info: hex size and errors', () => {
  assert.equal(getMemoryBlockInfo(root), { size: 134217728 });
  fs.writeFileSync(`${memDir()}/block_size_bytes`, '80000000\n');
  assert.equal(getMemoryBlockInfo(root), { size: 0x80000000 });
  assert.is(parseHexSize('0x10\n'), 16);
  assert.is(parseHexSize('zz'), 0);
  assert.is(parseHexSize('8000000000000000'), (1n << 63n) - 1n, 'strtol saturates at LONG_MAX');
  fs.writeFileSync(`${memDir()}/block_size_bytes`, '');
  assert.is(thrown(() => getMemoryBlockInfo(root)), 'pread sysfs file "block_size_bytes": unexpected EOF');
  fs.rmSync(`${memDir()}/block_size_bytes`);
  assert.is(thrown(() => getMemoryBlockInfo(root)), 'open sysfs file "block_size_bytes": No such file or directory');
  removeTree(`${root}/devices`);
  assert.is(thrown(() => getMemoryBlockInfo(root)), `open("${memDir()}/"): No such file or directory`);
});

test('command definitions', () => {
  assert.equal(memoryCommands.map((c) => c.name), ['guest-get-memory-blocks', 'guest-set-memory-blocks', 'guest-get-memory-block-info']);
  assert.equal(memoryCommands[1].args.map((m) => m.name), ['mem-blks']);
  const ctx = { config: { sysfsRoot: root } } as any;
  assert.equal(memoryCommands[2].run({}, ctx), { size: 134217728 });
  assert.equal(memoryCommands[1].run({ 'mem-blks': [{ 'phys-index': 8, online: false }] }, ctx), [{ 'phys-index': 8, response: 'success' }]);
});

test.run();
