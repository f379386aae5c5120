// An OAuth2 provider for Herald's tests (npm oauth2-mock-server), configured
// by one JSON argument:
//   { "email": "a@b.example",      the mailbox the tokens vouch for
//     "code_expires_in": 3600,      lifetime of tokens from a code exchange
//     "refresh_expires_in": 3600 }  lifetime of tokens from a refresh
// Refresh tokens rotate: each refresh consumes the one presented and issues
// a new one; an unknown, used or revoked refresh token gets invalid_grant.
// Control lines on stdin: {"email": "..."}, {"revoke": true|false}.
// Prints {"port", "issuer", "introspection_url"} once listening on 127.0.0.1, then one JSON line
// per token request: {"grant_type", "ok", "access_token", "refresh_token"}.
import http from 'node:http';
import readline from 'node:readline';
import { OAuth2Server } from 'oauth2-mock-server';

const cfg = JSON.parse(process.argv[2] || '{}');
let email = cfg.email;
let revoked = false;
const valid = new Set();
// The scopes asked for at /authorize, by code, then by refresh token.
const scopeOfCode = new Map();
const scopeOfRefresh = new Map();
const log = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on('beforeTokenSigning', (token) => {
  token.payload.email = email;
});
server.service.on('beforeUserinfo', (res) => {
  res.body = { sub: 'johndoe', email };
});
// Access tokens issued, for token introspection (below).
const issued = new Set();
server.service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const code = redirect.url.searchParams.get('code');
  if (code) scopeOfCode.set(code, req.query.scope);
});
server.service.on('beforeResponse', (res, req) => {
  const grant = req.body.grant_type;
  const scope =
    grant === 'refresh_token' ? scopeOfRefresh.get(req.body.refresh_token) : scopeOfCode.get(req.body.code);
  if (grant === 'refresh_token') {
    const presented = req.body.refresh_token;
    if (revoked || !valid.has(presented)) {
      res.statusCode = 400;
      res.body = {
        error: 'invalid_grant',
        error_description: 'AADSTS70043: The refresh token has expired or is invalid.',
      };
      log({ grant_type: grant, ok: false });
      return;
    }
    valid.delete(presented);
    res.body.expires_in = cfg.refresh_expires_in ?? 3600;
  } else {
    res.body.expires_in = cfg.code_expires_in ?? 3600;
  }
  if (scope) res.body.scope = scope;
  if (res.body.access_token) issued.add(res.body.access_token);
  if (res.body.refresh_token) {
    valid.add(res.body.refresh_token);
    scopeOfRefresh.set(res.body.refresh_token, scope);
  }
  log({
    grant_type: grant,
    ok: true,
    access_token: res.body.access_token,
    refresh_token: res.body.refresh_token,
    scope: res.body.scope,
  });
});

await server.start(0, '127.0.0.1');

// Token introspection (RFC 7662), as an IMAP server checking an XOAUTH2
// bearer token asks it (form-encoded `token=`, which the mock's own
// /introspect does not read): active when this provider issued the token
// and the grant is not revoked, for the current mailbox.
const introspection = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const token = new URLSearchParams(body).get('token');
    const active = !revoked && issued.has(token);
    log({ introspect: active });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(active ? { active: true, email } : { active: false }));
  });
});
await new Promise((ok) => introspection.listen(0, '127.0.0.1', ok));
log({
  port: server.address().port,
  issuer: server.issuer.url,
  introspection_url: `http://127.0.0.1:${introspection.address().port}/`,
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line);
  if ('email' in cmd) email = cmd.email;
  if ('revoke' in cmd) revoked = !!cmd.revoke;
  log({ ack: cmd });
});
rl.on('close', () => process.exit(0));
