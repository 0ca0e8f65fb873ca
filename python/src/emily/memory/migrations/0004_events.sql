-- The event log: every state change of memory (store, merge, correct, forget, fact,
-- supersede, promote, demote), appended in the transaction that makes the change.
--
-- Sequence numbers come from one counter row, not from a sequence: a sequence hands
-- out numbers that a rolled-back transaction never uses (a gap a subscriber cannot
-- tell from a lost message), while the counter's update rolls back with the change.
-- Its row lock also makes writers take numbers in commit order, so a reader never
-- sees seq n+1 before seq n is committed.
CREATE TABLE IF NOT EXISTS memory_event_counter (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last bigint NOT NULL CHECK (last >= 0)
);
INSERT INTO memory_event_counter (only_row, last) VALUES (true, 0) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS memory_events (
    seq bigint PRIMARY KEY CHECK (seq >= 1),
    op text NOT NULL CHECK (
        op IN ('store', 'merge', 'correct', 'forget', 'fact', 'supersede', 'promote', 'demote')
    ),
    at timestamptz NOT NULL DEFAULT now(),
    user_name text,
    episode_id uuid,
    fact_id uuid,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object')
);
CREATE INDEX IF NOT EXISTS memory_events_episode_idx ON memory_events (episode_id);

-- Append events in one round trip: the arrays are one event per position; returns the
-- sequence number of the last one (NULL for none). Call it inside the change's
-- transaction.
CREATE OR REPLACE FUNCTION emily_log_events(
    ops text[], users text[], episodes uuid[], facts uuid[], details jsonb[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(array_length(ops, 1), 0);
    newest bigint;
BEGIN
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    UPDATE memory_event_counter SET last = last + n RETURNING last INTO newest;
    INSERT INTO memory_events (seq, op, user_name, episode_id, fact_id, detail)
    SELECT newest - n + e.i, e.op, e.usr, e.ep, e.fact, coalesce(e.detail, '{}'::jsonb)
    FROM unnest(ops, users, episodes, facts, details) WITH ORDINALITY
        AS e(op, usr, ep, fact, detail, i);
    RETURN newest;
END
$$;

-- Stores are logged by Postgres itself, whatever path inserted the rows (one INSERT,
-- a COPY, a staged retry that skips stored ids: only rows really inserted are in the
-- transition table). The statement trigger only stages the events; the numbers are
-- taken at commit by a deferred trigger, so the counter is locked for the commit alone:
-- the parts of a parallel COPY, which commit together, never wait for each other's
-- counter lock.
CREATE TABLE IF NOT EXISTS memory_events_staged (
    ord bigserial PRIMARY KEY,
    txn xid8 NOT NULL DEFAULT pg_current_xact_id(),
    op text NOT NULL,
    user_name text,
    episode_id uuid,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS memory_events_staged_txn_idx ON memory_events_staged (txn);
CREATE TABLE IF NOT EXISTS memory_events_commit (
    txn xid8 PRIMARY KEY DEFAULT pg_current_xact_id()
);

CREATE OR REPLACE FUNCTION emily_stage_stores() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_events_staged (op, user_name, episode_id)
    SELECT 'store', n.user_name, n.id FROM new_rows n;
    INSERT INTO memory_events_commit DEFAULT VALUES ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION emily_number_staged() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    newest bigint;
BEGIN
    DELETE FROM memory_events_commit WHERE txn = NEW.txn;
    SELECT count(*) INTO n FROM memory_events_staged WHERE txn = NEW.txn;
    IF n > 0 THEN
        UPDATE memory_event_counter SET last = last + n RETURNING last INTO newest;
        INSERT INTO memory_events (seq, op, user_name, episode_id, detail)
        SELECT newest - n + row_number() OVER (ORDER BY ord), op, user_name, episode_id, detail
        FROM memory_events_staged WHERE txn = NEW.txn;
        DELETE FROM memory_events_staged WHERE txn = NEW.txn;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS episodes_log_stores ON episodes;
CREATE TRIGGER episodes_log_stores AFTER INSERT ON episodes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION emily_stage_stores();

DROP TRIGGER IF EXISTS memory_events_number ON memory_events_commit;
CREATE CONSTRAINT TRIGGER memory_events_number AFTER INSERT ON memory_events_commit
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION emily_number_staged();
