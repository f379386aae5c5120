// A Mailgun client (npm mailgun.js, pointed at Herald with its `url`
// option) run by Herald's tests. Argument: JSON {url, key, domain, from,
// recipients, begin}. It sends through /v3/{domain}/messages, reads the
// events back with the client's own paging calls (next to the end, then
// previous to the start), works the suppression lists, and prints one JSON
// line with everything it saw.
import Mailgun from 'mailgun.js';

const cfg = JSON.parse(process.argv[2]);
const mg = new Mailgun(FormData).client({ username: 'api', key: cfg.key, url: cfg.url });
const quiet = { warn() {}, log() {}, error() {} };
mg.events.logger = quiet;
const out = {};

try {
  // Send one message to several recipients.
  const sent = await mg.messages.create(cfg.domain, {
    from: cfg.from,
    to: cfg.recipients,
    subject: 'Report cards are ready',
    text: 'Hello from the school office.',
    'o:tag': ['mgjs'],
  });
  out.sent = sent;

  // Wait for its accepted events (visible within a second).
  const messageId = sent.id.replace(/^</, '').replace(/>$/, '');
  for (let i = 0; i < 50; i++) {
    const r = await mg.events.get(cfg.domain, { 'message-id': messageId, event: 'accepted' });
    out.accepted = r.items.length;
    if (r.items.length >= cfg.recipients.length) break;
    await new Promise((res) => setTimeout(res, 100));
  }

  // Walk every event since `begin`, two at a time, forward with `next`...
  const forward = [];
  let page = await mg.events.get(cfg.domain, { begin: cfg.begin, ascending: 'yes', limit: 2 });
  out.firstPaging = page.pages;
  let guard = 0;
  while (page.items.length > 0 && guard++ < 100) {
    forward.push(...page.items.map((e) => e.id));
    out.lastItem = page.items[page.items.length - 1];
    page = await mg.events.get(cfg.domain, { page: page.pages.next.page });
  }
  out.forward = forward;
  // ...then back with `previous` from the end.
  const backward = [];
  page = await mg.events.get(cfg.domain, { page: page.pages.previous.page });
  guard = 0;
  while (page.items.length > 0 && guard++ < 100) {
    backward.unshift(...page.items.map((e) => e.id));
    page = await mg.events.get(cfg.domain, { page: page.pages.previous.page });
  }
  out.backward = backward;
  const filtered = await mg.events.get(cfg.domain, { event: 'delivered OR failed', limit: 300 });
  out.deliveredOrFailed = filtered.items.map((e) => e.event);

  // Suppressions: add, list page by page, get, delete.
  out.bouncesAdded = await mg.suppressions.create(cfg.domain, 'bounces', [
    { address: 'b1@gone.example', code: 550, error: 'mailbox unknown' },
    { address: 'b2@gone.example', code: 551, error: 'moved' },
    { address: 'b3@gone.example' },
  ]);
  const bounces = [];
  let bp = await mg.suppressions.list(cfg.domain, 'bounces', { limit: 2 });
  guard = 0;
  while (bp.items.length > 0 && guard++ < 20) {
    bounces.push(...bp.items.map((b) => ({ address: b.address, code: b.code, error: b.error, created: !isNaN(b.created_at) })));
    bp = await mg.suppressions.list(cfg.domain, 'bounces', { page: bp.pages.next.page, limit: 2 });
  }
  out.bounces = bounces;
  // ...and back from the end with `previous`.
  const bouncesBack = [];
  bp = await mg.suppressions.list(cfg.domain, 'bounces', { page: bp.pages.previous.page, limit: 2 });
  guard = 0;
  while (bp.items.length > 0 && guard++ < 20) {
    bouncesBack.unshift(...bp.items.map((b) => b.address));
    bp = await mg.suppressions.list(cfg.domain, 'bounces', { page: bp.pages.previous.page, limit: 2 });
  }
  out.bouncesBack = bouncesBack;
  const one = await mg.suppressions.get(cfg.domain, 'bounces', 'b2@gone.example');
  out.bounceOne = { address: one.address, code: one.code, error: one.error };
  out.bounceDeleted = await mg.suppressions.destroy(cfg.domain, 'bounces', 'b1@gone.example');
  out.unsubscribeAdded = await mg.suppressions.create(cfg.domain, 'unsubscribes', { address: 'u1@away.example', tag: 'newsletter' });
  const unsubs = await mg.suppressions.list(cfg.domain, 'unsubscribes', {});
  out.unsubscribes = unsubs.items.map((u) => ({ address: u.address, tags: u.tags }));
  await mg.suppressions.create(cfg.domain, 'complaints', [{ address: 'c1@angry.example' }]);
  const complaints = await mg.suppressions.list(cfg.domain, 'complaints', {});
  out.complaints = complaints.items.map((c) => c.address);
  try {
    await mg.suppressions.get(cfg.domain, 'bounces', 'nobody@nowhere.example');
    out.missing = 'found';
  } catch (e) {
    out.missing = e.status;
  }
} catch (e) {
  out.error = { message: e.message, status: e.status, details: e.details };
}
process.stdout.write(JSON.stringify(out) + '\n');
