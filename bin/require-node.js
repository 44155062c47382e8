// Plain JavaScript that any Node runs: pg-billing runs its TypeScript sources through Node's type
// stripping (22.18+, 23.6+), and an older Node would die with a raw ERR_UNKNOWN_FILE_EXTENSION stack.
// Imported first by bin/billing.js; run alone before `npm test`.
const [major, minor] = process.versions.node.split('.').map(Number);
const typeStripping = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
if (!typeStripping) {
  process.stderr.write(
    `pg-billing needs Node.js 22.18 or newer (it runs its TypeScript directly); ` +
      `this is Node.js ${process.version} (${process.execPath})\n`,
  );
  process.exit(1);
}
