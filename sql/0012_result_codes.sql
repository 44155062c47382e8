-- Up Migration
-- The result codes are a closed list (src/commands/contract.ts resultCodes), held here too: a row
-- with a code the code does not know cannot be written by any path. id_conflict is left out: a
-- reused id is answered to its sender and writes no row of its own (billing.id_conflicts keeps it).
-- test/contract.test.ts compares this list with the TypeScript one.
alter table billing.operations add constraint code_known check (code in (
  'ok', 'invalid_command', 'account_exists', 'account_not_found', 'same_account', 'currency_mismatch',
  'insufficient_funds', 'overflow', 'hold_exists', 'hold_not_found', 'hold_closed', 'amount_exceeds_hold'));

comment on constraint code_known on billing.operations is
  'The closed list of result codes (src/commands/contract.ts resultCodes, without id_conflict, which writes no row).';
comment on column billing.operations.code is
  'ok when applied, else the rejection code; one of the closed list in the code_known constraint.';
