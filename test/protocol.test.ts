/**
 * The wire protocol, checked byte for byte against what qemu-ga 7.2 sends (the transcripts in
 * the behaviour reference), through a real unix socket.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { StreamDecoder } from '../lib/protocol/decoder';
import { writeJson, formatDouble } from '../lib/protocol/encoder';
import { RawString } from '../lib/protocol/values';
import { startAgent, rawExchange, type TestAgent } from './helpers/agent';

const decoder = suite('decoder');

function decodeAll(chunks: Array<string | Buffer>): Array<string> {
  const d = new StreamDecoder();
  const out: string[] = [];
  for (const c of chunks) {
    for (const m of d.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c)) {
      out.push('error' in m ? `ERR ${m.error}` : writeJson(m.value));
    }
  }
  return out;
}

decoder('several requests in one read, one request over many reads, any whitespace', () => {
  const text = ' {"execute":"guest-ping"}\r\n\t{"execute" : "guest-sync", "arguments": {"id": 5}}[1,2]';
  const whole = decodeAll([text]);
  assert.equal(whole, ['{"execute": "guest-ping"}', '{"execute": "guest-sync", "arguments": {"id": 5}}', '[1, 2]']);
  // Every split point, and byte by byte, gives the same messages.
  for (let i = 0; i <= text.length; i++) assert.equal(decodeAll([text.slice(0, i), text.slice(i)]), whole, `split at ${i}`);
  assert.equal(decodeAll(text.split('')), whole);
});

decoder('a scalar at top level ends only when the next byte arrives', () => {
  const d = new StreamDecoder();
  assert.equal(d.push(Buffer.from('42')), []);
  const r = d.push(Buffer.from(' '));
  assert.equal(r.length, 1);
  assert.equal((r[0] as { value: unknown }).value, 42);
});

decoder('0xFF discards a half-sent request with one error, then the stream resynchronises', () => {
  assert.equal(decodeAll(['{"execute":"guest-pi', Buffer.from([0xff]), '{"execute":"guest-ping"}']), [
    "ERR JSON parse error, stray '\"guest-pi\uFFFD'",
    '{"execute": "guest-ping"}',
  ]);
});

decoder('qemu-ga lexer errors and recovery (observed transcripts)', () => {
  assert.equal(decodeAll(['{"execute":"gue\xFFst-ping"}']), ["ERR JSON parse error, stray '\"gue\uFFFD'", 'ERR JSON parse error, expecting value']);
  // After "-\n" the newline was part of the bad token; "01\n" is then dropped silently.
  assert.equal(decodeAll(['-\n01\n{"a":1}']), ["ERR JSON parse error, stray '-\n'", '{"a": 1}']);
  assert.equal(decodeAll([Buffer.from([0])]), ["ERR JSON parse error, stray ''"]);
  assert.equal(decodeAll(['\x04']), ["ERR JSON parse error, stray '\x04'"]);
  assert.equal(decodeAll(['%']), ["ERR JSON parse error, stray '%'"]);
});

decoder('parser error texts', () => {
  const cases: Array<[string, string]> = [
    ['{"execute":}', 'expecting value'],
    ['{"a":1,}', 'expecting value'],
    ['}', 'expecting value'],
    ['{"a":]', 'expecting value'],
    ['garbage ', "invalid keyword 'garbage'"],
    ['{1:2}', 'key is not a string in object'],
    ['{"execute" "x"}', 'missing : in object pair'],
    ['{"a":1 "b":2}', 'expected separator in dict'],
    ['[1 2]', 'expected separator in list'],
    ['{"a":1,"a":2}', 'duplicate key'],
    ['"\\q" ', 'invalid escape sequence in string'],
    ['"\xC3\x28" ', 'invalid UTF-8 sequence in string'],
    ['"\\ud800" ', '\\ud800 is not a valid Unicode character'],
  ];
  for (const [input, err] of cases) assert.equal(decodeAll([input]), [`ERR JSON parse error, ${err}`], input);
});

decoder('strings: single quotes, escapes, surrogate pairs, modified UTF-8', () => {
  assert.equal(decodeAll(["{'execute':'guest-ping'}"]), ['{"execute": "guest-ping"}']);
  assert.equal(decodeAll(['{"execute":"guest-\\u0070ing"}']), ['{"execute": "guest-ping"}']);
  assert.equal(decodeAll(['["\\ud83d\\ude00", "\xC3\xA9", "\xC0\x80", "\\u0000", "a\\/b\\\'"]']), ['["\\uD83D\\uDE00", "\\u00E9", "\\u0000", "\\u0000", "a/b\'"]']);
});

decoder('numbers: int64, uint64, doubles, as qemu keeps them', () => {
  assert.equal(decodeAll(['[9223372036854775807, 18446744073709551615, 18446744073709551616, -0, 1.0, 1e3, 0.1]']),
    ['[9223372036854775807, 18446744073709551615, 1.8446744073709552e+19, 0, 1, 1000, 0.10000000000000001]']);
  assert.equal(decodeAll(['01 ']), ["ERR JSON parse error, stray '01'"]);
  assert.equal(formatDouble(1.5e300), '1.5000000000000001e+300');
});

decoder('limits: nesting depth, and a huge token does not grow memory without bound', () => {
  assert.equal(decodeAll(['['.repeat(1025)]), ['ERR JSON nesting depth limit exceeded']);
  const d = new StreamDecoder();
  const chunk = Buffer.alloc(1 << 20, 0x41);
  const errors: string[] = [];
  errors.push(...d.push(Buffer.from('{"execute":"x","a":"')).map((m) => ('error' in m ? m.error : 'msg')));
  for (let i = 0; i < 70; i++) errors.push(...d.push(chunk).map((m) => ('error' in m ? m.error : 'msg')));
  assert.equal(errors, ['JSON token size limit exceeded']);
  // And the stream recovers for the next request.
  assert.equal(d.push(Buffer.from('"}{"execute":"guest-ping"}')).map((m) => ('error' in m ? m.error : writeJson(m.value))),
    ['JSON parse error, expecting value', '{"execute": "guest-ping"}']);
});

decoder('long plain strings stay bytes (RawString), escaped ones are decoded', () => {
  const payload = 'QUJD'.repeat(4096);
  const d = new StreamDecoder();
  const text = `{"a":"${payload}","b":"x\\ny${'z'.repeat(5000)}"}`;
  const r = d.push(Buffer.from(text.slice(0, 7000)));
  assert.equal(r, []);
  const [m] = d.push(Buffer.from(text.slice(7000)));
  const v = (m as { value: Map<string, unknown> }).value;
  assert.ok(v.get('a') instanceof RawString);
  assert.is(String(v.get('a')), payload);
  assert.is(v.get('b'), `x\ny${'z'.repeat(5000)}`);
});

decoder('long strings: every special byte found at every alignment (the 4-bytes-at-a-time scan)', () => {
  const specials: Array<[number[], string]> = [
    [[0x0a], "ERR JSON parse error, stray '\"AAAA"],
    [[0xff], "ERR JSON parse error, stray '\"AAAA"],
    [[0x5c, 0x6e], 'ESC'],
    [[0xc3, 0xa9], 'UTF8'],
    [[0x27], 'SQ'],
  ];
  for (let offset = 0; offset < 8; offset++) {
    for (let at = 0; at < 9; at++) {
      for (const [bytes, kind] of specials) {
        const body = Buffer.concat([Buffer.alloc(40 + at, 0x41), Buffer.from(bytes), Buffer.alloc(40, 0x42)]);
        const msg = Buffer.concat([Buffer.from('["'), body, Buffer.from('"]')]);
        // Place the message at a given byte offset inside a larger buffer, so word alignment varies.
        const host = Buffer.alloc(offset + msg.length + 8, 0x20);
        msg.copy(host, offset);
        const out = new StreamDecoder().push(host.subarray(offset, offset + msg.length));
        const what = `offset ${offset} at ${at} kind ${kind}`;
        if (kind.startsWith('ERR')) {
          assert.is(out.length >= 1 && 'error' in out[0], true, what);
          assert.ok((out[0] as { error: string }).error.startsWith(kind.slice(4)), what);
        } else {
          assert.is(out.length, 1, what);
          const v = (out[0] as { value: unknown[] }).value[0];
          const expect = kind === 'ESC' ? 'A'.repeat(40 + at) + '\n' + 'B'.repeat(40)
            : kind === 'UTF8' ? 'A'.repeat(40 + at) + '\u00e9' + 'B'.repeat(40)
            : 'A'.repeat(40 + at) + "'" + 'B'.repeat(40);
          assert.is(String(v), expect, what);
        }
      }
    }
  }
});

decoder.run();

// ---- over a socket, byte for byte ---------------------------------------------------------

const wire = suite('wire (qemu-ga 7.2 transcripts)');
let t: TestAgent;
wire.before(async () => { t = await startAgent('fallback'); });
wire.after(async () => { await t.stop(); });

const transcripts: Array<[string, string]> = [
  ['{"execute":"guest-ping","id":{"a":[1,2]}}', '{"return": {}, "id": {"a": [1, 2]}}'],
  ['{"execute":"guest-nonexist","id":5}', '{"id": 5, "error": {"class": "CommandNotFound", "desc": "The command guest-nonexist has not been found"}}'],
  ['{"exec":"guest-ping"}', '{"error": {"class": "GenericError", "desc": "QMP input member \'exec\' is unexpected"}}'],
  ['{}', '{"error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}'],
  ['{"id":1}', '{"id": 1, "error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}'],
  ['[1,2]', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['"str"', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['{"execute":"guest-ping","arguments":[]}', '{"error": {"class": "GenericError", "desc": "QMP input member \'arguments\' must be an object"}}'],
  ['{"execute":"guest-ping","arguments":1,"zzz":2}', '{"error": {"class": "GenericError", "desc": "QMP input member \'zzz\' is unexpected"}}'],
  ['{"execute":1,"foo":1}', '{"error": {"class": "GenericError", "desc": "QMP input member \'execute\' must be a string"}}'],
  ["{'execute':'guest-ping'}", '{"return": {}}'],
  ['{"execute":"guest-sync"}', '{"error": {"class": "GenericError", "desc": "Parameter \'id\' is missing"}}'],
  ['{"execute":"guest-sync","arguments":{"id":1,"x":2}}', '{"error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}'],
  ['{"execute":"guest-sync","arguments":{"id":"1"}}', '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'id\', expected: integer"}}'],
  ['{"execute":"guest-sync","arguments":{"id":9223372036854775808}}', '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'id\', expected: integer"}}'],
  ['{"execute":"guest-sync","arguments":{"id":1.0}}', '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'id\', expected: integer"}}'],
  ['{"execute":"guest-sync","arguments":{"id":9223372036854775807}}', '{"return": 9223372036854775807}'],
  ['{"execute":"guest-ping","arguments":{"foo":42}}', '{"error": {"class": "GenericError", "desc": "Parameter \'foo\' is unexpected"}}'],
  ['{"execute":"guest-file-open","arguments":{"path":"x","mode":null}}', '{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'mode\', expected: string"}}'],
  ['{"execute":"guest-ping","id":"__qmp#00001"}', '{"return": {}, "id": "__qmp#00001"}'],
  ['{"execute":"guest-ping","id":0.5}', '{"return": {}, "id": 0.5}'],
  ['{"execute":"guest-ping","id":null}', '{"return": {}, "id": null}'],
];

wire('replies match qemu-ga byte for byte', async () => {
  for (const [req, expected] of transcripts) {
    const got = await rawExchange(t.sock, req + '\n', 1);
    assert.is(got.toString('latin1'), expected + '\n', req);
  }
});

wire('guest-sync-delimited: 0xFF before the reply, none when its arguments are wrong', async () => {
  const got = await rawExchange(t.sock, '{"execute":"guest-sync-delimited","arguments":{"id":77},"id":"q"}', 1);
  assert.equal([...got], [0xff, ...Buffer.from('{"return": 77, "id": "q"}\n')]);
  const bad = await rawExchange(t.sock, '{"execute":"guest-sync-delimited"}', 1);
  assert.is(bad[0], 0x7b);
});

wire('the client 0xFF flush: one stray error, then the synced reply', async () => {
  const got = await rawExchange(t.sock, Buffer.concat([Buffer.from('{"execute":"gue'), Buffer.from([0xff]), Buffer.from('{"execute":"guest-sync-delimited","arguments":{"id":1}}')]), 2);
  assert.is(got.toString('latin1'), '{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\"gue\\uFFFD\'"}}\n\xff{"return": 1}\n');
});

wire('libvirt: plain guest-sync with a millisecond id, then the command, line by line', async () => {
  const id = Date.now();
  const got = await rawExchange(t.sock, `{"execute":"guest-sync", "arguments":{"id":${id}}}`, 1);
  assert.is(got.toString(), `{"return": ${id}}\n`);
});

wire('Proxmox: sync-delimited and the command in one write, matched by its regex', async () => {
  const id = Number(`${process.pid}0${7}`);
  const req = `{"execute":"guest-sync-delimited","arguments":{"id":${id}}}\n{"execute":"guest-ping","arguments":{}}\n`;
  const got = (await rawExchange(t.sock, req, 2)).toString('latin1');
  const m = /^.*\xff([^\n]+}\r?\n[^\n]+})\r?\n/s.exec(got);
  assert.ok(m, got);
  const [sync, reply] = m![1].split('\n');
  assert.equal(JSON.parse(sync), { return: id });
  assert.equal(JSON.parse(reply), { return: {} });
});

wire('malformed input never stops the agent; a new client gets a clean parser', async () => {
  const bad = ['{"execute":', '\xfe\xfe', '{"a":[1,2,', '"unterminated'];
  for (const b of bad) {
    const net = await import('node:net');
    await new Promise<void>((resolve) => { const s = net.connect(t.sock, () => { s.end(Buffer.from(b, 'latin1')); }); s.resume(); s.on('close', () => resolve()); s.on('error', () => resolve()); });
  }
  const got = await rawExchange(t.sock, '{"execute":"guest-ping"}', 1);
  assert.is(got.toString(), '{"return": {}}\n');
});

wire('guest-info lists every command with enabled and success-response, newest first', async () => {
  const c = await t.connect();
  const info = await c.call('guest-info');
  c.close();
  assert.match(info.version, /^\d+\.\d+\.\d+\+(native|fallback)$/);
  const names = info.supported_commands.map((x: { name: string }) => x.name);
  assert.is(names[names.length - 1], 'guest-sync-delimited');
  assert.ok(names.includes('guest-file-read'));
  for (const cmd of info.supported_commands) {
    assert.equal(Object.keys(cmd).sort(), ['enabled', 'name', 'success-response']);
    // Only what qemu-ga also keeps disabled on Linux (the Windows-only device list).
    assert.is(cmd.enabled, cmd.name !== 'guest-get-devices', cmd.name);
    assert.is(cmd['success-response'], !/^guest-(shutdown|suspend-)/.test(cmd.name), cmd.name);
  }
});

wire('guest-get-time is nanoseconds, microsecond resolution, near the host clock', async () => {
  const c = await t.connect();
  const ns = BigInt(await c.call('guest-get-time'));
  c.close();
  assert.is(ns % 1000n, 0n);
  const diffMs = Number(ns / 1000000n) - Date.now();
  assert.ok(Math.abs(diffMs) < 2000, `off by ${diffMs} ms`);
});

wire.run();

const rpcs = suite('block and allow lists');

rpcs('blocked commands answer CommandNotFound "has been disabled" and show enabled:false', async () => {
  const a = await startAgent('fallback', { blockRpcs: ['guest-ping', 'guest-get-time'] });
  try {
    const got = await rawExchange(a.sock, '{"execute":"guest-ping"}{"execute":"guest-get-time"}{"execute":"guest-sync","arguments":{"id":3}}', 3);
    assert.is(got.toString(), [
      '{"error": {"class": "CommandNotFound", "desc": "Command guest-ping has been disabled"}}',
      '{"error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled"}}',
      '{"return": 3}', ''].join('\n'));
    const c = await a.connect();
    const info = await c.call('guest-info');
    c.close();
    const enabled = Object.fromEntries(info.supported_commands.map((x: { name: string; enabled: boolean }) => [x.name, x.enabled]));
    assert.is(enabled['guest-ping'], false);
    assert.is(enabled['guest-get-time'], false);
    assert.is(enabled['guest-info'], true);
  } finally { await a.stop(); }
});

rpcs('allow list: only the listed commands run; names are matched exactly', async () => {
  const a = await startAgent('fallback', { allowRpcs: ['guest-ping', 'guest-sync-delimited'] });
  try {
    const got = await rawExchange(a.sock, '{"execute":"guest-ping"}{"execute":"guest-get-time"}{"execute":"GUEST-PING"}', 3);
    assert.is(got.toString(), [
      '{"return": {}}',
      '{"error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled"}}',
      '{"error": {"class": "CommandNotFound", "desc": "The command GUEST-PING has not been found"}}', ''].join('\n'));
  } finally { await a.stop(); }
});

rpcs('frozen state: only the six allowed commands run, with qemu-ga\'s text', async () => {
  const a = await startAgent('fallback');
  try {
    await a.agent.state.markFrozen({ mountpoints: [], since: Date.now() });
    const got = await rawExchange(a.sock, '{"execute":"guest-get-time"}{"execute":"guest-ping"}', 2);
    assert.is(got.toString(), [
      '{"error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled: the agent is in frozen state"}}',
      '{"return": {}}', ''].join('\n'));
  } finally { await a.agent.state.clearFrozen(); await a.stop(); }
});

rpcs.run();
