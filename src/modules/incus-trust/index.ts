/** PLACEHOLDER until this module's helper fills it in: desired, observe, plan, apply. */
import type { ReconcileModule } from '../types.js';
import { InternalError } from '../../errors.js';

const notYet = (): never => {
  throw new InternalError('incus_trust is not implemented yet');
};

export const incusTrust: ReconcileModule = {
  name: 'incus_trust',
  desired: () => ({ problems: [] }),
  observe: notYet,
  plan: notYet,
  apply: notYet,
};
