/**
 * What the user is told about a key pair a run made on the controller (pure): one line with
 * where the certificate and key are and the certificate's fingerprint — never key material.
 */
import type { GeneratedKeyPair } from '../engine/report.js';

const VERB: Record<GeneratedKeyPair['event'], string> = {
  generated: 'generated',
  'rotation started': 'generated (rotation)',
  'install resumed': 'finished installing',
};

export function generatedKeyPairLine(pair: GeneratedKeyPair): string {
  return `${VERB[pair.event]} metrics key pair ${pair.name}: certificate ${pair.certificateFile}, key ${pair.keyFile} (${pair.keyMode}), fingerprint ${pair.fingerprint}`;
}
