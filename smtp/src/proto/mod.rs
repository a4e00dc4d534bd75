//! The sans-I/O protocol core: bytes in, commands and content out, replies as bytes.
//! Nothing here touches a socket or the store, so all of it is testable (and fuzzable)
//! without a network.

pub mod address;
pub mod command;
pub mod data;
pub mod line;
pub mod reply;

pub use command::{Command, CommandError, ForwardPath, MailFrom, Mechanism, RcptTo, Ret};
pub use data::{BodyBuffer, BodyError, DotDecoder};
pub use line::{InputBuffer, Line};
pub use reply::{Reply, ReplyCode};
