// Ferry's per-host services as one JavaScript file each, built on the outer machine with esbuild
// (tsx's own transpiler) for the nested dom0s. Run from source, a service spent minutes under nested
// TCG before its first log line: tsx compiling the TypeScript, and Node resolving and reading
// thousands of files of node_modules over 9p. A bundle is one file. Native addons stay outside
// (they are loaded by computed paths), and `__dirname`/`__filename` in every bundled file are
// replaced by that file's real location as dom0 sees it (/host + path), so files a package reads
// next to its code (the addons, .proto files) are still found.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { REPO_ROOT } from './settings';
import { SERVICES, type ServiceName } from './dom0-services';

/** Where dom0 sees the outer machine's / (dom0-init.sh mounts the 9p share there). */
export const HOST_SHARE = '/host';

function realLocations(share: string): Plugin {
  return {
    name: 'ferry-real-locations',
    setup(b) {
      b.onResolve({ filter: /\.node$/ }, (args) => ({ path: args.path, external: true }));
      b.onLoad({ filter: /\.(ts|js|cjs|mjs)$/ }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        if (!/\b__(dirname|filename)\b/.test(source)) return undefined;
        const contents = source
          .replace(/\b__dirname\b/g, JSON.stringify(share + dirname(args.path)))
          .replace(/\b__filename\b/g, JSON.stringify(share + args.path));
        return { contents, loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
      });
    },
  };
}

/** Builds every service's bundle into `outDir`; returns the path of each. */
export async function buildServiceBundles(outDir: string, share = HOST_SHARE): Promise<Record<ServiceName, string>> {
  const out = {} as Record<ServiceName, string>;
  for (const svc of SERVICES) {
    const file = join(outDir, `${svc}.js`);
    await build({
      entryPoints: [join(REPO_ROOT, 'services', svc, 'src', 'main.ts')],
      outfile: file,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      sourcemap: false,
      logLevel: 'error',
      plugins: [realLocations(share)],
    });
    out[svc] = file;
  }
  return out;
}
