// @ferry/agent: the host agent's logic (HostAgentService), served by services/host-agent.
export { HostAgent, MAX_SUSPEND_TIMEOUT_MS, type HostAgentOptions } from './host-agent';
export { FenceTable, checkFence, requireFence, type FenceBinding, type FenceLike } from './fencing';
export { describeDomain, isUuid, vmPath } from './domain-view';
export { toDriverDomainSpec, checkDomainName, checkVcpus, memoryPages, DOMAIN_NAME, MAX_VCPUS } from './domain-spec';
export { FERRY_VERSION, describeHost, toHostDriver, toHostRecord, type HostIdentity } from './host-identity';
export { sourceReasons, targetReasons, suspendableProblem, ferryVersionsCompatible, type SourceFacts, type TargetFacts } from './preflight';
