//! mbsync (isync, from Debian) syncs a mailbox both ways with flags, over implicit TLS.

mod common;

use common::{TestServer, block_on, inbox_with_flags, mbsync, path_str, python};
use std::path::Path;

const DELIVER: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
for n in (1, 2):
    s.sendmail("sender@example.net", [sys.argv[2]], b"Subject: server message %d\r\n\r\nbody %d\r\n" % (n, n))
s.quit()
"#;

const FLAG_ON_SERVER: &str = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx)
m.login(sys.argv[2], sys.argv[3])
m.select("INBOX")
typ, data = m.uid("STORE", "2", "+FLAGS", "(\\Flagged)")
assert typ == "OK", data
m.logout()
"#;

/// Files of a Maildir folder with their flag letters (`:2,FS` → "FS").
fn maildir(folder: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let flags = name
                .rsplit_once(":2,")
                .map(|(_, f)| f.to_owned())
                .unwrap_or_default();
            let body = std::fs::read_to_string(entry.path()).expect("read");
            files.push((body, flags));
        }
    }
    files.sort();
    files
}

#[test]
fn mbsync_pulls_pushes_and_syncs_flags_both_ways() {
    let server = TestServer::start();
    python(DELIVER, &[&server.port("smtp").to_string(), &server.email]);

    let local = server.dir.join("maildir");
    std::fs::create_dir_all(&local).expect("maildir");
    let config = server.dir.join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount letterbox\nHost localhost\nPort {port}\nUser {user}\nPass {pass}\nSSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore remote\nAccount letterbox\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nSync All\nExpunge Both\nSyncState *\n",
            port = server.port("imaps"),
            user = server.email,
            pass = server.password,
            cert = path_str(&server.data_dir().join("tls-selfsigned-cert.pem")),
            local = path_str(&local),
        ),
    )
    .expect("write mbsyncrc");

    mbsync(&config);
    let inbox = local.join("INBOX");
    let pulled = maildir(&inbox);
    assert_eq!(pulled.len(), 2, "{pulled:?}");
    assert!(pulled[0].0.contains("Subject: server message 1"));

    // Locally: mark the first as seen, and write a new message to upload.
    let cur = inbox.join("cur");
    let first = std::fs::read_dir(&cur)
        .expect("cur")
        .chain(std::fs::read_dir(inbox.join("new")).expect("new"))
        .map(|e| e.expect("entry").path())
        .find(|p| {
            std::fs::read_to_string(p)
                .expect("read")
                .contains("server message 1")
        })
        .expect("first message file");
    let name = first
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let base = name.split(":2,").next().expect("base").to_owned();
    std::fs::rename(&first, cur.join(format!("{base}:2,S"))).expect("mark seen");
    std::fs::write(
        inbox.join("new").join("1700000000.local1.host"),
        "Subject: written offline\r\n\r\nupload me\r\n",
    )
    .expect("new local message");

    mbsync(&config);
    let on_server = block_on(inbox_with_flags(&server, &server.email));
    assert_eq!(on_server.len(), 3, "the local message was not uploaded");
    assert!(
        on_server[0].0.contains(&"\\Seen".to_owned()),
        "seen flag not pushed: {:?}",
        on_server[0].0
    );
    assert!(String::from_utf8_lossy(&on_server[2].1).contains("upload me"));

    // On the server: flag the second; the next sync brings the flag down.
    python(
        FLAG_ON_SERVER,
        &[
            &server.port("imaps").to_string(),
            &server.email,
            &server.password,
        ],
    );
    mbsync(&config);
    let synced = maildir(&inbox);
    let second = synced
        .iter()
        .find(|(body, _)| body.contains("server message 2"))
        .expect("second message");
    assert!(second.1.contains('F'), "flag not pulled: {synced:?}");
}
