/**
 * `prometheus_kubernetes`: the manifests a Prometheus in Kubernetes needs, written by a normal run
 * on the controller (pure: the variable read and checked, every problem with file:line:column).
 *
 *   prometheus_kubernetes:
 *     out_dir: k8s/monitoring          # required; relative to the inventory folder
 *     format: prometheus-operator      # or servicemonitor
 *     namespace: monitoring
 *     labels: {release: kube-prometheus-stack}
 *     secret_name: incus-metrics-NAME  # default from the metrics certificate's name
 *     name: incus-metrics
 *     certificate: NAME                # which incus_metrics_certificates entry (default: the first)
 *
 * Set for the whole inventory (all.vars or group_vars/all): the manifests are the controller's.
 */
import type { Problem } from '../../errors.js';
import type { Inventory, InventoryHost } from '../../inventory/model.js';
import { KUBERNETES_LABEL_KEY, KUBERNETES_LABEL_VALUE, KUBERNETES_NAME, type KubernetesFormat } from '../../render/kubernetes.js';

export const KUBERNETES_VARIABLE = 'prometheus_kubernetes';

export interface KubernetesSpec {
  outDir: string;
  format: KubernetesFormat;
  namespace: string;
  labels: Record<string, string>;
  secretName?: string;
  name: string;
  certificate?: string;
}

const FIELDS = ['out_dir', 'format', 'namespace', 'labels', 'secret_name', 'name', 'certificate'];

/** The variable as the whole inventory sets it (all's own vars and group_vars/all). */
export function inventoryWide(inventory: Inventory): InventoryHost | undefined {
  const all = inventory.groups.get('all');
  return all ? { name: 'all', groups: ['all'], vars: { ...all.vars, ...all.fileVars } } : undefined;
}

export function readKubernetesSpec(host: Pick<InventoryHost, 'vars'> | undefined): { spec?: KubernetesSpec; problems: Problem[] } {
  const def = host?.vars[KUBERNETES_VARIABLE];
  if (!def || def.value === null) return { problems: [] };
  const problems: Problem[] = [];
  const problem = (field: string | undefined, message: string) =>
    problems.push({
      severity: 'error',
      location: (field && def.nested.get(`.${field}`)) || def.location,
      valuePath: field ? `${def.valuePath}.${field}` : def.valuePath,
      message,
    });
  if (typeof def.value !== 'object' || Array.isArray(def.value)) {
    problem(undefined, 'must be a mapping with out_dir (and format, namespace, labels, secret_name, name, certificate)');
    return { problems };
  }
  const v = def.value as Record<string, unknown>;
  for (const k of Object.keys(v)) if (!FIELDS.includes(k)) problem(k, `unknown field "${k}" (known: ${FIELDS.join(', ')})`);
  const text = (field: string, fallback?: string): string | undefined => {
    const x = v[field];
    if (x === undefined || x === null) return fallback;
    if (typeof x !== 'string' || x === '') {
      problem(field, `must be a non-empty string, got ${JSON.stringify(x)}`);
      return fallback;
    }
    return x;
  };
  const outDir = text('out_dir');
  if (outDir === undefined && v.out_dir === undefined) problem(undefined, 'out_dir is required: the folder the manifests are written to');
  const format = text('format', 'prometheus-operator');
  if (format !== 'prometheus-operator' && format !== 'servicemonitor')
    problem('format', `must be prometheus-operator or servicemonitor, got ${JSON.stringify(format)}`);
  const namespace = text('namespace', 'monitoring')!;
  const name = text('name', 'incus-metrics')!;
  const secretName = text('secret_name');
  for (const [field, value] of [
    ['namespace', namespace],
    ['name', name],
    ['secret_name', secretName],
  ] as const) {
    if (value !== undefined && !KUBERNETES_NAME.test(value))
      problem(field, `must be a Kubernetes name (lowercase letters, digits, '-' and '.'), got ${JSON.stringify(value)}`);
  }
  let labels: Record<string, string> = { release: 'kube-prometheus-stack' };
  if (v.labels !== undefined && v.labels !== null) {
    if (typeof v.labels !== 'object' || Array.isArray(v.labels)) problem('labels', 'must be a mapping of label names to values');
    else {
      labels = {};
      for (const [k, val] of Object.entries(v.labels)) {
        if (!KUBERNETES_LABEL_KEY.test(k) || typeof val !== 'string' || !KUBERNETES_LABEL_VALUE.test(val))
          problem('labels', `${JSON.stringify(k)}: ${JSON.stringify(val)} is not a Kubernetes label`);
        else labels[k] = val;
      }
    }
  }
  if (problems.length > 0) return { problems };
  return { spec: { outDir: outDir!, format: format as KubernetesFormat, namespace, labels, secretName, name, certificate: text('certificate') }, problems };
}
