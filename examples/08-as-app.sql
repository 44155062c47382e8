-- as app
select billing.submit('credit', '{"id":"order-42-refund","account":"1","amount":"5"}');
select code, message from billing.await_result('order-42-refund');
select balance, held, available from billing.accounts where account = '1';
