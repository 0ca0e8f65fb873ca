-- Episodes: the durable truth of the memory service (tier L3).
-- The HNSW index is created by the service from its configuration (m, ef_construction,
-- vector or halfvec), since those are tunables rather than schema.
CREATE TABLE IF NOT EXISTS episodes (
    id uuid PRIMARY KEY,
    ts timestamptz NOT NULL,
    text text NOT NULL,
    embedding vector(384) NOT NULL,
    valence real NOT NULL DEFAULT 0 CHECK (valence BETWEEN -1 AND 1),
    arousal real NOT NULL DEFAULT 0 CHECK (arousal BETWEEN -1 AND 1),
    dominance real NOT NULL DEFAULT 0 CHECK (dominance BETWEEN -1 AND 1),
    context jsonb NOT NULL DEFAULT '{}'::jsonb,
    source text NOT NULL DEFAULT '',
    stored_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS episodes_ts_idx ON episodes (ts);
CREATE INDEX IF NOT EXISTS episodes_context_idx ON episodes USING gin (context jsonb_path_ops);
