// A variant is a policy with or without balloon compaction and Ferry's zero-page elision, written
// "layered+compaction+zero". Without "+zero" pages travel as Xen's stream carries them (every
// populated page in full), so the two optimisations of the thesis are measured on their own.
// A "#N" suffix (N >= 2) runs the same variant again under its own label: "xen-4.17#2" is an A/A
// control, whose ratios to xen-4.17 show how far two identical migrations differ on this machine.

import type { PolicyName } from '@ferry/policy';

export interface Variant {
  label: string;
  policy: PolicyName;
  compaction: boolean;
  /** Send all-zero pages as header entries only (Ferry's encoding; Xen sends them in full). */
  zeroElision: boolean;
}

export const POLICY_NAMES: PolicyName[] = ['xen-4.17', 'xen-legacy', 'layered'];
/** The ablation: both Xen baselines, compaction alone, layered alone, both, and Ferry's full default. */
export const VARIANTS_DEFAULT = ['xen-4.17', 'xen-legacy', 'xen-4.17+compaction', 'layered', 'layered+compaction', 'layered+compaction+zero'];
/** ferry bench adds the A/A control: live migrations are not deterministic, the simulator is. */
export const BENCH_VARIANTS_DEFAULT = [...VARIANTS_DEFAULT, 'xen-4.17#2'];

export function parseVariant(text: string): Variant {
  const [name, repeat, ...rest] = text.split('#');
  const [policy, ...extras] = name.split('+');
  const known = new Set(['compaction', 'zero']);
  const badRepeat = repeat !== undefined && !(/^[1-9]\d*$/.test(repeat) && Number(repeat) >= 2);
  if (!(POLICY_NAMES as string[]).includes(policy) || extras.some((e) => !known.has(e)) || new Set(extras).size !== extras.length || badRepeat || rest.length > 0) {
    throw new RangeError(
      `unknown policy variant "${text}" (${POLICY_NAMES.join(', ')}, optionally +compaction and +zero, and #2, #3 ... to run it again)`,
    );
  }
  return { label: text, policy: policy as PolicyName, compaction: extras.includes('compaction'), zeroElision: extras.includes('zero') };
}

/** The variants named by a comma-separated list; each label at most once. */
export function parseVariants(list: string): Variant[] {
  const labels = list.split(',');
  const twice = labels.find((l, i) => labels.indexOf(l) !== i);
  if (twice !== undefined) throw new RangeError(`policy variant "${twice}" is listed twice; to run it again, add "${twice}#2"`);
  return labels.map(parseVariant);
}
