// StartMigration's request: validation (malformed → INVALID_ARGUMENT with a reason) and the
// effective options with every default filled in, which the migration record keeps. Pure.

import {
  CompactionTimeoutAction,
  MigrationOptions,
  MigrationPolicy,
  PayloadCompression,
  TimeoutAction,
  type LayeredParameters,
  type StartMigrationRequest,
} from '@ferry/proto';
import { DEFAULT_COMPACTION, DEFAULT_LAYERED_PARAMS, DEFAULT_LAYERED_STOP, type PolicyName } from '@ferry/policy';
import { invalidArgument } from '@ferry/runtime';

/** Defaults of the options shared by all policies. */
export const OPTION_DEFAULTS = {
  /** The layered stop rule's target; the Xen policies ignore it. */
  downtimeTargetMs: DEFAULT_LAYERED_STOP.downtimeTargetMs,
  /** As Nova's and KubeVirt's live_migration_completion_timeout. */
  completionTimeoutPerGibS: 800,
  compactionHeadroomFraction: DEFAULT_COMPACTION.headroom,
  compactionSettleTimeoutMs: 30_000,
} as const;

/** Bounds that catch typos (a downtime target of hours, a headroom of 1000×). */
const LIMITS = {
  downtimeTargetMs: 600_000,
  completionTimeoutPerGibS: 86_400,
  maxRounds: 1000,
  compactionHeadroomFraction: 10,
  compactionSettleTimeoutMs: 3_600_000,
  nameLength: 128,
  requestIdLength: 256,
} as const;

/** The policies' own round limits (Xen's SPP_MAX_ITERATIONS / DEF_MAX_ITERS; the layered cap). */
export const POLICY_MAX_ROUNDS: Readonly<Record<PolicyName, number>> = {
  'xen-4.17': 5,
  'xen-legacy': 29,
  layered: DEFAULT_LAYERED_STOP.maxIterations,
};

export function policyName(policy: MigrationPolicy): PolicyName {
  switch (policy) {
    case MigrationPolicy.MIGRATION_POLICY_XEN_4_17:
      return 'xen-4.17';
    case MigrationPolicy.MIGRATION_POLICY_XEN_LEGACY:
      return 'xen-legacy';
    case MigrationPolicy.MIGRATION_POLICY_LAYERED:
      return 'layered';
    default:
      throw invalidArgument('INVALID_POLICY', `unknown migration policy ${policy as number}`);
  }
}

export function policyFromName(name: string): MigrationPolicy {
  switch (name) {
    case 'xen-4.17':
      return MigrationPolicy.MIGRATION_POLICY_XEN_4_17;
    case 'xen-legacy':
      return MigrationPolicy.MIGRATION_POLICY_XEN_LEGACY;
    case 'layered':
      return MigrationPolicy.MIGRATION_POLICY_LAYERED;
    default:
      throw new Error(`unknown policy "${name}" (xen-4.17, xen-legacy or layered)`);
  }
}

/** A validated StartMigration request. */
export interface StartRequest {
  domainName: string;
  /** Empty: look the domain up on every host. */
  sourceHost: string;
  targetHost: string;
  policy: MigrationPolicy;
  options: MigrationOptions;
  requestId: string;
  validateOnly: boolean;
}

/** Checks a StartMigration request; throws INVALID_ARGUMENT (with a reason) for a malformed one. */
export function validateStartRequest(req: StartMigrationRequest, defaultPolicy: MigrationPolicy): StartRequest {
  const domainName = checkName('domain_name', req.domainName);
  const targetHost = checkName('target_host', req.targetHost);
  const sourceHost = req.sourceHost === '' ? '' : checkName('source_host', req.sourceHost);
  if (sourceHost === targetHost) {
    throw invalidArgument('SAME_HOST', `source and target are the same host "${targetHost}"; a migration needs two hosts`);
  }
  if (req.requestId.length > LIMITS.requestIdLength) {
    throw invalidArgument('INVALID_REQUEST_ID', `request_id is longer than ${LIMITS.requestIdLength} characters`);
  }
  const policy = req.policy === MigrationPolicy.MIGRATION_POLICY_UNSPECIFIED ? defaultPolicy : req.policy;
  policyName(policy); // rejects values outside the enum
  return {
    domainName,
    sourceHost,
    targetHost,
    policy,
    options: effectiveOptions(policy, req.options),
    requestId: req.requestId,
    validateOnly: req.validateOnly,
  };
}

function checkName(field: string, value: string): string {
  if (value === '') throw invalidArgument('MISSING_FIELD', `${field} is required`);
  if (value.length > LIMITS.nameLength) throw invalidArgument('INVALID_NAME', `${field} is longer than ${LIMITS.nameLength} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\s]/.test(value)) throw invalidArgument('INVALID_NAME', `${field} "${value}" contains whitespace or control characters`);
  return value;
}

/** A known value of a ts-proto enum (UNRECOGNIZED = -1 is not one). */
function inEnum(e: object, value: number): boolean {
  return value >= 0 && Object.values(e).includes(value);
}

function checkRange(field: string, value: number, max: number): void {
  if (!Number.isFinite(value) || value < 0 || value > max) {
    throw invalidArgument('INVALID_OPTIONS', `options.${field} must be between 0 and ${max}, got ${value}`);
  }
}

/** The options in effect: zero values replaced by defaults, every value checked. */
export function effectiveOptions(policy: MigrationPolicy, given: MigrationOptions | undefined): MigrationOptions {
  const o = MigrationOptions.fromPartial(given ?? {});
  const name = policyName(policy);
  checkRange('downtime_target_ms', Number(o.downtimeTargetMs), LIMITS.downtimeTargetMs);
  checkRange('completion_timeout_per_gib_s', Number(o.completionTimeoutPerGibS), LIMITS.completionTimeoutPerGibS);
  checkRange('max_rounds', o.maxRounds, LIMITS.maxRounds);
  checkRange('compaction_headroom_fraction', o.compactionHeadroomFraction, LIMITS.compactionHeadroomFraction);
  checkRange('compaction_settle_timeout_ms', Number(o.compactionSettleTimeoutMs), LIMITS.compactionSettleTimeoutMs);
  if (!inEnum(TimeoutAction, o.onTimeout)) throw invalidArgument('INVALID_OPTIONS', `options.on_timeout ${o.onTimeout} is not a TimeoutAction`);
  if (!inEnum(CompactionTimeoutAction, o.onCompactionTimeout)) {
    throw invalidArgument('INVALID_OPTIONS', `options.on_compaction_timeout ${o.onCompactionTimeout} is not a CompactionTimeoutAction`);
  }
  if (!inEnum(PayloadCompression, o.compression)) throw invalidArgument('INVALID_OPTIONS', `options.compression ${o.compression} is not a PayloadCompression`);
  const layered = effectiveLayered(o.layered);
  return MigrationOptions.fromPartial({
    bandwidthBps: o.bandwidthBps,
    verify: o.verify,
    // Compaction is the thesis' optimisation: on for LAYERED; the Xen baselines behave as Xen.
    compaction: o.compaction ?? name === 'layered',
    downtimeTargetMs: o.downtimeTargetMs || BigInt(OPTION_DEFAULTS.downtimeTargetMs),
    completionTimeoutPerGibS: o.completionTimeoutPerGibS || BigInt(OPTION_DEFAULTS.completionTimeoutPerGibS),
    onTimeout: o.onTimeout || TimeoutAction.TIMEOUT_ACTION_ABORT,
    maxRounds: o.maxRounds || POLICY_MAX_ROUNDS[name],
    layered,
    compactionHeadroomFraction: o.compactionHeadroomFraction || OPTION_DEFAULTS.compactionHeadroomFraction,
    compactionSettleTimeoutMs: o.compactionSettleTimeoutMs || BigInt(OPTION_DEFAULTS.compactionSettleTimeoutMs),
    onCompactionTimeout: o.onCompactionTimeout || CompactionTimeoutAction.COMPACTION_TIMEOUT_ACTION_CONTINUE,
    compression: o.compression || PayloadCompression.PAYLOAD_COMPRESSION_NONE,
    // Ferry's encoding; the Xen baselines send zero pages in full, as libxc does.
    zeroPageElision: o.zeroPageElision ?? name === 'layered',
  });
}

function effectiveLayered(given: LayeredParameters | undefined): LayeredParameters {
  const window = given?.window || DEFAULT_LAYERED_PARAMS.window;
  const threshold = given?.threshold || DEFAULT_LAYERED_PARAMS.threshold;
  const demoteAfter = given?.demoteAfter || DEFAULT_LAYERED_PARAMS.demoteAfter;
  if (window > 8) throw invalidArgument('INVALID_OPTIONS', `options.layered.window must be 1..8, got ${window}`);
  if (threshold > window) throw invalidArgument('INVALID_OPTIONS', `options.layered.threshold must be 1..window (${window}), got ${threshold}`);
  if (demoteAfter > 8) throw invalidArgument('INVALID_OPTIONS', `options.layered.demote_after must be 1..8, got ${demoteAfter}`);
  return { window, threshold, demoteAfter };
}
