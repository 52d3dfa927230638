-- 0003: what auditors need -- an index for request ids, the time-order side table that turns a
-- time range into a seq range, and signed checkpoints of the chain head.

CREATE INDEX audit_request_id ON audit (request_id, seq);

-- Entries are in seq (commit) order, and their times almost follow it: an entry whose time
-- is earlier than some earlier entry's (concurrent requests committed out of order, a clock
-- stepped back) is a "time regression", recorded here with by how much it lags the maximum
-- time before it. Every other entry raises that running maximum, so the maximum is monotone
-- in seq and a time bound becomes a seq bound (see store/sqlite_audit_query.py). Derived from
-- the entries, written in their transaction; append-only like them.
CREATE TABLE audit_time_regressions (
    seq        INTEGER PRIMARY KEY REFERENCES audit (seq),
    deficit_us INTEGER NOT NULL CHECK (deficit_us > 0)
);
CREATE INDEX audit_time_regressions_deficit ON audit_time_regressions (deficit_us);

-- Existing entries: julianday() keeps only milliseconds, so each lag is rounded up by 2 ms;
-- a larger lag only widens the seq range a time bound scans, never drops an entry.
INSERT INTO audit_time_regressions (seq, deficit_us)
SELECT seq, CAST((julianday(high_water) - julianday(time)) * 86400000000 AS INTEGER) + 2000
FROM (
    SELECT seq, time, max(time) OVER (
        ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS high_water
    FROM audit
)
WHERE time < high_water;

CREATE TRIGGER audit_time_regressions_no_update BEFORE UPDATE ON audit_time_regressions
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_time_regressions_no_delete BEFORE DELETE ON audit_time_regressions
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused');
END;

-- Signed statements "the chain head at seq was head_hash at time" (Ed25519; the signature is
-- opaque to the store). They only ever move forward and never past the log's head.
CREATE TABLE checkpoints (
    seq       INTEGER PRIMARY KEY CHECK (seq >= 1) REFERENCES audit (seq),
    head_hash TEXT NOT NULL CHECK (length(head_hash) = 64),
    time      TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);

CREATE TRIGGER checkpoints_forward BEFORE INSERT ON checkpoints
WHEN NEW.seq <= coalesce((SELECT max(seq) FROM checkpoints), 0)
  OR NEW.seq > coalesce((SELECT max(seq) FROM audit), 0)
BEGIN
    SELECT RAISE(ABORT, 'checkpoint must follow the last checkpoint and not pass the audit head');
END;

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE refused');
END;

CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE refused');
END;
