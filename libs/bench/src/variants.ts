// A variant is a policy with or without balloon compaction and Ferry's zero-page elision, written
// "layered+compaction+zero". Without "+zero" pages travel as Xen's stream carries them (every
// populated page in full), so the two optimisations of the thesis are measured on their own.

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

export function parseVariant(text: string): Variant {
  const [policy, ...extras] = text.split('+');
  const known = new Set(['compaction', 'zero']);
  if (!(POLICY_NAMES as string[]).includes(policy) || extras.some((e) => !known.has(e)) || new Set(extras).size !== extras.length) {
    throw new RangeError(`unknown policy variant "${text}" (${POLICY_NAMES.join(', ')}, optionally +compaction and +zero)`);
  }
  return { label: text, policy: policy as PolicyName, compaction: extras.includes('compaction'), zeroElision: extras.includes('zero') };
}
