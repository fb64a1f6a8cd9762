//! Scratch databases a killed pgkeel left behind are dropped by a later run, and nothing else:
//! not a young one, not one with a session connected, not one named otherwise.

mod support;

use pgkeel::db::Target;

#[tokio::test]
async fn stale_scratch_databases_are_dropped_and_nothing_else() {
    let admin = Target::from_settings(&support::settings_for(&support::admin_url())).unwrap();
    let client = admin.connect().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tag: String = (0..5)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let stale = format!("pgkeel_scratch_{}_stale{tag}", now - 7200);
    let young = format!("pgkeel_scratch_{now}_young{tag}");
    let held = format!("pgkeel_scratch_{}_held{tag}x", now - 7200);
    let other = format!("pgkeel_scratch_other{tag}");
    for db in [&stale, &young, &held, &other] {
        client
            .batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .await
            .unwrap();
    }
    // A session stays connected to `held`, as a running pgkeel test's would.
    let held_client = admin.with_dbname(&held).connect().await.unwrap();

    pgkeel::scratch::drop_stale(&admin).await;

    let exists = |name: String| {
        let c = &client;
        async move {
            c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .unwrap()
                .is_some()
        }
    };
    let left = (
        exists(stale.clone()).await,
        exists(young.clone()).await,
        exists(held.clone()).await,
        exists(other.clone()).await,
    );
    drop(held_client);
    for db in [&young, &held, &other] {
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .await;
    }
    assert_eq!(
        left,
        (false, true, true, true),
        "(stale, young, held, other) still there"
    );
}
