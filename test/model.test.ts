import fc from 'fast-check';
import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { drained, jobsDone } from './helpers/ledger.ts';
import { startTestWorker } from './helpers/worker.ts';
import {
  account,
  type CommandSpec,
  invalidCommands,
  opening,
  type Payload,
  samePayload,
  spec,
  type Step,
  step,
  stringify,
  validCommand,
} from './helpers/command-arbitraries.ts';
import { ReferenceLedger, type Prediction } from '../model/reference-ledger.ts';

// Random command sequences through a real worker, compared with an in-memory reference model.
// The rules themselves (expiry included) are checked by the thousands, without a database, in
// plan.property.test.ts; this file checks that the worker, its SQL and its queue give the same
// answers and the same ledger, so it runs a fixed, modest number of runs (a time budget would let
// a loaded machine pass with fewer). Reproduce a failure with FC_SEED=<seed> (and FC_PATH=<path>)
// from the failure message.
const database = await createTestDatabase('model');
const worker = await startTestWorker(database);
const defaultCurrency = worker.runtime.config.defaultCurrency;
t.teardown(async () => {
  await worker.stop();
  await database.drop();
});

const replay: { seed?: number; path?: string } = {
  ...(process.env.FC_SEED && { seed: Number(process.env.FC_SEED) }),
  ...(process.env.FC_PATH && { path: process.env.FC_PATH }),
};

const day = 24 * 60 * 60 * 1000;
/**
 * Expiries a day or more from the clock, so the worker's clock and the model's (the test's) agree
 * on every one of them: a hold that expires later, a date in the past or beyond 30 days
 * (invalid_command), a ttl. Expiry as it comes due is in plan.property.test.ts and commands.test.ts.
 */
const expiry: fc.Arbitrary<Payload> = fc
  .constantFrom<() => Payload>(
    () => ({}),
    () => ({}),
    () => ({ ttl_seconds: 3600 }),
    () => ({ expires_at: new Date(Date.now() + day).toISOString() }),
    () => ({ expires_at: new Date(Date.now() - day).toISOString() }),
    () => ({ expires_at: new Date(Date.now() + 31 * day).toISOString() }),
  )
  .map((at) => at());
const validSpec = validCommand(expiry);
const invalidSpec = fc.constantFrom(...invalidCommands);

interface Concrete {
  task: string;
  payload: Payload;
}

/** Gives every step a concrete id: new commands a fresh one, repeats and reuses an earlier one. */
function materialize(steps: Step[]): Concrete[] {
  const commands: Concrete[] = [];
  const holdIds: string[] = [];
  const resolve = (command: CommandSpec): Payload =>
    command.holdRef === undefined
      ? command.fields
      : { hold: holdIds[command.holdRef % Math.max(1, holdIds.length)] ?? 'h9', ...command.fields };
  for (const s of steps) {
    if (s.kind === 'new' || commands.length === 0) {
      const command: CommandSpec =
        s.kind === 'repeat' ? { task: 'credit', fields: { account: 'a', amount: '1' } } : s.spec;
      const id = `c${commands.length + 1}`;
      if (command.task === 'hold') holdIds.push((command.fields.hold as string | undefined) ?? id);
      commands.push({ task: command.task, payload: { id, ...resolve(command) } });
    } else if (s.kind === 'repeat') {
      const earlier = commands[s.of % commands.length]!;
      commands.push({ task: earlier.task, payload: samePayload(earlier.payload, s.reorder) });
    } else {
      const earlier = commands[s.of % commands.length]!;
      commands.push({ task: s.spec.task, payload: { id: earlier.payload.id, ...resolve(s.spec) } });
    }
  }
  return commands;
}

async function resetLedger(): Promise<void> {
  await drained(database);
  // The expiry jobs of the last run's holds (due in an hour or a day) go with them.
  await database.query("select graphile_worker.remove_job('expire:' || hold) from billing.holds");
  await database.query(
    'truncate billing.entries, billing.holds, billing.id_conflicts, billing.reversal_totals, billing.operations, billing.accounts',
  );
}

async function enqueue(command: Concrete): Promise<bigint> {
  const { rows } = await database.query<{ id: bigint }>('select (graphile_worker.add_job($1, $2::json)).id', [
    `billing/${command.task}`,
    JSON.stringify(command.payload),
  ]);
  return rows[0]!.id;
}

/** Checks the answer to one command (its job has completed) against the model's prediction. */
async function checkAnswer(command: Concrete, jobId: bigint, predicted: Prediction): Promise<void> {
  const id = command.payload.id as string;
  const { rows } = await database.query<{ code: string; job_id: bigint }>(
    'select code, job_id from billing.operations where id = $1',
    [id],
  );
  const { rows: conflicts } = await database.query('select 1 from billing.id_conflicts where job_id = $1', [jobId]);
  const describe = `${command.task} ${JSON.stringify(command.payload)}: predicted ${stringify(predicted)}`;
  if (predicted.kind === 'skipped') throw new Error(`${describe}: only an expiry is skipped`);
  if (rows.length !== 1) throw new Error(`${describe}, found ${rows.length} result rows`);
  const row = rows[0]!;
  if (row.code !== predicted.code && predicted.kind !== 'conflict') throw new Error(`${describe}, got ${row.code}`);
  if ((predicted.kind === 'result') !== (row.job_id === jobId))
    throw new Error(`${describe}, the row is job ${row.job_id}'s (this is ${jobId})`);
  if ((predicted.kind === 'conflict') !== (conflicts.length === 1))
    throw new Error(`${describe}, ${conflicts.length} id_conflicts rows for this job`);
}

async function checkLedger(model: ReferenceLedger): Promise<void> {
  const { rows: accounts } = await database.query<{ account: string; currency: string; balance: bigint; held: bigint }>(
    'select account, currency, balance, held, overdraft_limit, max_balance, status from billing.accounts order by account',
  );
  const expectedAccounts = [...model.accounts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, a]) => ({
      account: name,
      currency: a.currency,
      balance: a.balance,
      held: a.held,
      overdraft_limit: a.overdraftLimit,
      max_balance: a.maxBalance,
      status: a.status,
    }));
  const { rows: holds } = await database.query<{ hold: string; account: string; amount: bigint; status: string }>(
    'select hold, account, amount, status from billing.holds order by hold',
  );
  const expectedHolds = [...model.holds]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([hold, h]) => ({ hold, account: h.account, amount: h.amount, status: h.status }));
  const actual = stringify({ accounts, holds });
  const expected = stringify({ accounts: expectedAccounts, holds: expectedHolds });
  if (actual !== expected) throw new Error(`ledger differs from the model\n  model:  ${expected}\n  ledger: ${actual}`);
}

// A capture back to the hold's own account moves nothing, so it cannot overflow, even at the limit.
const capturedToItselfAtTheLimit: [Step[], Step[]] = [
  [
    { kind: 'new', spec: { task: 'open_account', fields: { account: 'a' } } },
    { kind: 'new', spec: { task: 'open_account', fields: { account: 'b', currency: 'USD' } } },
    { kind: 'new', spec: { task: 'open_account', fields: { account: 'c', currency: 'USD' } } },
  ],
  [
    { kind: 'new', spec: { task: 'credit', fields: { account: 'a', amount: '9223372036854775807' } } },
    { kind: 'new', spec: { task: 'hold', fields: { account: 'a', amount: '10', hold: 'h1' } } },
    { kind: 'new', spec: { task: 'capture', fields: { to: 'a' }, holdRef: 0 } },
  ],
];

t.test('commands one after another: each answered as the model predicts, the ledger equals the model', async (t) => {
  let runs = 0;
  let commandsRun = 0;
  await fc.assert(
    fc.asyncProperty(
      opening,
      fc.array(step(validSpec, invalidSpec), { minLength: 5, maxLength: 35, size: 'max' }),
      async (setup, steps) => {
        runs++;
        await resetLedger();
        const model = new ReferenceLedger(defaultCurrency, Date.now());
        for (const command of materialize([...setup, ...steps])) {
          model.now = Date.now();
          const predicted = model.submit(command.task, command.payload);
          const jobId = await enqueue(command);
          await jobsDone(database, [jobId]);
          await checkAnswer(command, jobId, predicted);
          commandsRun++;
        }
        await checkLedger(model);
      },
    ),
    { numRuns: 10, ...replay, examples: [capturedToItselfAtTheLimit] },
  );
  t.pass(`${runs} runs, ${commandsRun} commands, each answered and checked`);
});

// Commands whose outcome does not depend on their order (credits with small amounts to opened or
// missing accounts, refusals, exact repeats), enqueued all at once, partly as batch jobs: the
// worker groups them into shared transactions, and the answer must not change.
const orderFree: fc.Arbitrary<CommandSpec> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ account, amount: fc.integer({ min: 1, max: 1000 }).map(String) }).map(spec('credit')),
  },
  { weight: 2, arbitrary: invalidSpec },
);
const orderFreeStep: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: orderFree.map((s): Step => ({ kind: 'new', spec: s })) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.nat(), fc.boolean()).map(([of, reorder]): Step => ({ kind: 'repeat', of, reorder })),
  },
);

t.test('order-free commands enqueued at once, some as batch jobs: same answers, same ledger', async (t) => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(orderFreeStep, { minLength: 1, maxLength: 80, size: 'max' }),
      fc.integer({ min: 1, max: 8 }),
      async (steps, batchSize) => {
        runs++;
        await resetLedger();
        const model = new ReferenceLedger(defaultCurrency);
        const setup: Concrete[] = ['a', 'b', 'c'].map((name) => ({
          task: 'open_account',
          payload: { id: `open-${name}`, account: name },
        }));
        for (const command of setup) {
          model.submit(command.task, command.payload);
          await jobsDone(database, [await enqueue(command)]);
        }
        const commands = materialize(steps);
        const predictions = new Map<string, string>();
        for (const command of commands) {
          const predicted = model.submit(command.task, command.payload);
          if (predicted.kind === 'skipped') throw new Error(`the model skipped ${stringify(command)}`);
          predictions.set(command.payload.id as string, predicted.code);
        }
        // One statement enqueues everything; credits go `batchSize` to a graphile-worker batch job.
        const jobs: { task: string; payload: string }[] = [];
        const credits = commands.filter((c) => c.task === 'credit');
        for (let i = 0; i < credits.length; i += batchSize) {
          jobs.push({
            task: 'billing/credit',
            payload: JSON.stringify(credits.slice(i, i + batchSize).map((c) => c.payload)),
          });
        }
        for (const c of commands.filter((c) => c.task !== 'credit'))
          jobs.push({ task: `billing/${c.task}`, payload: JSON.stringify(c.payload) });
        await database.query(
          'select graphile_worker.add_job(task, payload::json) from unnest($1::text[], $2::text[]) as j(task, payload)',
          [jobs.map((j) => j.task), jobs.map((j) => j.payload)],
        );
        await drained(database);
        const { rows: retried } = await database.query<{ last_error: string }>(
          "select last_error from graphile_worker.jobs where task_identifier like 'billing/%'",
        );
        if (retried.length) throw new Error(`jobs left in the queue: ${retried.map((r) => r.last_error).join('; ')}`);
        const { rows } = await database.query<{ id: string; code: string }>(
          "select id, code from billing.operations where id not like 'open-%' order by id",
        );
        const actual = stringify(rows.map((r) => [r.id, r.code]));
        const expected = stringify([...predictions].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
        if (actual !== expected) throw new Error(`answers differ\n  model:  ${expected}\n  ledger: ${actual}`);
        const { rows: conflicts } = await database.query('select id from billing.id_conflicts');
        if (conflicts.length) throw new Error(`unexpected id conflicts: ${stringify(conflicts)}`);
        await checkLedger(model);
      },
    ),
    { numRuns: 8, ...replay },
  );
  t.pass(`${runs} runs, each with the same answers and ledger as the model`);
});
