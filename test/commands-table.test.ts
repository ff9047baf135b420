/**
 * The start-up command table (lib/commands/index.ts) against the command modules' own
 * definitions: same commands, same flags, every module command registered, and no handler
 * module loaded until a command is used.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { COMMAND_TABLE, allCommands, definitionsOf, type CommandModule } from '../lib/commands';

const commandsDir = path.join(__dirname, '..', 'lib', 'commands');
const handlerModulesLoaded = () => Object.keys(require.cache)
  .filter((f) => path.dirname(f) === commandsDir && !/[/\\](index|define)\.ts$/.test(f));

test('loading the table loads no handler module', () => {
  // This file imports only lib/commands (index), which imports define.ts as a type.
  assert.equal(handlerModulesLoaded(), []);
  assert.is(allCommands.length, COMMAND_TABLE.length);
  assert.equal(handlerModulesLoaded(), []);
});

test('each entry has its module definition\'s flags, arguments and handler', async () => {
  for (const cmd of allCommands) {
    const module = COMMAND_TABLE.find(([name]) => name === cmd.name)![1];
    const real = definitionsOf(module).find((c) => c.name === cmd.name);
    assert.ok(real, `${cmd.name} is defined in commands/${module}`);
    assert.is(cmd.successResponse, real!.successResponse, `${cmd.name} successResponse`);
    assert.is(cmd.allowedWhileFrozen, real!.allowedWhileFrozen, `${cmd.name} allowedWhileFrozen`);
    assert.is(cmd.unsupported, real!.unsupported, `${cmd.name} unsupported`);
    assert.is(cmd.delimited, real!.delimited, `${cmd.name} delimited`);
    assert.is(cmd.args, real!.args, `${cmd.name} args`);
    assert.is(cmd.returns, real!.returns, `${cmd.name} returns`);
  }
});

test('every command a module defines is in the table, once', () => {
  const modules = [...new Set(COMMAND_TABLE.map(([, m]) => m))] as CommandModule[];
  const defined = modules.flatMap((m) => definitionsOf(m).map((c) => c.name)).sort();
  const listed = COMMAND_TABLE.map(([name]) => name).sort();
  assert.equal(listed, [...new Set(listed)]);
  assert.equal(listed, [...new Set(defined)].sort());
});

test('a lazy command runs its module\'s handler', async () => {
  const ping = allCommands.find((c) => c.name === 'guest-ping')!;
  const logged: string[] = [];
  const ctx = { log: { info: (m: string) => logged.push(m) } };
  assert.equal(await ping.run({}, ctx as never), {});
  assert.equal(logged, ['guest-ping called']);
});

test.run();
