-- 0001: decisions (idempotency by principal + request_id) and the hash-chained audit log.
-- Times are RFC 3339 UTC strings with microseconds and 'Z', so text order is time order.

CREATE TABLE decisions (
    decision_id    TEXT PRIMARY KEY,
    principal_id   TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    action_name    TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    decision       BLOB NOT NULL
);

-- An empty request_id means "no idempotency key": such rows never collide.
CREATE UNIQUE INDEX decisions_idempotency
    ON decisions (principal_id, request_id) WHERE request_id <> '';
CREATE INDEX decisions_created_at ON decisions (created_at);

-- seq is assigned by the single writer (no AUTOINCREMENT): 1, 2, 3... without gaps.
CREATE TABLE audit (
    seq            INTEGER PRIMARY KEY CHECK (seq >= 1),
    time           TEXT NOT NULL,
    type           TEXT NOT NULL,
    actor          TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    decision_id    TEXT NOT NULL,
    review_id      TEXT NOT NULL,
    action_name    TEXT NOT NULL,
    outcome        TEXT NOT NULL
        CHECK (outcome IN ('', 'AUTO_ALLOW', 'REQUIRE_REVIEW', 'DENY')),
    principal      TEXT NOT NULL,
    reviewer       TEXT NOT NULL,
    reviewer_group TEXT NOT NULL,
    review_state   TEXT NOT NULL,
    rules          TEXT NOT NULL,  -- canonical JSON array of rule names
    policy_version TEXT NOT NULL,
    payload        TEXT NOT NULL,  -- canonical JSON object (RFC 8785)
    prev_hash      TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash           TEXT NOT NULL CHECK (length(hash) = 64)
);

-- Filter columns are indexed together with seq so that a filtered query can page by seq
-- (cursor pagination) straight from the index.
CREATE INDEX audit_time ON audit (time, seq);
CREATE INDEX audit_type ON audit (type, seq);
CREATE INDEX audit_action ON audit (action_name, seq);
CREATE INDEX audit_outcome ON audit (outcome, seq);
CREATE INDEX audit_principal ON audit (principal, seq);
CREATE INDEX audit_reviewer ON audit (reviewer, seq);
CREATE INDEX audit_reviewer_group ON audit (reviewer_group, seq);
CREATE INDEX audit_review_state ON audit (review_state, seq);
CREATE INDEX audit_policy_version ON audit (policy_version, seq);
CREATE INDEX audit_decision_id ON audit (decision_id, seq);
CREATE INDEX audit_review_id ON audit (review_id, seq);

-- One row per (entry, matched rule) for indexed "entries where rule X matched".
CREATE TABLE audit_rules (
    rule TEXT NOT NULL,
    seq  INTEGER NOT NULL REFERENCES audit (seq),
    PRIMARY KEY (rule, seq)
) WITHOUT ROWID;

-- The chain is enforced by the database too, whatever code path inserts: the next entry
-- must be seq = head + 1 and point at the head's hash.
CREATE TRIGGER audit_chain_insert BEFORE INSERT ON audit
WHEN NEW.seq <> coalesce((SELECT max(seq) FROM audit), 0) + 1
  OR NEW.prev_hash <> coalesce(
        (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1),
        '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'audit log: entry does not extend the chain head');
END;

-- Append-only: no code path may rewrite or remove history.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused');
END;

CREATE TRIGGER audit_rules_no_update BEFORE UPDATE ON audit_rules
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_rules_no_delete BEFORE DELETE ON audit_rules
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused');
END;
