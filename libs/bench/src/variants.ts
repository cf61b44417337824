// A variant is a policy with or without balloon compaction, written "layered+compaction".

import type { PolicyName } from '@ferry/policy';

export interface Variant {
  label: string;
  policy: PolicyName;
  compaction: boolean;
}

export const POLICY_NAMES: PolicyName[] = ['xen-4.17', 'xen-legacy', 'layered'];
/** The ablation: both Xen baselines, compaction alone, layered alone, and both together. */
export const VARIANTS_DEFAULT = ['xen-4.17', 'xen-legacy', 'xen-4.17+compaction', 'layered', 'layered+compaction'];

export function parseVariant(text: string): Variant {
  const [policy, extra] = text.split('+');
  if (!(POLICY_NAMES as string[]).includes(policy) || (extra !== undefined && extra !== 'compaction')) {
    throw new RangeError(`unknown policy variant "${text}" (${POLICY_NAMES.join(', ')}, optionally +compaction)`);
  }
  return { label: text, policy: policy as PolicyName, compaction: extra === 'compaction' };
}
