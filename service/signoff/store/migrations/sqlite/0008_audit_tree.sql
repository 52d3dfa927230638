-- 0008: a Merkle tree over the audit log (RFC 9162), and version 2 checkpoints that sign it.
--
-- The hash chain proves a log from its first entry; the tree proves that one entry is in the
-- log of size N, or that the log of size M is a prefix of the log of size N, with log2(N)
-- hashes (core/log_tree.py). Only the perfect subtrees are stored: the ones that end at leaf
-- seq are one row, their hashes concatenated level by level (32 bytes each; level 0 is the
-- entry's leaf hash). A proof reads at most two rows per level.
--
-- Like the side index of 0007 the tree is off the write path: a background step of the store
-- (store/tree.py) builds it in bulk up to `audit_tree_state.tree_size`, moved in the same
-- transaction as the rows. An existing log is built by that step when the store opens, in
-- chunks, with its progress logged; until it has caught up, checkpoints wait for it.
CREATE TABLE audit_tree (
    seq    INTEGER PRIMARY KEY,          -- the last leaf of the subtrees in this row
    hashes BLOB NOT NULL CHECK (length(hashes) % 32 = 0 AND length(hashes) >= 32)
);

CREATE TABLE audit_tree_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0)
);
INSERT INTO audit_tree_state (id, tree_size) VALUES (1, 0);

-- A built node never changes: the tree, as the log, is append-only.
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'audit tree is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN
    SELECT RAISE(ABORT, 'audit tree is append-only: DELETE refused');
END;

CREATE TRIGGER audit_tree_state_forward BEFORE UPDATE ON audit_tree_state
WHEN NEW.tree_size < OLD.tree_size
BEGIN
    SELECT RAISE(ABORT, 'audit tree size only grows: UPDATE refused');
END;

-- Version 2 checkpoints also sign the tree head (tree_size, root_hash); '' and 0 in a
-- version 1 checkpoint, which keeps verifying as it was signed.
ALTER TABLE checkpoints ADD COLUMN tree_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN root_hash TEXT NOT NULL DEFAULT '';
