//! `letterbox serve`: open storage, make the first account on a new installation, bind
//! every listener, and run until SIGTERM or Ctrl-C, then let in-flight work finish.

use crate::config::{ChallengeKind, Config};
use crate::data_dir::open_store;
use anyhow::{Context, Result};
use netutil::{AuthThrottle, ConnectionLimiter, ListenerShared, Shutdown, tls_acceptor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use storage::{Domain, Store, generate_password};
use tokio::net::TcpListener;

/// How long shutdown waits for sessions and deliveries in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Port 25 keeps 1/10 of `limits.max_connections` that other listeners cannot take: mail
/// from the internet must keep arriving while clients (or someone posing as many) hold
/// the rest, and a tenth is far more than the MTAs sending to one server at once.
const INBOUND_RESERVED_SHARE: usize = 10;
/// Delay added per recent failed login from one address.
const AUTH_FAILURE_STEP: Duration = Duration::from_millis(500);

pub async fn run(config: Config) -> Result<()> {
    let shutdown = Shutdown::new();
    // First, so that nothing recorded from here on is lost.
    let metrics = crate::http::install_metrics(&shutdown)?;
    let store = open_store(&config).await?;
    // Deliveries leave the full-text index to it, on both backends
    // (storage/src/fulltext/indexer.rs).
    store.start_fulltext_indexer();

    // With `[acme]`, the certificate it got on an earlier run; until there is one, the
    // `[tls]` files or the self-signed certificate.
    let acme_files = crate::acme::Files::new(&config.data_dir);
    let acme_kept = config
        .acme
        .as_ref()
        .and_then(|_| crate::acme::Acme::kept_certificate(&acme_files));
    let (cert, key) = match &acme_kept {
        Some(kept) => (Some(kept.as_path()), Some(kept.as_path())),
        None => (config.tls.cert.as_deref(), config.tls.key.as_deref()),
    };
    let (tls_config, certificate) =
        crate::tls::server_config(cert, key, &config.hostname, &config.data_dir)?;
    let tls = tls_acceptor(tls_config);
    // From here on SIGHUP reads the certificate again instead of ending the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    shutdown.tracker.spawn(crate::tls::watch(
        certificate.clone(),
        hangup,
        shutdown.token.clone(),
    ));
    let connections = ConnectionLimiter::new(
        config.limits.max_connections,
        config.limits.max_connections_per_ip,
    );
    let auth_throttle = AuthThrottle::with_max_in_flight(
        config.limits.max_auth_failures,
        Duration::from_secs(config.limits.auth_failure_window_secs),
        AUTH_FAILURE_STEP,
        config.limits.max_auth_in_flight_per_ip,
    );
    // Every front end serves the same certificate, counts the same failed logins (one
    // password, one throttle; each with its protocol's label) and stops on one signal.
    let shared = |protocol: &'static str, connections: ConnectionLimiter| ListenerShared {
        tls: Some(tls.clone()),
        connections,
        auth_throttle: auth_throttle.for_protocol(protocol),
        shutdown: shutdown.clone(),
    };

    let mail_auth = smtp::mailauth::InboundAuth {
        config: config.inbound.clone(),
        resolver: smtp::mailauth::AuthResolver::new(&config.dns)
            .map_err(|e| anyhow::anyhow!("key `dns`: {e}"))?,
    };
    let mut smtp_config = smtp::SmtpConfig::new(config.hostname.clone());
    smtp_config.max_message_size = config.limits.max_message_size;
    smtp_config.max_recipients = config.limits.max_recipients;
    smtp_config.submission = config.submission.clone();
    // One budget for the content of every SMTP listener (see smtp::budget).
    let data_budget = smtp::budget::DataBudget::new(config.limits.smtp_data_in_flight());
    let smtp_server = smtp::SmtpServer {
        config: Arc::new(smtp_config),
        store: store.clone(),
        net: shared("smtp", connections.clone()),
        mail_auth: Some(Arc::new(mail_auth)),
        data_budget,
    };
    let imap_server = imap::ImapServer {
        config: Arc::new(imap::ImapConfig {
            max_message_size: config.limits.max_message_size,
            ..imap::ImapConfig::default()
        }),
        store: store.clone(),
        net: shared("imap", connections.clone()),
    };
    let managesieve_server = managesieve::ManageSieveServer {
        config: Arc::new(managesieve::ManageSieveConfig {
            hostname: config.hostname.clone(),
            ..managesieve::ManageSieveConfig::default()
        }),
        store: store.clone(),
        net: shared("managesieve", connections.for_listener("managesieve")),
    };

    // The outbound queue: delivers what submission queued, retries, bounces.
    let queue_worker = smtp::queue::QueueWorker::new(
        store.clone(),
        node_name(&config.data_dir)?,
        config.hostname.clone(),
        config.outbound.clone(),
        smtp::mailauth::KeyRing::from_dir(smtp::mailauth::keys::key_dir(&config.data_dir)),
        shutdown.clone(),
    );
    shutdown.tracker.spawn(queue_worker.run());

    // Port 25 counts each address's connections apart from the other listeners: an
    // address holding all its IMAP (or submission, or HTTP) slots can still hand us mail,
    // and mail senders cannot use up the slots of a user's clients either. Of the total
    // (`limits.max_connections`), a share is port 25's alone.
    let inbound_connections =
        connections.with_own_pool(config.limits.max_connections / INBOUND_RESERVED_SHARE);
    let mut bound: Vec<(&str, SocketAddr)> = Vec::new();
    let smtp_roles = [
        ("smtp", &config.listen.smtp, smtp::ListenerRole::Inbound),
        (
            "submission",
            &config.listen.submission,
            smtp::ListenerRole::Submission,
        ),
        (
            "submissions",
            &config.listen.submissions,
            smtp::ListenerRole::Submissions,
        ),
    ];
    for (name, addresses, role) in smtp_roles {
        let pool = match role {
            smtp::ListenerRole::Inbound => &inbound_connections,
            smtp::ListenerRole::Submission | smtp::ListenerRole::Submissions => &connections,
        };
        let smtp_server = smtp::SmtpServer {
            net: smtp_server.net.with_connections(pool.for_listener(name)),
            ..smtp_server.clone()
        };
        listen(name, addresses, &mut bound, &shutdown, |listener| {
            let server = smtp_server.clone();
            async move { server.serve(listener, role).await }
        })
        .await?;
    }
    let imap_roles = [
        ("imap", &config.listen.imap, imap::ListenerRole::Imap),
        ("imaps", &config.listen.imaps, imap::ListenerRole::Imaps),
    ];
    for (name, addresses, role) in imap_roles {
        let imap_server = imap::ImapServer {
            net: imap_server
                .net
                .with_connections(connections.for_listener(name)),
            ..imap_server.clone()
        };
        listen(name, addresses, &mut bound, &shutdown, |listener| {
            let server = imap_server.clone();
            async move { server.serve(listener, role).await }
        })
        .await?;
    }

    let managesieve = &config.listen.managesieve;
    listen(
        "managesieve",
        managesieve,
        &mut bound,
        &shutdown,
        |listener| {
            let server = managesieve_server.clone();
            async move { server.serve(listener).await }
        },
    )
    .await?;

    // HTTP last: its documents name the ports the mail listeners got.
    let challenges = Arc::new(crate::acme::Challenges::default());
    let http_router = crate::http::router(crate::http::HttpState {
        store: store.clone(),
        hostname: config.hostname.as_str().into(),
        services: crate::services::offered_at(&bound).into(),
        metrics,
        acme: challenges.clone(),
    });
    // HTTPS: the same router over TLS, and ACME's TLS-ALPN-01 answers (RFC 8737).
    let https_tls = tls_acceptor(crate::tls::config_with_resolver(
        Arc::new(crate::acme::HttpsResolver {
            challenges: challenges.clone(),
            certificate: certificate.clone(),
        }),
        vec![
            crate::acme::ACME_TLS_ALPN.to_vec(),
            crate::http::HTTP1_ALPN.to_vec(),
        ],
    )?);
    let web_listeners = [
        ("http", &config.listen.http, None),
        ("https", &config.listen.https, Some(https_tls)),
    ];
    for (name, addresses, tls) in web_listeners {
        let pool = connections.for_listener(name);
        for address in addresses {
            let listener = bind(name, *address).await?;
            bound.push((name, listener.local_addr()?));
            shutdown.tracker.spawn(crate::http::serve(
                listener,
                http_router.clone(),
                pool.clone(),
                shutdown.clone(),
                tls.clone(),
            ));
        }
    }

    // The first account is made only now that every listener is bound: a start that
    // fails to bind (a port in use) must not make an account whose password it never
    // prints; the next start that binds makes it and shows it.
    let first_account = first_run(&store, &config).await?;
    // ACME once the listeners that answer its challenges are bound and the first
    // domain exists (its autoconfig names are in the certificate).
    if let Some(acme) = &config.acme {
        let answerable = [
            (ChallengeKind::TlsAlpn01, "https"),
            (ChallengeKind::Http01, "http"),
        ]
        .into_iter()
        .filter(|(kind, listener)| {
            acme.challenge.is_none_or(|only| only == *kind)
                && bound.iter().any(|(name, _)| name == listener)
        })
        .map(|(kind, _)| kind)
        .collect();
        let task = crate::acme::Acme {
            config: acme.clone(),
            hostname: config.hostname.clone(),
            files: acme_files,
            store: store.clone(),
            challenges,
            certificate,
            answerable,
        };
        shutdown.tracker.spawn(task.run(shutdown.token.clone()));
    }
    // Handlers first, then `ready`: a SIGTERM right after `ready` must be a clean stop.
    let signals = ShutdownSignals::install()?;
    print_welcome(&config, &bound, first_account.as_ref());
    // One machine-readable line per listener, for scripts and tests that bind port 0.
    for (name, address) in &bound {
        println!("listening {name} {address}");
    }
    println!("ready");

    signals.wait().await?;
    tracing::info!("shutting down; waiting for sessions and deliveries in flight");
    if tokio::time::timeout(SHUTDOWN_GRACE, shutdown.shutdown_and_wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; exiting with sessions still open");
    }
    drop(store);
    Ok(())
}

/// Binds listener `name` on each of `addresses`, notes the address it got in `bound`,
/// and runs `serve` on it as a task that shutdown waits for.
async fn listen<'a, F, Fut>(
    name: &'a str,
    addresses: &[SocketAddr],
    bound: &mut Vec<(&'a str, SocketAddr)>,
    shutdown: &Shutdown,
    serve: F,
) -> Result<()>
where
    F: Fn(TcpListener) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    for address in addresses {
        let listener = bind(name, *address).await?;
        bound.push((name, listener.local_addr()?));
        shutdown.tracker.spawn(serve(listener));
    }
    Ok(())
}

async fn bind(name: &str, address: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for {name} on {address} (key `listen.{name}`)"))
}

/// On a store with no accounts: adds the host name as a domain and makes `you@<hostname>`
/// with a generated password, returned so it can be printed once.
async fn first_run(store: &Store, config: &Config) -> Result<Option<(String, String)>> {
    if !store.list_accounts().await?.is_empty() {
        return Ok(None);
    }
    let hostname = Domain::new(config.hostname.trim())?;
    if !store.is_local_domain(&hostname).await? {
        match store.add_domain(&hostname).await {
            // Another node sharing this PostgreSQL made it at the same moment.
            Ok(()) | Err(storage::StoreError::AlreadyExists(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let email = format!("you@{}", config.hostname);
    let password = generate_password();
    match store.add_account(&email, &password).await {
        Ok(_) => {}
        // Another node sharing this PostgreSQL made it at the same moment.
        Err(storage::StoreError::AlreadyExists(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    tracing::info!(%email, "created the first account");
    Ok(Some((email, password.expose().to_owned())))
}

/// This node's name, the holder of its outbound queue leases (see smtp::queue): the
/// machine's host name and the absolute data directory. It stays the same across restarts,
/// so a node taking up again takes back at once the leases it left when it died, and it
/// differs between nodes sharing one PostgreSQL even when their data directories were
/// copied from one another (a name kept in a file there would be copied with them).
fn node_name(data_dir: &std::path::Path) -> Result<String> {
    // Linux; elsewhere the data directory alone tells the nodes of one host apart.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    let data_dir = std::fs::canonicalize(data_dir)
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    Ok(format!("{host}:{}", data_dir.display()))
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from the moment they are installed.
struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(mut self) -> Result<()> {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        Ok(())
    }
}

fn print_welcome(
    config: &Config,
    bound: &[(&str, SocketAddr)],
    first_account: Option<&(String, String)>,
) {
    let port = |name: &str| {
        bound
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.port())
    };
    let host = &config.hostname;
    println!(
        "letterbox is running for {host} (data in {})",
        config.data_dir.display()
    );
    if let Some((email, password)) = first_account {
        println!();
        println!("First account created. Type this into your mail client:");
        println!("  Email address:   {email}");
        println!("  Password:        {password}");
        println!("  (shown only now; change it with `letterbox user passwd {email}`)");
    }
    println!();
    println!("Mail client settings (user name = the full email address):");
    // Each listener that is bound, with how a client reaches it.
    let settings = [
        ("imaps", "  Incoming IMAP:   ", ", SSL/TLS"),
        ("imap", "                   or ", ", STARTTLS"),
        ("submissions", "  Outgoing SMTP:   ", ", SSL/TLS"),
        ("submission", "                   or ", ", STARTTLS"),
        ("smtp", "  Inbound MX:      ", " (mail from other servers)"),
        (
            "managesieve",
            "  Sieve filters:   ",
            ", ManageSieve with STARTTLS",
        ),
    ];
    for (listener, label, how) in settings {
        if let Some(p) = port(listener) {
            println!("{label}{host} port {p}{how}");
        }
    }
    let example = first_account.map_or_else(|| format!("you@{host}"), |(email, _)| email.clone());
    let autoconfig_path =
        format!("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={example}");
    // The HTTPS listener (autoconfig for clients that insist on TLS, and ACME's
    // TLS-ALPN-01) first when there is one, then plain HTTP.
    let autoconfig_urls = [("https", port("https")), ("http", port("http"))]
        .into_iter()
        .filter_map(|(scheme, p)| Some(format!("{scheme}://{host}:{}{autoconfig_path}", p?)));
    for (index, url) in autoconfig_urls.enumerate() {
        let label = if index == 0 {
            "  Autoconfig:      "
        } else {
            "                   or "
        };
        println!("{label}{url}");
    }
    if let Some(acme) = &config.acme {
        println!(
            "  The TLS certificate comes from {} (ACME), renewed automatically;",
            acme.directory
        );
        let meanwhile = if config.tls.cert.is_some() {
            "the [tls] certificate"
        } else {
            "a self-signed one"
        };
        println!("  until the first arrives, {meanwhile} is served.");
    } else if config.tls.cert.is_none() {
        println!(
            "  The TLS certificate is self-signed ({}):",
            config.data_dir.join("tls-selfsigned-cert.pem").display()
        );
        println!("  accept it once in your client, or make your system trust that file.");
    }
    println!();
}
