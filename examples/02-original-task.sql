select billing.submit('open_account', '{"id": "demo-open-1", "account": "1"}');
select type, status, code from billing.await_result('demo-open-1');
select billing.submit('open_account', '{"id": "demo-open-2", "account": "2"}');
select type, status, code from billing.await_result('demo-open-2');
select billing.submit('credit', '{"id": "demo-credit", "account": "1", "amount": "777"}');
select type, status, code from billing.await_result('demo-credit');
select billing.submit('transfer', '{"id": "demo-pay", "from": "1", "to": "2", "amount": "111"}');
select type, status, code from billing.await_result('demo-pay');

select account, balance, held, available from billing.accounts order by account;  -- 1: 666, 2: 111
select account, sum(balance_delta) from billing.entries group by account order by account;  -- the journal agrees
