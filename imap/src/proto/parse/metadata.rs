//! METADATA (RFC 5464 §4.2, §4.3): GETMETADATA and SETMETADATA. Entry names are checked
//! once here (§3.2: "Invalid entry names result in a BAD response in any IMAP command in
//! which they are used") and kept as [`EntryName`]s.

use super::{PResult, Parser, err};
use crate::proto::command::{
    CommandBody, GetMetadataCommand, MAX_METADATA_ENTRIES_PER_COMMAND, MetadataTarget,
};
use crate::proto::tag::is_astring_char;
use std::borrow::Cow;
use storage::{EntryName, MetadataDepth, StoreError};

impl Parser<'_> {
    /// RFC 5464 §5: `getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP
    /// entries`; `getmetadata-options = "(" getmetadata-option *(SP getmetadata-option)
    /// ")"` with `maxsize-opt = "MAXSIZE" SP number` and `scope-opt = "DEPTH" SP ("0" /
    /// "1" / "infinity")`; of an option given twice the last counts.
    pub(super) fn getmetadata(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let mut max_size = None;
        let mut depth = MetadataDepth::Zero;
        if self.eat(b'(') {
            loop {
                let option = self.atom()?.to_ascii_uppercase();
                self.sp()?;
                match option.as_str() {
                    "MAXSIZE" => max_size = Some(self.number()?),
                    "DEPTH" => depth = self.metadata_depth()?,
                    _ => return err("Unknown GETMETADATA option"),
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            self.sp()?;
        }
        let target = self.metadata_target()?;
        self.sp()?;
        // `entries = entry / "(" entry *(SP entry) ")"`
        let entries = if self.eat(b'(') {
            let mut entries = Vec::new();
            loop {
                if entries.len() == MAX_METADATA_ENTRIES_PER_COMMAND {
                    return err("Too many entries");
                }
                entries.push(self.metadata_entry()?);
                if self.eat(b')') {
                    break entries;
                }
                self.sp()?;
            }
        } else {
            vec![self.metadata_entry()?]
        };
        Ok(CommandBody::GetMetadata(GetMetadataCommand {
            target,
            entries,
            max_size,
            depth,
        }))
    }

    /// RFC 5464 §5: `setmetadata = "SETMETADATA" SP mailbox SP entry-values`;
    /// `entry-values = "(" entry-value *(SP entry-value) ")"`; `entry-value = entry SP
    /// value`; `value = nstring / literal8`.
    pub(super) fn setmetadata(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let target = self.metadata_target()?;
        self.sp()?;
        self.require(b'(', "Expected a list of entries and values")?;
        let mut entries = Vec::new();
        loop {
            if entries.len() == MAX_METADATA_ENTRIES_PER_COMMAND {
                return err("Too many entries");
            }
            let entry = self.metadata_entry()?;
            self.sp()?;
            let value = match self.peek() {
                Some(b'~') => Some(self.literal(true)?),
                _ => self.nstring()?,
            };
            entries.push((entry, value));
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        Ok(CommandBody::SetMetadata { target, entries })
    }

    /// The `mailbox` of RFC 5464 §4.2 and §4.3: "" names the server.
    fn metadata_target(&mut self) -> PResult<MetadataTarget> {
        let mailbox = self.mailbox()?;
        Ok(if mailbox.is_empty() {
            MetadataTarget::Server
        } else {
            MetadataTarget::Mailbox(mailbox)
        })
    }

    /// `entry = astring`, "slash-separated path to entry", valid by RFC 5464 §3.2. An
    /// atom is taken up to its end with any `*` and `%` in it ("MUST NOT contain "*" or
    /// "%""), so that the BAD says why.
    fn metadata_entry(&mut self) -> PResult<EntryName> {
        let bytes = match self.peek() {
            Some(b'"' | b'{') => self.astring()?,
            _ => self
                .take_while(|b| is_astring_char(b) || b == b'*' || b == b'%')
                .to_vec(),
        };
        if bytes.is_empty() {
            return err("Expected an entry name");
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return err("Invalid entry name: it has a control or non-ASCII character");
        };
        EntryName::new(text).map_err(|error| match error {
            StoreError::Invalid { reason, .. } => {
                Cow::Owned(format!("Invalid entry name: {reason}"))
            }
            _ => Cow::Borrowed("Invalid entry name"),
        })
    }

    /// `"0" / "1" / "infinity"` (RFC 5234 §2.3: quoted ABNF strings are
    /// case-insensitive).
    fn metadata_depth(&mut self) -> PResult<MetadataDepth> {
        let value = self.atom()?;
        if value == "0" {
            Ok(MetadataDepth::Zero)
        } else if value == "1" {
            Ok(MetadataDepth::One)
        } else if value.eq_ignore_ascii_case("infinity") {
            Ok(MetadataDepth::Infinity)
        } else {
            err("DEPTH is 0, 1 or infinity")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fails, parse};
    use crate::proto::command::{CommandBody, GetMetadataCommand, MetadataTarget};
    use storage::MetadataDepth;

    fn get(text: &str) -> GetMetadataCommand {
        match parse(text) {
            CommandBody::GetMetadata(command) => command,
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    fn names(command: &GetMetadataCommand) -> Vec<&str> {
        command.entries.iter().map(|e| e.as_str()).collect()
    }

    #[test]
    fn getmetadata_takes_options_before_the_mailbox() {
        let command = get("a GETMETADATA \"\" /shared/comment\r\n");
        assert_eq!(command.target, MetadataTarget::Server);
        assert_eq!(names(&command), ["/shared/comment"]);
        assert_eq!(
            (command.max_size, command.depth),
            (None, MetadataDepth::Zero)
        );

        let command = get(
            "a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/Private/Comment \"/shared/a b\" {9}\r\n/shared/x)\r\n",
        );
        assert_eq!(command.target, MetadataTarget::Mailbox("INBOX".into()));
        assert_eq!(
            names(&command),
            ["/private/comment", "/shared/a b", "/shared/x"]
        );
        assert_eq!(
            (command.max_size, command.depth),
            (Some(1024), MetadataDepth::Infinity)
        );
        let command =
            get("a getmetadata (depth 1 depth INFINITY depth 0 maxsize 0) Work /shared\r\n");
        assert_eq!(
            (command.max_size, command.depth),
            (Some(0), MetadataDepth::Zero)
        );
        assert_eq!(
            get("a GETMETADATA (DEPTH 1) x /shared\r\n").depth,
            MetadataDepth::One
        );
    }

    #[test]
    fn setmetadata_takes_nstrings_and_literal8() {
        match parse(
            "a SETMETADATA INBOX (/private/comment \"My comment\" /shared/Comment NIL /shared/bin ~{3}\r\na\0b /shared/e {0}\r\n)\r\n",
        ) {
            CommandBody::SetMetadata { target, entries } => {
                assert_eq!(target, MetadataTarget::Mailbox("INBOX".into()));
                let entries: Vec<(&str, Option<&[u8]>)> = entries
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_deref()))
                    .collect();
                assert_eq!(
                    entries,
                    [
                        ("/private/comment", Some(&b"My comment"[..])),
                        ("/shared/comment", None),
                        ("/shared/bin", Some(&b"a\0b"[..])),
                        ("/shared/e", Some(&b""[..])),
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_entry_names_and_options_are_bad() {
        for text in [
            "a GETMETADATA INBOX /private/com*\r\n",
            "a GETMETADATA INBOX /private//comment\r\n",
            "a GETMETADATA INBOX /private/comment/\r\n",
            "a GETMETADATA INBOX /comment\r\n",
            "a GETMETADATA INBOX private/comment\r\n",
            "a GETMETADATA INBOX \"/shared/\u{e9}\"\r\n",
            "a GETMETADATA INBOX (DEPTH 1) /shared\r\n",
            "a GETMETADATA (DEPTH 2) INBOX /shared\r\n",
            "a GETMETADATA (DEPTH) INBOX /shared\r\n",
            "a GETMETADATA (MAXSIZE -1) INBOX /shared\r\n",
            "a GETMETADATA (MAXSIZE 4294967296) INBOX /shared\r\n",
            "a GETMETADATA (FOO 1) INBOX /shared\r\n",
            "a GETMETADATA () INBOX /shared\r\n",
            "a GETMETADATA INBOX ()\r\n",
            "a GETMETADATA INBOX /shared extra\r\n",
            "a GETMETADATA INBOX\r\n",
            "a SETMETADATA INBOX ()\r\n",
            "a SETMETADATA INBOX (/shared/x)\r\n",
            "a SETMETADATA INBOX /shared/x \"1\"\r\n",
            "a SETMETADATA INBOX (/shared/x \"1\"\r\n",
            "a SETMETADATA INBOX (/shared/x% \"1\")\r\n",
        ] {
            let error = fails(text);
            assert!(error.tag.is_some(), "{text:?}");
        }
        assert_eq!(
            fails("a GETMETADATA INBOX /shared/com*\r\n").message,
            "Invalid entry name: it has * or %"
        );
    }

    #[test]
    fn entry_lists_are_bounded() {
        let list = |entry: &str| {
            (0..=super::MAX_METADATA_ENTRIES_PER_COMMAND)
                .map(|n| entry.replace('#', &n.to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        for command in [
            format!("a GETMETADATA INBOX ({})\r\n", list("/shared/n#")),
            format!("a SETMETADATA INBOX ({})\r\n", list("/shared/n# NIL")),
        ] {
            assert_eq!(fails(&command).message, "Too many entries");
        }
    }
}
