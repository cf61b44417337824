// Which paths of the repository a `docker build .` sends, by .dockerignore's rules: patterns are
// anchored at the context root, `*` and `?` stay within one path element, `**` spans any number
// of them, a path is out when it or a parent folder matches, and the last matching line wins
// (`!pattern` brings a path back).

import { readRepoFile } from './repo';

interface Rule {
  exclude: boolean;
  pattern: RegExp;
}

function toRegExp(glob: string): RegExp {
  let re = '';
  const g = glob.replace(/^\/+/, '').replace(/\/+$/, '');
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === '*' && g[i + 1] === '*') {
      const slash = g[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function dockerignoreRules(text = readRepoFile('.dockerignore')): Rule[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (l.startsWith('!') ? { exclude: false, pattern: toRegExp(l.slice(1)) } : { exclude: true, pattern: toRegExp(l) }));
}

/** Whether `path` (relative to the repository, "/"-separated) is left out of the build context. */
export function isIgnored(path: string, rules = dockerignoreRules()): boolean {
  const parts = path.split('/');
  let ignored = false;
  for (const rule of rules) {
    for (let n = 1; n <= parts.length; n++) {
      if (rule.pattern.test(parts.slice(0, n).join('/'))) {
        ignored = rule.exclude;
        break;
      }
    }
  }
  return ignored;
}
