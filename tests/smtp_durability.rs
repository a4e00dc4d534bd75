//! Nothing acknowledged with 250 is lost: SIGKILL the server in the middle of many
//! concurrent deliveries, restart it, and find every acknowledged message exactly once.

mod common;

use common::{TestServer, inbox_messages};
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const MESSAGES: usize = 400;
const CONCURRENT_CLIENTS: usize = 32;
/// Kill once this many deliveries have been acknowledged: the rest are in flight.
const KILL_AFTER_ACKS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_deliveries_loses_nothing_acknowledged() {
    let mut server = TestServer::start();
    let port = server.port("smtp");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let ack_count = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let kill_now = Arc::new(tokio::sync::Notify::new());
    let mut clients = Vec::new();
    for _ in 0..CONCURRENT_CLIENTS {
        let (acked, ack_count, next, kill_now) = (
            acked.clone(),
            ack_count.clone(),
            next.clone(),
            kill_now.clone(),
        );
        clients.push(tokio::spawn(async move {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(port)
                .tls(Tls::None)
                .build();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= MESSAGES {
                    return;
                }
                let message = Message::builder()
                    .from("sender@example.net".parse().expect("from"))
                    .to("you@localhost".parse().expect("to"))
                    .subject(format!("durability {n}"))
                    .body(format!("message number {n}\r\n"))
                    .expect("message");
                match transport.send(message).await {
                    Ok(response) if response.code().to_string() == "250" => {
                        acked.lock().expect("lock").push(n);
                        if ack_count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER_ACKS {
                            kill_now.notify_one();
                        }
                    }
                    // After the kill every send fails: those were never acknowledged.
                    _ => {}
                }
            }
        }));
    }
    kill_now.notified().await;
    server.kill9();
    for client in clients {
        client.await.expect("client task");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= KILL_AFTER_ACKS);
    assert!(
        acked.len() < MESSAGES,
        "every message finished before the kill; the test proved nothing"
    );

    server.launch();
    let stored = inbox_messages(&server, "you@localhost").await;
    let mut copies: HashMap<usize, usize> = HashMap::new();
    for raw in &stored {
        let text = String::from_utf8_lossy(raw);
        let n: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: durability "))
            .expect("subject")
            .trim()
            .parse()
            .expect("number");
        *copies.entry(n).or_default() += 1;
    }
    for n in &acked {
        assert_eq!(
            copies.get(n),
            Some(&1),
            "acknowledged message {n} stored {:?} times",
            copies.get(n)
        );
    }
    assert!(
        copies.values().all(|&c| c == 1),
        "a message was stored twice"
    );
}
