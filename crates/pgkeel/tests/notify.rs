//! Alert delivery against a real local HTTP receiver: alerts are sent when they appear and when
//! they resolve (never again while they stay), info never pages, a 500 is retried, the Slack
//! message carries the text, and an unreachable receiver neither crashes nor blocks.

use std::time::Duration;

mod support;

use pgkeel::monitor::notify::{AlertTargets, Notifier};
use pgkeel::report::{Finding, Severity};
use support::receiver;

fn finding(id: &str, severity: Severity, object: &str) -> Finding {
    let mut f = Finding::new(id, severity, object, format!("{id} on {object}"));
    f.fix = Some(format!("fix {id}"));
    f
}

#[tokio::test]
async fn alerts_are_sent_when_they_appear_and_resolve_with_a_retry_after_a_500() {
    // The first request (the JSON webhook's) fails with 500 and is retried.
    let (port, got) = receiver(vec![500]).await;
    let targets = AlertTargets {
        webhook: Some(format!("http://127.0.0.1:{port}/hook").parse().unwrap()),
        slack: None,
    };
    let n = Notifier::new(targets, "postgresql://app:***@db:5432/app")
        .unwrap()
        .with_backoff(Duration::from_millis(50));
    let a = finding("connections-high", Severity::Critical, "db");
    let b = finding("lock-wait", Severity::Warning, "pid 7");
    let c = finding("cache-hit-low", Severity::Info, "db");

    let sent = n.observe(&[a.clone(), b.clone(), c.clone()]).unwrap();
    let ids: Vec<&str> = sent.firing.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["connections-high", "lock-wait"], "info never pages");
    n.flush(Duration::from_secs(10)).await;
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2, "one failed try, one retry: {got:?}");
        assert!(got.iter().all(|(p, _)| p == "/hook"));
        let doc: serde_json::Value = serde_json::from_str(&got[1].1).unwrap();
        assert_eq!(doc["source"], "pgkeel");
        assert_eq!(doc["database"], "postgresql://app:***@db:5432/app");
        assert_eq!(doc["firing"][0]["id"], "connections-high");
        assert_eq!(doc["firing"][0]["severity"], "critical");
        assert_eq!(doc["firing"][0]["fix"], "fix connections-high");
        assert_eq!(doc["active"], 2);
        assert_eq!(doc["resolved"], serde_json::json!([]));
    }
    // The same alerts again (messages may change, e.g. an age): nothing is sent.
    let mut b2 = b.clone();
    b2.message = "waiting longer now".into();
    assert!(n.observe(&[a.clone(), b2, c.clone()]).is_none());
    // One resolves, then the other.
    let sent = n.observe(std::slice::from_ref(&b)).unwrap();
    assert!(sent.firing.is_empty());
    assert_eq!(sent.resolved[0].id, "connections-high");
    let sent = n.observe(&[]).unwrap();
    assert_eq!(sent.resolved[0].id, "lock-wait");
    assert_eq!(sent.active, 0);
    n.flush(Duration::from_secs(10)).await;
    assert_eq!(got.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn slack_gets_a_text_message_and_a_dead_receiver_neither_crashes_nor_blocks() {
    let (port, got) = receiver(vec![]).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // nothing listens there once the listener is dropped
    let targets = AlertTargets {
        webhook: Some(format!("http://127.0.0.1:{dead}/hook").parse().unwrap()),
        slack: Some(
            format!("http://127.0.0.1:{port}/services/T0/B0/SECRET")
                .parse()
                .unwrap(),
        ),
    };
    let n = Notifier::new(targets, "db")
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    n.observe(&[finding("migration-failed", Severity::Critical, "0003_x")]);
    let started = std::time::Instant::now();
    n.flush(Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let doc: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    let text = doc["text"].as_str().unwrap();
    assert!(
        text.contains("CRITICAL") && text.contains("migration-failed"),
        "{text}"
    );
    assert!(text.contains("fix: `fix migration-failed`"), "{text}");
}
