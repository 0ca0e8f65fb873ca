-- Episodes become turns of a conversation with a scope.
-- The scope column is user_name (not "user", which unquoted is SQL's CURRENT_USER and
-- would compare silently); rows stored before this migration read as the default
-- user's statements, said once.
ALTER TABLE episodes
    ADD COLUMN user_name text NOT NULL DEFAULT 'default',
    ADD COLUMN agent_name text,
    ADD COLUMN role text NOT NULL DEFAULT 'user'
        CHECK (role IN ('user', 'assistant', 'system')),
    ADD COLUMN act text NOT NULL DEFAULT 'statement'
        CHECK (act IN ('statement', 'question', 'command', 'answer')),
    ADD COLUMN session text,
    ADD COLUMN reply_to uuid,
    ADD COLUMN repeats integer NOT NULL DEFAULT 1 CHECK (repeats >= 1),
    ADD COLUMN last_seen timestamptz,
    -- full-text search of hybrid recall (websearch_to_tsquery('english', ...) @@ tsv)
    ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;

CREATE INDEX IF NOT EXISTS episodes_tsv_idx ON episodes USING gin (tsv);
-- every recall is scoped to one user: this serves the scope's exact search, its time
-- order and the per-user counts
CREATE INDEX IF NOT EXISTS episodes_user_ts_idx ON episodes (user_name, ts);
CREATE INDEX IF NOT EXISTS episodes_session_idx ON episodes (session) WHERE session IS NOT NULL;
