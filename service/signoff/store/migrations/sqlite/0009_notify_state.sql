-- 0009: what the Slack and e-mail approvals share across the processes serving this file
-- (`serve --workers`, restarts): which Slack message shows which review, and the single-use
-- keys already used (e-mail link nonces, Slack request signatures and trigger ids) until
-- they expire. Neither is part of the audit chain: rows are deleted when no longer needed.
CREATE TABLE slack_messages (
    review_id  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    ts         TEXT NOT NULL,            -- Slack's message id within the channel
    posted_at  TEXT NOT NULL,
    PRIMARY KEY (review_id, channel)
) WITHOUT ROWID;
-- The sweep: messages of settled reviews, oldest first.
CREATE INDEX slack_messages_posted ON slack_messages (posted_at);

CREATE TABLE used_nonces (
    kind       TEXT NOT NULL,            -- email.link, slack.signature, slack.trigger
    nonce      TEXT NOT NULL,
    expires_at TEXT NOT NULL,            -- in use until then; swept after
    PRIMARY KEY (kind, nonce)
) WITHOUT ROWID;
CREATE INDEX used_nonces_expiry ON used_nonces (expires_at);
