// The module scripts/precompile-schema.mjs writes beside validate.js in dist/ at build time.
import type { ValidateFunction } from 'ajv/dist/2020.js';

declare const validate: ValidateFunction;
export default validate;
export const schemaText: string;
