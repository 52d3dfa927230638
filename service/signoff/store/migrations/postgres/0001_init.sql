-- 0001 (PostgreSQL): decisions, the hash-chained audit log, reviews and signed checkpoints --
-- the SQLite schema (sqlite/0001..0003) in one step. Times are timestamptz (microseconds, as
-- the audit encoding); ids and names use the "C" collation so that ordering, keyset cursors
-- and LIKE prefixes compare bytes, as SQLite does, whatever the database's locale.
-- Refusals raise SQLSTATE 23001 (restrict_violation, an integrity error) so that a refused
-- write fails only its own operation in a group-commit batch.

CREATE FUNCTION signoff_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: % refused', TG_ARGV[0], TG_OP USING ERRCODE = 'restrict_violation';
END $$;

CREATE TABLE decisions (
    decision_id    text COLLATE "C" PRIMARY KEY,
    principal_id   text COLLATE "C" NOT NULL,
    request_id     text COLLATE "C" NOT NULL,
    request_digest text NOT NULL,
    action_name    text COLLATE "C" NOT NULL,
    outcome        text NOT NULL,
    created_at     timestamptz NOT NULL,
    decision       bytea NOT NULL
);

-- An empty request_id means "no idempotency key": such rows never collide.
CREATE UNIQUE INDEX decisions_idempotency
    ON decisions (principal_id, request_id) WHERE request_id <> '';
CREATE INDEX decisions_created_at ON decisions (created_at);

-- seq is assigned by the writer holding the chain lock (no sequence: sequences have gaps).
CREATE TABLE audit (
    seq            bigint PRIMARY KEY CHECK (seq >= 1),
    time           timestamptz NOT NULL,
    type           text COLLATE "C" NOT NULL,
    actor          text COLLATE "C" NOT NULL,
    request_id     text COLLATE "C" NOT NULL,
    decision_id    text COLLATE "C" NOT NULL,
    review_id      text COLLATE "C" NOT NULL,
    action_name    text COLLATE "C" NOT NULL,
    outcome        text NOT NULL
        CHECK (outcome IN ('', 'AUTO_ALLOW', 'REQUIRE_REVIEW', 'DENY')),
    principal      text COLLATE "C" NOT NULL,
    reviewer       text COLLATE "C" NOT NULL,
    reviewer_group text COLLATE "C" NOT NULL,
    review_state   text COLLATE "C" NOT NULL,
    rules          text[] NOT NULL,  -- rule names in decision order
    policy_version text COLLATE "C" NOT NULL,
    payload        text NOT NULL,    -- canonical JSON object (RFC 8785), exactly as hashed
    prev_hash      text NOT NULL CHECK (length(prev_hash) = 64),
    hash           text NOT NULL CHECK (length(hash) = 64)
);

-- Filter columns are indexed together with seq so that a filtered query reads its matches
-- in seq order (keyset pages) from the index.
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
CREATE INDEX audit_request_id ON audit (request_id, seq);

-- One row per (entry, matched rule) for indexed "entries where rule X matched".
CREATE TABLE audit_rules (
    rule text COLLATE "C" NOT NULL,
    seq  bigint NOT NULL REFERENCES audit (seq),
    PRIMARY KEY (rule, seq)
);

-- The chain is enforced by the database too, whatever code path inserts: the next entry must
-- be seq = head + 1 and point at the head's hash. search_path is pinned so that a session
-- with another search_path cannot point the check at another "audit" table.
CREATE FUNCTION signoff_audit_chain() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    head_seq  bigint;
    head_hash text;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit ORDER BY seq DESC LIMIT 1;
    IF NEW.seq <> coalesce(head_seq, 0) + 1
       OR NEW.prev_hash <> coalesce(head_hash, repeat('0', 64)) THEN
        RAISE EXCEPTION 'audit log: entry does not extend the chain head'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_chain_insert BEFORE INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_chain();

-- Append-only: no code path may rewrite or remove history (TRUNCATE included).
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION signoff_refuse('audit log is append-only');
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_refuse('audit log is append-only');
CREATE TRIGGER audit_rules_append_only BEFORE UPDATE OR DELETE ON audit_rules
    FOR EACH ROW EXECUTE FUNCTION signoff_refuse('audit log is append-only');
CREATE TRIGGER audit_rules_no_truncate BEFORE TRUNCATE ON audit_rules
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_refuse('audit log is append-only');

-- Human reviews: one per REQUIRE_REVIEW decision, written in the decision's transaction,
-- changed only by conditional updates (WHERE version = ?), immutable once resolved.
CREATE TABLE reviews (
    review_id      text COLLATE "C" PRIMARY KEY,
    decision_id    text COLLATE "C" NOT NULL UNIQUE REFERENCES decisions (decision_id),
    principal_id   text COLLATE "C" NOT NULL,
    on_behalf_of   text COLLATE "C" NOT NULL,
    action_name    text COLLATE "C" NOT NULL,
    reviewer_group text COLLATE "C" NOT NULL,
    state          text NOT NULL CHECK (
        state IN ('PENDING', 'APPROVED', 'MODIFIED', 'REJECTED', 'EXPIRED', 'CANCELLED')),
    version        integer NOT NULL CHECK (version >= 1),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    expires_at     timestamptz,    -- NULL = never expires
    review         bytea NOT NULL  -- serialized signoff.v1.Review; opaque to the store
);

-- Every index ends in (created_at, review_id), the listing order: a cursor is a range start.
CREATE INDEX reviews_state_group ON reviews (state, reviewer_group, created_at, review_id);
CREATE INDEX reviews_principal ON reviews (principal_id, created_at, review_id);
CREATE INDEX reviews_created ON reviews (created_at, review_id);
-- The expiry sweep only ever looks at pending reviews; resolved ones leave this index.
CREATE INDEX reviews_pending_expiry ON reviews (expires_at, review_id) WHERE state = 'PENDING';

-- The store's conditional update is the only intended writer; these are the backstop.
CREATE FUNCTION signoff_review_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state <> 'PENDING' THEN
        RAISE EXCEPTION 'review is resolved and immutable: UPDATE refused'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.review_id, NEW.decision_id, NEW.principal_id, NEW.on_behalf_of, NEW.action_name,
        NEW.created_at) IS DISTINCT FROM (OLD.review_id, OLD.decision_id, OLD.principal_id,
        OLD.on_behalf_of, OLD.action_name, OLD.created_at) THEN
        RAISE EXCEPTION 'review identity columns are fixed: UPDATE refused'
            USING ERRCODE = 'restrict_violation';
    END IF;
    -- Every change is one version step: "I saw version N" means exactly one state.
    IF NEW.version <> OLD.version + 1 THEN
        RAISE EXCEPTION 'review version must grow by exactly 1: UPDATE refused'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER reviews_guard BEFORE UPDATE ON reviews
    FOR EACH ROW EXECUTE FUNCTION signoff_review_guard();
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION signoff_refuse('reviews are never deleted');
CREATE TRIGGER reviews_no_truncate BEFORE TRUNCATE ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_refuse('reviews are never deleted');

-- Signed statements "the chain head at seq was head_hash at time" (Ed25519; the signature is
-- opaque to the store). They only ever move forward and never past the log's head.
CREATE TABLE checkpoints (
    seq       bigint PRIMARY KEY CHECK (seq >= 1) REFERENCES audit (seq),
    head_hash text NOT NULL CHECK (length(head_hash) = 64),
    time      timestamptz NOT NULL,
    key_id    text NOT NULL,
    signature text NOT NULL
);

CREATE FUNCTION signoff_checkpoint_forward() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.seq <= coalesce((SELECT max(seq) FROM checkpoints), 0)
       OR NEW.seq > coalesce((SELECT max(seq) FROM audit), 0) THEN
        RAISE EXCEPTION 'checkpoint must follow the last checkpoint and not pass the audit head'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER checkpoints_forward BEFORE INSERT ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION signoff_checkpoint_forward();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION signoff_refuse('checkpoints are append-only');
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_refuse('checkpoints are append-only');
