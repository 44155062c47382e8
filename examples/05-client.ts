import { createBillingClient } from 'pg-billing';

const billing = createBillingClient({ connectionString: process.env.DATABASE_URL!, timeoutMs: 10_000 });

const start = await billing.lastSeq();
await billing.openAccount({ account: 'carol' });
await billing.openAccount({ account: 'dave' });
await billing.credit({ account: 'carol', amount: 777n });
const result = await billing.transfer({ id: 'order-43-pay', from: 'carol', to: 'dave', amount: 111n });
// { id: 'order-43-pay', seq: 37n, type: 'transfer', status: 'applied', code: 'ok', message: null,
//   balances: [{ account: 'carol', balance: 666n, held: 0n }, { account: 'dave', balance: 111n, held: 0n }],
//   job_id: 28n, created_at: 2026-12-07T21:40:00.123Z, replayed: false }: a row of billing.operations
if (result.status === 'rejected') console.log(result.code, result.message); // e.g. insufficient_funds
console.log(result.id, `(job ${result.job_id})`); // a row's fields have its columns' names: job_id, created_at

// Every result after `start`, in seq order; the iterator waits for new ones, so leave it when done
// (break, or `signal: AbortSignal.timeout(...)` in its options).
for await (const r of billing.results({ after: start })) {
  console.log(r.seq, r.id, r.code);
  if (r.id === result.id) break;
}
console.log((await billing.balance('carol'))?.available); // 666n
console.log((await billing.history('dave')).map((r) => `${r.type} ${r.code}`)); // [ 'open_account ok', 'transfer ok' ]
await billing.close();
