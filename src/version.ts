import { readFileSync } from 'node:fs';

/** The package's version (package.json), for `billing --version` and the build_info metric. */
export const serviceVersion = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
