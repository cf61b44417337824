#!/usr/bin/env node
'use strict';
// The `ferry` command. Sources are TypeScript run through tsx, so `npx ferry` works right after `npm ci`.
require('tsx/cjs/api').register();
require('../libs/cli/src/main.ts')
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code ?? 0; })
  .catch((err) => {
    console.error(`ferry: ${err && err.message ? err.message : err}`);
    process.exitCode = 1;
  });
