// The chaos suite's mutations (chaos/mutate.ts) each break one safeguard by replacing a piece of
// source text. When that text changes, the mutation silently stops applying and "catching" it
// proves nothing: every search string must still be found, checked here without running the suite.
import t from 'tap';
import { mutations, staleMutations } from '../chaos/mutate.ts';

t.test('every mutation of chaos/mutate.ts still applies to the code', async (t) => {
  t.ok(Object.keys(mutations).length >= 4, `${Object.keys(mutations).length} mutations`);
  t.same(staleMutations(), [], 'each search string is found in its file');
});

t.test('a mutation whose text changed is named, with its file and string', async (t) => {
  const { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const root = new URL('..', import.meta.url).pathname;
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-stale-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const file of new Set(Object.values(mutations).map((m) => m.file)))
    cpSync(path.join(root, file), path.join(dir, file));
  const changed = mutations['no-idempotency']!;
  const file = path.join(dir, changed.file);
  writeFileSync(file, readFileSync(file, 'utf8').replaceAll(changed.replace[0]![0], 'const earlier = lookUp(id);'));
  const problems = staleMutations(dir);
  t.equal(problems.length, 1, problems.join('\n'));
  t.match(
    problems[0],
    /^mutation no-idempotency \(.*\): ".*" not found in src\/ledger\/plan\.ts; update the mutation$/,
  );
});
