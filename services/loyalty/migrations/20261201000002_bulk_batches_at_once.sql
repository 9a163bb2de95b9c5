-- Two batches of one bulk accrual may now commit at once: each worker holds the job's row with a
-- key-share lock (a cancellation still waits for both), so the batches count what they credited
-- in rows of their own instead of updating the job's counters. A job's done and failed are its
-- own columns (kept for the jobs counted before) plus its batches'.
CREATE TABLE bulk_accrual_batches (
    job_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    done bigint NOT NULL CHECK (done >= 0),
    failed bigint NOT NULL CHECK (failed >= 0),
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, id)
);
