// The examples of README.md and docs/*.md live in examples/ with their recorded output (<name>.out). Tests run them and
// compare; what varies between runs (random ids, timestamps, job ids) is masked first.
// UPDATE_EXAMPLES=1 rewrites the .out files from a run (then read the diff before committing).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const examplesDir = fileURLToPath(new URL('../../examples/', import.meta.url));
const readmePath = fileURLToPath(new URL('../../README.md', import.meta.url));
const docsDir = fileURLToPath(new URL('../../docs/', import.meta.url));

export function readExample(name: string): string {
  return readFileSync(`${examplesDir}${name}`, 'utf8');
}

/** What varies between runs, replaced by a fixed word. */
export function mask(output: string): string {
  return (
    output
      .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '<uuid>')
      .replace(/\bdemo-[a-z0-9]+-(open-\d+|credit|transfer)\b/g, 'demo-<run>-$1')
      .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)/g, '<time>')
      .replace(/"job_id":"?\d+"?/g, '"job_id":<job>')
      .replace(/\(job \d+\)/g, '(job <job>)')
      // The server `billing verify` read: 127.0.0.1:5432, or wherever the embedded one listens.
      .replace(/ on \S+:\d+ \((the primary|a standby)\)$/gm, ' on <server> ($1)')
  );
}

/** Compares a run's masked output with the recorded one (or records it with UPDATE_EXAMPLES=1). */
export function compareWithRecorded(t: Test, name: string, output: string): void {
  const recorded = `${examplesDir}${name}.out`;
  const actual = mask(output);
  if (process.env.UPDATE_EXAMPLES === '1' || !existsSync(recorded)) {
    writeFileSync(recorded, actual);
    t.pass(`${name}: output recorded in examples/${name}.out`);
    return;
  }
  t.equal(actual, readFileSync(recorded, 'utf8'), `${name}: output as recorded in examples/${name}.out`);
}

/** Every line of the example is in one page of the docs, so the docs show what the suite runs. */
export function checkInDocs(t: Test, name: string): void {
  const pages = [
    readmePath,
    ...readdirSync(docsDir)
      .filter((f) => f.endsWith('.md'))
      .map((f) => `${docsDir}${f}`),
  ];
  const texts = pages.map((page) => readFileSync(page, 'utf8'));
  const lines = readExample(name)
    .split('\n')
    .filter((line) => line.trim() !== '');
  const page = texts.findIndex((text) => lines.every((line) => text.includes(line)));
  const missing = page === -1 ? lines.filter((line) => !texts.some((text) => text.includes(line))) : [];
  t.same(missing, [], `every line of examples/${name} is in README.md or a page of docs/`);
  t.not(page, -1, `examples/${name} is shown whole on one page`);
}

/** SQL statements of a script, in order (statements end with `;` at the end of a line, comments aside). */
export function sqlStatements(script: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  for (const line of script.split('\n')) {
    const code = line.replace(/--.*$/, '').trimEnd();
    if (code.trim() === '') continue;
    current.push(code);
    if (code.endsWith(';')) {
      statements.push(current.join('\n'));
      current = [];
    }
  }
  if (current.length > 0) statements.push(current.join('\n'));
  return statements;
}

/** A result as `psql -A` prints it: a header line, then one line per row, fields joined by `|`. */
export function formatRows(fields: string[], rows: Record<string, unknown>[]): string {
  const cell = (value: unknown) =>
    value === null
      ? ''
      : value instanceof Date
        ? value.toISOString()
        : typeof value === 'object'
          ? JSON.stringify(value)
          : String(value);
  return [
    fields.join('|'),
    ...rows.map((row) => fields.map((field) => cell(row[field])).join('|')),
    `(${rows.length} row${rows.length === 1 ? '' : 's'})`,
  ].join('\n');
}

/** The arguments of an `npx billing ...` line (after `npx billing`, before a `#` comment). */
export function billingArgs(line: string): string[] {
  const words = line.replace(/#.*$/, '').trim().split(/\s+/);
  if (words[0] !== 'npx' || words[1] !== 'billing') throw new Error(`not an npx billing line: ${line}`);
  return words.slice(2);
}

/**
 * The pages in the order a reader meets them: README.md, then the pages of docs/ in the order of the
 * README's list under "## Documentation".
 */
export function readerPages(): string[] {
  const readme = readFileSync(readmePath, 'utf8');
  const list = readme.slice(readme.indexOf('\n## Documentation'));
  const docs = [...list.matchAll(/\]\(docs\/([a-z-]+\.md)\)/g)].map((m) => `${docsDir}${m[1]}`);
  return [readmePath, ...new Set(docs)];
}

/** Where a reader meets an example: the index of its page in readerPages(), and its offset there. */
export function readerPosition(name: string): [page: number, offset: number] {
  const firstLine = readExample(name)
    .split('\n')
    .find((line) => line.trim() !== '')!;
  const pages = readerPages();
  for (const [index, page] of pages.entries()) {
    const offset = readFileSync(page, 'utf8').indexOf(firstLine);
    if (offset !== -1) return [index, offset];
  }
  return [pages.length, 0];
}

/** The examples, in the order of their numbers. */
export function exampleNames(): string[] {
  return readdirSync(examplesDir)
    .filter((f) => /^\d\d-.*\.(sh|sql|ts)$/.test(f))
    .sort();
}
