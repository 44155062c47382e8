select billing.submit('open_account', '{"id": "sql-open-1", "account": "sql-1"}');
select type, status, code from billing.await_result('sql-open-1');
select billing.submit('open_account', '{"id": "sql-open-2", "account": "sql-2"}');
select type, status, code from billing.await_result('sql-open-2');
select billing.submit('credit', '{"id": "sql-credit", "account": "sql-1", "amount": "777"}');
select type, status, code from billing.await_result('sql-credit');
select billing.submit('transfer', '{"id": "sql-pay", "from": "sql-1", "to": "sql-2", "amount": "111"}');
select type, status, code from billing.await_result('sql-pay');

select account, balance, held, available from billing.accounts where account like 'sql-%' order by account;  -- sql-1: 666, sql-2: 111
select account, sum(balance_delta) from billing.entries where account like 'sql-%' group by account order by account;  -- the journal agrees
