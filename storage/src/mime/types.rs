//! What is stored of a message's structure: the meta kept as JSON beside its raw bytes.

use crate::rfc5322::EnvelopeAddress;
use serde::{Deserialize, Serialize};

/// Everything computed at delivery, stored as JSON beside the raw message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub envelope: Envelope,
    pub root: BodyPart,
    /// Top-level header fields in order: name as written, value decoded (RFC 2047).
    pub headers: Vec<(String, String)>,
    /// Top-level header fields in order as written, unfolded (see
    /// [`unfolded_fields`]): what SEARCH HEADER, FROM, SUBJECT, ... match besides
    /// the decoded values. Missing in meta stored before it existed; `Store::open` fills it in.
    #[serde(default)]
    pub unfolded_headers: Vec<(String, String)>,
    /// The Date: header as seconds since the epoch (RFC 5256 SORT DATE).
    pub sent_date: Option<i64>,
    /// The Date: header's calendar date as written, in its own zone (year, month, day):
    /// what SENTBEFORE, SENTON and SENTSINCE compare, "disregarding time and timezone"
    /// (RFC 9051 §6.4.4). Missing in meta stored before it existed (SEARCH then takes
    /// the UTC date of `sent_date`).
    #[serde(default)]
    pub sent_day: Option<(u16, u8, u8)>,
    /// RFC 5256 §2.1 base subject, for SORT SUBJECT and THREAD.
    pub base_subject: String,
    /// Message-ID and References/In-Reply-To ids, for THREAD=REFERENCES (RFC 5256 §3).
    pub message_id: Option<String>,
    pub references: Vec<String>,
    /// RFC 8970 PREVIEW text (see [`crate::preview`]). `None` in meta stored before it
    /// existed: FETCH PREVIEW then computes it from the raw message.
    #[serde(default)]
    pub preview: Option<String>,
    /// RFC 5957 §2 SORT=DISPLAY keys of From and To (see [`display_name`]). `None` in
    /// meta stored before they existed: SORT then computes them from the ENVELOPE.
    #[serde(default)]
    pub display_from: Option<String>,
    #[serde(default)]
    pub display_to: Option<String>,
}

/// RFC 9051 §7.5.2 ENVELOPE: header values as they appear in the message (unfolded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<EnvelopeAddress>,
    pub sender: Vec<EnvelopeAddress>,
    pub reply_to: Vec<EnvelopeAddress>,
    pub to: Vec<EnvelopeAddress>,
    pub cc: Vec<EnvelopeAddress>,
    pub bcc: Vec<EnvelopeAddress>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// A MIME part (RFC 2045/2046) with its place in the raw message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyPart {
    /// Lower-case media type and subtype, e.g. `text` / `plain`.
    pub media_type: String,
    pub media_subtype: String,
    pub params: Vec<(String, String)>,
    pub content_id: Option<String>,
    pub description: Option<String>,
    /// Content-Transfer-Encoding as written, upper-cased; `7BIT` when absent.
    pub encoding: String,
    pub md5: Option<String>,
    pub disposition: Option<Disposition>,
    pub language: Vec<String>,
    pub location: Option<String>,
    /// Offsets into the raw message: header starts, body starts (header ends), body ends.
    pub header_start: u32,
    pub body_start: u32,
    pub body_end: u32,
    /// Lines of the body, as BODYSTRUCTURE reports for text and message/rfc822 parts.
    pub body_lines: u32,
    pub content: PartContent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disposition {
    pub kind: String,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartContent {
    /// A leaf part: text, image, application, ...
    Single,
    /// multipart/*: the children in order.
    Multipart(Vec<BodyPart>),
    /// message/rfc822 (or message/global): the nested message.
    Message {
        envelope: Box<Envelope>,
        root: Box<BodyPart>,
    },
}

impl BodyPart {
    pub fn body_size(&self) -> u32 {
        self.body_end.saturating_sub(self.body_start)
    }
}

/// The result of analysing a message: its meta and its decoded text for SEARCH.
pub struct Analysis {
    pub meta: MessageMeta,
    pub body_text: String,
}
