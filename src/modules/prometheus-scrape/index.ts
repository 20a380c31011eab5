/** PLACEHOLDER until this module's helper fills it in: desired, observe, plan, apply. */
import type { ReconcileModule } from '../types.js';
import { InternalError } from '../../errors.js';

const notYet = (): never => {
  throw new InternalError('prometheus_scrape is not implemented yet');
};

export const prometheusScrape: ReconcileModule = {
  name: 'prometheus_scrape',
  desired: () => ({ problems: [] }),
  observe: notYet,
  plan: notYet,
  apply: notYet,
};
