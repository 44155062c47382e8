-- the journal of one account
select id, operation_id, balance_delta, held_delta, balance_after, held_after, created_at
from billing.entries where account = '1' order by id;
-- its history: the commands that named it, applied or rejected, by seq (a page of 100; next: after_seq => last seq)
select seq, id, type, status, code from billing.account_history('1');
select seq, id, type, status, code from billing.account_history('1', after_seq => 3, page_size => 1);
-- account 1 after the result with seq 3, and now (at a time: after every result sequenced by then)
select * from billing.balance_at('1', after_seq => 3);
select account, balance, held, available from billing.balance_at('1', at => now());
-- accounts whose row disagrees with the sum of their entries (none, unless something is wrong)
select * from billing.reconciliation_mismatches;
-- what is waiting in the queue, by command
select task_identifier, count(*), min(run_at) from graphile_worker.jobs
where task_identifier like 'billing/%' group by 1;
