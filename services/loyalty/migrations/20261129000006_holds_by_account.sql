-- A membership's holds, newest first (ListHolds).
CREATE INDEX holds_account ON holds (account_id, id DESC);
