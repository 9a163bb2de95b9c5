-- What each credit note returned of each line, once: a note re-sent under a new event id adds
-- nothing to what the line has returned.
CREATE TABLE invoice_line_returns (
    invoice_id     text    NOT NULL,
    credit_note_id text    NOT NULL,
    line_id        text    NOT NULL,
    amount         numeric NOT NULL,
    quantity       numeric NOT NULL,
    PRIMARY KEY (invoice_id, credit_note_id, line_id)
);
