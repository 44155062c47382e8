-- Up Migration
-- Every worker looks, once a second, for active holds past their expiry (src/worker/expiry-sweeper.ts):
-- an expiry job can be held up by a frozen or dying worker, and an expiry must commit within 5 s.
-- This index keeps that look a short range scan however many holds the table keeps.
create index holds_active_expiry on billing.holds (expires_at) where status = 'active' and expires_at is not null;

-- Down Migration
drop index billing.holds_active_expiry;
