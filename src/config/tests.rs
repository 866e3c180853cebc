use super::*;

#[test]
fn the_shipped_default_is_valid() {
    let settings = Settings::from_toml("default", DEFAULT_CONFIG, false).unwrap();
    assert_eq!(settings.rules.timezone, chrono_tz::Asia::Shanghai);
    assert_eq!(settings.files.paths, vec![PathBuf::from("examples")]);
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let error = Settings::from_toml("x.toml", "[store]\npaht = \"a\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("x.toml") && error.contains("paht"), "{error}");
    let error = Settings::from_toml("x.toml", "[rules]\ntimezone = \"Mars/Base\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("rules.timezone") && error.contains("Mars/Base"),
        "{error}"
    );
    let error = Settings::from_toml("x.toml", "[api]\ntimezone = \"Mars/Base\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("api.timezone") && error.contains("Mars/Base"), "{error}");
    // The console's zone follows the rules' unless set.
    let settings = Settings::from_toml("x.toml", "[rules]\ntimezone = \"Europe/Berlin\"\n", false).unwrap();
    assert_eq!(settings.api.timezone, chrono_tz::Europe::Berlin);
    let error = Settings::from_toml("x.toml", "[source.files]\npoll_interval = \"soon\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("poll_interval"), "{error}");
}

#[test]
fn kafka_settings_are_validated_and_properties_pass_through() {
    let text = "[source]\nkind = \"kafka\"\n[source.kafka]\nbrokers = \"k1:9092\"\ntopics = [\"audit\"]\n\
                [source.kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n";
    let settings = Settings::from_toml("k.toml", text, false).unwrap();
    assert_eq!(settings.source, SourceKind::Kafka);
    assert_eq!(settings.kafka.topics, vec!["audit".to_string()]);
    assert_eq!(settings.kafka.start, StartPosition::Earliest);
    assert_eq!(
        settings.kafka.properties.get("security.protocol").map(String::as_str),
        Some("SASL_SSL")
    );
    assert_eq!(
        settings.kafka.properties.get("sasl.mechanism").map(String::as_str),
        Some("SCRAM-SHA-512")
    );
    let error = Settings::from_toml("k.toml", "[source]\nkind = \"kafka\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("k.toml") && error.contains("source.kafka.brokers"),
        "{error}"
    );
    let error = Settings::from_toml("k.toml", "[source]\nkind = \"kinesis\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("source.kind") && error.contains("kinesis"), "{error}");
    let error = Settings::from_toml("k.toml", "[source.kafka.properties]\n\"group.id\" = \"x\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("group.id"), "{error}");
}

#[test]
fn activity_and_trace_settings_are_validated() {
    let settings = Settings::from_toml("default", DEFAULT_CONFIG, false).unwrap();
    assert!(settings.activity.enabled && settings.traces.enabled);
    assert_eq!(settings.traces.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(settings.traces.rule_tag, "sec09-03");
    let settings = Settings::from_toml(
        "t.toml",
        "[traces]\nretention = \"2d\"\n[activity]\nenabled = false\n",
        false,
    )
    .unwrap();
    assert_eq!(settings.traces.retention, Duration::from_secs(2 * 86_400));
    assert!(!settings.activity.enabled);
    for (text, key) in [
        ("[traces]\nretention = \"forever\"\n", "traces.retention"),
        ("[traces]\nretention = \"10s\"\n", "traces.retention"),
        ("[traces]\nprune_every = \"8d\"\n", "traces.prune_every"),
        ("[traces]\nrule_tag = \" \"\n", "traces.rule_tag"),
        ("[traces]\nretension = \"7d\"\n", "retension"),
        ("[activity]\nenable = true\n", "enable"),
    ] {
        let error = Settings::from_toml("t.toml", text, false).unwrap_err().to_string();
        assert!(error.contains("t.toml") && error.contains(key), "{text}: {error}");
    }
}

#[test]
fn retention_settings_have_shipped_defaults_off_and_named_errors() {
    let settings = Settings::from_toml("default", DEFAULT_CONFIG, false).unwrap();
    assert!(settings.retention.enabled);
    assert_eq!(settings.retention.interval, Duration::from_secs(3_600));
    assert_eq!(
        settings.retention.policy,
        crate::alarm::retention::RetentionPolicy::default()
    );
    let settings = Settings::from_toml(
        "r.toml",
        "[retention]\nprocessed_alarms = \"90d\"\nchain = \"off\"\nbatch_rows = 50\ninterval = \"10m\"\n",
        false,
    )
    .unwrap();
    let policy = &settings.retention.policy;
    assert_eq!(policy.processed_alarms, Some(Duration::from_secs(90 * 86_400)));
    assert_eq!(policy.chain, None);
    assert_eq!(
        policy.dead_letters,
        Some(Duration::from_secs(90 * 86_400)),
        "others keep their defaults"
    );
    assert_eq!(
        (policy.batch_rows, settings.retention.interval),
        (50, Duration::from_secs(600))
    );
    for (text, key) in [
        ("[retention]\nsamples = \"a year\"\n", "retention.samples"),
        ("[retention]\ndead_letters = \"5m\"\n", "retention.dead_letters"),
        ("[retention]\nbatch_rows = 1\n", "retention.batch_rows"),
        ("[retention]\ninterval = \"0s\"\n", "retention.interval"),
        ("[retention]\nalarms = \"30d\"\n", "alarms"),
    ] {
        let error = Settings::from_toml("r.toml", text, false).unwrap_err().to_string();
        assert!(error.contains("r.toml") && error.contains(key), "{text}: {error}");
    }
}

#[test]
fn api_settings_are_validated_with_named_keys() {
    let settings = Settings::from_toml("default", DEFAULT_CONFIG, false).unwrap();
    assert!(settings.api.enabled);
    assert_eq!(settings.api.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.api.body_limit, 65536);
    assert!(settings.api.tokens.is_empty());
    let hash = "a".repeat(64);
    let text = format!(
        "[api]\nbind = \"0.0.0.0:9000\"\npublic_url = \"https://tw.example.com/\"\n[[api.tokens]]\nname = \"alice\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n"
    );
    let settings = Settings::from_toml("a.toml", &text, false).unwrap();
    assert_eq!(settings.api.public_url.as_deref(), Some("https://tw.example.com"));
    assert_eq!(settings.api.tokens.len(), 1);
    assert_eq!(settings.api.tokens[0].role, Role::Operator);
    assert_eq!(settings.api.tokens[0].sha256, [0xaa; 32]);
    for (text, key) in [
        ("[api]\nbind = \"localhost\"\n".to_string(), "api.bind"),
        ("[api]\nbody_limit = 10\n".to_string(), "api.body_limit"),
        ("[api]\npublic_url = \"tw.example.com\"\n".to_string(), "api.public_url"),
        (
            format!("[[api.tokens]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"{hash}\"\n"),
            "api.tokens[0].role",
        ),
        (
            "[[api.tokens]]\nname = \"a\"\nrole = \"admin\"\nsha256 = \"abc\"\n".to_string(),
            "api.tokens[0].sha256",
        ),
        (
            format!("[[api.tokens]]\nrole = \"admin\"\nsha256 = \"{hash}\"\n"),
            "api.tokens[0].name",
        ),
        ("[api]\nbnid = \"x\"\n".to_string(), "bnid"),
    ] {
        let error = Settings::from_toml("a.toml", &text, false).unwrap_err().to_string();
        assert!(error.contains("a.toml") && error.contains(key), "{text}: {error}");
    }
}

#[test]
fn a_misspelt_log_level_is_refused_with_the_levels_and_the_syntax() {
    for level in ["warnn", "inof", "trailwarden=verbose", ""] {
        let text = format!("[log]\nlevel = \"{level}\"\n");
        let error = Settings::from_toml("l.toml", &text, false).unwrap_err().to_string();
        assert!(
            error.contains("l.toml") && error.contains("log.level") && error.contains(&format!("\"{level}\"")),
            "{level}: {error}"
        );
        assert!(
            error.contains("off, error, warn, info, debug, trace") && error.contains("target=level"),
            "{level}: {error}"
        );
    }
    for level in [
        "warn",
        "INFO",
        "info,trailwarden::pipeline=debug",
        "off",
        "trailwarden=trace",
    ] {
        let text = format!("[log]\nlevel = \"{level}\"\n");
        assert!(Settings::from_toml("l.toml", &text, false).is_ok(), "{level}");
    }
    assert!(check_log_filter("warn,trailwarden[batch{id=1}]=debug").is_ok());
}

fn variables(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
fn environment_mistakes_are_blamed_on_the_variable_not_the_file() {
    let error = |pairs: &[(&str, &str)]| {
        Settings::from_sources("c.toml", "[store]\npath = \"a.db\"\n", &variables(pairs))
            .unwrap_err()
            .to_string()
    };
    let unknown = error(&[("TRAILWARDEN__STORE__PAHT", "x")]);
    assert!(
        unknown.contains("environment variable TRAILWARDEN__STORE__PAHT") && unknown.contains("paht"),
        "{unknown}"
    );
    assert!(!unknown.contains("c.toml"), "{unknown}");
    let section = error(&[("TRAILWARDEN__STOR__PATH", "x")]);
    assert!(section.contains("TRAILWARDEN__STOR__PATH"), "{section}");
    let wrong_type = error(&[("TRAILWARDEN__PIPELINE__BATCH_EVENTS", "many")]);
    assert!(
        wrong_type.contains("TRAILWARDEN__PIPELINE__BATCH_EVENTS"),
        "{wrong_type}"
    );
    let zero = error(&[
        ("TRAILWARDEN__LOG__LEVEL", "info"),
        ("TRAILWARDEN__PIPELINE__BATCH_EVENTS", "0"),
    ]);
    assert!(
        zero.contains("environment variable TRAILWARDEN__PIPELINE__BATCH_EVENTS")
            && zero.contains("`pipeline.batch_events` = 0"),
        "{zero}"
    );
    let level = error(&[("trailwarden__log__level", "warnn")]);
    assert!(
        level.contains("environment variable trailwarden__log__level"),
        "{level}"
    );
    // The file's own mistakes stay the file's, even with variables set.
    let error = Settings::from_sources(
        "c.toml",
        "[pipeline]\nbatch_events = 0\n",
        &variables(&[("TRAILWARDEN__STORE__PATH", "b.db")]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.starts_with("configuration c.toml:"), "{error}");
    let settings = Settings::from_sources(
        "c.toml",
        "",
        &variables(&[
            ("TRAILWARDEN__STORE__PATH", "b.db"),
            ("TRAILWARDEN__RULES__DISABLED", "a,b"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.store.path, PathBuf::from("b.db"));
    assert_eq!(settings.rules.disabled, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn transactions_grow_to_four_times_batch_events_unless_set() {
    let settings = Settings::from_toml("n.toml", "[pipeline]\nbatch_events = 300\n", false).unwrap();
    assert_eq!(settings.pipeline.max_transaction_events, 1200);
    let text = "[pipeline]\nbatch_events = 300\nmax_transaction_events = 300\n";
    let settings = Settings::from_toml("n.toml", text, false).unwrap();
    assert_eq!(settings.pipeline.max_transaction_events, 300);
}

#[test]
fn a_store_url_takes_the_files_place_and_must_be_postgresql() {
    let text = "[store]\nurl = \"postgres://tw:secret@db.example/tw\"\n";
    let settings = Settings::from_toml("n.toml", text, false).unwrap();
    assert_eq!(
        settings.store.path,
        std::path::PathBuf::from("postgres://tw:secret@db.example/tw")
    );
    assert!(settings.store.backup.is_none(), "no file backups of a PostgreSQL store");
    let error = Settings::from_toml("n.toml", "[store]\nurl = \"mysql://tw:secret@db/tw\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(error.contains("store.url"), "{error}");
    assert!(!error.contains("secret"), "{error}");
}

#[test]
fn zero_and_too_small_numbers_are_refused_by_key() {
    for (text, key) in [
        ("[pipeline]\nbatch_events = 0\n", "pipeline.batch_events"),
        (
            "[pipeline]\nbatch_events = 500\nmax_transaction_events = 499\n",
            "pipeline.max_transaction_events",
        ),
        ("[pipeline]\nchannel_batches = 0\n", "pipeline.channel_batches"),
        ("[pipeline]\nmax_buffered_events = 0\n", "pipeline.max_buffered_events"),
        ("[pipeline]\nshutdown_deadline = \"0s\"\n", "pipeline.shutdown_deadline"),
        ("[state]\nmax_entries = 5\n", "state.max_entries"),
        ("[state]\nkey_ttl = \"0s\"\n", "state.key_ttl"),
        ("[state]\nprincipal_ttl = \"0s\"\n", "state.principal_ttl"),
        ("[state]\nfirst_seen_ttl = \"0s\"\n", "state.first_seen_ttl"),
        ("[source.files]\npoll_interval = \"0s\"\n", "source.files.poll_interval"),
        ("[source.kafka]\nbatch_messages = 0\n", "source.kafka.batch_messages"),
        ("[source.kafka]\nbatch_wait = \"0ms\"\n", "source.kafka.batch_wait"),
        (
            "[source.kafka]\nrebalance_timeout = \"0s\"\n",
            "source.kafka.rebalance_timeout",
        ),
        ("[store]\nchain_log_interval = \"0s\"\n", "store.chain_log_interval"),
        ("[store.backup]\ndir = \"b\"\nkeep = 0\n", "store.backup.keep"),
        (
            "[store.backup]\ndir = \"b\"\ninterval = \"0s\"\n",
            "store.backup.interval",
        ),
    ] {
        let error = Settings::from_toml("n.toml", text, false).unwrap_err().to_string();
        assert!(
            error.contains("n.toml") && error.contains(&format!("`{key}`")) && error.contains("must be"),
            "{text}: {error}"
        );
    }
    // Zero stays valid where it means something.
    let settings = Settings::from_toml(
        "n.toml",
        "[pipeline]\nstore_retries = 0\nmax_hold = \"0s\"\nallowed_lateness = \"0s\"\n[source.files]\nsettle = \"0s\"\n[store]\nsamples_per_alarm = 0\n",
        false,
    )
    .unwrap();
    assert_eq!(settings.pipeline.store_retries, 0);
    assert_eq!(settings.store.samples_per_alarm, 0);
}

#[test]
fn offsets() {
    assert_eq!(parse_offset("+08:00"), FixedOffset::east_opt(8 * 3600));
    assert_eq!(parse_offset("-05:30"), FixedOffset::east_opt(-(5 * 3600 + 1800)));
    assert_eq!(parse_offset("8"), None);
}

#[test]
fn object_store_buckets_are_validated() {
    let text = "[store]\npath = \"data/tw.db\"\n[source]\nkind = \"object_store\"\n\
                [[source.object_store.buckets]]\nbucket = \"cts-traces\"\nprefix = \"/CloudTraces/\"\n\
                endpoint = \"https://obs.cn-north-4.myhuaweicloud.com\"\nvirtual_hosted_style = true\n";
    let settings = Settings::from_toml("o.toml", text, false).unwrap();
    assert_eq!(settings.source, SourceKind::ObjectStore);
    let bucket = &settings.object_store.buckets[0];
    assert_eq!(
        (bucket.bucket.as_str(), bucket.prefix.as_str()),
        ("cts-traces", "CloudTraces/")
    );
    assert!(bucket.virtual_hosted_style);
    assert!(!bucket.verify_digests);
    assert!(settings.object_store.public_keys.is_none());
    assert!(settings.object_store.notifications.is_none());
    assert_eq!(settings.object_store.spool_dir, PathBuf::from("data/tw.db.spool"));
    assert_eq!(settings.object_store.poll_interval, Duration::from_secs(60));
    for (text, words) in [
        ("[source]\nkind = \"object_store\"\n", &["object_store", "buckets"][..]),
        (
            "[source]\nkind = \"object_store\"\n[[source.object_store.buckets]]\nbucket = \"a/b\"\n",
            &["bucket", "a/b", "prefix"],
        ),
        (
            "[source]\nkind = \"object_store\"\n[[source.object_store.buckets]]\nbucket = \"a\"\nendpoint = \"obs.example.com\"\n",
            &["endpoint", "https://"],
        ),
        (
            "[source]\nkind = \"object_store\"\n[[source.object_store.buckets]]\nbucket = \"a\"\naccess_key_id = \"x\"\n",
            &["secret_access_key"],
        ),
        ("[source]\nkind = \"s3\"\n", &["source.kind", "object_store"]),
        (
            "[source.object_store.notifications]\ntopics = [\"bucket-events\"]\n",
            &["source.object_store.notifications", "brokers"],
        ),
        (
            "[source.object_store.notifications]\nbrokers = \"k:9092\"\n",
            &["source.object_store.notifications", "topics"],
        ),
        (
            "[source.object_store.notifications]\nbrokers = \"k:9092\"\ntopics = [\"t\"]\n[source.object_store.notifications.properties]\n\"group.id\" = \"x\"\n",
            &["group.id", "group_id"],
        ),
        (
            "[source.object_store]\ncloudtrail_public_keys = \"no/such/keys.json\"\n",
            &["source.object_store.cloudtrail_public_keys", "no/such/keys.json"],
        ),
    ] {
        let error = Settings::from_toml("o.toml", text, false).unwrap_err().to_string();
        for word in words {
            assert!(error.contains(word), "{word:?} not in {error}");
        }
    }
}

#[test]
fn digest_verification_takes_the_public_keys_of_list_public_keys() {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/integrity/public-keys.json");
    let text = format!(
        "[source]\nkind = \"object_store\"\n[source.object_store]\ncloudtrail_public_keys = \"{}\"\n\
         [[source.object_store.buckets]]\nbucket = \"org-trails\"\nverify_digests = true\n",
        keys.display()
    );
    let settings = Settings::from_toml("o.toml", &text, false).unwrap();
    assert!(settings.object_store.buckets[0].verify_digests);
    assert_eq!(
        settings.object_store.public_keys.as_ref().map(|keys| keys.len()),
        Some(1)
    );
}
