#!/usr/bin/env bash
# Regenerates the Postfix DSN samples of the bounce corpus (test/bounces/samples/postfix-*.eml)
# with a real Postfix: a private instance relays to smtp-sink peers on loopback that reject in
# different ways, and the bounces it writes come back to a dumping smtp-sink. Nothing leaves
# 127.0.0.1 and nothing does DNS (every next hop is a [literal]). Needs root, postfix, python3.
#
#   bash test/bounces/make-postfix-samples.sh            # writes into test/bounces/samples/
#
# The samples are committed; this script only documents (and can repeat) how they were made.
# Queue IDs, dates and boundaries differ on every run, so expected.json does not depend on them.
set -euo pipefail

OUT=$(cd "$(dirname "$0")" && pwd)/samples
WORK=$(mktemp -d /tmp/pb-postfix.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  postfix -c "$WORK/etc" stop >/dev/null 2>&1 || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

BASE=${PB_PORT_BASE:-24000}
P_SUBMIT=$((BASE + 25))
P_BOUNCES=$((BASE + 30)) # the return-path MX: dumps what it gets
P_OK=$((BASE + 31))
P_UNKNOWN=$((BASE + 32))
P_FULL=$((BASE + 33))
P_SPAM=$((BASE + 34))
P_BIG=$((BASE + 35))
P_GREY=$((BASE + 36))
P_BARE=$((BASE + 37))
P_RBL=$((BASE + 38))
P_CLOSED=$((BASE + 39)) # nothing listens here

mkdir -p "$WORK/etc" "$WORK/queue" "$WORK/data" "$WORK/dump"
chown postfix "$WORK/data" "$WORK/dump"

sink() { # port, then smtp-sink options
  local port=$1
  shift
  smtp-sink -u postfix "$@" "127.0.0.1:$port" 64 &
  PIDS+=($!)
}
sink "$P_BOUNCES" -h mx.pb-bounces.shop.test -d "$WORK/dump/%M."
sink "$P_OK" -h mx.ok.test
sink "$P_UNKNOWN" -h mx1.mail.example -f RCPT -B '550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table'
sink "$P_FULL" -h mx.full.example -f RCPT -B '552 5.2.2 Mailbox quota exceeded: this account is over its storage limit'
sink "$P_SPAM" -h in.filter.example -f . -B '554 5.7.1 Message rejected: content looks like spam (score 12.4)'
sink "$P_BIG" -h mx.big.example -f . -B '552 5.3.4 Message size exceeds fixed maximum message size'
sink "$P_GREY" -h mx.grey.example -r RCPT -b '450 4.7.1 Greylisted, please try again in 300 seconds'
sink "$P_BARE" -h old.mailhost.example -f RCPT -B '550 No such recipient here'
sink "$P_RBL" -h mx.strict.example -f MAIL -B '554 5.7.1 Service unavailable; client host [127.0.0.1] blocked using zen.spamhaus.example'

cat >"$WORK/transport" <<EOF
shop.test          smtp:[127.0.0.1]:$P_BOUNCES
pb-bounces.shop.test smtp:[127.0.0.1]:$P_BOUNCES
ok.test            smtp:[127.0.0.1]:$P_OK
mail.example       smtp:[127.0.0.1]:$P_UNKNOWN
full.example       smtp:[127.0.0.1]:$P_FULL
filter.example     smtp:[127.0.0.1]:$P_SPAM
big.example        smtp:[127.0.0.1]:$P_BIG
grey.example       smtp:[127.0.0.1]:$P_GREY
old.example        smtp:[127.0.0.1]:$P_BARE
strict.example     smtp:[127.0.0.1]:$P_RBL
down.example       smtp:[127.0.0.1]:$P_CLOSED
EOF

cat >"$WORK/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $WORK/queue
data_directory = $WORK/data
mail_owner = postfix
myhostname = relay.sender.example
mydomain = sender.example
myorigin = \$myhostname
mydestination = localhost.sender.example
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
transport_maps = texthash:$WORK/transport
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $WORK/maillog
maillog_file_prefixes = $WORK
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
smtp_connect_timeout = 2s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
EOF
awk -v listen="127.0.0.1:$P_SUBMIT" '
  /^[a-z0-9]/ && NF >= 8 { $5 = "n"; if ($1 == "smtp" && $2 == "inet") $1 = listen }
  { print }' /etc/postfix/master.cf >"$WORK/etc/master.cf"
postfix -c "$WORK/etc" check
postfix -c "$WORK/etc" start
sleep 1

python3 - "$P_SUBMIT" <<'EOF'
import smtplib, sys
port = int(sys.argv[1])
sender = 'b+Q7H2XK9M4TPA@pb-bounces.shop.test'
def send(name, rcpts, ret='HDRS', notify='FAILURE', size=0):
    body = 'Hello,\r\n\r\nyour order 4711 has shipped.\r\n' + ('x' * 70 + '\r\n') * (size // 72)
    msg = (
        'From: Shop <orders@shop.test>\r\n'
        f'To: {", ".join(rcpts)}\r\n'
        f'Subject: Your order ({name})\r\n'
        f'Message-ID: <{name}.4711@shop.test>\r\n'
        'Date: Tue, 03 Nov 2026 12:00:00 +0000\r\n'
        'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' + body
    )
    with smtplib.SMTP('127.0.0.1', port) as s:
        s.ehlo('app.shop.test')
        s.sendmail(sender, rcpts, msg, mail_options=[f'RET={ret}', f'ENVID={name}'],
                   rcpt_options=[f'NOTIFY={notify}'])
send('unknown', ['nobody@mail.example'])
send('full', ['jane@full.example'])
send('spam', ['bob@filter.example'], ret='FULL')
send('big', ['carol@big.example'], size=3000)
send('grey', ['dave@grey.example'])
send('bare', ['erin@old.example'])
send('rbl', ['frank@strict.example'])
send('down', ['gina@down.example'])
send('local', ['ghost@localhost.sender.example'])
send('multi', ['nobody@mail.example', 'jane@full.example', 'ok@ok.test'])
EOF

# Wait for the 10 bounces (the multi message gives one DSN for its two failed recipients).
wait_dumps() {
  for _ in $(seq 1 60); do
    [ "$(find "$WORK/dump" -type f | wc -l)" -ge "$1" ] && return
    sleep 1
  done
}
wait_dumps 10
# Then a delay warning: keep deferred mail for an hour and warn after one second.
postconf -c "$WORK/etc" -e maximal_queue_lifetime=1h bounce_queue_lifetime=1h delay_warning_time=1s
postfix -c "$WORK/etc" reload >/dev/null
sleep 1
python3 - "$P_SUBMIT" <<'EOF2'
import smtplib, sys
msg = ('From: Shop <orders@shop.test>\r\nTo: dave@grey.example\r\nSubject: Your invoice\r\n'
       'Message-ID: <delayed.4712@shop.test>\r\nDate: Tue, 03 Nov 2026 12:05:00 +0000\r\n\r\nInvoice attached.\r\n')
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.sendmail('b+R8J3YL0N5UQB@pb-bounces.shop.test', ['dave@grey.example'], msg,
               mail_options=['ENVID=delayed'], rcpt_options=['NOTIFY=DELAY,FAILURE'])
EOF2
wait_dumps 11
sleep 1
for f in "$WORK"/dump/*; do
  # The ENVID names the scenario; drop smtp-sink's own envelope lines.
  name=$(grep -m1 -o '^Original-Envelope-Id: .*' "$f" | sed 's/^Original-Envelope-Id: //' | tr -d '\r')
  [ -n "$name" ] || continue
  sed -e '/^X-\(Client-Addr\|Client-Proto\|Helo-Args\|Mail-Args\|Rcpt-Args\):/d' "$f" >"$OUT/postfix-$name.eml"
  echo "wrote postfix-$name.eml"
done
