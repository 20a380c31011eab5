/**
 * Reads the Incus trust store of hosts, for the read-only commands (audit, import): one SSH
 * connection per host, `forks` at a time, each closed once read. A host that cannot be reached
 * or read is a value with its error, never a thrown run: the other hosts are still read.
 */
import pLimit from 'p-limit';
import { TransportError } from '../errors.js';
import type { InventoryHost } from '../inventory/model.js';
import type { ObservedTrust } from '../modules/incus-trust/model.js';
import type { TransportOptions } from '../transport/types.js';

export type TrustStoreRead =
  { host: InventoryHost; observed: ObservedTrust } | { host: InventoryHost; error: { step: string; message: string; unreachable: boolean } };

export async function readTrustStores(hosts: InventoryHost[], transport: TransportOptions, forks: number): Promise<TrustStoreRead[]> {
  // ssh2 loads only once there is something to read: --help and usage errors stay fast.
  const { connectHost, connectionSpecOf } = await import('../transport/connect.js');
  const { observeTrust } = await import('../modules/incus-trust/observe.js');
  const limit = pLimit(forks);
  return Promise.all(
    hosts.map((host) =>
      limit(async (): Promise<TrustStoreRead> => {
        try {
          const session = await connectHost(connectionSpecOf(host, transport), transport);
          try {
            return { host, observed: await observeTrust(session) };
          } finally {
            await session.close();
          }
        } catch (e) {
          if (!(e instanceof TransportError)) throw e;
          return { host, error: { step: e.step, message: e.message.slice(`${e.host}: ${e.step}: `.length), unreachable: e.unreachable } };
        }
      }),
    ),
  );
}
