-- A claimed request id gets its answer in the same transaction: room on each page lets that
-- update stay on its page without touching the key's index (a HOT update).
ALTER TABLE crm_idempotency SET (fillfactor = 70);
