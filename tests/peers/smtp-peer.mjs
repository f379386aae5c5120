// An SMTP server for Herald's tests, configured by one JSON argument:
//   { "secure": bool,            implicit TLS (needs key and cert)
//     "key": path, "cert": path, TLS key and certificate (PEM files)
//     "starttls": bool,          offer STARTTLS (needs key and cert); default false
//     "users": {"name": "pw"},   accepted PLAIN/LOGIN credentials
//     "tokens": {"name": "tok"}, accepted XOAUTH2 access tokens
//     "oauthIssuer": "http://…",  accept XOAUTH2 bearer tokens this provider
//                                 signed (its /jwks) whose email claim is the
//                                 user name and that have not expired
//     "authOptional": bool,       let clients send without AUTH
//     "authReply": "535 5.7.139 text",  refuse every AUTH with this reply
//     "rcptReply": "554 5.7.1 text",    refuse every RCPT TO with this reply
//     "rcpt": {"addr": ["450 4.2.0 later", "250"]},  successive answers to
//                                 RCPT TO for that address ("250": accept);
//                                 accepted once the list is used up
//     "delayMs": N,               wait this long before answering DATA
//     "data": {"addr": ["drop", "452 4.3.1 full"]} }  successive answers at
//                                 the end of DATA for a message to that
//                                 address; "drop" cuts the connection in the
//                                 middle of the message
// Prints {"port": N} once listening on 127.0.0.1, then one JSON line per
// message received: {"from", "to", "user", "secure", "session", "at", "data"}
// ("session": the connection's id; "at": milliseconds since the epoch).
import fs from 'node:fs';
import { SMTPServer } from 'smtp-server';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const cfg = JSON.parse(process.argv[2] || '{}');
const jwks = cfg.oauthIssuer ? createRemoteJWKSet(new URL(cfg.oauthIssuer + '/jwks')) : null;
const gmailChallenge = { status: '400', schemes: 'Bearer', scope: 'https://mail.google.com/' };
const tls = cfg.key ? { key: fs.readFileSync(cfg.key), cert: fs.readFileSync(cfg.cert) } : {};

const rcptScript = cfg.rcpt || {};
const dataScript = cfg.data || {};
// The next scripted answer for an address, used up as it is given.
function next(script, address) {
  const list = script[address.toLowerCase()];
  return list && list.length ? list.shift() : null;
}

function reply(text) {
  const code = Number(text.slice(0, 3));
  const err = new Error(text.slice(4));
  err.responseCode = code;
  return err;
}

const server = new SMTPServer({
  ...tls,
  secure: !!cfg.secure,
  hideSTARTTLS: !cfg.starttls,
  authMethods: ['PLAIN', 'LOGIN', 'XOAUTH2'],
  authOptional: cfg.authOptional ?? (!cfg.users && !cfg.tokens && !cfg.authReply && !cfg.oauthIssuer),
  allowInsecureAuth: true,
  logger: false,
  onAuth(auth, session, callback) {
    if (cfg.authReply) return callback(reply(cfg.authReply));
    if (auth.method === 'XOAUTH2') {
      if (jwks) {
        jwtVerify(auth.accessToken, jwks)
          .then(({ payload }) =>
            payload.email && payload.email.toLowerCase() === auth.username.toLowerCase()
              ? callback(null, { user: { name: auth.username, token: auth.accessToken } })
              : callback(null, { data: gmailChallenge }),
          )
          .catch(() => callback(null, { data: gmailChallenge }));
        return;
      }
      const ok = cfg.tokens && cfg.tokens[auth.username] === auth.accessToken;
      return ok ? callback(null, { user: auth.username }) : callback(null, { data: gmailChallenge });
    }
    const ok = cfg.users && cfg.users[auth.username] === auth.password;
    return ok ? callback(null, { user: auth.username }) : callback(reply('535 5.7.8 Error: authentication failed'));
  },
  onRcptTo(address, session, callback) {
    if (cfg.rcptReply) return callback(reply(cfg.rcptReply));
    const scripted = next(rcptScript, address.address);
    if (scripted && !scripted.startsWith('250')) return callback(reply(scripted));
    callback();
  },
  onData(stream, session, callback) {
    const chunks = [];
    let scripted = null;
    for (const r of session.envelope.rcptTo) {
      scripted = scripted || next(dataScript, r.address);
    }
    if (scripted === 'drop') {
      stream.once('data', () => {
        for (const conn of server.connections) {
          if (conn.id === session.id) conn._socket.destroy();
        }
      });
      stream.on('data', () => {});
      return;
    }
    if (scripted && !scripted.startsWith('250')) {
      stream.on('data', () => {});
      stream.on('end', () => callback(reply(scripted)));
      return;
    }
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      const line = {
        from: session.envelope.mailFrom && session.envelope.mailFrom.address,
        to: session.envelope.rcptTo.map((r) => r.address),
        user: session.user || null,
        secure: !!session.secure,
        session: session.id,
        at: Date.now(),
        data: Buffer.concat(chunks).toString('utf8'),
      };
      process.stdout.write(JSON.stringify(line) + '\n');
      setTimeout(() => callback(null, 'Queued'), cfg.delayMs || 0);
    });
  },
});

server.on('error', (e) => process.stderr.write(`smtp-peer: ${e.message}\n`));
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.server.address().port }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
