//! Commands valid in any state (RFC 9051 §6.1) and the session-wide settings:
//! CAPABILITY, LOGOUT, ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342).

use crate::error::CommandError;
use crate::proto::response::{self, Code, Status, string_text};
use crate::session::{CommandResult, Completion, Session, State};

/// RFC 2971 §3.3 allows a server to say as much or as little as it likes; we say what we are.
const SERVER_NAME: &str = "letterbox";

impl Session {
    /// What this session can do now (RFC 9051 §7.2.2). Only what works is listed.
    pub(crate) fn capabilities(&self) -> String {
        let mut caps: Vec<String> = vec!["IMAP4rev1".into(), "IMAP4rev2".into()];
        if matches!(self.state, State::NotAuthenticated { .. }) {
            if self.starttls_available() {
                caps.push("STARTTLS".into());
            }
            if self.login_allowed() {
                caps.push("AUTH=PLAIN".into());
            } else {
                caps.push("LOGINDISABLED".into());
            }
        }
        caps.extend(
            [
                "SASL-IR",
                "LITERAL+",
                "ENABLE",
                "IDLE",
                "NAMESPACE",
                "ID",
                "UIDPLUS",
                "MOVE",
                "UNSELECT",
                "CHILDREN",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "SPECIAL-USE",
                "CREATE-SPECIAL-USE",
                "ESEARCH",
                "SEARCHRES",
                "BINARY",
                "STATUS=SIZE",
                "UTF8=ACCEPT",
                "CONDSTORE",
                "QRESYNC",
                "WITHIN",
                "SORT",
                // RFC 5957 §1 and RFC 5267 §3.
                "SORT=DISPLAY",
                "ESORT",
                // RFC 5267 §4.1 and RFC 9394 §3.
                "CONTEXT=SEARCH",
                "CONTEXT=SORT",
                "PARTIAL",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "COMPRESS=DEFLATE",
                "MULTIAPPEND",
                // RFC 4469 §4.
                "CATENATE",
                // RFC 8970 §3 and RFC 8514 §4.1.
                "PREVIEW",
                "SAVEDATE",
                // RFC 8474 §3.
                "OBJECTID",
                // RFC 5464 §1: "A server that supports both server and mailbox
                // annotations indicates the presence of this extension by returning
                // "METADATA"" (METADATA-SERVER is for servers with server annotations
                // only).
                "METADATA",
                // RFC 5465 §3.
                "NOTIFY",
                // RFC 4467 (Abstract): "An IMAP server that supports this extension indicates
                // this with a capability name of "URLAUTH"" (INTERNAL mechanism only).
                "URLAUTH",
            ]
            .map(String::from),
        );
        caps.push(format!(
            "APPENDLIMIT={}",
            self.server.config.max_message_size
        ));
        caps.join(" ")
    }

    pub(crate) fn capability(&mut self) -> CommandResult {
        let line = format!("CAPABILITY {}", self.capabilities());
        response::untagged(&mut self.conn.out, &line);
        Ok(Completion::ok("CAPABILITY completed"))
    }

    /// RFC 9051 §6.1.3: BYE, then the tagged OK, then the connection closes.
    pub(crate) fn logout(&mut self) -> CommandResult {
        response::bye(&mut self.conn.out, "Logging out");
        self.state = State::Logout;
        Ok(Completion::ok("LOGOUT completed"))
    }

    /// RFC 2971 §3.1: `id-response = "ID" SP id-params-list`.
    pub(crate) fn id(&mut self, params: Vec<(String, Option<String>)>) -> CommandResult {
        let client: Vec<String> = params
            .iter()
            .filter(|(field, _)| {
                field.eq_ignore_ascii_case("name") || field.eq_ignore_ascii_case("version")
            })
            .map(|(field, value)| format!("{field}={}", value.as_deref().unwrap_or("NIL")))
            .collect();
        if !client.is_empty() {
            tracing::debug!(client = client.join(" "), "client ID");
        }
        let line = format!(
            "ID (\"name\" {} \"version\" {})",
            string_text(SERVER_NAME, false),
            string_text(env!("CARGO_PKG_VERSION"), false)
        );
        response::untagged(&mut self.conn.out, &line);
        Ok(Completion::ok("ID completed"))
    }

    /// RFC 5161 §3.1: `* ENABLED` lists what was newly turned on; unknown names are ignored.
    pub(crate) fn enable(&mut self, capabilities: Vec<String>) -> CommandResult {
        let mut enabled = Vec::new();
        for capability in capabilities {
            if capability.eq_ignore_ascii_case("IMAP4rev2") && !self.enabled.rev2 {
                self.enabled.rev2 = true;
                enabled.push("IMAP4rev2");
            } else if capability.eq_ignore_ascii_case("UTF8=ACCEPT") && !self.enabled.utf8 {
                self.enabled.utf8 = true;
                enabled.push("UTF8=ACCEPT");
            } else if capability.eq_ignore_ascii_case("CONDSTORE") && !self.enabled.condstore {
                self.enabled.condstore = true;
                enabled.push("CONDSTORE");
            } else if capability.eq_ignore_ascii_case("QRESYNC") && !self.enabled.qresync {
                // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                self.enabled.qresync = true;
                self.enabled.condstore = true;
                enabled.push("QRESYNC");
            }
        }
        let mut line = String::from("ENABLED");
        for name in enabled {
            line.push(' ');
            line.push_str(name);
        }
        response::untagged(&mut self.conn.out, &line);
        Ok(Completion::ok("ENABLE completed"))
    }

    /// RFC 4978 §3: `COMPRESS DEFLATE`; the tagged OK is the last uncompressed octet
    /// each way.
    pub(crate) async fn compress(&mut self, algorithm: &str) -> CommandResult {
        if algorithm != "DEFLATE" {
            return Err(CommandError::bad("Unknown compression algorithm"));
        }
        if self.conn.is_compressed() {
            return Err(CommandError::no(
                Some(Code::CompressionActive),
                "Compression is already on",
            ));
        }
        let tag = std::mem::take(&mut self.tag);
        response::tagged(&mut self.conn.out, &tag, Status::Ok, None, "DEFLATE active");
        self.conn.start_compression().await?;
        Ok(Completion::Sent)
    }

    /// RFC 2342 §5: one personal namespace, no shared or other users' namespaces.
    pub(crate) fn namespace(&mut self) -> CommandResult {
        let delimiter = storage::MAILBOX_DELIMITER;
        response::untagged(
            &mut self.conn.out,
            &format!("NAMESPACE ((\"\" \"{delimiter}\")) NIL NIL"),
        );
        Ok(Completion::ok("NAMESPACE completed"))
    }
}
