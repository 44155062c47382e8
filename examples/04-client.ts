import { createBillingClient } from 'pg-billing';

const billing = createBillingClient({ connectionString: process.env.DATABASE_URL!, timeoutMs: 10_000 });

const start = await billing.lastSeq();
await billing.openAccount({ account: '1' });
await billing.openAccount({ account: '2' });
await billing.credit({ account: '1', amount: 777n });
const result = await billing.transfer({ id: 'order-42-pay', from: '1', to: '2', amount: 111n });
// { id: 'order-42-pay', seq: 4n, type: 'transfer', status: 'applied', code: 'ok', message: null,
//   balances: [{ account: '1', balance: 666n, held: 0n }, { account: '2', balance: 111n, held: 0n }], ... }
if (result.status === 'rejected') console.log(result.code, result.message); // e.g. insufficient_funds

// Every result after `start`, in seq order; the iterator waits for new ones, so leave it when done
// (break, or `signal: AbortSignal.timeout(...)` in its options).
for await (const r of billing.results({ after: start })) {
  console.log(r.seq, r.id, r.code);
  if (r.id === result.id) break;
}
console.log((await billing.balance('1'))?.available); // 666n
console.log((await billing.history('2')).map((r) => `${r.type} ${r.code}`)); // [ 'open_account ok', 'transfer ok' ]
await billing.close();
