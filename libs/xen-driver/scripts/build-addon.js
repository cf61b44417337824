#!/usr/bin/env node
// The package's install (and build) script. The native Xen driver needs Debian's libxen-dev 4.17
// headers; where they exist it is built with node-gyp (and a failed build fails the install),
// where they do not it is skipped with one line, because the emulated driver needs none of it.
//   FERRY_XENCTRL_HEADER  the header whose presence decides (default /usr/include/xenctrl.h)
'use strict';

const { existsSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const { dirname, join } = require('node:path');

const SKIP_LINE = 'libxen-dev not found: the native Xen driver is not built (the emulated driver still works)';
const header = process.env.FERRY_XENCTRL_HEADER || '/usr/include/xenctrl.h';

if (!existsSync(header)) {
  console.log(SKIP_LINE);
  process.exit(0);
}

const packageDir = join(__dirname, '..');
const result = spawnSync(process.execPath, [findNodeGyp(), 'rebuild', ...nodeDirArgs()], { cwd: packageDir, stdio: 'inherit' });
if (result.error) {
  console.error(`building the native Xen driver failed to start node-gyp: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);

/**
 * npm hands its `nodedir` setting to lifecycle scripts; run by hand, use this node's own headers
 * when they are installed (a distribution's node), so that building needs no download.
 */
function nodeDirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/** npm names its bundled node-gyp for lifecycle scripts; run by hand, look next to this node's npm. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    console.error('building the native Xen driver needs node-gyp (npm bundles it): none found');
    process.exit(1);
  }
}
