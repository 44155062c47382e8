// `npm run build` (also run by `npm pack ./client` through client/package.json's prepack): compiles
// the client package into client/dist/ (JavaScript and .d.ts, tsconfig.build.json). The service
// itself runs from the .ts sources of this checkout and is not part of the npm package.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}client/dist`;
rmSync(dist, { recursive: true, force: true });
execFileSync(`${root}node_modules/.bin/tsc`, ['-p', `${root}tsconfig.build.json`], { stdio: 'inherit' });

// tsc rewrites `./x.ts` to `./x.js` in the JavaScript only; the .d.ts keep `.ts`, which TypeScript
// before 5.0 refuses in a consumer (TS5097). Point them at the emitted files too.
for (const file of readdirSync(dist, { recursive: true, encoding: 'utf8' })) {
  if (!file.endsWith('.d.ts')) continue;
  const path = `${dist}/${file}`;
  const text = readFileSync(path, 'utf8');
  writeFileSync(path, text.replace(/(from '\.{1,2}\/[^']*)\.ts'/g, "$1.js'"));
}
console.error(`built ${dist}`);
