/** PLACEHOLDER until this module's helper fills it in: desired, observe, plan, apply. */
import type { ReconcileModule } from '../types.js';
import { InternalError } from '../../errors.js';

const notYet = (): never => {
  throw new InternalError('qubes_prometheus_proxy is not implemented yet');
};

export const qubesPrometheusProxy: ReconcileModule = {
  name: 'qubes_prometheus_proxy',
  desired: () => ({ problems: [] }),
  observe: notYet,
  plan: notYet,
  apply: notYet,
};
