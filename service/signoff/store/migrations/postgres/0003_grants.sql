-- 0003 (PostgreSQL): standing approvals, as sqlite/0005. A grant lets later requests that a
-- rule sends to review be allowed without one while it is active: not revoked, not expired,
-- uses < max_uses. `uses` is counted by one UPDATE whose row lock orders concurrent uses on
-- every replica, so they never exceed max_uses.
CREATE TABLE grants (
    grant_id       text COLLATE "C" PRIMARY KEY,
    reviewer_group text COLLATE "C" NOT NULL,
    action_name    text COLLATE "C" NOT NULL,
    policy         text COLLATE "C" NOT NULL,
    rule           text COLLATE "C" NOT NULL,
    principal_id   text COLLATE "C" NOT NULL,   -- '' = any principal
    max_uses       integer NOT NULL CHECK (max_uses >= 1),
    uses           integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    created_by     text COLLATE "C" NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,                 -- NULL = not revoked
    revoked_by     text COLLATE "C" NOT NULL DEFAULT '',
    grant_pb       bytea NOT NULL               -- serialized signoff.v1.Grant (its scope)
);

-- The decision path: the grants of one action, rule and group (few; filtered in the row).
CREATE INDEX grants_lookup ON grants (action_name, reviewer_group, policy, rule, expires_at)
    WHERE revoked_at IS NULL;
-- ListGrants: one group's grants, newest first.
CREATE INDEX grants_group ON grants (reviewer_group, created_at, grant_id);
