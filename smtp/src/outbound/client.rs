//! The SMTP client side of one delivery: connect to one address, EHLO, STARTTLS when
//! offered, negotiate SIZE / 8BITMIME / SMTPUTF8 / DSN, and carry one transaction
//! (MAIL, RCPT per recipient, DATA), giving a result per recipient.
//!
//! Wire I/O and reply parsing are mail-send's (`SmtpClient`, over smtp-proto's parser);
//! we write the commands ourselves so every parameter is the one we negotiated, and the
//! DATA content too: mail-send's `data()` adds a CRLF before the final dot even when the
//! message already ends with one, which would change the message.

use super::config::{OutboundConfig, RelayTls};
use super::dns::{Host, HostKind};
use mail_send::SmtpClient;
use smtp_proto::{
    EXT_8BIT_MIME, EXT_DSN, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse, Response,
};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use storage::QueuedRecipient;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One transaction to carry.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub mail_from: &'a str,
    pub recipients: &'a [QueuedRecipient],
    /// RFC 3461 RET and ENVID as stored (ENVID in xtext).
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    /// The message as it goes on the wire (before dot-stuffing).
    pub message: &'a [u8],
}

/// A reply from the remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    pub code: u16,
    /// RFC 3463 enhanced status, when the server gave one.
    pub status: Option<String>,
    pub text: String,
}

impl RemoteReply {
    fn from_response(response: &Response<String>) -> RemoteReply {
        let [class, subject, detail] = response.esc;
        RemoteReply {
            code: response.code,
            status: (class != 0).then(|| format!("{class}.{subject}.{detail}")),
            // Replies are read from the network: keep them to one printable line.
            text: response
                .message
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_REPLY_TEXT)
                .collect(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl fmt::Display for RemoteReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            Some(status) => write!(f, "{} {} {}", self.code, status, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// Longest reply text kept for logs and DSNs (RFC 5321 §4.5.3.1.5: reply lines are at
/// most 512 octets).
const MAX_REPLY_TEXT: usize = 512;

/// Why a recipient was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub permanent: bool,
    /// RFC 3463 status for the DSN, e.g. `5.1.1`.
    pub status: String,
    /// The host that answered, for the DSN's Remote-MTA.
    pub remote_mta: Option<String>,
    /// The remote reply, for the DSN's Diagnostic-Code.
    pub reply: Option<Box<RemoteReply>>,
    /// One line for logs and `last_error`.
    pub reason: String,
}

impl Failure {
    pub fn local(permanent: bool, status: &str, reason: impl Into<String>) -> Failure {
        Failure {
            permanent,
            status: status.to_owned(),
            remote_mta: None,
            reply: None,
            reason: reason.into(),
        }
    }

    fn remote(host: &Host, reply: RemoteReply) -> Failure {
        let permanent = reply.is_permanent();
        let status = reply
            .status
            .clone()
            .unwrap_or_else(|| if permanent { "5.0.0" } else { "4.0.0" }.to_owned());
        Failure {
            permanent,
            status,
            remote_mta: Some(host.name.clone()),
            reason: format!("{} said: {reply}", host.name),
            reply: Some(Box::new(reply)),
        }
    }
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    Delivered,
    Failed(Failure),
}

/// Everything a client session needs besides the envelope.
#[derive(Clone)]
pub struct ClientSettings {
    /// Our name in EHLO.
    pub helo: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub relay_tls: RelayTls,
    pub relay_credentials: Option<(String, String)>,
    /// Opportunistic TLS: any certificate is accepted (RFC 7435: encryption without
    /// authentication beats plain text; an attacker who can strip STARTTLS gains nothing
    /// from a certificate check we would have to skip anyway).
    pub opportunistic_tls: TlsConnector,
    /// For the relay: the certificate is checked against the web PKI roots.
    pub verified_tls: TlsConnector,
}

impl ClientSettings {
    pub fn new(helo: String, config: &OutboundConfig) -> ClientSettings {
        ClientSettings {
            helo,
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            command_timeout: Duration::from_secs(config.command_timeout_secs),
            relay_tls: config.relay_tls,
            relay_credentials: config.relay_username.clone().zip(
                config
                    .relay_password
                    .as_ref()
                    .map(|p| p.expose().to_owned()),
            ),
            opportunistic_tls: mail_send::smtp::tls::build_tls_connector(true),
            verified_tls: mail_send::smtp::tls::build_tls_connector(false),
        }
    }
}

/// RFC 5321 §4.5.3.2.6: up to 10 minutes for the reply to the end of DATA.
const DATA_END_TIMEOUT_FACTOR: u32 = 2;

/// Carries `envelope` to `address` of `host`. `Err` is a failure of the host (no
/// connection, bad greeting, TLS or protocol error): the caller tries the next one.
/// `Ok` has one result per recipient, in order.
pub async fn deliver(
    settings: &ClientSettings,
    host: &Host,
    address: SocketAddr,
    envelope: Envelope<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let unreachable = |reason: String| Failure {
        permanent: false,
        status: "4.4.1".to_owned(),
        remote_mta: Some(host.name.clone()),
        reply: None,
        reason: format!("{} ({address}): {reason}", host.name),
    };
    let tcp =
        match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(unreachable(format!("connect failed: {error}"))),
            Err(_) => return Err(unreachable("connect timed out".into())),
        };
    let _ = tcp.set_nodelay(true);
    let mut client = SmtpClient {
        stream: tcp,
        timeout: settings.command_timeout,
    };
    let relay = host.kind == HostKind::Relay;
    if relay && settings.relay_tls == RelayTls::Implicit {
        // RFC 8314 §3: TLS first, then the greeting.
        let mut client = client
            .into_tls(&settings.verified_tls, &host.name)
            .await
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        greeting(&mut client, settings).await.map_err(unreachable)?;
        let capabilities = ehlo(&mut client, settings).await.map_err(unreachable)?;
        return session(&mut client, settings, host, &capabilities, envelope, true).await;
    }
    greeting(&mut client, settings).await.map_err(unreachable)?;
    let capabilities = ehlo(&mut client, settings).await.map_err(unreachable)?;
    let offers_tls = capabilities.has_capability(EXT_START_TLS);
    let wants_tls = if relay {
        settings.relay_tls == RelayTls::Starttls
    } else {
        // RFC 3207: use STARTTLS whenever the server offers it.
        offers_tls
    };
    if !wants_tls {
        return session(&mut client, settings, host, &capabilities, envelope, false).await;
    }
    if !offers_tls {
        return Err(unreachable("the relay does not offer STARTTLS".into()));
    }
    let connector = if relay {
        &settings.verified_tls
    } else {
        &settings.opportunistic_tls
    };
    let mut client = client
        .start_tls(connector, &host.name)
        .await
        .map_err(|e| unreachable(format!("STARTTLS: {e}")))?;
    // RFC 3207 §4.2: forget what was learnt before TLS and ask again.
    let capabilities = ehlo(&mut client, settings).await.map_err(unreachable)?;
    session(&mut client, settings, host, &capabilities, envelope, true).await
}

async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    settings: &ClientSettings,
) -> Result<(), String> {
    let reply = tokio::time::timeout(settings.command_timeout, client.read())
        .await
        .map_err(|_| "no greeting".to_owned())?
        .map_err(|e| format!("greeting: {e}"))?;
    if reply.is_positive_completion() {
        Ok(())
    } else {
        // RFC 5321 §3.1: a 554 (or 4xx) greeting means no service here; try elsewhere.
        Err(format!(
            "greeting refused: {}",
            RemoteReply::from_response(&reply)
        ))
    }
}

async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    settings: &ClientSettings,
) -> Result<EhloResponse<String>, String> {
    client.ehlo(&settings.helo).await.map_err(|e| match e {
        mail_send::Error::UnexpectedReply(reply) => {
            format!("EHLO refused: {}", RemoteReply::from_response(&reply))
        }
        other => format!("EHLO: {other}"),
    })
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    settings: &ClientSettings,
    host: &Host,
    capabilities: &EhloResponse<String>,
    envelope: Envelope<'_>,
    tls: bool,
) -> Result<Vec<RecipientResult>, Failure> {
    if host.kind == HostKind::Relay
        && let Some((username, password)) = &settings.relay_credentials
    {
        let credentials = mail_send::Credentials::new(username.clone(), password.clone());
        if let Err(error) = client.authenticate(&credentials, capabilities).await {
            return Err(Failure::local(
                false,
                "4.7.0",
                format!("{}: AUTH failed: {error}", host.name),
            ));
        }
    }
    let result = transaction(client, settings, host, capabilities, envelope).await;
    if result.is_ok() {
        // RFC 5321 §4.1.1.10: end politely; the outcome is already known.
        let _ = tokio::time::timeout(settings.command_timeout, client.cmd(b"QUIT\r\n")).await;
    }
    let _ = client.stream.shutdown().await;
    tracing::debug!(host = %host.name, tls, "outbound session done");
    result
}

async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    settings: &ClientSettings,
    host: &Host,
    capabilities: &EhloResponse<String>,
    envelope: Envelope<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let all = |failure: Failure| -> Vec<RecipientResult> {
        envelope
            .recipients
            .iter()
            .map(|_| RecipientResult::Failed(failure.clone()))
            .collect()
    };
    let needs = Needs::of(&envelope);
    // RFC 1870 §6.1: do not send what the server has said it will not take.
    if capabilities.has_capability(EXT_SIZE)
        && capabilities.size > 0
        && envelope.message.len() > capabilities.size
    {
        return Ok(all(Failure::local(
            true,
            "5.3.4",
            format!(
                "{} takes at most {} bytes; the message has {}",
                host.name,
                capabilities.size,
                envelope.message.len()
            ),
        )));
    }
    // RFC 6531 §3.2: a message that needs SMTPUTF8 must not go to a server without it;
    // it is returned to its sender.
    if needs.smtputf8 && !capabilities.has_capability(EXT_SMTP_UTF8) {
        return Ok(all(Failure::local(
            true,
            "5.6.7",
            format!(
                "{} does not support SMTPUTF8 (RFC 6531), which this message needs (non-ASCII addresses or headers)",
                host.name
            ),
        )));
    }
    // RFC 6152 §3: 8-bit content goes only to a server that announced 8BITMIME.
    if needs.eight_bit && !capabilities.has_capability(EXT_8BIT_MIME) {
        return Ok(all(Failure::local(
            true,
            "5.6.3",
            format!(
                "{} does not support 8BITMIME (RFC 6152), which this message needs",
                host.name
            ),
        )));
    }
    let dsn = capabilities.has_capability(EXT_DSN);
    let mut mail = format!("MAIL FROM:<{}>", envelope.mail_from);
    if capabilities.has_capability(EXT_SIZE) {
        mail.push_str(&format!(" SIZE={}", envelope.message.len()));
    }
    if needs.eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    if needs.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    if dsn {
        // RFC 3461 §4.3, §4.4: pass the sender's DSN request on.
        if let Some(ret) = envelope.ret {
            mail.push_str(&format!(" RET={ret}"));
        }
        if let Some(envid) = envelope.envid {
            mail.push_str(&format!(" ENVID={envid}"));
        }
    }
    mail.push_str("\r\n");
    let reply = command(client, host, mail.as_bytes()).await?;
    if !reply.is_positive_completion() {
        return Ok(all(Failure::remote(
            host,
            RemoteReply::from_response(&reply),
        )));
    }
    let mut results: Vec<Option<RecipientResult>> = Vec::with_capacity(envelope.recipients.len());
    for recipient in envelope.recipients {
        let mut rcpt = format!("RCPT TO:<{}>", recipient.address);
        if dsn {
            // RFC 3461 §4.1, §4.2.
            if !recipient.notify.is_empty() {
                rcpt.push_str(&format!(" NOTIFY={}", recipient.notify.join(",")));
            }
            if let Some(orcpt) = &recipient.orcpt {
                rcpt.push_str(&format!(" ORCPT={orcpt}"));
            }
        }
        rcpt.push_str("\r\n");
        let reply = command(client, host, rcpt.as_bytes()).await?;
        results.push(if reply.is_positive_completion() {
            None
        } else {
            Some(RecipientResult::Failed(Failure::remote(
                host,
                RemoteReply::from_response(&reply),
            )))
        });
    }
    let accepted = results.iter().filter(|r| r.is_none()).count();
    if accepted == 0 {
        let _ = command(client, host, b"RSET\r\n").await;
        return Ok(results.into_iter().flatten().collect());
    }
    let reply = command(client, host, b"DATA\r\n").await?;
    let outcome = if reply.code == 354 {
        let content = dot_stuff(envelope.message);
        let written = async {
            client.stream.write_all(&content).await?;
            client.stream.flush().await
        };
        match tokio::time::timeout(settings.command_timeout, written).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(host_failure(host, format!("sending DATA: {error}"))),
            Err(_) => return Err(host_failure(host, "sending DATA timed out".into())),
        }
        let end = tokio::time::timeout(
            settings.command_timeout * DATA_END_TIMEOUT_FACTOR,
            client.read(),
        )
        .await;
        let reply = match end {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => return Err(host_failure(host, format!("after DATA: {error}"))),
            Err(_) => return Err(host_failure(host, "no reply after DATA".into())),
        };
        if reply.is_positive_completion() {
            RecipientResult::Delivered
        } else {
            RecipientResult::Failed(Failure::remote(host, RemoteReply::from_response(&reply)))
        }
    } else {
        RecipientResult::Failed(Failure::remote(host, RemoteReply::from_response(&reply)))
    };
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| outcome.clone()))
        .collect())
}

fn host_failure(host: &Host, reason: String) -> Failure {
    Failure {
        permanent: false,
        status: "4.4.2".to_owned(),
        remote_mta: Some(host.name.clone()),
        reply: None,
        reason: format!("{}: {reason}", host.name),
    }
}

/// Sends one command and reads its reply; an I/O error or timeout fails the host.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    host: &Host,
    line: &[u8],
) -> Result<Response<String>, Failure> {
    let verb = String::from_utf8_lossy(
        line.split(|&b| b == b' ' || b == b'\r')
            .next()
            .unwrap_or_default(),
    )
    .into_owned();
    client
        .cmd(line)
        .await
        .map_err(|error| host_failure(host, format!("{verb}: {error}")))
}

/// What the message asks of the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// RFC 6531: non-ASCII in an address or in the header section (RFC 6532).
    pub smtputf8: bool,
    /// RFC 6152: octets over 127 anywhere.
    pub eight_bit: bool,
}

impl Needs {
    pub fn of(envelope: &Envelope<'_>) -> Needs {
        let header_end = envelope
            .message
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(envelope.message.len());
        let headers = envelope.message.get(..header_end).unwrap_or_default();
        let smtputf8 = !envelope.mail_from.is_ascii()
            || envelope.recipients.iter().any(|r| !r.address.is_ascii())
            || !headers.is_ascii();
        Needs {
            smtputf8,
            eight_bit: !envelope.message.is_ascii(),
        }
    }
}

/// RFC 5321 §4.5.2 transparency: a line that starts with `.` gets one more; the content
/// ends with CRLF and then `.` CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// RFC 5321 §4.4: `Return-Path:` is added by final delivery; a copy stored by local
/// delivery may carry one, which must not be relayed. Removes leading ones (with any
/// folded continuation lines).
pub fn strip_return_path(message: &[u8]) -> &[u8] {
    let mut rest = message;
    while rest
        .get(..12)
        .is_some_and(|name| name.eq_ignore_ascii_case(b"Return-Path:"))
    {
        let mut end = 0;
        loop {
            let tail = rest.get(end..).unwrap_or_default();
            match tail.iter().position(|&b| b == b'\n') {
                Some(newline) => end += newline + 1,
                // A header section that is only a Return-Path: nothing is left.
                None => return &[],
            }
            if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        rest = rest.get(end..).unwrap_or_default();
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_keeps_the_message() {
        assert_eq!(
            dot_stuff(b"A: b\r\n\r\n.hi\r\n"),
            b"A: b\r\n\r\n..hi\r\n.\r\n"
        );
        assert_eq!(
            dot_stuff(b"A: b\r\n\r\nno end"),
            b"A: b\r\n\r\nno end\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
    }

    #[test]
    fn return_path_is_stripped_only_at_the_top() {
        assert_eq!(
            strip_return_path(b"Return-Path: <a@b>\r\nReceived: x\r\n\r\nbody"),
            b"Received: x\r\n\r\nbody"
        );
        assert_eq!(
            strip_return_path(b"return-path:\r\n <a@b>\r\nSubject: s\r\n\r\n"),
            b"Subject: s\r\n\r\n"
        );
        let kept = b"Subject: s\r\nReturn-Path: <a@b>\r\n\r\n";
        assert_eq!(strip_return_path(kept), kept);
    }

    #[test]
    fn needs_smtputf8_for_utf8_headers_not_for_8bit_body() {
        let recipients = [QueuedRecipient {
            address: "a@example.net".into(),
            ..Default::default()
        }];
        let envelope = |message: &'static [u8]| Envelope {
            mail_from: "me@example.org",
            recipients: &recipients,
            ret: None,
            envid: None,
            message,
        };
        let body_only = Needs::of(&envelope("Subject: x\r\n\r\nGrüße\r\n".as_bytes()));
        assert_eq!(
            body_only,
            Needs {
                smtputf8: false,
                eight_bit: true
            }
        );
        let header = Needs::of(&envelope("Subject: Grüße\r\n\r\nhi\r\n".as_bytes()));
        assert!(header.smtputf8);
    }
}
