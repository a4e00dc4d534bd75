//! Two IMAP sessions (async-imap, a Rust client nobody here wrote) on one mailbox: a
//! delivery or a change in one reaches the other at NOOP and during IDLE, and sequence
//! numbers are renumbered correctly after an expunge.

mod common;

use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use common::{TestServer, async_imap_login};
use futures::TryStreamExt;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use tokio::net::TcpStream;

type Session = async_imap::Session<TcpStream>;

async fn deliver(server: &TestServer, subject: &str) {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port("smtp"))
        .tls(Tls::None)
        .build();
    let message = Message::builder()
        .from("sender@example.net".parse().expect("from"))
        .to(server.email.parse().expect("to"))
        .subject(subject)
        .body(format!("{subject}\r\n"))
        .expect("message");
    transport.send(message).await.expect("deliver");
}

/// What the server told `session` with the answer to a NOOP.
async fn noop(session: &mut Session) -> Vec<UnsolicitedResponse> {
    session.noop().await.expect("noop");
    drain(session)
}

fn drain(session: &mut Session) -> Vec<UnsolicitedResponse> {
    let mut responses = Vec::new();
    while let Ok(response) = session.unsolicited_responses.try_recv() {
        responses.push(response);
    }
    responses
}

async fn uids(session: &mut Session, set: &str) -> Vec<(u32, u32)> {
    let fetches: Vec<_> = common::all(session.fetch(set, "UID"), "fetch").await;
    fetches
        .iter()
        .map(|f| (f.message, f.uid.expect("uid")))
        .collect()
}

#[tokio::test]
async fn idle_sees_a_delivery_and_noop_sees_flags_and_expunges() {
    let server = TestServer::start();
    let mut watcher = async_imap_login(&server).await;
    let mailbox = watcher.select("INBOX").await.expect("select");
    assert_eq!(mailbox.exists, 0);

    // IDLE: the delivery arrives as EXISTS without the client asking.
    let mut idle = watcher.idle();
    idle.init().await.expect("idle");
    let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(20));
    let (outcome, ()) = tokio::join!(wait, deliver(&server, "during idle"));
    let seen = match outcome.expect("idle result") {
        IdleResponse::NewData(data) => format!("{:?}", data.parsed()),
        other => format!("{other:?}"),
    };
    assert!(seen.contains("Exists(1)"), "IDLE got {seen}");
    let mut watcher = idle.done().await.expect("done");

    let mut actor = async_imap_login(&server).await;
    actor.select("INBOX").await.expect("select");
    for n in 2..=4 {
        deliver(&server, &format!("message {n}")).await;
    }
    let _: Vec<_> = common::all(actor.store("1", "+FLAGS (\\Flagged)"), "store").await;

    let responses = noop(&mut watcher).await;
    assert!(
        responses.contains(&UnsolicitedResponse::Exists(4)),
        "no EXISTS 4 at NOOP: {responses:?}"
    );
    assert!(
        format!("{responses:?}").contains("Flagged"),
        "the other session's flag change was not reported: {responses:?}"
    );

    // The actor expunges message 2; the watcher hears EXPUNGE 2 and renumbers.
    assert_eq!(delete_and_expunge(&mut actor, "2").await, vec![2]);
    let responses = noop(&mut watcher).await;
    assert!(
        responses.contains(&UnsolicitedResponse::Expunge(2)),
        "no EXPUNGE 2 at NOOP: {responses:?}"
    );
    assert_eq!(
        uids(&mut watcher, "1:*").await,
        vec![(1, 1), (2, 3), (3, 4)]
    );
    watcher.logout().await.expect("logout");
    actor.logout().await.expect("logout");
}

/// RFC 9051 §7.5.1 and §7.3.1: when an expunge elsewhere and a new message reach a
/// session at the same NOOP, it hears the EXPUNGE and then an EXISTS that counts the new
/// message; its count must not stay at the number before the arrival.
#[tokio::test]
async fn an_expunge_and_an_arrival_together_are_both_told() {
    let server = TestServer::start();
    for n in 1..=2 {
        deliver(&server, &format!("message {n}")).await;
    }
    let mut watcher = async_imap_login(&server).await;
    assert_eq!(watcher.select("INBOX").await.expect("select").exists, 2);
    let mut actor = async_imap_login(&server).await;
    actor.select("INBOX").await.expect("select");
    assert_eq!(delete_and_expunge(&mut actor, "1").await, vec![1]);
    deliver(&server, "message 3").await;

    let responses = noop(&mut watcher).await;
    let position = |wanted: UnsolicitedResponse| responses.iter().position(|r| *r == wanted);
    let expunge = position(UnsolicitedResponse::Expunge(1));
    let exists = position(UnsolicitedResponse::Exists(2));
    assert!(
        matches!((expunge, exists), (Some(e), Some(x)) if e < x),
        "want EXPUNGE 1 then EXISTS 2: {responses:?}"
    );
    assert_eq!(uids(&mut watcher, "1:*").await, vec![(1, 2), (2, 3)]);
    watcher.logout().await.expect("logout");
    actor.logout().await.expect("logout");
}

/// Sets \Deleted on `set` and expunges; returns the sequence numbers the EXPUNGE told.
async fn delete_and_expunge(session: &mut Session, set: &str) -> Vec<u32> {
    let _: Vec<_> = common::all(session.store(set, "+FLAGS.SILENT (\\Deleted)"), "store").await;
    session
        .expunge()
        .await
        .expect("expunge")
        .try_collect()
        .await
        .expect("expunge stream")
}
