//! The sans-I/O protocol core: framing, command parsing, response writing, and the
//! encodings IMAP needs. Nothing here touches a socket (house rule 2).

pub mod base64;
pub mod command;
pub mod datetime;
pub mod framer;
pub mod mutf7;
pub mod objectid;
mod parse;
pub mod response;
pub mod sequence;
pub mod tag;
pub mod urlauth;

pub use command::{Command, CommandBody, ParseError};
pub use framer::{Frame, Framer, FramerLimits, RejectReason, Rejection};
pub use parse::{parse_command, parse_imap_url, parse_sequence_set};
pub use response::{Code, Status};
pub use sequence::{RangeSet, SequenceSet, SetOrSaved};
pub use tag::Tag;
