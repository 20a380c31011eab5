/**
 * `reconcile import`, the pure part: which unmanaged certificates of the hosts read become
 * incus_trusted_clients entries, under which file names, and which cannot be imported without
 * a guess. "Unmanaged" is exactly what the plan calls unmanaged (planTrust without pruning), so
 * that once the entries are in the inventory the next --check plans nothing for them.
 *
 * A certificate trusted on several hosts becomes one entry when every host trusts it the same
 * way (name, type, description, restricted, projects); when they differ it is reported, never
 * merged. Two certificates under one name, or a name the inventory already uses, likewise.
 */
import type { PlanContext } from '../types.js';
import type { DesiredTrust, LiveCertificate, ObservedTrust } from './model.js';
import { planTrust } from './plan.js';

/** One host as read: its desired trust (undefined: the inventory does not manage it yet). */
export interface HostTrustRead {
  host: string;
  desired?: DesiredTrust;
  observed: ObservedTrust;
}

/** An incus_trusted_clients entry as import writes it. */
export interface ImportedEntry {
  name: string;
  type: 'client' | 'metrics';
  description: string;
  restricted: boolean;
  projects: string[];
}

export interface ImportedCertificate {
  entry: ImportedEntry;
  fingerprint: string;
  /** The PEM as Incus returned it (public). */
  pem: string;
  /** Hosts trusting it, in read order. */
  hosts: string[];
}

export interface ImportSelection {
  /** --names; undefined with --all-unmanaged. */
  names?: string[];
}

export interface ImportResult {
  certificates: ImportedCertificate[];
  /** What was not imported, and why, one sentence each. */
  refused: string[];
  /** --names that matched no unmanaged certificate. */
  notFound: string[];
}

const NO_PRUNE: Omit<PlanContext, 'now'> = { prune: false, warnDays: 0 };

export function planImport(reads: HostTrustRead[], selection: ImportSelection, now: Date): ImportResult {
  const found = new Map<string, { live: LiveCertificate; hosts: string[]; seen: Map<string, string> }>();
  const refused: string[] = [];
  const inventoryNames = new Set(reads.flatMap((r) => r.desired?.certificates.map((c) => c.name) ?? []));
  const wanted = selection.names ? new Set(selection.names) : undefined;
  const matchedNames = new Set<string>();

  for (const read of reads) {
    const desired = read.desired ?? { certificates: [], prune: false, protected: [] };
    const plan = planTrust(desired, read.observed, { ...NO_PRUNE, now });
    for (const action of plan.actions) {
      if (action.action !== 'unmanaged') continue;
      const live = read.observed.certificates.find((c) => c.fingerprint === action.fingerprint);
      if (!live || (wanted && !wanted.has(live.name))) continue;
      matchedNames.add(live.name);
      const key = live.fingerprint.toLowerCase();
      const fields = fieldsOf(live);
      const entry = found.get(key);
      if (!entry) {
        found.set(key, { live, hosts: [read.host], seen: new Map([[read.host, fields]]) });
      } else {
        entry.hosts.push(read.host);
        entry.seen.set(read.host, fields);
      }
    }
  }

  const byName = new Map<string, string[]>();
  for (const [fp, f] of found) byName.set(f.live.name, [...(byName.get(f.live.name) ?? []), fp]);

  const certificates: ImportedCertificate[] = [];
  for (const [fp, f] of found) {
    const short = fp.slice(0, 12);
    const variants = new Set(f.seen.values());
    if (variants.size > 1) {
      const how = [...f.seen.entries()].map(([host, fields]) => `${host}: ${fields}`).join('; ');
      refused.push(`certificate ${short} is trusted differently on its hosts (${how}): make them agree on the hosts, then import again`);
      continue;
    }
    const sameName = byName.get(f.live.name)!;
    if (sameName.length > 1) {
      refused.push(
        `"${f.live.name}" names ${sameName.length} different certificates (${sameName.map((x) => x.slice(0, 12)).join(', ')}): an inventory entry names one; rename all but one on their hosts, then import again`,
      );
      continue;
    }
    if (inventoryNames.has(f.live.name)) {
      refused.push(
        `certificate ${short} is trusted as "${f.live.name}", a name the inventory already gives another certificate: rename it on its hosts, then import again`,
      );
      continue;
    }
    if (f.live.type !== 'client' && f.live.type !== 'metrics') {
      refused.push(`certificate ${short} ("${f.live.name}") is of type ${f.live.type}, which incus_trusted_clients cannot hold`);
      continue;
    }
    certificates.push({
      entry: {
        name: f.live.name,
        type: f.live.type,
        description: f.live.description,
        restricted: f.live.restricted,
        projects: [...new Set(f.live.projects)].sort(),
      },
      fingerprint: fp,
      pem: f.live.certificate,
      hosts: f.hosts,
    });
  }
  certificates.sort((a, b) => (a.entry.name < b.entry.name ? -1 : a.entry.name > b.entry.name ? 1 : 0));
  return { certificates, refused, notFound: (selection.names ?? []).filter((n) => !matchedNames.has(n)) };
}

/** The fields an entry would set, as one comparable, readable string. */
function fieldsOf(c: LiveCertificate): string {
  const projects = [...new Set(c.projects)].sort();
  return `name "${c.name}", type ${c.type}, description ${JSON.stringify(c.description)}, ${c.restricted ? `restricted to [${projects.join(', ')}]` : 'unrestricted'}`;
}

/**
 * The file a certificate is written to: its name made safe for a file name, and its
 * fingerprint's first 12 digits when that name is taken by another certificate.
 */
export function certificateFileName(name: string, fingerprint: string, taken: (fileName: string) => 'free' | 'same' | 'other'): string {
  const safe = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 100);
  const base = safe === '' ? `certificate-${fingerprint.slice(0, 12)}` : safe;
  const first = `${base}.crt`;
  const state = taken(first);
  if (state !== 'other') return first;
  return `${base}-${fingerprint.slice(0, 12)}.crt`;
}
