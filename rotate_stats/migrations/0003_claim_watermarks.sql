-- The ledger learns each claim's family and sequence (the number after the last
-- '/' of its id, drawn from the family's Redis counter), and pruned entries leave
-- a watermark behind: per (family, date), the highest sequence pruned. A commit
-- refuses a claim whose sequence is at or below its date's watermark, so pruning
-- can never make an applied claim committable again (docs/RELIABILITY.md).
ALTER TABLE rotate_stats_applied_claims
    ADD COLUMN family TEXT NOT NULL DEFAULT 'journal_chat_jobs';
ALTER TABLE rotate_stats_applied_claims ADD COLUMN sequence INTEGER;
-- Entries written before this migration: the sequence is the digits after the last
-- '/' (rtrim strips every character but '/' from the end); an id of another shape
-- gets NULL, and prune-ledger keeps such an entry.
UPDATE rotate_stats_applied_claims SET sequence = CASE
    WHEN substr(claim_id, length(rtrim(claim_id, replace(claim_id, '/', ''))) + 1)
        GLOB '[0-9]*'
     AND substr(claim_id, length(rtrim(claim_id, replace(claim_id, '/', ''))) + 1)
        NOT GLOB '*[^0-9]*'
     AND length(rtrim(claim_id, replace(claim_id, '/', ''))) > 0
    THEN CAST(substr(claim_id, length(rtrim(claim_id, replace(claim_id, '/', ''))) + 1)
        AS INTEGER)
    END;
CREATE INDEX rotate_stats_applied_claims_family_sequence
    ON rotate_stats_applied_claims (family, sequence);
CREATE TABLE rotate_stats_claim_watermarks (
    family TEXT NOT NULL,
    retrieved_for TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (family, retrieved_for)
);
