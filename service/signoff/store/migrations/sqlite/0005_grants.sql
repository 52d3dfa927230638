-- 0005: standing approvals. A grant lets later requests that a rule sends to review be
-- allowed without one, while it is active: not revoked, not expired, uses < max_uses.
-- `uses` is counted here, under the write lock, so concurrent requests never exceed it.
CREATE TABLE grants (
    grant_id       TEXT PRIMARY KEY,
    reviewer_group TEXT NOT NULL,
    action_name    TEXT NOT NULL,
    policy         TEXT NOT NULL,
    rule           TEXT NOT NULL,
    principal_id   TEXT NOT NULL,            -- '' = any principal
    max_uses       INTEGER NOT NULL CHECK (max_uses >= 1),
    uses           INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT,                     -- NULL = not revoked
    revoked_by     TEXT NOT NULL DEFAULT '',
    grant_pb       BLOB NOT NULL             -- serialized signoff.v1.Grant (its scope)
);

-- The decision path: the grants of one action, rule and group (few; filtered in the row).
CREATE INDEX grants_lookup ON grants (action_name, reviewer_group, policy, rule, expires_at)
    WHERE revoked_at IS NULL;
-- ListGrants: one group's grants, newest first.
CREATE INDEX grants_group ON grants (reviewer_group, created_at, grant_id);
