/**
 * Checks Kubernetes manifests as an API server with strict field validation would: the custom
 * resources against prometheus-operator's own CustomResourceDefinitions (../shared/k8s/crds/,
 * 0.93.0, unchanged), the core objects against test/fixtures/k8s/core.schema.json.
 *
 * A CRD's openAPIV3Schema is JSON Schema plus `x-kubernetes-*` keywords; the API server prunes
 * or (strict validation, kubectl's default) refuses fields a schema does not declare, which
 * plain JSON Schema allows. So every object schema that declares properties and says nothing
 * else about extra ones gets `additionalProperties: false` here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { REPO } from '../e2e/trust-support.js';

export const CRD_DIR = join(REPO, '..', 'shared', 'k8s', 'crds');

function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema))
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strict(s)])) : strict(v);
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  // `metadata` is checked by the API server itself, not by the CRD: names, labels, annotations.
  return out;
}

const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
const validators = new Map<string, ValidateFunction>();

function crdValidator(file: string, version: string): ValidateFunction {
  const crd = parse(readFileSync(join(CRD_DIR, file), 'utf8')) as {
    spec: { versions: { name: string; schema: { openAPIV3Schema: Record<string, unknown> } }[] };
  };
  const v = crd.spec.versions.find((x) => x.name === version);
  if (!v) throw new Error(`${file} has no version ${version}`);
  const schema = strict(v.schema.openAPIV3Schema) as Record<string, unknown>;
  // The object's metadata as the API server checks it (the CRD leaves it open).
  (schema.properties as Record<string, unknown>).metadata = { $ref: 'core#/$defs/metadata' };
  return ajv.compile(schema);
}

ajv.addSchema(JSON.parse(readFileSync(join(REPO, 'test/fixtures/k8s/core.schema.json'), 'utf8')), 'core');

const KINDS: Record<string, () => ValidateFunction> = {
  'monitoring.coreos.com/v1alpha1 ScrapeConfig': () => crdValidator('monitoring.coreos.com_scrapeconfigs.yaml', 'v1alpha1'),
  'monitoring.coreos.com/v1 ServiceMonitor': () => crdValidator('monitoring.coreos.com_servicemonitors.yaml', 'v1'),
  'v1 Secret': () => ajv.getSchema('core#/$defs/Secret')!,
  'v1 Service': () => ajv.getSchema('core#/$defs/Service')!,
  'v1 Endpoints': () => ajv.getSchema('core#/$defs/Endpoints')!,
};

/** Every problem of one manifest (empty: the API server would take it). */
export function manifestErrors(doc: { apiVersion?: unknown; kind?: unknown }): string[] {
  const key = `${String(doc.apiVersion)} ${String(doc.kind)}`;
  const make = KINDS[key];
  if (!make) return [`no schema for ${key}`];
  let validate = validators.get(key);
  if (!validate) {
    validate = make();
    validators.set(key, validate);
  }
  return validate(doc)
    ? []
    : (validate.errors ?? []).map(
        (e) => `${key}${e.instancePath} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`,
      );
}
