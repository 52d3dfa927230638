-- 0010: witnesses' co-signatures of the checkpoints' tree heads (core/witness.py).
--
-- A witness (someone other than the operator) checks each new version 2 checkpoint is
-- consistent with the last one it co-signed, and hands back its Ed25519 co-signature; the
-- server stores it next to the checkpoint (checked first: it must verify and name that
-- checkpoint's tree head) and returns it with GetCheckpoints and in exports. One per witness
-- key and checkpoint; like checkpoints, never changed.
CREATE TABLE cosignatures (
    seq        INTEGER NOT NULL REFERENCES checkpoints (seq),
    key_id     TEXT NOT NULL CHECK (length(key_id) = 16),
    log_key_id TEXT NOT NULL,
    tree_size  INTEGER NOT NULL,
    root_hash  TEXT NOT NULL CHECK (length(root_hash) = 64),
    time       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    PRIMARY KEY (seq, key_id)
);

CREATE TRIGGER cosignatures_no_update BEFORE UPDATE ON cosignatures
BEGIN
    SELECT RAISE(ABORT, 'cosignatures are append-only: UPDATE refused');
END;

CREATE TRIGGER cosignatures_no_delete BEFORE DELETE ON cosignatures
BEGIN
    SELECT RAISE(ABORT, 'cosignatures are append-only: DELETE refused');
END;
