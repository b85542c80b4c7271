-- Schema 5: API tokens as admin commands change them beside a running
-- `serve`. `last_used_ms` tells an operator a token nobody uses any more
-- from one a front end depends on (`serve` writes it in batches, at most a
-- minute late). `api_token_changes.n` counts every token created or
-- revoked, so `serve` can see in one read per request that its set is stale
-- and a revoked token is refused at once.
ALTER TABLE api_tokens ADD COLUMN last_used_ms INTEGER;
CREATE TABLE api_token_changes (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO api_token_changes (id, n) VALUES (1, 0);
CREATE TRIGGER api_token_created AFTER INSERT ON api_tokens
BEGIN
    UPDATE api_token_changes SET n = n + 1;
END;
CREATE TRIGGER api_token_revoked AFTER DELETE ON api_tokens
BEGIN
    UPDATE api_token_changes SET n = n + 1;
END;
