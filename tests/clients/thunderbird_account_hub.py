"""Drives a real Thunderbird (153 ESR, Debian) through the steps a new user takes with the
quickstart: the Account Hub that opens on a fresh profile, the security exception for the
self-signed certificate, reading the Inbox, and sending a message.

Thunderbird runs under Xvfb with Marionette (its remote-control protocol); this script
clicks the same buttons and fills the same fields a user would. Run by
tests/thunderbird.rs, which starts letterbox and Thunderbird and checks the outcome over
IMAP. Prints one `key: value` line per observation.

Arguments: marionette_port email password submissions_port subject_to_find
"""

import sys
import time

from marionette_driver.marionette import Alert, Marionette

marionette_port, email, password, submissions_port, subject_to_find = sys.argv[1:6]

# Marionette's own timeout for a step; the steps below poll with their own deadlines.
STEP_TIMEOUT_SECS = 120

client = Marionette(host="127.0.0.1", port=int(marionette_port), startup_timeout=STEP_TIMEOUT_SECS)
client.start_session({"unhandledPromptBehavior": "ignore"})
client.set_context(client.CONTEXT_CHROME)
main_window = client.current_chrome_window_handle

# The Account Hub is a tree of custom elements with shadow roots; `deep(selector)` finds
# elements through all of them.
HUB = """
const hub = document.querySelector('account-hub-container').shadowRoot;
function deep(selector) {
  const found = [];
  (function walk(root) {
    for (const element of root.querySelectorAll('*')) {
      if (element.matches(selector)) found.push(element);
      if (element.shadowRoot) walk(element.shadowRoot);
    }
  })(hub);
  return found;
}
function type(selector, text) {
  const field = deep(selector)[0];
  field.focus();
  field.value = text;
  field.dispatchEvent(new Event('input', { bubbles: true }));
}
function visibleSubview() {
  return deep('[id$=Subview]').filter(view => !view.hidden).map(view => view.id).join(',');
}
"""


def hub(script, args=None):
    client.switch_to_window(main_window)
    return client.execute_script(HUB + script, script_args=args or [])


def wait_for(what, check, timeout=STEP_TIMEOUT_SECS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    shot = "/tmp/thunderbird-%s.png" % what.replace(" ", "-")
    client.switch_to_window(main_window)
    open(shot, "wb").write(client.screenshot(format="binary"))
    raise SystemExit("timed out waiting for %s (screenshot %s)" % (what, shot))


def windows():
    """(handle, location) of every open Thunderbird window."""
    found = []
    for handle in client.chrome_window_handles:
        try:
            client.switch_to_window(handle)
            found.append((handle, client.execute_script("return window.location.href")))
        except Exception:
            pass  # closed while we looked
    client.switch_to_window(main_window)
    return found


def confirm_security_exception():
    """Clicks *Confirm Security Exception* in the certificate dialog, as the user does;
    returns whether one was open."""
    for handle, location in windows():
        if "exceptionDialog" in location:
            client.switch_to_window(handle)
            wait_for(
                "the certificate to load",
                lambda: not client.execute_script(
                    "return document.querySelector('dialog').getButton('extra1').disabled"
                ),
            )
            client.execute_script("document.querySelector('dialog').getButton('extra1').click()")
            client.switch_to_window(main_window)
            return True
    return False


def alert_text():
    """The text of an open alert (Thunderbird's error pop-ups), accepted; or None."""
    for handle in client.chrome_window_handles:
        try:
            client.switch_to_window(handle)
            alert = Alert(client)
            text = alert.text
            alert.accept()
            return text
        except Exception:
            pass
    client.switch_to_window(main_window)
    return None


# 1. The Account Hub: name and address, Continue.
wait_for("the Account Hub", lambda: hub("return visibleSubview()") == "emailAutoConfigSubview")
hub("type('input#realName', 'Test User'); type('input#email', arguments[0]);", [email])
hub("deep('button#forward')[0].click()")

# 2. "Account settings found automatically": what autoconfig told it.
wait_for("the found settings", lambda: hub("return visibleSubview()") == "emailConfigFoundSubview")
print("found:", " ".join(hub("return deep('#emailConfigFoundSubview')[0].shadowRoot.textContent").split()))
hub("deep('button#forward')[0].click()")

# 3. The password, Continue; the self-signed certificate brings up the exception dialog.
wait_for("the password form", lambda: hub("return visibleSubview()") == "emailPasswordSubview")
hub("type('input#password', arguments[0]);", [password])
hub("deep('button#forward')[0].click()")
wait_for("the security exception dialog", confirm_security_exception)
print("security exception: confirmed for IMAP")

# 4. "Account added", Finish.
wait_for("the account to be added", lambda: hub("return visibleSubview()") == "emailAddedSuccessSubview")
hub("deep('button#forward')[0].click()")
server = client.execute_script(
    """
const { MailServices } = ChromeUtils.importESModule('resource:///modules/MailServices.sys.mjs');
const imap = MailServices.accounts.accounts.map(a => a.incomingServer).find(s => s.type == 'imap').QueryInterface(Ci.nsIMsgIncomingServer);
const smtp = MailServices.outgoingServer.defaultServer.QueryInterface(Ci.nsISmtpServer);
return [imap.serverURI, imap.port, imap.username, imap.socketType,
        smtp.hostname, smtp.port, smtp.username, smtp.socketType];
"""
)
print("imap server: %s port %s user %s socket type %s" % tuple(server[:4]))
print("smtp server: %s port %s user %s socket type %s" % tuple(server[4:]))
FOLDERS = """
const { MailServices } = ChromeUtils.importESModule('resource:///modules/MailServices.sys.mjs');
const imap = MailServices.accounts.accounts.map(a => a.incomingServer).find(s => s.type == 'imap').QueryInterface(Ci.nsIMsgIncomingServer);
return imap.rootFolder.descendants.map(f => f.name);
"""
# The folder list arrives after the account is added (LIST); wait until it holds more
# than the Inbox Thunderbird makes up front.
def folders_listed():
    names = client.execute_script(FOLDERS)
    return names if len(names) > 1 else None


folders = wait_for("the folder list", folders_listed)
print("folders:", ", ".join(folders))

# 5. The Inbox in the message list, as the user sees it.
client.execute_script(
    """
const { MailServices } = ChromeUtils.importESModule('resource:///modules/MailServices.sys.mjs');
const imap = MailServices.accounts.accounts.map(a => a.incomingServer).find(s => s.type == 'imap').QueryInterface(Ci.nsIMsgIncomingServer);
const inbox = imap.rootFolder.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
document.getElementById('tabmail').currentAbout3Pane.displayFolder(inbox.URI);
inbox.updateFolder(null);
"""
)
LIST_ROWS = """
const view = document.getElementById('tabmail').currentAbout3Pane.gDBView;
const rows = [];
for (let i = 0; view && i < view.rowCount; i++)
  rows.push(view.cellTextForColumn(i, 'subjectCol') + ' | ' + view.cellTextForColumn(i, 'correspondentCol'));
return rows;
"""
rows = wait_for(
    "the message in the Inbox",
    lambda: [row for row in client.execute_script(LIST_ROWS) if subject_to_find in row],
)
print("inbox row:", rows[0])

# 6. Sending. Thunderbird asks about the certificate only for the incoming server; for
# SMTP the user adds the exception in Settings → Privacy & Security → Manage Certificates →
# Servers → Add Exception (the README says so). First see what happens without it.
COMPOSE = """
const { MailServices } = ChromeUtils.importESModule('resource:///modules/MailServices.sys.mjs');
const params = Cc['@mozilla.org/messengercompose/composeparams;1'].createInstance(Ci.nsIMsgComposeParams);
const fields = Cc['@mozilla.org/messengercompose/composefields;1'].createInstance(Ci.nsIMsgCompFields);
fields.to = arguments[0];
fields.subject = arguments[1];
fields.body = 'Written in the compose window.\\n';
params.composeFields = fields;
params.type = Ci.nsIMsgCompType.New;
params.format = Ci.nsIMsgCompFormat.PlainText;
params.identity = MailServices.accounts.defaultAccount.defaultIdentity;
MailServices.compose.OpenComposeWindowWithParams(null, params);
"""


def compose_and_send(subject):
    before = {handle for handle, _ in windows()}
    client.execute_script(COMPOSE, script_args=[email, subject])
    compose = wait_for(
        "the compose window",
        lambda: [h for h, location in windows() if h not in before and "messengercompose" in location],
    )[0]
    client.switch_to_window(compose)
    wait_for(
        "the compose window to load",
        lambda: client.execute_script("return !!window.gMsgCompose && document.readyState == 'complete'"),
    )
    time.sleep(1)  # the editor attaches the body after `load`; sending earlier sends it empty
    client.execute_script("goDoCommand('cmd_sendNow')")
    client.switch_to_window(main_window)
    return compose


def sent_or_error(compose):
    """Waits until the compose window closes (sent) or an error alert opens."""
    def outcome():
        text = alert_text()
        if text:
            return "error: " + " ".join(text.split())
        if compose not in client.chrome_window_handles:
            return "sent"
        return None

    return wait_for("the send to finish", outcome)


first = compose_and_send(subject_to_find + " (before the SMTP exception)")
print("first send:", sent_or_error(first))
for handle, location in windows():
    if handle == first:
        client.switch_to_window(handle)
        client.execute_script("window.close()")  # the user gives up on the draft
client.switch_to_window(main_window)

# Settings → Privacy & Security → Manage Certificates → Servers → Add Exception…
client.execute_script(
    """
window.openDialog('chrome://pippki/content/exceptionDialog.xhtml', '', 'chrome,centerscreen,dependent',
                  { location: arguments[0], prefetchCert: true });
""",
    script_args=["localhost:%s" % submissions_port],
)
wait_for("the Add Exception dialog", confirm_security_exception)
print("security exception: confirmed for localhost:%s" % submissions_port)

second = compose_and_send(subject_to_find + " (sent from Thunderbird)")
print("second send:", sent_or_error(second))
client.delete_session()
