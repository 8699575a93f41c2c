/** This package's version, read from its package.json at build time (recorded in saved adapter files). */
import { version } from '../package.json';

export const PARROT_VERSION: string = version;
