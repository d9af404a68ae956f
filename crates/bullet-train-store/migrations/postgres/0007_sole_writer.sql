-- Sole-writer mode (see src/lease.rs): a replica that is alone on the database may trust the
-- identities it keeps in memory when deciding that a request changes nothing, as SQLite does. It
-- holds a time-limited lease in `sole_writer`; every other replica heartbeats in `replicas` and
-- checks the lease before each write, so nobody writes while a lease is valid.
CREATE TABLE replicas (
    id BIGINT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE sole_writer (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    replica BIGINT,
    until TIMESTAMPTZ
);

INSERT INTO sole_writer (singleton) VALUES (TRUE);

-- Called by a replica once a second: records that it is alive, then renews its lease (1), takes
-- the lease (2) or does neither (0). The lease is taken only when no other replica was seen within
-- `alive` (nor any server of an earlier release is connected), and only under the exclusive advisory lock that every write not made by the holder
-- shares (below): writes that checked the lease before it was taken have committed by then.
-- A replica that finds another one's lease valid notifies it, so that it steps down at once.
CREATE FUNCTION bullet_train_tick(me BIGINT, lease INTERVAL, alive INTERVAL) RETURNS INTEGER AS $$
DECLARE
    holder BIGINT;
BEGIN
    INSERT INTO replicas (id, seen_at) VALUES (me, clock_timestamp())
        ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at;
    DELETE FROM replicas WHERE seen_at < clock_timestamp() - INTERVAL '1 minute';
    -- Servers of earlier releases (connections named plain 'bullet-train') know nothing of the
    -- lease: while one is connected, nobody takes it.
    IF EXISTS (SELECT 1 FROM replicas WHERE id <> me AND seen_at > clock_timestamp() - alive)
        OR EXISTS (SELECT 1 FROM pg_stat_activity
                   WHERE datname = current_database() AND application_name = 'bullet-train') THEN
        SELECT replica INTO holder FROM sole_writer WHERE until > clock_timestamp();
        IF holder IS NOT NULL AND holder <> me THEN
            PERFORM pg_notify('bullet_train_changes', 'replica');
        END IF;
        RETURN 0;
    END IF;
    UPDATE sole_writer SET until = clock_timestamp() + lease
        WHERE replica = me AND until > clock_timestamp();
    IF FOUND THEN
        RETURN 1;
    END IF;
    IF NOT pg_try_advisory_xact_lock(7310, 1) THEN
        RETURN 0;
    END IF;
    UPDATE sole_writer SET replica = me, until = clock_timestamp() + lease
        WHERE replica IS NULL OR replica = me OR until <= clock_timestamp();
    IF FOUND THEN
        RETURN 2;
    END IF;
    RETURN 0;
END
$$ LANGUAGE plpgsql VOLATILE;

-- The first statement of every write transaction: shares the advisory lock until the transaction
-- ends, and answers whether another replica's lease is valid (then the transaction must not
-- write). The lease is read after the lock wait, in a snapshot of its own (READ COMMITTED).
CREATE FUNCTION bullet_train_may_write(me BIGINT) RETURNS BOOLEAN AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7310, 1);
    RETURN NOT EXISTS (
        SELECT 1 FROM sole_writer WHERE replica <> me AND until > clock_timestamp()
    );
END
$$ LANGUAGE plpgsql VOLATILE;
