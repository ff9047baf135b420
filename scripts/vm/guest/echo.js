'use strict';
// Boot check used before the real agent exists: answers every line on the port with "echo: <line>".
const fs = require('node:fs');
const port = process.argv[2];
const fd = fs.openSync(port, 'r+');
console.log(`QGA-VM echo ready on ${port}`);
const buf = Buffer.alloc(4096);
let pending = '';
function poll() {
  let n = 0;
  try { n = fs.readSync(fd, buf, 0, buf.length, null); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
  if (n > 0) {
    pending += buf.toString('utf8', 0, n);
    let i;
    while ((i = pending.indexOf('\n')) >= 0) {
      fs.writeSync(fd, `echo: ${pending.slice(0, i)}\n`);
      pending = pending.slice(i + 1);
    }
    setImmediate(poll);
  } else setTimeout(poll, 50);
}
poll();
