-- 0007: the auditors' indexes leave the write path for one side index built in bulk.
--
-- Each of the eleven (column, seq) indexes of 0001 and 0003, and audit_time, was one more
-- B-tree that every decision's commit touched: a page per index, most of them on a random
-- leaf, for queries an auditor runs now and then. They are replaced by `audit_index`, one
-- WITHOUT ROWID table of (column code, value, seq) rows that a background step of the
-- store (store/sqlite/audit_index.py) fills for thousands of entries at a time, in key
-- order, so that one leaf page takes many rows. `audit_index_state.indexed_through` says
-- how far it got; it is updated in the same transaction as the rows, so after a crash the
-- index is exactly the entries 1..indexed_through and the next step goes on from there.
-- Queries read the index up to that seq and scan the few entries after it directly
-- (store/sqlite/audit_query.py). The writer itself reads no audit index: the head is the
-- seq key's last row, the high-water time the last entry that is not a time regression.
--
-- An existing log is indexed by the same step when the store opens (in chunks, progress
-- logged); until it has caught up, queries scan the unindexed part and stay exact.
-- audit_rules stays on the write path: its rows are cross-checked by `audit verify`.
DROP INDEX IF EXISTS audit_time;
DROP INDEX IF EXISTS audit_type;
DROP INDEX IF EXISTS audit_action;
DROP INDEX IF EXISTS audit_outcome;
DROP INDEX IF EXISTS audit_principal;
DROP INDEX IF EXISTS audit_reviewer;
DROP INDEX IF EXISTS audit_reviewer_group;
DROP INDEX IF EXISTS audit_review_state;
DROP INDEX IF EXISTS audit_policy_version;
DROP INDEX IF EXISTS audit_decision_id;
DROP INDEX IF EXISTS audit_review_id;
DROP INDEX IF EXISTS audit_request_id;

-- col: a small integer naming the column (audit_index.py, CODES); '' values are not indexed.
-- For time (code 0) only entries that raised the running maximum are indexed.
CREATE TABLE audit_index (
    col   INTEGER NOT NULL,
    value TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (col, value, seq)
) WITHOUT ROWID;

CREATE TABLE audit_index_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_through INTEGER NOT NULL CHECK (indexed_through >= 0)
);
INSERT INTO audit_index_state (id, indexed_through) VALUES (1, 0);
