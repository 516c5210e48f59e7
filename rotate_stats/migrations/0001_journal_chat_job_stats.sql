-- The table of seed 000, exactly. IF NOT EXISTS adopts a table that an earlier
-- job already created, untouched - but only after `migrate` has checked that it
-- has exactly this shape (database.verify_table_shape); another shape is refused.
CREATE TABLE IF NOT EXISTS journal_chat_job_stats (
    id INTEGER PRIMARY KEY,
    retrieved_for TEXT UNIQUE NOT NULL,
    retrieved_at REAL NOT NULL,
    requested INTEGER NOT NULL,
    requested_breakdown TEXT NOT NULL,
    failed_to_queue INTEGER NOT NULL,
    failed_to_queue_breakdown TEXT NOT NULL,
    queued INTEGER NOT NULL,
    queued_breakdown TEXT NOT NULL,
    started INTEGER NOT NULL,
    started_breakdown TEXT NOT NULL,
    completed INTEGER NOT NULL,
    completed_breakdown TEXT NOT NULL,
    failed INTEGER NOT NULL,
    failed_breakdown TEXT NOT NULL
);
