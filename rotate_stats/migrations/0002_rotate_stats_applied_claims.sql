-- Ledger of the Redis claims whose counts were added to journal_chat_job_stats.
-- A claim is added to its row only in the transaction that records it here,
-- so a resent or overlapping commit of the same claim adds nothing.
CREATE TABLE rotate_stats_applied_claims (
    claim_id TEXT PRIMARY KEY,
    retrieved_for TEXT NOT NULL,
    applied_at REAL NOT NULL
);
CREATE INDEX rotate_stats_applied_claims_retrieved_for
    ON rotate_stats_applied_claims (retrieved_for);
