-- Facts drawn from user statements, their source episodes, and the entity graph.
--
-- A fact is (user, agent, subject, relation, value) valid from valid_from until
-- valid_to; valid_to IS NULL while it is current. A single-valued relation (a dog's
-- name, where someone lives) has at most one current fact per subject; a multi-valued
-- one (allergies, pets) one per value. A fact that replaced another names it in
-- supersedes, so forgetting the newer statement can make the older value current again.
CREATE TABLE IF NOT EXISTS facts (
    id uuid PRIMARY KEY,
    user_name text NOT NULL,
    agent_name text,
    subject text NOT NULL,
    relation text NOT NULL,
    value text NOT NULL,
    multi boolean NOT NULL DEFAULT false,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    count integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    last_seen timestamptz NOT NULL,
    extractor text NOT NULL DEFAULT 'patterns' CHECK (extractor IN ('patterns', 'llm')),
    supersedes uuid REFERENCES facts (id) ON DELETE SET NULL,
    -- the words full-text search matches: the triple plus the relation's plain synonyms
    doc text NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', doc)) STORED,
    embedding vector(384) NOT NULL,
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);

CREATE UNIQUE INDEX IF NOT EXISTS facts_current_idx ON facts
    (user_name, coalesce(agent_name, ''), subject, relation, (CASE WHEN multi THEN lower(value) ELSE '' END))
    WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS facts_user_idx ON facts (user_name, subject, relation);
CREATE INDEX IF NOT EXISTS facts_tsv_idx ON facts USING gin (tsv);

-- No foreign key to episodes: forgetting an episode calls drop_sources in its own
-- transaction, which must still see which facts the episode supported.
CREATE TABLE IF NOT EXISTS fact_sources (
    fact_id uuid NOT NULL REFERENCES facts (id) ON DELETE CASCADE,
    episode_id uuid NOT NULL,
    PRIMARY KEY (fact_id, episode_id)
);
CREATE INDEX IF NOT EXISTS fact_sources_episode_idx ON fact_sources (episode_id);

-- Episodes a consolidation pass has read (the unconsolidated ones are those absent).
CREATE TABLE IF NOT EXISTS consolidated (
    episode_id uuid PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);

-- The graph: one node per name a user's facts mention, one edge per fact.
CREATE TABLE IF NOT EXISTS entities (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name text NOT NULL,
    name text NOT NULL,
    UNIQUE (user_name, name)
);

CREATE TABLE IF NOT EXISTS edges (
    fact_id uuid PRIMARY KEY REFERENCES facts (id) ON DELETE CASCADE,
    src bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    dst bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    relation text NOT NULL
);
CREATE INDEX IF NOT EXISTS edges_src_idx ON edges (src);
CREATE INDEX IF NOT EXISTS edges_dst_idx ON edges (dst);
