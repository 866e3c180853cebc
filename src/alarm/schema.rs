//! Versioned migrations of the SQLite store.
//!
//! `PRAGMA user_version` holds the applied version; each step runs in a
//! transaction. Add a step at the end, never edit one that has shipped.

use rusqlite::{Connection, OptionalExtension};

pub const MIGRATIONS: &[&str] = &[
    // 1: alarms with per-source-IP call records and samples; dead letters; file progress.
    r#"
    CREATE TABLE alarms (
        id INTEGER PRIMARY KEY,
        rule_id TEXT NOT NULL,
        rule_hash TEXT NOT NULL,
        level TEXT NOT NULL CHECK (level IN ('info', 'low', 'medium', 'high')),
        title TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'unprocessed' CHECK (status IN ('unprocessed', 'processed', 'ignored')),
        group_key TEXT NOT NULL,
        provider TEXT NOT NULL,
        account_id TEXT,
        account_name TEXT,
        account_identity TEXT NOT NULL,
        principal_kind TEXT NOT NULL,
        principal_id TEXT,
        principal_name TEXT,
        principal_arn TEXT,
        access_key_id TEXT,
        access_key_temporary INTEGER,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        count INTEGER NOT NULL,
        sample_count INTEGER NOT NULL DEFAULT 0,
        last_output TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX alarms_open_key ON alarms (rule_id, group_key) WHERE status = 'unprocessed';
    CREATE INDEX alarms_last_seen ON alarms (last_seen);
    CREATE INDEX alarms_status_level ON alarms (status, level);

    CREATE TABLE alarm_calls (
        alarm_id INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
        source_ip TEXT NOT NULL,
        ip_kind TEXT NOT NULL,
        call_method TEXT NOT NULL,
        service TEXT NOT NULL,
        action TEXT NOT NULL,
        success_count INTEGER NOT NULL,
        failure_count INTEGER NOT NULL,
        first_call TEXT NOT NULL,
        last_call TEXT NOT NULL,
        PRIMARY KEY (alarm_id, source_ip, call_method, service, action)
    ) WITHOUT ROWID;

    CREATE TABLE alarm_samples (
        alarm_id INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        event_time TEXT NOT NULL,
        origin TEXT NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (alarm_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        source TEXT NOT NULL,
        line INTEGER,
        byte_offset INTEGER,
        record_index INTEGER,
        origin TEXT NOT NULL,
        reason TEXT NOT NULL,
        excerpt TEXT NOT NULL
    );
    CREATE INDEX dead_letters_source ON dead_letters (source);

    CREATE TABLE source_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ms INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        line INTEGER NOT NULL,
        completed INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    "#,
    // 2: engine state (persisted with the alarms it produced) and the events
    //    still waiting in the reorder buffer.
    r#"
    CREATE TABLE state_keys (
        key INTEGER PRIMARY KEY,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        touched_ms INTEGER NOT NULL
    );
    CREATE TABLE state_principals (
        key INTEGER PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        touched_ms INTEGER NOT NULL
    );
    CREATE TABLE state_first_seen (
        key INTEGER PRIMARY KEY,
        first_ms INTEGER NOT NULL,
        touched_ms INTEGER NOT NULL
    );
    CREATE TABLE state_windows (
        key INTEGER PRIMARY KEY,
        times BLOB NOT NULL,
        touched_ms INTEGER NOT NULL
    );
    CREATE TABLE state_distinct (
        key INTEGER PRIMARY KEY,
        entries BLOB NOT NULL,
        touched_ms INTEGER NOT NULL
    );
    CREATE TABLE pending_events (
        seq INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        time_source TEXT NOT NULL,
        origin TEXT NOT NULL,
        raw TEXT NOT NULL
    );
    CREATE TABLE engine_meta (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    "#,
    // 3: Kafka: the next offset to consume per group, topic and partition
    //    (written in the same transaction as the effects of the messages
    //    before it), and where a dead letter came from in Kafka.
    r#"
    CREATE TABLE kafka_offsets (
        group_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (group_id, topic, partition)
    ) WITHOUT ROWID;
    ALTER TABLE dead_letters ADD COLUMN topic TEXT;
    ALTER TABLE dead_letters ADD COLUMN partition INTEGER;
    ALTER TABLE dead_letters ADD COLUMN kafka_offset INTEGER;
    "#,
    // 4: the triage workflow (status transitions with actor, time and reason)
    //    and the hash chain sealing alarms and transitions (see chain.rs).
    r#"
    CREATE TABLE alarm_transitions (
        id INTEGER PRIMARY KEY,
        alarm_id INTEGER NOT NULL,
        from_status TEXT NOT NULL,
        to_status TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX alarm_transitions_alarm ON alarm_transitions (alarm_id);
    -- Matches look up the alarm of their rule and key whatever its status.
    CREATE INDEX alarms_rule_group ON alarms (rule_id, group_key, status);
    CREATE TABLE chain (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        ref_id INTEGER NOT NULL,
        row_hash TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    "#,
    // 5: allowlist policies (hits counted in the batch transactions), remarks
    //    on access keys and IPs, and the organisation's own addresses (assets).
    r#"
    CREATE TABLE allowlist (
        id INTEGER PRIMARY KEY,
        access_key TEXT,
        source_ip TEXT,
        api TEXT,
        operation TEXT,
        call_method TEXT,
        error_code TEXT,
        rule_id TEXT,
        owner TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        hit_count INTEGER NOT NULL DEFAULT 0,
        last_hit TEXT,
        CHECK (COALESCE(access_key, source_ip, api, operation, call_method, error_code, rule_id) IS NOT NULL)
    );
    CREATE TABLE remarks (
        kind TEXT NOT NULL CHECK (kind IN ('key', 'ip')),
        value TEXT NOT NULL,
        remark TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    ) WITHOUT ROWID;
    CREATE TABLE assets (
        cidr TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 6: the god view (hourly counts of every event, first-seen access key /
    //    source IP pairs) and key-operation traces with their raw records.
    r#"
    -- key: the hour's number since the epoch × 2^32 + a 32-bit hash of the
    -- other key columns (the next free value on a collision), so rows are in
    -- hour order and a range of hours is a range of keys. Readers sum rows.
    CREATE TABLE activity_hourly (
        key INTEGER PRIMARY KEY,
        hour_ms INTEGER NOT NULL,
        provider TEXT NOT NULL,
        account_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        source_ip TEXT NOT NULL,
        service TEXT NOT NULL,
        action TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        error_code TEXT NOT NULL,
        call_method TEXT NOT NULL,
        count INTEGER NOT NULL,
        failures INTEGER NOT NULL
    );

    -- Append-only, in event-time order (a unique index on the pair would be
    -- written at random places: most of the cost of the god view). A pair
    -- has one row per sighting that was earlier than any known to the engine
    -- (a late event, or a restart past the engine's memory); readers take
    -- the earliest.
    CREATE TABLE activity_key_ips (
        id INTEGER PRIMARY KEY,
        access_key_id TEXT NOT NULL,
        source_ip TEXT NOT NULL,
        provider TEXT NOT NULL,
        account_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        first_ms INTEGER NOT NULL
    );

    CREATE TABLE key_traces (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        event_id TEXT NOT NULL,
        time TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        account_id TEXT,
        operator TEXT NOT NULL,
        principal_id TEXT,
        principal_kind TEXT NOT NULL,
        access_key_id TEXT,
        call_method TEXT NOT NULL,
        trace_type TEXT,
        service TEXT NOT NULL,
        resource_type TEXT,
        resource_names TEXT NOT NULL,
        action TEXT NOT NULL,
        operations TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('success', 'failure')),
        error_code TEXT,
        source_ip TEXT,
        raw TEXT NOT NULL,
        UNIQUE (provider, event_id)
    );
    CREATE INDEX key_traces_time ON key_traces (time_ms);
    "#,
    // 7: the notification outbox. A message is one alarm event (opened,
    // escalated, status change) for one topic, or a digest; a delivery is one
    // message to one subscription, with the id receivers deduplicate on. Both
    // are written in the transaction that changes the alarm.
    r#"
    ALTER TABLE alarms ADD COLUMN tags TEXT NOT NULL DEFAULT '';

    CREATE TABLE notify_messages (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        alarm_id INTEGER REFERENCES alarms (id),
        kind TEXT NOT NULL CHECK (kind IN ('opened', 'escalated', 'status', 'digest')),
        detail TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL CHECK (state IN ('queued', 'admitted', 'folded')),
        digest_id INTEGER REFERENCES notify_messages (id),
        created_at TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        admitted_ms INTEGER
    );
    CREATE INDEX notify_messages_queued ON notify_messages (id) WHERE state = 'queued';
    CREATE INDEX notify_messages_undigested ON notify_messages (topic, id) WHERE state = 'folded' AND digest_id IS NULL;
    CREATE INDEX notify_messages_admitted ON notify_messages (topic, admitted_ms) WHERE state = 'admitted';

    CREATE TABLE notify_deliveries (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES notify_messages (id),
        topic TEXT NOT NULL,
        subscription TEXT NOT NULL,
        channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
        delivery_id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'folded')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        age_from_ms INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        delivered_at TEXT,
        last_attempt_at TEXT,
        last_error TEXT,
        last_status INTEGER
    );
    CREATE INDEX notify_deliveries_due ON notify_deliveries (next_attempt_ms) WHERE status = 'pending';
    CREATE INDEX notify_deliveries_status ON notify_deliveries (status, id);
    CREATE INDEX notify_deliveries_message ON notify_deliveries (message_id);
    "#,
    // 8: who changed what, provably. Policies record the actor (the API
    // token's name, the CLI's --actor) and the channel instead of a free-text
    // owner, why a broad policy was allowed and by whom, and the high-level
    // matches they suppressed. Remarks and assets get row ids and actors;
    // call records and samples get row ids, so the hash chain can seal each
    // of them; `changes` is the append-only log of every policy, remark and
    // asset change; notifications gain the `policy` kind. (Foreign keys are
    // off while migrations run: the rebuilt tables are checked at the end.)
    r#"
    ALTER TABLE allowlist RENAME COLUMN owner TO created_by;
    ALTER TABLE allowlist ADD COLUMN via TEXT NOT NULL DEFAULT 'unknown';
    ALTER TABLE allowlist ADD COLUMN broad TEXT;
    ALTER TABLE allowlist ADD COLUMN approved_by TEXT;
    ALTER TABLE allowlist ADD COLUMN high_hits INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE allowlist ADD COLUMN last_high_hit TEXT;

    CREATE TABLE remarks_new (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('key', 'ip')),
        value TEXT NOT NULL,
        remark TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL DEFAULT 'unknown',
        UNIQUE (kind, value)
    );
    INSERT INTO remarks_new (kind, value, remark, updated_at) SELECT kind, value, remark, updated_at FROM remarks ORDER BY kind, value;
    DROP TABLE remarks;
    ALTER TABLE remarks_new RENAME TO remarks;

    CREATE TABLE assets_new (
        id INTEGER PRIMARY KEY,
        cidr TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL DEFAULT 'unknown'
    );
    INSERT INTO assets_new (cidr, name, updated_at) SELECT cidr, name, updated_at FROM assets ORDER BY cidr;
    DROP TABLE assets;
    ALTER TABLE assets_new RENAME TO assets;

    CREATE TABLE alarm_calls_new (
        id INTEGER PRIMARY KEY,
        alarm_id INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
        source_ip TEXT NOT NULL,
        ip_kind TEXT NOT NULL,
        call_method TEXT NOT NULL,
        service TEXT NOT NULL,
        action TEXT NOT NULL,
        success_count INTEGER NOT NULL,
        failure_count INTEGER NOT NULL,
        first_call TEXT NOT NULL,
        last_call TEXT NOT NULL,
        UNIQUE (alarm_id, source_ip, call_method, service, action)
    );
    INSERT INTO alarm_calls_new (alarm_id, source_ip, ip_kind, call_method, service, action, success_count,
        failure_count, first_call, last_call)
        SELECT alarm_id, source_ip, ip_kind, call_method, service, action, success_count, failure_count,
        first_call, last_call FROM alarm_calls ORDER BY alarm_id, source_ip, call_method, service, action;
    DROP TABLE alarm_calls;
    ALTER TABLE alarm_calls_new RENAME TO alarm_calls;

    CREATE TABLE alarm_samples_new (
        id INTEGER PRIMARY KEY,
        alarm_id INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        event_time TEXT NOT NULL,
        origin TEXT NOT NULL,
        event TEXT NOT NULL,
        UNIQUE (alarm_id, seq)
    );
    INSERT INTO alarm_samples_new (alarm_id, seq, event_id, event_time, origin, event)
        SELECT alarm_id, seq, event_id, event_time, origin, event FROM alarm_samples ORDER BY alarm_id, seq;
    DROP TABLE alarm_samples;
    ALTER TABLE alarm_samples_new RENAME TO alarm_samples;

    CREATE TABLE changes (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        subject TEXT NOT NULL CHECK (subject IN ('policy', 'remark', 'asset')),
        subject_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );

    CREATE TABLE notify_messages_new (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        alarm_id INTEGER REFERENCES alarms (id),
        kind TEXT NOT NULL CHECK (kind IN ('opened', 'escalated', 'status', 'digest', 'policy')),
        detail TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL CHECK (state IN ('queued', 'admitted', 'folded')),
        digest_id INTEGER REFERENCES notify_messages (id),
        created_at TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        admitted_ms INTEGER
    );
    INSERT INTO notify_messages_new SELECT id, topic, alarm_id, kind, detail, state, digest_id, created_at, created_ms,
        admitted_ms FROM notify_messages;
    DROP TABLE notify_messages;
    ALTER TABLE notify_messages_new RENAME TO notify_messages;
    -- The engine applies a policy only while its row is what the chain last
    -- sealed; this partial index finds a policy's last link (and costs the
    -- other links nothing).
    CREATE INDEX chain_policies ON chain (ref_id, seq) WHERE kind = 'policy';
    CREATE INDEX notify_messages_queued ON notify_messages (id) WHERE state = 'queued';
    CREATE INDEX notify_messages_undigested ON notify_messages (topic, id) WHERE state = 'folded' AND digest_id IS NULL;
    CREATE INDEX notify_messages_admitted ON notify_messages (topic, admitted_ms) WHERE state = 'admitted';
    "#,
    // 9: file progress inside a container document that is split into
    //    records (a CloudTrail `Records` array): the array's depth (0: not
    //    in one), the line its document starts on, the next record's index.
    r#"
    ALTER TABLE source_files ADD COLUMN container_depth INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE source_files ADD COLUMN container_line INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE source_files ADD COLUMN container_index INTEGER NOT NULL DEFAULT 0;
    "#,
    // 10: when each long-term key was first seen from each address block
    //     (`new_address`), apart from the rules' first-seen tuples so one
    //     cannot crowd the other out of its bounded table.
    r#"
    CREATE TABLE state_addresses (
        key INTEGER PRIMARY KEY,
        first_ms INTEGER NOT NULL,
        touched_ms INTEGER NOT NULL
    );
    "#,
    // 11: notification messages of kind `operation` (one per match, for
    //     topics with `operation` in `on`).
    r#"
    CREATE TABLE notify_messages_new (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        alarm_id INTEGER REFERENCES alarms (id),
        kind TEXT NOT NULL CHECK (kind IN ('opened', 'escalated', 'status', 'digest', 'policy', 'operation')),
        detail TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL CHECK (state IN ('queued', 'admitted', 'folded')),
        digest_id INTEGER REFERENCES notify_messages (id),
        created_at TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        admitted_ms INTEGER
    );
    INSERT INTO notify_messages_new SELECT id, topic, alarm_id, kind, detail, state, digest_id, created_at, created_ms,
        admitted_ms FROM notify_messages;
    DROP TABLE notify_messages;
    ALTER TABLE notify_messages_new RENAME TO notify_messages;
    CREATE INDEX notify_messages_queued ON notify_messages (id) WHERE state = 'queued';
    CREATE INDEX notify_messages_undigested ON notify_messages (topic, id) WHERE state = 'folded' AND digest_id IS NULL;
    CREATE INDEX notify_messages_admitted ON notify_messages (topic, admitted_ms) WHERE state = 'admitted';

    -- Rule-set changes join the change log (`alarm::rule_changes`).
    CREATE TABLE changes_new (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        subject TEXT NOT NULL CHECK (subject IN ('policy', 'remark', 'asset', 'rules')),
        subject_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    INSERT INTO changes_new SELECT id, at, actor, via, subject, subject_id, action, detail FROM changes;
    DROP TABLE changes;
    ALTER TABLE changes_new RENAME TO changes;
    "#,
    // 12: the event store (`alarm::events`): every evaluated event, in
    //     compressed blocks of one transaction each, with each block's time
    //     range and a Bloom filter of its searchable terms. The data is in
    //     its own table, so a search reads the filters without the blocks.
    r#"
    CREATE TABLE event_blocks (
        id INTEGER PRIMARY KEY,
        min_time_ms INTEGER NOT NULL,
        max_time_ms INTEGER NOT NULL,
        events INTEGER NOT NULL,
        raw_bytes INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        bloom BLOB NOT NULL
    );
    CREATE INDEX event_blocks_time ON event_blocks (max_time_ms);
    CREATE TABLE event_block_data (
        id INTEGER PRIMARY KEY,
        data BLOB NOT NULL
    );
    "#,
    // 13: whether a key's last use came from the key inventory (`state
    //     import`) rather than an event, so `{key_idle}` can say so.
    r#"
    ALTER TABLE state_keys ADD COLUMN from_inventory INTEGER NOT NULL DEFAULT 0;
    "#,
    // 14: notification messages of kind `config` (protected configuration
    //     changed: policies, remarks, assets, the rule set).
    r#"
    CREATE TABLE notify_messages_new (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        alarm_id INTEGER REFERENCES alarms (id),
        kind TEXT NOT NULL CHECK (kind IN ('opened', 'escalated', 'status', 'digest', 'policy', 'operation', 'config')),
        detail TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL CHECK (state IN ('queued', 'admitted', 'folded')),
        digest_id INTEGER REFERENCES notify_messages (id),
        created_at TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        admitted_ms INTEGER
    );
    INSERT INTO notify_messages_new SELECT id, topic, alarm_id, kind, detail, state, digest_id, created_at, created_ms,
        admitted_ms FROM notify_messages;
    DROP TABLE notify_messages;
    ALTER TABLE notify_messages_new RENAME TO notify_messages;
    CREATE INDEX notify_messages_queued ON notify_messages (id) WHERE state = 'queued';
    CREATE INDEX notify_messages_undigested ON notify_messages (topic, id) WHERE state = 'folded' AND digest_id IS NULL;
    CREATE INDEX notify_messages_admitted ON notify_messages (topic, admitted_ms) WHERE state = 'admitted';
    "#,
    // 15: retention (`alarm::retention`). Where the chain starts once its
    //     oldest links are cut (one row per cut; `verify` starts at the
    //     last), a link lookup by row for every kind (the cut carries the
    //     last seal of rows still kept), and the indexes that deleting
    //     alarms, messages and dead letters by age needs (foreign-key checks
    //     included).
    r#"
    CREATE TABLE chain_checkpoints (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        at TEXT NOT NULL,
        links_cut INTEGER NOT NULL,
        links_carried INTEGER NOT NULL
    );
    DROP INDEX chain_policies;
    CREATE INDEX chain_rows ON chain (kind, ref_id, seq);
    CREATE INDEX notify_messages_alarm ON notify_messages (alarm_id);
    CREATE INDEX notify_messages_digest ON notify_messages (digest_id);
    CREATE INDEX dead_letters_received ON dead_letters (received_at);
    "#,
    // 16: the scope of each engine-state row and buffered event: '' here
    //     (one daemon per SQLite store); on a shared PostgreSQL store the
    //     Kafka partition the state moves with (`source::PartitionScope`).
    r#"
    ALTER TABLE state_keys ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    ALTER TABLE state_principals ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    ALTER TABLE state_first_seen ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    ALTER TABLE state_addresses ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    ALTER TABLE state_windows ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    ALTER TABLE state_distinct ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    ALTER TABLE pending_events ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    "#,
];

/// The migration that adds the hash chain: rows older than it are sealed
/// once when it runs.
pub const CHAIN_MIGRATION: usize = 4;
/// The migration after which the chain also seals policies, remarks, assets,
/// call records, samples and the change log: rows older than it are sealed
/// once when it runs.
pub const EVIDENCE_CHAIN_MIGRATION: usize = 8;

/// Bring the database to the latest version. Returns (from, to).
pub fn migrate(connection: &mut Connection) -> rusqlite::Result<(usize, usize)> {
    let current: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(current).unwrap_or(0);
    if current >= MIGRATIONS.len() {
        return Ok((current, MIGRATIONS.len()));
    }
    // Steps that rebuild a table (SQLite cannot change a constraint in place)
    // drop a table others reference: foreign keys are off while they run,
    // as SQLite's documented procedure says, and checked before each commit.
    let foreign_keys: i64 = connection.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    connection.pragma_update(None, "foreign_keys", "OFF")?;
    let result = migrate_steps(connection);
    connection.pragma_update(None, "foreign_keys", foreign_keys)?;
    let from = result?;
    Ok((from.unwrap_or(MIGRATIONS.len()), MIGRATIONS.len()))
}

/// Apply the missing steps, each in an immediate (write-locked) transaction
/// that reads the version again: two processes opening an old store at once
/// (the daemon starting while a command reads) take turns instead of both
/// running the same step. Rows that predate the chain, or the kinds a step
/// starts sealing, are sealed in the step's own transaction. Returns the
/// version this process started migrating from, if it migrated at all.
fn migrate_steps(connection: &mut Connection) -> rusqlite::Result<Option<usize>> {
    let mut from = None;
    loop {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let version = usize::try_from(version).unwrap_or(0);
        let Some(sql) = MIGRATIONS.get(version) else {
            transaction.commit()?;
            return Ok(from);
        };
        from.get_or_insert(version);
        transaction.execute_batch(sql)?;
        let violation: Option<String> = transaction
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()?;
        if let Some(table) = violation {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                Some(format!(
                    "migration {}: a foreign key in table {table} is broken",
                    version + 1
                )),
            ));
        }
        let at = crate::time::timestamp(chrono::Utc::now());
        let sealed = match version + 1 {
            CHAIN_MIGRATION => super::chain::seal_existing(&transaction, &super::chain::LinkKind::FIRST, &at)?,
            EVIDENCE_CHAIN_MIGRATION => {
                super::chain::seal_existing(&transaction, &super::chain::LinkKind::EVIDENCE, &at)?
            }
            _ => 0,
        };
        if sealed > 0 {
            tracing::info!(
                rows = sealed,
                migration = version + 1,
                "existing rows sealed into the hash chain"
            );
        }
        transaction.pragma_update(None, "user_version", (version + 1) as i64)?;
        transaction.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::chain::{self, LinkKind};
    use crate::alarm::store::{Store, StoreOptions};

    /// A store written by the version before the evidence migration (7
    /// steps, chain over alarms and transitions only) opens with every row
    /// kept, policies' owners become their creators, and everything the new
    /// chain covers is sealed so that `verify` passes — and then catches
    /// evidence deleted behind trailwarden's back.
    #[test]
    fn a_version_7_store_migrates_keeps_its_rows_and_seals_its_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut connection = Connection::open(&path).unwrap();
            for (index, sql) in MIGRATIONS[..7].iter().enumerate() {
                connection.execute_batch(sql).unwrap();
                connection
                    .pragma_update(None, "user_version", (index + 1) as i64)
                    .unwrap();
            }
            let transaction = connection.transaction().unwrap();
            transaction
                .execute_batch(
                    "INSERT INTO alarms (id, rule_id, rule_hash, level, title, group_key, provider, account_identity, \
                     principal_kind, first_seen, last_seen, count, sample_count, last_output, created_at, updated_at) \
                     VALUES (1, 'r', 'h', 'high', 't', 'g', 'aws', 'root', 'root', 'a', 'b', 2, 1, 'o', 'c', 'u');
                     INSERT INTO alarm_calls VALUES (1, '203.0.113.7', 'public', 'api', 'iam', 'CreateUser', 2, 0, 'a', 'b');
                     INSERT INTO alarm_samples VALUES (1, 0, 'e1', 'a', 'f:1', '{\"x\":1}');
                     INSERT INTO allowlist (access_key, owner, reason, created_at) VALUES ('AKIAEXAMPLE', 'secops', 'r', 'c');
                     INSERT INTO remarks VALUES ('ip', '203.0.113.7', 'office', 'c');
                     INSERT INTO assets VALUES ('10.0.0.0/8', 'dc', 'c');
                     INSERT INTO notify_messages (topic, alarm_id, kind, state, created_at, created_ms) \
                     VALUES ('soc', 1, 'opened', 'queued', 'c', 0);
                     INSERT INTO notify_deliveries (message_id, topic, subscription, channel, delivery_id, status, \
                     next_attempt_ms, age_from_ms, created_at) VALUES (1, 'soc', 's', 'webhook', 'tw-1', 'pending', 0, 0, 'c');",
                )
                .unwrap();
            chain::seal_existing(&transaction, &LinkKind::FIRST, "c").unwrap();
            transaction.commit().unwrap();
        }
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let connection = store.connection().unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        let foreign_keys: i64 = connection
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
            .unwrap();
        assert_eq!(foreign_keys, 1, "foreign keys are back on after migrating");
        let (created_by, via): (String, String) = connection
            .query_row("SELECT created_by, via FROM allowlist", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!((created_by.as_str(), via.as_str()), ("secops", "unknown"));
        let delivery: String = connection
            .query_row(
                "SELECT d.delivery_id FROM notify_deliveries d JOIN notify_messages m ON m.id = d.message_id",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(delivery, "tw-1");
        let report = store.verify_chain(None).unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(
            (
                report.alarms,
                report.calls,
                report.samples,
                report.policies,
                report.remarks,
                report.assets
            ),
            (1, 1, 1, 1, 1, 1)
        );
        connection.execute("DELETE FROM alarm_samples", []).unwrap();
        let report = store.verify_chain(None).unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|problem| problem.message == "sample event 1 was deleted (this link sealed it)"),
            "{:?}",
            report.problems
        );
    }

    /// Processes opening a new or old store at the same moment (the daemon
    /// starting while a command reads) take turns migrating it: none fails
    /// on a step another has already applied.
    #[test]
    fn stores_opened_at_once_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("racy.db");
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Store::open(&path, StoreOptions::default()).map(|_| ()))
            })
            .collect();
        for opener in openers {
            let outcome = opener.join().unwrap();
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let version: i64 = store
            .connection()
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        assert!(store.verify_chain(None).unwrap().ok());
    }
}
