-- What each debit took from which lot (by the operation that opened it: one lot per credit), so
-- that a returned redemption gives its points back to those lots with their expiry instead of a
-- fresh one. A return records what it gave back as negative points against the spend.
CREATE TABLE lot_takes (
    operation_id  uuid   NOT NULL REFERENCES operations (id),
    lot_operation uuid   NOT NULL,
    points        bigint NOT NULL CHECK (points <> 0)
);
CREATE INDEX lot_takes_operation ON lot_takes (operation_id);
CREATE UNIQUE INDEX point_lots_operation ON point_lots (operation_id);
