-- Forget marks (emily.memory.forget_marks): what a forget asked for, kept for
-- memory.forget_marks_days so that an episode said before the forget but delivered
-- after it (a turn still queued in cognition's outbox) is withheld, not stored.
-- Exactly one of match (case-folded) and episode_ids.
CREATE TABLE IF NOT EXISTS memory_forget_marks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    match text CHECK (match IS NULL OR length(match) > 0),
    episode_ids uuid[] CHECK (episode_ids IS NULL OR cardinality(episode_ids) > 0),
    CHECK ((match IS NULL) <> (episode_ids IS NULL))
);
CREATE INDEX IF NOT EXISTS memory_forget_marks_at ON memory_forget_marks (at);
