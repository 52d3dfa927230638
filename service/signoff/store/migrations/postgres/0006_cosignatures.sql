-- 0006 (PostgreSQL): witnesses' co-signatures of the checkpoints' tree heads, as
-- sqlite/0010: one per witness key and checkpoint, checked before it is stored, never changed.
CREATE TABLE cosignatures (
    seq        bigint NOT NULL REFERENCES checkpoints (seq),
    key_id     text NOT NULL CHECK (length(key_id) = 16),
    log_key_id text NOT NULL,
    tree_size  bigint NOT NULL,
    root_hash  text NOT NULL CHECK (length(root_hash) = 64),
    time       timestamptz NOT NULL,
    signature  text NOT NULL,
    PRIMARY KEY (seq, key_id)
);

CREATE TRIGGER cosignatures_no_update BEFORE UPDATE OR DELETE ON cosignatures
    FOR EACH ROW EXECUTE FUNCTION signoff_refuse('cosignatures are append-only');
CREATE TRIGGER cosignatures_no_truncate BEFORE TRUNCATE ON cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_refuse('cosignatures are append-only');
