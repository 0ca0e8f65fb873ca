-- How far the event log has been trimmed (its retention, memory.events_keep_*): every
-- event with seq <= through is gone and every later one is kept, so a reader whose
-- cursor is below it knows it missed events (EventsReply.trimmed). Its own row, not a
-- column of memory_event_counter, so trimming never waits for, or holds up, the
-- writers' counter lock.
CREATE TABLE IF NOT EXISTS memory_event_trim (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    through bigint NOT NULL CHECK (through >= 0)
);
INSERT INTO memory_event_trim (only_row, through) VALUES (true, 0) ON CONFLICT DO NOTHING;
