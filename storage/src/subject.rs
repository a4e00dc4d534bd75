//! RFC 5256 §2.1: the base subject that SORT (SUBJECT) and THREAD=ORDEREDSUBJECT /
//! THREAD=REFERENCES compare, and whether a subject marks a reply or forward.

/// RFC 5256 §2.1: the base subject, lower-cased for comparison.
pub fn base_subject(subject: &str) -> String {
    base_subject_and_reply(subject).0
}

/// RFC 5256 §2.1: the base subject (lower-cased) and whether the message is a reply or
/// forward: whether a `(fwd)` trailer, a `re:`/`fw:`/`fwd:` leader or a `[fwd: ...]`
/// wrapper was taken off (step 5 of THREAD=REFERENCES asks this). A `[blob]` taken off
/// alone does not make a reply: `[list] hello` is a first message.
pub fn base_subject_and_reply(subject: &str) -> (String, bool) {
    let mut s: String = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut reply = false;
    loop {
        let before = s.clone();
        // (2) remove trailing "(fwd)" and whitespace.
        while let Some(stripped) = strip_suffix_ignore_case(s.trim_end(), "(fwd)") {
            s = stripped.trim_end().to_owned();
            reply = true;
        }
        // (3) remove leading "re:", "fw:", "fwd:" with an optional [blob], and [blob]s.
        loop {
            let trimmed = s.trim_start();
            let mut rest = None;
            for prefix in ["re", "fwd", "fw"] {
                if let Some(after) = strip_prefix_ignore_case(trimmed, prefix) {
                    let after = skip_blob(after.trim_start()).trim_start();
                    if let Some(after) = after.strip_prefix(':') {
                        rest = Some(after.to_owned());
                        reply = true;
                        break;
                    }
                }
            }
            if rest.is_none() {
                let after = skip_blob(trimmed);
                if after.len() != trimmed.len() && !after.trim().is_empty() {
                    rest = Some(after.to_owned());
                }
            }
            match rest {
                Some(r) => s = r,
                None => break,
            }
        }
        // (5) "[fwd:" ... "]"
        let trimmed = s.trim();
        if let Some(inner) = strip_prefix_ignore_case(trimmed, "[fwd:")
            && let Some(inner) = inner.strip_suffix(']')
        {
            s = inner.to_owned();
            reply = true;
        }
        s = s.trim().to_owned();
        if s == before {
            break;
        }
    }
    (s.to_lowercase(), reply)
}

fn skip_blob(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[')
        && let Some(end) = rest.find(']')
        && !rest[..end].contains('[')
    {
        return &rest[end + 1..];
    }
    s
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_alone_does_not_make_a_reply() {
        // RFC 5256 §2.1 / THREAD=REFERENCES step 5: only re:, fw:, fwd:, (fwd) and
        // [fwd: ...] make a reply or forward (Dovecot 2.3 answers the same).
        for (subject, reply) in [
            ("[list] hello", false),
            ("Re: [list] hello", true),
            ("hello (fwd)", true),
            ("[fwd: hello]", true),
            ("hello", false),
        ] {
            assert_eq!(
                base_subject_and_reply(subject),
                ("hello".into(), reply),
                "{subject}"
            );
        }
    }

    #[test]
    fn base_subject_strips_reply_and_forward_markers() {
        assert_eq!(
            base_subject("Re: [list] Fwd: Hello  World (fwd)"),
            "hello world"
        );
        assert_eq!(base_subject("[fwd: Re: test]"), "test");
        assert_eq!(base_subject("RE:re: x"), "x");
    }
}
