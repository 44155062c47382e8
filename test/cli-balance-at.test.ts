// `billing balance <account> --at <time|seq>`: spawned CLI processes against a real `billing worker`
// process; the table, the JSON, the exit codes, and clear errors for a point that is none.
import t from 'tap';
import { createBillingClient } from '../src/index.ts';
import { cliOnWorkerDatabase } from './helpers/cli.ts';

t.setTimeout(600_000);
const { database, billing } = await cliOnWorkerDatabase(t, 'cli_balance_at');
const client = createBillingClient({ connectionString: database.url });
t.teardown(() => client.close());

const opened = await client.openAccount({ id: 'cba-open', account: 'cba-a' });
const credited = await client.credit({ id: 'cba-credit', account: 'cba-a', amount: 100n });
await client.debit({ id: 'cba-debit', account: 'cba-a', amount: 30n });
await client.openAccount({ id: 'cba-open-b', account: 'cba-b' });
const { rows } = await database.query<{ sequenced_at: string }>(
  `select to_char(sequenced_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00') as sequenced_at
   from billing.operations where id = 'cba-credit'`,
);
const creditSequencedAt = rows[0]!.sequenced_at;

t.test('--help gives both forms', async (t) => {
  const help = await billing('balance', '--help');
  t.equal(help.code, 0);
  t.match(help.stdout, /--at <time\|seq>/);
  t.match(help.stdout, /a seq \(digits\) or a time, ISO 8601 with a zone/);
  t.match(help.stdout, /billing balance alice --at 12/);
  t.match(help.stdout, /billing balance alice --at '2026-12-07 12:00:00\+00'/);
});

t.test('--at <seq>: the state after that seq, with the seq; an account not open then exits 2', async (t) => {
  const run = await billing('balance', 'cba-a', 'cba-b', '--at', String(credited.seq));
  t.equal(run.code, 2, run.stderr);
  t.same(run.stdout.trimEnd().split('\n'), [
    'account  currency        balance  held  available  seq',
    `cba-a    USD                 100     0        100  ${String(credited.seq).padStart(3)}`,
    'cba-b    -         not open then',
  ]);
  const json = await billing('balance', 'cba-a', '--at', String(opened.seq), '--json');
  t.equal(json.code, 0, json.stderr);
  t.same(JSON.parse(json.stdout), {
    account: 'cba-a',
    currency: 'USD',
    balance: '0',
    held: '0',
    available: '0',
    seq: String(opened.seq),
    exists: true,
  });
});

t.test("--at <time>: psql's form with microseconds, and ISO 8601 with Z", async (t) => {
  const exact = await billing('balance', 'cba-a', '--at', creditSequencedAt, '--json');
  t.equal(exact.code, 0, exact.stderr);
  t.has(JSON.parse(exact.stdout), { balance: '100', seq: String(credited.seq) }, 'at the credit took its seq');
  const later = await billing('balance', 'cba-a', 'cba-b', '--at', '2999-01-01T00:00:00Z', '--json');
  t.equal(later.code, 0, later.stderr);
  t.same(
    later.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { balance: string }).balance),
    ['70', '0'],
    'a time after every result: the state now',
  );
  const early = await billing('balance', 'cba-a', '--at', '1970-01-01T00:00:00Z');
  t.equal(early.code, 2, 'before the account was opened');
  t.match(early.stdout, /cba-a +- +not open then/);
});

t.test('a bad --at is a usage error (exit 1) that says what it takes', async (t) => {
  for (const [value, message] of [
    ['yesterday', /^billing: option '--at <time\|seq>' argument 'yesterday' is invalid: a seq \(a whole number/],
    ['2026-12-07T12:00:00', /argument '2026-12-07T12:00:00' is invalid: a seq .*with a zone/],
    ['99999999999999999999', /is invalid: a seq is at most 9223372036854775807/],
    ['2026-13-01T00:00:00Z', /^billing: --at: date\/time field value out of range: "2026-13-01T00:00:00Z"\n$/],
  ] as const) {
    const run = await billing('balance', 'cba-a', '--at', value);
    t.equal(run.code, 1, `--at ${value}: exit 1`);
    t.match(run.stderr, message, `--at ${value}: ${run.stderr.trim()}`);
    t.equal(run.stdout, '', 'nothing on stdout');
  }
});
