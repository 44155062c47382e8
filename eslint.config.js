// ESLint (flat config) with typescript-eslint. Prettier formats (.prettierrc.json), ESLint judges;
// `npm run lint` runs both and `npm test` runs it. The import rules below write the layers down:
// arrows point one way (commands <- ledger <- worker <- cli; the client package beside the worker).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const shipped = {
  group: ['**/bench/**', '**/chaos/**', '**/test/**', '**/model/**'],
  message: 'Shipped code does not import the bench, the chaos suite, the tests or the reference model.',
};

/**
 * One layer: the files it holds and the folders (or files) of ours it must not import, with why.
 * ESLint keeps only the last `no-restricted-imports` setting that matches a file, so every file is
 * matched by exactly one layer and each layer carries the shipped-code rule itself.
 */
function layer(files, forbidden, message, ignores = []) {
  const patterns = forbidden.length > 0 ? [{ group: forbidden, message }, shipped] : [shipped];
  return { files, ignores, rules: { 'no-restricted-imports': ['error', { patterns }] } };
}
const dirs = (...names) => names.flatMap((name) => [`**/${name}/**`, `**/${name}`]);

export default tseslint.config(
  // src/db/schema.ts is kysely-codegen's output, checked byte for byte by `npm run codegen:check`.
  { ignores: ['node_modules/', '**/dist/', '.data/', '.tap/', 'coverage/', 'examples/', 'src/db/schema.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // `let x; const stop = () => x?.stop(); ... x = start()`: a cleanup written before what it cleans up.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Prettier wraps code at 120; this catches the comments it leaves alone. Long messages stay whole.
      'max-len': [
        'error',
        { code: 120, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true },
      ],
    },
  },
  layer(['src/commands/**'], ['../*', '../**'], 'src/commands is the contract: it imports nothing of ours.'),
  layer(
    ['src/ledger/**'],
    [...dirs('worker', 'client', 'cli', 'embedded'), '../*.ts'],
    'src/ledger holds the rules and the batch SQL: it uses commands and db only.',
  ),
  layer(
    ['src/db/**'],
    dirs('ledger', 'worker', 'client', 'cli', 'embedded'),
    'src/db is plumbing: it knows no layer above it.',
  ),
  layer(
    ['src/embedded/**'],
    dirs('commands', 'ledger', 'worker', 'client', 'cli'),
    'src/embedded only starts a PostgreSQL.',
  ),
  layer(
    ['src/client/**'],
    dirs('worker', 'ledger', 'cli', 'embedded'),
    'The client package must not load the worker, the ledger or the CLI.',
  ),
  layer(
    ['src/worker/**'],
    dirs('cli', 'client', 'embedded'),
    'The worker does not depend on the CLI, the client or the embedded server.',
  ),
  layer(
    ['src/index.ts'],
    ['./cli/**', './worker/**', './embedded/**', './ledger/**', './db/**'],
    'The package entry exports the client and the contract only.',
  ),
  layer(['src/*.ts', 'src/cli/**', 'tasks/**'], [], '', ['src/index.ts']),
  layer(
    ['model/**'],
    ['../*', '../**'],
    'model/ is the oracle: a second reading of the rules shares no code with src/ (nor anything else of ours).',
  ),
  {
    // Nor does it start them by path: they are not in the npm package, and the service runs without them.
    files: ['src/**', 'tasks/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'Literal[value=/(^|\\/)(bench|chaos|test)\\/[^ ]*\\.ts$/]',
          message: 'Shipped code does not start the bench, the chaos suite or the tests by path.',
        },
      ],
    },
  },
  {
    // The two exceptions, on purpose: `billing bench` and `billing chaos` are part of the CLI the
    // contract names; they run the checkout's scripts and, from an installed package, say so.
    files: ['src/cli/bench.ts', 'src/cli/chaos.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
