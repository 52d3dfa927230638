-- 0004 (PostgreSQL): the audit log's Merkle tree and version 2 checkpoints, as sqlite/0008.
-- Rows of perfect-subtree hashes keyed by their last leaf's seq, built off the write path
-- by every replica's store (store/tree.py) up to audit_tree_state.tree_size; the step that
-- moves the watermark from the value it read commits, a racing replica's changes nothing.
CREATE TABLE audit_tree (
    seq    bigint PRIMARY KEY CHECK (seq >= 1),
    hashes bytea NOT NULL CHECK (length(hashes) % 32 = 0 AND length(hashes) >= 32)
);

CREATE TABLE audit_tree_state (
    id        integer PRIMARY KEY CHECK (id = 1),
    tree_size bigint NOT NULL CHECK (tree_size >= 0)
);
INSERT INTO audit_tree_state (id, tree_size) VALUES (1, 0);

CREATE TRIGGER audit_tree_append_only BEFORE UPDATE OR DELETE ON audit_tree
    FOR EACH ROW EXECUTE FUNCTION signoff_refuse('audit tree is append-only');
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_refuse('audit tree is append-only');

CREATE FUNCTION signoff_tree_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tree_size < OLD.tree_size THEN
        RAISE EXCEPTION 'audit tree size only grows: UPDATE refused'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_tree_state_forward BEFORE UPDATE ON audit_tree_state
    FOR EACH ROW EXECUTE FUNCTION signoff_tree_forward();

ALTER TABLE checkpoints ADD COLUMN tree_size bigint NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN root_hash text NOT NULL DEFAULT '';
