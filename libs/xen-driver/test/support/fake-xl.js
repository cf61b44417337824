#!/usr/bin/env node
// A stand-in for `xl migrate-receive` in tests: speaks xl's handshake on stdout/stdin, reads the
// stream the way the real receiver does (xl header, then the libxl stream with the libxc stream
// inside, each ending with an END record), records it in $FAKE_XL_OUT, and announces the domain
// it "created" by writing $FAKE_XL_OUT.created once it has read the xl header.
// FAKE_XL_FAIL=restore makes it exit before "ready" (a restore that failed).
'use strict';
const fs = require('node:fs');

const out = process.env.FAKE_XL_OUT;
const banner = 'xl migration receiver ready, send binary domain data.\n';
const ready = Buffer.from('domain received, ready to unpause\0', 'latin1');
const go = Buffer.from('domain is yours, you are cleared to unpause\0', 'latin1');
const report = Buffer.from('my copy unpause results are as follows\0', 'latin1');

let buf = Buffer.alloc(0);
const chunks = [];
let stage = 'xl-header';
let libxcDone = false;
let need = 48;

process.stdout.write(banner);
process.stdin.on('data', (chunk) => {
  chunks.push(chunk);
  buf = Buffer.concat([buf, chunk]);
  step();
});
process.stdin.on('end', () => process.exit(stage === 'done' ? 0 : 1));

function take(n) {
  const b = buf.subarray(0, n);
  buf = buf.subarray(n);
  return b;
}

function step() {
  for (;;) {
    if (stage === 'xl-header') {
      if (buf.length < 48) return;
      need = buf.readUInt32LE(44);
      take(48);
      stage = 'xl-optional';
    } else if (stage === 'xl-optional') {
      if (buf.length < need) return;
      take(need);
      fs.writeFileSync(`${out}.created`, 'yes');
      stage = 'libxl-header';
    } else if (stage === 'libxl-header') {
      if (buf.length < 16) return;
      take(16);
      stage = 'libxl-record';
    } else if (stage === 'libxc-image-header') {
      if (buf.length < 24) return;
      take(24);
      stage = 'libxc-record';
    } else if (stage === 'libxl-record' || stage === 'libxc-record') {
      if (buf.length < 8) return;
      const type = buf.readUInt32LE(0);
      const length = buf.readUInt32LE(4);
      const padded = (length + 7) & ~7;
      if (buf.length < 8 + padded) return;
      take(8 + padded);
      if (stage === 'libxc-record') {
        if (type === 0) stage = 'libxl-record';
      } else if (type === 1 && !libxcDone) {
        libxcDone = true;
        stage = 'libxc-image-header';
      } else if (type === 0) {
        fs.writeFileSync(out, Buffer.concat(chunks).subarray(0, Buffer.concat(chunks).length - buf.length));
        if (process.env.FAKE_XL_FAIL === 'restore') process.exit(3);
        process.stdout.write(ready);
        stage = 'go';
      }
    } else if (stage === 'go') {
      if (buf.length < go.length) return;
      if (!take(go.length).equals(go)) process.exit(4);
      process.stdout.write(Buffer.concat([report, Buffer.from([0])]), () => {
        stage = 'done';
        process.exit(0);
      });
      return;
    } else return;
  }
}
