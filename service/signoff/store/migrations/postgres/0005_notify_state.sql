-- 0005 (PostgreSQL): what the Slack and e-mail approvals share across replicas and restarts,
-- as sqlite/0009: which Slack message shows which review, and the single-use keys already
-- used (e-mail link nonces, Slack request signatures and trigger ids) until they expire.
-- Neither is part of the audit chain: rows are deleted when no longer needed.
CREATE TABLE slack_messages (
    review_id  text COLLATE "C" NOT NULL,
    channel    text COLLATE "C" NOT NULL,
    ts         text COLLATE "C" NOT NULL,   -- Slack's message id within the channel
    posted_at  timestamptz NOT NULL,
    PRIMARY KEY (review_id, channel)
);
-- The sweep: messages of settled reviews, oldest first.
CREATE INDEX slack_messages_posted ON slack_messages (posted_at);

CREATE TABLE used_nonces (
    kind       text COLLATE "C" NOT NULL,   -- email.link, slack.signature, slack.trigger
    nonce      text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL,        -- in use until then; swept after
    PRIMARY KEY (kind, nonce)
);
CREATE INDEX used_nonces_expiry ON used_nonces (expires_at);
