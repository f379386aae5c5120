//! Part 5, the event log at scale: `--events` events (10 million by default)
//! across `--tenants` tenants (100), generated in SQL over the last 30
//! days, with a message row for every eight events (four recipients,
//! accepted then delivered, one in ten with a temporary failure). Then
//! one page of 300 events of one tenant and one day over HTTP
//! (`/v3/{domain}/events`), from `--readers` readers picking tenants and
//! days at random, first alone and then while Herald accepts mail at half
//! its measured peak.

use std::time::{Duration, Instant};

use herald_store::{Backend, Connection};

use super::{Args, Setup, load, percentile, show, verdict};

const DAY_US: i64 = 86_400_000_000;

/// A tenant whose log the readers query.
struct Reader {
    domain: String,
    key: String,
}

/// `'xxxxxxxx-0000-7000-{variant}-xxxxxxxxxxxx'` from a tenant number and
/// a row number, as SQL: ids that parse as UUIDs and sort by row.
fn hex_id(backend: Backend, tenant: usize, row: &str, variant: &str) -> String {
    match backend {
        Backend::Sqlite => format!("printf('%08x-0000-7000-{variant}-%012x', {tenant}, {row})"),
        Backend::Postgres => format!(
            "lpad(to_hex({tenant}), 8, '0') || '-0000-7000-{variant}-' || lpad(to_hex({row}), 12, '0')"
        ),
    }
}

/// Rows 0..n as `n(i)`.
fn rows(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) ",
            n - 1
        ),
        Backend::Postgres => String::new(),
    }
}

fn from_rows(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "FROM n".to_owned(),
        Backend::Postgres => format!("FROM generate_series(0::bigint, {}) AS n(i)", n - 1),
    }
}

/// Generates one tenant's events and messages in two statements.
async fn generate_tenant(
    s: &Setup,
    number: usize,
    tenant: &str,
    domain: &str,
    events: usize,
    begin: i64,
) {
    let store = s.herald.store();
    let b = store.backend();
    let step = 30 * DAY_US / events as i64;
    let messages = events.div_ceil(8);
    let message_sql = format!(
        "{with} INSERT INTO message (id, tenant_id, profile_id, identity_id, purpose, mail_from, \
         message_id_header, subject, headers, tags, user_variables, size, test_mode, deliver_after, \
         status, created_at, updated_at) \
         SELECT {id}, '{tenant}', NULL, NULL, NULL, 'office@{domain}', \
         'm' || i || '@{domain}', 'Report card ' || i, \
         '{{\"to\":\"p' || i || '.0@home.example, p' || i || '.1@home.example, p' || i || \
         '.2@home.example, p' || i || '.3@home.example\",\"from\":\"office@{domain}\",\"subject\":\"Report card ' || i || \
         '\",\"message-id\":\"m' || i || '@{domain}\"}}', '[\"bench\"]', '{{}}', 5120, FALSE, \
         {begin} + i * 8 * {step}, 'delivered', {begin} + i * 8 * {step}, {begin} + i * 8 * {step} {from}",
        with = rows(b, messages),
        id = hex_id(b, number, "i", "9000"),
        from = from_rows(b, messages),
    );
    let delivered = r#"{"code":250,"enhanced-code":"2.0.0","message":"2.0.0 OK","attempt-no":1,"session-seconds":0.02}"#;
    let failed = r#"{"code":451,"enhanced-code":"4.3.0","message":"4.3.0 try again later","attempt-no":1,"session-seconds":0.02}"#;
    let event_sql = format!(
        "{with} INSERT INTO event (id, tenant_id, ts, kind, severity, reason, recipient, \
         recipient_domain, message_id, identity_id, profile_id, description, detail, domain) \
         SELECT {id}, '{tenant}', {begin} + i * {step}, \
         CASE WHEN i % 8 < 4 THEN 'accepted' WHEN i % 80 = 7 THEN 'failed' ELSE 'delivered' END, \
         CASE WHEN i % 80 = 7 THEN 'temporary' END, CASE WHEN i % 80 = 7 THEN 'generic' END, \
         'p' || (i / 8) || '.' || (i % 4) || '@home.example', 'home.example', {message}, NULL, NULL, NULL, \
         CASE WHEN i % 8 < 4 THEN NULL WHEN i % 80 = 7 THEN '{failed}' ELSE '{delivered}' END, \
         '{domain}' {from}",
        with = rows(b, events),
        id = hex_id(b, number, "i", "8000"),
        message = hex_id(b, number, "i / 8", "9000"),
        from = from_rows(b, events),
    );
    let tx = store.begin().await.unwrap();
    tx.conn().execute_unprepared(&message_sql).await.unwrap();
    tx.conn().execute_unprepared(&event_sql).await.unwrap();
    tx.commit().await.unwrap();
}

/// A small deterministic generator for the readers' choices.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

struct Latency {
    pages: usize,
    short: usize,
    errors: usize,
    p50: f64,
    p99: f64,
    p999: f64,
}

/// Only the item count of a page is read back: the client's own parsing
/// would otherwise share the CPU with the server it measures.
#[derive(serde::Deserialize)]
struct PageCount {
    items: Vec<serde::de::IgnoredAny>,
}

/// `count` readers asking for random (tenant, day) pages for `secs`.
async fn read_pages(s: &Setup, readers: &[Reader], count: usize, begin: i64, secs: u64) -> Latency {
    let base = format!("http://{}", s.running.addr);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for r in 0..count.max(1) {
        let client = s.client.clone();
        let base = base.clone();
        let pick: Vec<(String, String)> = readers
            .iter()
            .map(|t| (t.domain.clone(), t.key.clone()))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (r as u64 + 1));
            let (mut lat, mut short, mut errors) = (Vec::new(), 0, 0);
            while Instant::now() < until {
                let (domain, key) = &pick[rng.next(pick.len())];
                // A whole day inside the generated month.
                let day = 1 + rng.next(27) as i64;
                let from = (begin + day * DAY_US) / 1_000_000;
                let url = format!(
                    "{base}/v3/{domain}/events?begin={from}&end={}&limit=300",
                    from + 86_400
                );
                let started = Instant::now();
                match client.get(&url).basic_auth("api", Some(key)).send().await {
                    Ok(res) if res.status().is_success() => {
                        let bytes = res.bytes().await.unwrap_or_default();
                        lat.push(started.elapsed().as_micros() as u64);
                        let items = serde_json::from_slice::<PageCount>(&bytes)
                            .map_or(0, |p| p.items.len());
                        if items < 300 {
                            short += 1;
                        }
                    }
                    _ => errors += 1,
                }
            }
            (lat, short, errors)
        }));
    }
    let (mut all, mut short, mut errors) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, s, e) = t.await.unwrap();
        all.extend(l);
        short += s;
        errors += e;
    }
    all.sort_unstable();
    Latency {
        pages: all.len(),
        short,
        errors,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        p999: percentile(&all, 0.999),
    }
}

fn show_pages(label: &str, l: &Latency) {
    println!(
        "   {label}: {} pages, p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, {} errors, {} short of 300",
        l.pages, l.p50, l.p99, l.p999, l.errors, l.short
    );
}

pub(crate) async fn events(args: &Args, s: &Setup) {
    let n = args.events;
    let tenants = args.tenants.max(1);
    let per_tenant = n / tenants;
    println!("5. event log: {n} events across {tenants} tenants ({per_tenant} each over 30 days)");
    let begin = herald_domain::Timestamp::now().as_micros() - 30 * DAY_US;
    let started = Instant::now();
    let mut readers = vec![Reader {
        domain: s.domain.clone(),
        key: s.key.clone(),
    }];
    generate_tenant(s, 0, &s.tenant.to_string(), &s.domain, per_tenant, begin).await;
    for t in 1..tenants {
        let domain = format!("mail.t{t}.example");
        let created = s
            .herald
            .create_tenant(herald_app::NewTenant {
                slug: format!("t{t}"),
                name: None,
                domains: vec![domain.clone()],
                owner_email: format!("owner@t{t}.example"),
            })
            .await
            .expect("tenant");
        generate_tenant(
            s,
            t,
            &created.tenant.id.to_string(),
            &domain,
            per_tenant,
            begin,
        )
        .await;
        readers.push(Reader {
            domain,
            key: created.api_key.token.expose().clone(),
        });
    }
    super::analyze(s).await;
    println!("   generated in {:.1} s", started.elapsed().as_secs_f64());
    let secs = args.seconds;
    let alone = read_pages(s, &readers, args.readers, begin, secs).await;
    show_pages(
        "one tenant, one day, 300 per page, nothing else running",
        &alone,
    );
    let peak = load(s, args, "messages", None).await;
    show("acceptance peak beside it", &peak);
    let half = peak.rate / 2.0;
    let (busy, accepted) = tokio::join!(
        read_pages(s, &readers, args.readers, begin, secs),
        load(s, args, "messages", Some(half))
    );
    show(
        &format!("acceptance at half its peak ({half:.0}/s)"),
        &accepted,
    );
    show_pages("the same pages meanwhile", &busy);
    println!(
        "   limit: p99 <= 20 ms while accepting at half the peak: {}",
        verdict(busy.p99 <= 20.0 && busy.errors == 0)
    );
}
