// Rendered Kubernetes objects, and the pod templates inside them, as plain data for assertions.

import { parseAllDocuments } from 'yaml';
import { repoPath } from './repo';
import type { Kustomizer } from './tools';

/** A rendered object; fields are read with the helpers below or narrowed where a test needs them. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; configMapKeyRef?: { name: string; key: string } };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: { path?: string; port: number | string };
  exec?: { command: string[] };
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: ContainerPort[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  restartPolicy?: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  hostPath?: { path: string; type?: string };
  configMap?: { name: string };
  persistentVolumeClaim?: { claimName: string };
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  nodeSelector?: Record<string, string>;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
}

/** A pod template with the workload it belongs to. */
export interface PodTemplate {
  owner: K8sObject;
  labels: Record<string, string>;
  spec: PodSpec;
}

export function renderKustomization(kustomizer: Kustomizer, kustomization: string): K8sObject[] {
  const text = kustomizer.build(repoPath(kustomization));
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${kustomization}: ${doc.errors[0].message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'];

export function podTemplates(objects: K8sObject[]): PodTemplate[] {
  return objects
    .filter((o) => WORKLOAD_KINDS.includes(o.kind))
    .map((o) => {
      const template = (o.spec as { template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec } }).template;
      return { owner: o, labels: template.metadata?.labels ?? {}, spec: template.spec };
    });
}

/** Every container of a pod, init containers (sidecars) included. */
export function allContainers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

export function podOf(objects: K8sObject[], kind: string, name: string): PodTemplate {
  const t = podTemplates(objects).find((p) => p.owner.kind === kind && p.owner.metadata.name === name);
  if (!t) throw new Error(`no pod template in ${kind} ${name}`);
  return t;
}

export function containerOf(pod: PodTemplate, name: string): Container {
  const c = allContainers(pod.spec).find((x) => x.name === name);
  if (!c) throw new Error(`${pod.owner.metadata.name} has no container ${name}`);
  return c;
}

export function envValue(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}

export function describe(o: K8sObject): string {
  return `${o.kind}/${o.metadata.name}`;
}

export function labelsMatch(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

/** ConfigMap data by name, as rendered (kustomize appends a content hash to generated names). */
export function configMapData(objects: K8sObject[], name: string): Record<string, string> {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
  if (!cm) throw new Error(`no ConfigMap ${name}`);
  return (cm.data as Record<string, string>) ?? {};
}

/** "host:port" → port; "$(POD_IP):7002" → 7002; "nats://ferry-nats:4222" → 4222. */
export function portOf(address: string): number {
  const m = /:(\d+)\/?$/.exec(address);
  if (!m) throw new Error(`no port in "${address}"`);
  return Number(m[1]);
}

export function hostOf(address: string): string {
  const noScheme = address.replace(/^[a-z]+:\/\//, '');
  return noScheme.slice(0, noScheme.lastIndexOf(':'));
}
