#!/usr/bin/env node
/** node-qga-client SOCKET COMMAND [JSON-ARGS]: run one command and print its return value as JSON. */
import { QgaClient, QgaError, stringify } from './index';

async function main(): Promise<number> {
  const [sock, command, json] = process.argv.slice(2);
  if (!sock || !command) {
    process.stderr.write('usage: node-qga-client SOCKET COMMAND [JSON-ARGS]\n  e.g. node-qga-client /tmp/qga.sock guest-info\n');
    return 2;
  }
  const client = await QgaClient.connect(sock);
  try {
    const noReply = /^guest-(shutdown|suspend-)/.test(command);
    const ret = await client.call(command, json ? JSON.parse(json) : undefined, noReply ? { noReply, timeout: 3000 } : {});
    process.stdout.write((ret === undefined ? 'no reply (expected for this command)' : stringify(ret)) + '\n');
    return 0;
  } catch (e) {
    if (e instanceof QgaError) { process.stderr.write(`error: ${e.errorClass}: ${e.desc}\n`); return 1; }
    throw e;
  } finally {
    client.close();
  }
}

main().then((c) => process.exit(c), (e) => { process.stderr.write(`${(e as Error).message}\n`); process.exit(1); });
