// What a set of NetworkPolicies lets through, by Kubernetes' rules: a connection from pod A to
// port P of pod B is allowed when A's egress allows it and B's ingress allows it; a direction is
// open to everything for a pod no policy of that type selects, and otherwise only to what some
// rule of a selecting policy names (peers by pod and namespace labels, ports by number, range or
// name). IP blocks are not modelled: a policy that uses one is reported as unsupported.

import type { K8sObject } from './k8s-objects';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: unknown;
}

interface PolicyPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}

interface PolicyRule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: PolicyPort[];
}

interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes?: ('Ingress' | 'Egress')[];
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
}

/** A pod as the policies see it: where it is, its labels, and the ports it listens on. */
export interface Endpoint {
  name: string;
  namespace: string;
  namespaceLabels: Record<string, string>;
  labels: Record<string, string>;
  ports: { port: number; protocol: 'TCP' | 'UDP'; name?: string }[];
}

export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key in labels;
    const inValues = has && (e.values ?? []).includes(labels[e.key]);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function policyTypes(spec: NetworkPolicySpec): ('Ingress' | 'Egress')[] {
  if (spec.policyTypes && spec.policyTypes.length > 0) return spec.policyTypes;
  return spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
}

function peerMatches(peer: PolicyPeer, policyNamespace: string, other: Endpoint): boolean {
  if (peer.ipBlock) throw new Error('ipBlock peers are not modelled');
  const namespaceOk = peer.namespaceSelector ? selectorMatches(peer.namespaceSelector, other.namespaceLabels) : other.namespace === policyNamespace;
  return namespaceOk && selectorMatches(peer.podSelector, other.labels);
}

function portMatches(rulePorts: PolicyPort[] | undefined, target: Endpoint, port: number, protocol: string): boolean {
  if (!rulePorts || rulePorts.length === 0) return true;
  return rulePorts.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'string') return target.ports.some((tp) => tp.name === p.port && tp.port === port && tp.protocol === protocol);
    return p.endPort !== undefined ? port >= p.port && port <= p.endPort : port === p.port;
  });
}

export class PolicySet {
  private readonly policies: { namespace: string; spec: NetworkPolicySpec }[];

  constructor(objects: K8sObject[]) {
    this.policies = objects
      .filter((o) => o.kind === 'NetworkPolicy')
      .map((o) => ({ namespace: o.metadata.namespace ?? 'default', spec: o.spec as NetworkPolicySpec }));
  }

  private selecting(pod: Endpoint, type: 'Ingress' | 'Egress') {
    return this.policies.filter((p) => p.namespace === pod.namespace && policyTypes(p.spec).includes(type) && selectorMatches(p.spec.podSelector, pod.labels));
  }

  /** Whether `from` may open a connection to `to` on `port`/`protocol`. */
  allows(from: Endpoint, to: Endpoint, port: number, protocol: 'TCP' | 'UDP'): boolean {
    const egress = this.selecting(from, 'Egress');
    const egressOk =
      egress.length === 0 ||
      egress.some((p) => (p.spec.egress ?? []).some((r) => (!r.to || r.to.length === 0 || r.to.some((peer) => peerMatches(peer, p.namespace, to))) && portMatches(r.ports, to, port, protocol)));
    if (!egressOk) return false;
    const ingress = this.selecting(to, 'Ingress');
    return (
      ingress.length === 0 ||
      ingress.some((p) => (p.spec.ingress ?? []).some((r) => (!r.from || r.from.length === 0 || r.from.some((peer) => peerMatches(peer, p.namespace, from))) && portMatches(r.ports, to, port, protocol)))
    );
  }

  /** Every "from -> to:port/protocol" the policies allow among `endpoints` (to ports they listen on). */
  allowedPaths(endpoints: Endpoint[]): string[] {
    const paths: string[] = [];
    for (const from of endpoints) {
      for (const to of endpoints) {
        for (const p of to.ports) {
          if (this.allows(from, to, p.port, p.protocol)) paths.push(`${from.name} -> ${to.name}:${p.port}/${p.protocol}`);
        }
      }
    }
    return paths.sort();
  }
}
