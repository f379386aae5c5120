//! `herald-bench`: Herald's throughput and memory on this machine, each
//! figure printed beside the limit it is held to. Run it through
//! `scripts/bench`, which fetches Postfix's smtp-sink and smtp-source and
//! builds release binaries.
//!
//! 1. The raw limit: `smtp-source -d -s 10 -l 5120` into `smtp-sink`.
//! 2. Delivery: a pre-filled queue of `--messages` 5 KB messages delivered
//!    by Herald's worker to the same sink.
//! 3. Acceptance: `--clients` concurrent HTTP clients posting to
//!    /v3/{domain}/messages, beside the same load on a route that parses the
//!    form and stores nothing; then p99 at 80% of the measured peak, with
//!    the peak measured again after it (see [`at_80_percent`]).
//! 4. Memory: the `herald` binary's resident set while `--queued` messages
//!    wait in its queue.
//! 5. The event log: one page of one tenant's day among `--events` events of
//!    `--tenants` tenants, alone and while acceptance runs at half its peak
//!    (see `events.rs`).

mod device;
mod disk;
mod events;
mod http;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use herald_app::Herald;
use herald_domain::{
    EmailAddress, MessageId, QueuedMessage, RecipientStatus, RelayProfileId, TenantId, Timestamp,
};
use herald_store::messages::{self, MessageBody};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "herald-bench")]
struct Args {
    /// Postfix's smtp-sink.
    #[arg(long)]
    smtp_sink: PathBuf,
    /// Postfix's smtp-source.
    #[arg(long)]
    smtp_source: PathBuf,
    /// The release `herald` binary (for the memory run).
    #[arg(long)]
    herald: PathBuf,
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// An admin URL of a PostgreSQL cluster the bench may create databases on.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Messages pre-filled for the delivery run.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Messages queued for the memory run (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    queued: usize,
    /// Seconds each acceptance run lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Further paced acceptance runs at these rates (messages/s), after
    /// the one at 80% of the peak: latency against offered load.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Events generated for the event-log run.
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    /// Tenants the events are spread across.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Concurrent readers of the event log (one: the latency of a page by
    /// itself; more measure queueing on this machine's two cores).
    #[arg(long, default_value_t = 1)]
    readers: usize,
    /// Which parts to run (raw, delivery, acceptance, memory, events); all
    /// by default. The raw limit runs whenever delivery does.
    #[arg(long, value_delimiter = ',', default_values_t = [Part::Raw, Part::Delivery, Part::Acceptance, Part::Memory, Part::Events])]
    parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Raw,
    Delivery,
    Acceptance,
    Memory,
    Events,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        f.write_str(
            self.to_possible_value()
                .expect("no skipped variants")
                .get_name(),
        )
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// smtp-sink on a loopback port; killed when dropped.
struct Sink {
    port: u16,
    child: tokio::process::Child,
}

impl Sink {
    async fn start(bin: &PathBuf) -> Sink {
        let port = free_port();
        let mut cmd = tokio::process::Command::new(bin);
        if running_as_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .args([&format!("127.0.0.1:{port}"), "1024"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start smtp-sink");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Sink { port, child };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("smtp-sink did not start");
    }
}

/// A database of the run's own.
async fn database(args: &Args, dir: &std::path::Path) -> String {
    match args.backend.as_str() {
        "sqlite" => format!("sqlite://{}", dir.join("herald.db").display()),
        "postgres" => {
            let admin = args
                .postgres_url
                .as_deref()
                .expect("--backend postgres needs --postgres-url");
            let name = format!("herald_bench_{}", uuid::Uuid::now_v7().simple());
            let store = herald_store::Store::connect(admin).await.unwrap();
            use herald_store::Connection;
            store
                .read()
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            store.close().await;
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
        other => panic!("--backend {other}: use sqlite or postgres"),
    }
}

/// An in-process Herald (API only) with a tenant and a profile that
/// relays to the sink.
struct Setup {
    herald: Herald,
    running: herald::Running,
    key: String,
    domain: String,
    tenant: TenantId,
    profile: RelayProfileId,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    dir_path: PathBuf,
    db_url: String,
}

async fn setup(args: &Args, sink_port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db_url = database(args, dir.path()).await;
    let env: Vec<(String, String)> = [
        ("HERALD_LISTEN", "127.0.0.1:0".to_owned()),
        ("HERALD_DATA_DIR", dir.path().display().to_string()),
        ("HERALD_DATABASE_URL", db_url.clone()),
        ("HERALD_LOG__LEVEL", "warn".to_owned()),
        ("HERALD_ROLE", "api".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = herald::Config::load(None, &env).expect("configuration");
    let herald = herald::open(&config).await.expect("open herald");
    let domain = "mail.bench.example".to_owned();
    let created = herald
        .create_tenant(herald_app::NewTenant {
            slug: "bench".into(),
            name: None,
            domains: vec![domain.clone()],
            owner_email: "owner@bench.example".into(),
        })
        .await
        .expect("tenant");
    let key = created.api_key.token.expose().clone();
    let running = herald::start(&config, herald.clone()).await.expect("start");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()
        .unwrap();
    let base = format!("http://{}", running.addr);
    let profile: Value = client
        .post(format!("{base}/api/v1/relay-profiles"))
        .bearer_auth(&key)
        .json(&json!({
            "name": "Sink",
            "transport": {"smtp": {"host": "127.0.0.1", "port": sink_port, "security": "none",
                                   "timeout_seconds": 30, "auth": {"mode": "none"}}},
            "from": {"address": format!("office@{domain}")},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let profile = profile["id"].as_str().expect("profile id").parse().unwrap();
    Setup {
        herald,
        running,
        key,
        domain,
        tenant: created.tenant.id,
        profile,
        client,
        dir_path: dir.path().to_owned(),
        _dir: dir,
        db_url,
    }
}

/// A message of about `size` bytes: headers and a plain-text body of
/// varied prose (words drawn from a fixed list by a seeded generator), which
/// compresses about as well as real letters do. A repeated line would
/// compress to almost nothing and flatter the stored-size figures.
fn mime(size: usize) -> Vec<u8> {
    #[rustfmt::skip]
    const WORDS: &[&str] = &[
        "the", "of", "and", "to", "in", "your", "for", "is", "on", "this", "with", "we", "our",
        "term", "report", "invoice", "payment", "due", "date", "amount", "account", "student",
        "teacher", "class", "grade", "marks", "progress", "mathematics", "history", "science",
        "reading", "writing", "homework", "attendance", "meeting", "parents", "school", "office",
        "please", "note", "that", "will", "be", "has", "have", "been", "made", "received",
        "balance", "outstanding", "reference", "number", "monday", "tuesday", "friday", "march",
        "april", "september", "october", "thank", "you", "regards", "questions", "contact",
        "billing", "services", "subscription", "renewal", "period", "total", "tax", "discount",
        "order", "delivery", "address", "update", "changes", "policy", "remarks", "excellent",
        "improved", "needs", "attention", "effort", "work", "project", "assessment", "results",
        "semester", "year", "next", "last", "before", "after", "within", "days", "weeks",
        "confirmation", "statement", "summary", "details", "attached", "below", "above", "link",
    ];
    let mut m = b"From: office@mail.bench.example\r\nTo: someone@sink.example\r\n\
Subject: Benchmark message\r\nMessage-ID: <bench@mail.bench.example>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        .to_vec();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut line = Vec::new();
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let word = WORDS[(seed % WORDS.len() as u64) as usize].as_bytes();
        if line.len() + word.len() + 1 > 72 {
            line.extend_from_slice(b"\r\n");
            if m.len() + line.len() > size {
                break;
            }
            m.append(&mut line);
        }
        if !line.is_empty() {
            line.push(b' ');
        }
        if seed.is_multiple_of(97) {
            line.extend_from_slice(format!("{}", seed % 100_000).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(word);
    }
    m
}

/// How much of the bodies' size the database holds (Herald compresses
/// what shrinks), as a percentage.
async fn stored_share(s: &Setup) -> f64 {
    use herald_store::Connection;
    let store = s.herald.store();
    let row = store
        .read()
        .query_one_raw(herald_store::Statement::from_string(
            store.read().get_database_backend(),
            "SELECT CAST(SUM(LENGTH(b.mime)) AS BIGINT) AS stored, CAST(SUM(m.size) AS BIGINT) AS size \
             FROM message_body b JOIN message m ON m.id = b.message_id",
        ))
        .await
        .expect("stored sizes")
        .expect("a row");
    let stored: Option<i64> = row.try_get("", "stored").expect("stored");
    let size: Option<i64> = row.try_get("", "size").expect("size");
    match (stored, size) {
        (Some(stored), Some(size)) if size > 0 => stored as f64 / size as f64 * 100.0,
        _ => 100.0,
    }
}

/// Stores `n` queued messages of `size` bytes, 1,000 per transaction.
async fn prefill(s: &Setup, n: usize, size: usize) -> Duration {
    let started = Instant::now();
    let body = mime(size);
    let packed = herald_store::body::pack(body.clone());
    let from = EmailAddress::parse(&format!("office@{}", s.domain)).unwrap();
    let store = s.herald.store();
    let mut i = 0;
    while i < n {
        let tx = store.begin().await.unwrap();
        for _ in 0..1000.min(n - i) {
            let now = Timestamp::now();
            let m = QueuedMessage {
                id: MessageId::new(),
                tenant_id: s.tenant,
                profile_id: Some(s.profile),
                identity_id: None,
                purpose: None,
                mail_from: from.clone(),
                message_id_header: format!("bench-{i}@{}", s.domain),
                subject: "Benchmark message".into(),
                size: body.len() as u64,
                test_mode: false,
                deliver_after: now,
                created_at: now,
            };
            let to = EmailAddress::parse(&format!("r{i}@sink.example")).unwrap();
            messages::insert(
                tx.conn(),
                &m,
                &MessageBody {
                    mime: &packed,
                    headers_json: "{}",
                    tags_json: "[]",
                    user_variables_json: "{}",
                },
                &[(to, RecipientStatus::Queued)],
            )
            .await
            .unwrap();
            i += 1;
        }
        tx.commit().await.unwrap();
    }
    started.elapsed()
}

/// Refreshes the planner's statistics, as PostgreSQL's autovacuum does
/// within a minute of a bulk change: a queue filled a second ago would
/// otherwise be planned as if it were empty. (SQLite plans from its
/// indexes alone.)
async fn analyze(s: &Setup) {
    if s.herald.store().backend() == herald_store::Backend::Postgres {
        use herald_store::Connection;
        s.herald
            .store()
            .read()
            .execute_unprepared("ANALYZE")
            .await
            .expect("ANALYZE");
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "within the limit"
    } else {
        "OVER THE LIMIT"
    }
}

/// smtp-source's rate against the sink. On two cores it varies by half from
/// one run to the next (it competes with the sink for the same CPUs), so it
/// runs three times and the median is the limit; all three are printed,
/// each with the share of the CPUs the host took meanwhile (steal), which
/// moves these rates more than anything Herald does.
async fn raw_rate(args: &Args, sink: &Sink) -> f64 {
    let n = 50_000;
    let mut rates = Vec::with_capacity(3);
    let sink_pid = sink.child.id().map(|p| p.to_string()).unwrap_or_default();
    let (_, source_before) = cpu_micros("self");
    let (sink_before, _) = cpu_micros(&sink_pid);
    let mut runs = Vec::with_capacity(3);
    for _ in 0..3 {
        let cpus = Cpus::read();
        let started = Instant::now();
        let status = tokio::process::Command::new(&args.smtp_source)
            .args(["-d", "-s", "10", "-l", "5120", "-m", &n.to_string()])
            .arg(format!("127.0.0.1:{}", sink.port))
            .status()
            .await
            .expect("run smtp-source");
        assert!(status.success(), "smtp-source failed");
        let rate = n as f64 / started.elapsed().as_secs_f64();
        let (_, stolen) = cpus.shares(Cpus::read());
        rates.push(rate);
        runs.push(format!("{rate:.0} ({stolen:.0}% stolen)"));
    }
    let (_, source_cpu) = cpu_micros("self");
    let (sink_cpu, _) = cpu_micros(&sink_pid);
    rates.sort_by(f64::total_cmp);
    let rate = rates[1];
    println!(
        "1. raw limit: smtp-source -d -s 10 -l 5120 -> smtp-sink: {rate:.0} messages/s \
         (median of 3 runs of {n}: {})",
        runs.join(", ")
    );
    let per = |micros: u64| micros as f64 / (3 * n) as f64;
    println!(
        "   CPU per message: smtp-source {:.0} µs, smtp-sink {:.0} µs",
        per(source_cpu - source_before),
        per(sink_cpu - sink_before)
    );
    rate
}

async fn delivery_rate(args: &Args, s: &Setup, sink: &Sink, raw: f64) {
    let n = args.messages;
    let filled = prefill(s, n, 5120).await;
    analyze(s).await;
    println!(
        "   pre-filled {n} messages of 5 KB in {:.1} s (stored in {:.0}% of their size)",
        filled.as_secs_f64(),
        stored_share(s).await
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker =
        herald_worker::Worker::new(s.herald.clone(), herald_worker::WorkerConfig::default());
    let sink_pid = sink.child.id().map(|p| p.to_string()).unwrap_or_default();
    let (herald_before, _) = cpu_micros("self");
    let threads_before = cpu_by_thread();
    let (sink_before, _) = cpu_micros(&sink_pid);
    let cpus = Cpus::read();
    let started = Instant::now();
    let task = tokio::spawn(worker.run(stopped));
    let store = s.herald.store();
    // Polls a cheap "anything left?" (counting 100,000 rows every few
    // milliseconds would tax the run it measures).
    while messages::has_unfinished(store.read()).await.unwrap() {
        if started.elapsed() > Duration::from_secs(1800) {
            println!("   gave up after 30 minutes");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (_, stolen) = cpus.shares(Cpus::read());
    let (herald_cpu, _) = cpu_micros("self");
    let threads = cpu_by_thread();
    let (sink_cpu, _) = cpu_micros(&sink_pid);
    let _ = stop.send(true);
    let _ = task.await;
    let done = messages::count_recipients(store.read(), RecipientStatus::Delivered)
        .await
        .unwrap() as usize;
    if done != n {
        println!("   only {done} of {n} were delivered");
    }
    let rate = n as f64 / secs;
    let ratio = rate / raw * 100.0;
    println!(
        "2. delivery ({}): {rate:.0} messages/s ({n} in {secs:.1} s, {stolen:.0}% stolen) = {ratio:.1}% of the raw limit",
        args.backend
    );
    let per = |micros: u64| micros as f64 / n as f64;
    println!(
        "   CPU per message: Herald {:.0} µs (with the database's threads), smtp-sink {:.0} µs",
        per(herald_cpu - herald_before),
        per(sink_cpu - sink_before)
    );
    println!(
        "   by thread (µs per message): {}",
        by_thread(&threads_before, &threads, n)
    );
    if args.backend == "postgres" {
        println!(
            "   limit: >= 3,000 messages/s on PostgreSQL: {}",
            verdict(rate >= 3000.0)
        );
    } else {
        println!(
            "   limit: >= 70% of the raw limit on SQLite: {}",
            verdict(ratio >= 70.0)
        );
    }
}

#[derive(Debug)]
struct Load {
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: usize,
    /// CPU per message by thread: Herald's (tokio-rt-worker: HTTP; its
    /// writer and SQLite's connections) and the load generator's
    /// (bench-client).
    threads: String,
    /// When the run began.
    started: Instant,
    /// Each answered request: when it was scheduled (paced) or sent, and
    /// its latency in µs.
    requests: Vec<(Instant, u64)>,
    /// The device under the database meanwhile (none when it could not be
    /// watched).
    device: Option<device::Device>,
    /// The machine's CPUs meanwhile: busy and stolen by the host, in
    /// percent of their time.
    busy: f64,
    stolen: f64,
}

/// How long after a device stall its backlog may still delay requests: a
/// paced run at 80% of the peak drains what piled up with a fifth of the
/// machine, about four times as long as the stall, and the stalls seen
/// were up to 400 ms.
const BEHIND_STALL: Duration = Duration::from_secs(1);

impl Load {
    /// Whether a request scheduled at `at` was during a device stall or
    /// within [`BEHIND_STALL`] after one.
    fn behind_stall(&self, at: Instant) -> bool {
        self.device
            .as_ref()
            .is_some_and(|d| d.stalls.iter().any(|s| s.covers(at, BEHIND_STALL)))
    }

    /// Late requests (over the p99's 25 ms), and how many of them were
    /// behind a device stall.
    fn late(&self) -> (usize, usize) {
        let late = self.requests.iter().filter(|r| r.1 > LATE_US);
        let behind = late.clone().filter(|r| self.behind_stall(r.0)).count();
        (late.count(), behind)
    }

    /// The late requests (over 25 ms) grouped into episodes: runs of them
    /// scheduled less than [`EPISODE_GAP`] apart. Each: its first
    /// request's offset into the run, how long it spans, how many requests
    /// it holds and its longest latency (µs); the largest first.
    fn episodes(&self) -> Vec<(Duration, Duration, usize, u64)> {
        let mut late: Vec<(Instant, u64)> = self
            .requests
            .iter()
            .copied()
            .filter(|r| r.1 > LATE_US)
            .collect();
        late.sort_unstable_by_key(|r| r.0);
        let mut episodes: Vec<(Instant, Instant, usize, u64)> = Vec::new();
        for (at, lat) in late {
            match episodes.last_mut() {
                Some(e) if at - e.1 < EPISODE_GAP => {
                    e.1 = at;
                    e.2 += 1;
                    e.3 = e.3.max(lat);
                }
                _ => episodes.push((at, at, 1, lat)),
            }
        }
        episodes.sort_unstable_by_key(|e| std::cmp::Reverse(e.2));
        episodes
            .into_iter()
            .map(|(first, last, n, max)| {
                (
                    first.saturating_duration_since(self.started),
                    last - first,
                    n,
                    max,
                )
            })
            .collect()
    }

    /// The p99 of the requests scheduled away from every device stall
    /// (outside [`BEHIND_STALL`] of one): what the run gives where the
    /// device kept up.
    fn p99_away_from_stalls(&self) -> f64 {
        let mut away: Vec<u64> = self
            .requests
            .iter()
            .filter(|r| !self.behind_stall(r.0))
            .map(|r| r.1)
            .collect();
        away.sort_unstable();
        percentile(&away, 0.99)
    }
}

/// Late requests scheduled closer than this belong to one episode.
const EPISODE_GAP: Duration = Duration::from_millis(100);

/// The acceptance p99's limit, in µs.
const LATE_US: u64 = 25_000;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The load generator's own runtime, on threads named `bench-client`, so
/// that its tasks never wait in the run queues of Herald's HTTP workers
/// (which share the main runtime, as in `herald serve`) and its CPU time is
/// counted apart from Herald's.
static GENERATOR: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("the load generator's runtime")
});

/// One client's request body for /v3/{domain}/messages: a
/// multipart/form-data form built once and sent unchanged each time, as
/// load generators do, so that building it costs the run nothing. Herald
/// parses every request in full either way. Returns the content type and
/// the body.
fn form(client: usize, domain: &str, text: &str) -> (String, String) {
    let boundary = format!("herald-bench-{client:04}-boundary");
    let mut body = String::with_capacity(text.len() + 512);
    for (name, value) in [
        ("from", format!("Office <office@{domain}>")),
        ("to", format!("parent{client}@home.example")),
        ("subject", "Benchmark".to_owned()),
        ("text", text.to_owned()),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `clients` tasks posting for `seconds`; with `target`, paced to that
/// total rate (latency counted from each request's scheduled start). The
/// tasks run on the [`GENERATOR`] runtime with a client of their own.
async fn load(s: &Setup, args: &Args, path: &str, target: Option<f64>) -> Load {
    let addr = s.running.addr;
    let path = format!("/v3/{}/{path}", s.domain);
    let text = String::from_utf8(mime(5120)).unwrap();
    let auth = {
        use base64::Engine;
        let pair = format!("api:{}", s.key);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let watch = device::Watch::start(&s.dir_path).ok();
    let threads_before = cpu_by_thread();
    let cpus_before = Cpus::read();
    let mut tasks = Vec::new();
    let interval = target.map(|t| Duration::from_secs_f64(args.clients as f64 / t));
    for c in 0..args.clients {
        let (content_type, body) = form(c, &s.domain, &text);
        let request = http::post(
            addr,
            &path,
            &[("Authorization", &auth), ("Content-Type", &content_type)],
            body.as_bytes(),
        );
        // Paced clients start spread over one interval.
        let offset = c as f64 / args.clients as f64;
        tasks.push(GENERATOR.spawn(async move {
            let mut client = http::Client::new(addr);
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut next = Instant::now() + interval.map(|i| i.mul_f64(offset)).unwrap_or_default();
            while Instant::now() < until {
                let scheduled = if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    let at = next;
                    next += i;
                    at
                } else {
                    Instant::now()
                };
                match client.send(&request).await {
                    Ok(status) if (200..300).contains(&status) => {
                        lat.push((scheduled, scheduled.elapsed().as_micros() as u64));
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    let threads = by_thread(&threads_before, &cpu_by_thread(), all.len());
    let (busy, stolen) = cpus_before.shares(Cpus::read());
    let device = watch.map(device::Watch::stop);
    let mut latencies: Vec<u64> = all.iter().map(|r| r.1).collect();
    latencies.sort_unstable();
    Load {
        threads,
        rate: all.len() as f64 / secs,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        p999: percentile(&latencies, 0.999),
        errors,
        started,
        requests: all,
        device,
        busy,
        stolen,
    }
}

fn show(label: &str, l: &Load) {
    println!(
        "   {label}: {:.0} messages/s, p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, {} errors",
        l.rate, l.p50, l.p99, l.p999, l.errors
    );
    println!("     by thread (µs per message): {}", l.threads);
    println!(
        "     the machine's CPUs: {:.0}% busy, {:.0}% stolen by the host",
        l.busy, l.stolen
    );
    let episodes = l.episodes();
    if !episodes.is_empty() {
        let largest: Vec<String> = episodes
            .iter()
            .take(3)
            .map(|(at, span, n, max)| {
                format!(
                    "{n} from {:.2} s over {} ms (up to {:.0} ms)",
                    at.as_secs_f64(),
                    span.as_millis(),
                    *max as f64 / 1e3
                )
            })
            .collect();
        println!(
            "     over 25 ms: {} requests in {} episodes; the largest: {}",
            episodes.iter().map(|e| e.2).sum::<usize>(),
            episodes.len(),
            largest.join("; ")
        );
    }
    match &l.device {
        None => println!("     the device under the database: not watched"),
        Some(d) if d.stalls.is_empty() => {}
        Some(d) => {
            let (late, behind) = l.late();
            println!(
                "     the device stalled {} times meanwhile (over 25 ms with I/O outstanding and none completed; longest {:.0} ms): {behind} of the {late} requests over 25 ms were scheduled during a stall or within {} s after it; the p99 of the others {:.1} ms",
                d.stalls.len(),
                d.longest_ms(),
                BEHIND_STALL.as_secs(),
                l.p99_away_from_stalls()
            );
        }
    }
}

async fn acceptance(args: &Args, s: &Setup) {
    println!(
        "3. acceptance over HTTP, {} clients, {} s each:",
        args.clients, args.seconds
    );
    let dir = s.dir_path.clone();
    let length = Duration::from_secs(args.seconds);
    let watch = device::Watch::start(&dir).ok();
    let disk = tokio::task::spawn_blocking(move || disk::probe(&dir, length))
        .await
        .expect("disk probe")
        .expect("disk probe's file");
    let seen = watch.map(device::Watch::stop);
    println!(
        "   the disk alone ({} KB written and fdatasync'd every 2 ms for {} s, beside the database): p50 {:.2} ms, p99.9 {:.1} ms, max {:.1} ms; {} of {} syncs over 25 ms",
        disk::WRITE / 1024,
        args.seconds,
        disk.p50_ms,
        disk.p999_ms,
        disk.max_ms,
        disk.stalls,
        disk.syncs
    );
    match seen {
        Some(d) => println!(
            "     the device meanwhile: {} stalls over 25 ms (longest {:.0} ms), {} I/Os completed",
            d.stalls.len(),
            d.longest_ms(),
            d.completed
        ),
        None => println!("     the device under the database: not watched"),
    }
    let limit = load(s, args, "messages.parse-only", None).await;
    show("parse-only route (the HTTP limit)", &limit);
    let peak = load(s, args, "messages", None).await;
    show("/v3/{domain}/messages", &peak);
    let paced = at_80_percent(s, args, peak.rate).await;
    for &rate in &args.rates {
        let l = load(s, args, "messages", Some(rate)).await;
        show(&format!("paced at {rate:.0}/s"), &l);
    }
    if args.backend == "sqlite" {
        println!(
            "   limit: >= 5,000 messages/s on SQLite with synchronous=FULL: {}; p99 <= 25 ms at 80% of peak: {}",
            verdict(peak.rate >= 5000.0),
            verdict(paced.p99 <= 25.0)
        );
        let stalled = paced.device.as_ref().is_some_and(|d| !d.stalls.is_empty());
        if paced.p99 > 25.0 && stalled {
            println!(
                "     every acceptance waits for an fdatasync, and the device stalled during the judged run: p99 {:.1} ms away from its stalls",
                paced.p99_away_from_stalls()
            );
        }
    } else {
        println!(
            "   limit: none on {} (>= 5,000 messages/s and p99 <= 25 ms at 80% of peak hold on SQLite)",
            args.backend
        );
    }
}

/// How far the peak measured after a paced run may move from the one its
/// target came from (the paced load then was 80% ± 10% of the machine's
/// capacity at the time).
const STEADY: f64 = 0.10;

/// Paced attempts at 80% of the peak, at most.
const ATTEMPTS: usize = 3;

/// The paced run at 80% of the peak, with the peak measured again right
/// after it. This machine's speed moves by up to ±25% between 10-second
/// windows, so 80% of one window's peak can be all the next window can
/// do: that run measures an overload, not 80%. When the peak after the
/// paced run is more than [`STEADY`] away from the one before, the run is
/// shown, said to be off, and repeated at 80% of the newer peak, up to
/// [`ATTEMPTS`] times. Whether it is off depends only on the two peaks,
/// never on the latencies; if no attempt holds, the last one is judged.
async fn at_80_percent(s: &Setup, args: &Args, mut peak: f64) -> Load {
    let mut attempt = 1;
    loop {
        let target = peak * 0.8;
        let paced = load(s, args, "messages", Some(target)).await;
        show(&format!("at 80% of peak ({target:.0}/s)"), &paced);
        let after = load(s, args, "messages", None).await;
        show("peak again, right after", &after);
        let moved = after.rate / peak - 1.0;
        let share = 100.0 * target / after.rate;
        if moved.abs() <= STEADY {
            println!(
                "     the peak moved {:+.0}%: the paced load was {share:.0}% of it",
                100.0 * moved
            );
            return paced;
        }
        if attempt == ATTEMPTS {
            println!(
                "     the peak moved {:+.0}% (the paced load was {share:.0}% of the peak after it); {ATTEMPTS} attempts, none steady: the last one is judged",
                100.0 * moved
            );
            return paced;
        }
        println!(
            "     the peak moved {:+.0}%: the paced load was {share:.0}% of the peak after it, not 80%; again at 80% of the newer peak",
            100.0 * moved
        );
        peak = after.rate;
        attempt += 1;
    }
}

/// CPU time used so far by process `pid` ("self" for this one): its own,
/// and that of its children it has waited for, in microseconds (from
/// /proc/PID/stat, counted in Linux's fixed 100 ticks a second).
fn cpu_micros(pid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let tick = |i: usize| fields.get(i).copied().unwrap_or(0) * 10_000;
    (tick(11) + tick(12), tick(13) + tick(14))
}

/// The machine's CPU time so far, from the `cpu` line of /proc/stat (in
/// ticks, all CPUs): in total, idle (with iowait), and stolen (the time
/// the hypervisor ran something else while a virtual CPU wanted to run).
#[derive(Debug, Clone, Copy, Default)]
struct Cpus {
    total: u64,
    idle: u64,
    steal: u64,
}

impl Cpus {
    fn read() -> Cpus {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        Cpus::parse(stat.lines().next().unwrap_or_default())
    }

    /// `cpu  user nice system idle iowait irq softirq steal guest
    /// guest_nice`; guest time is already counted in user and nice.
    fn parse(line: &str) -> Cpus {
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        Cpus {
            total: (0..8).map(at).sum(),
            idle: at(3) + at(4),
            steal: at(7),
        }
    }

    /// The shares of the time between `self` and `later` that the CPUs
    /// were busy and stolen, in percent.
    fn shares(self, later: Cpus) -> (f64, f64) {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let idle = later.idle.saturating_sub(self.idle) as f64;
        let steal = later.steal.saturating_sub(self.steal) as f64;
        (
            100.0 * (total - idle - steal) / total,
            100.0 * steal / total,
        )
    }
}

/// CPU time so far of each thread of this process, by thread name
/// (tokio-rt-worker, sqlx-sqlite-worker, herald-record-0, ...) and thread.
fn cpu_by_thread() -> std::collections::BTreeMap<(String, String), u64> {
    let mut by_thread = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_thread;
    };
    for t in tasks.flatten() {
        let tid = t.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let (own, _) = cpu_micros(&format!("self/task/{tid}"));
        by_thread.insert((name, tid), own);
    }
    by_thread
}

/// CPU per message of each thread name between two [`cpu_by_thread`]
/// readings: the total and, when several threads share the name (SQLite's
/// connections each have one), the busiest thread's share. Threads that
/// ended in between are missing.
fn by_thread(
    before: &std::collections::BTreeMap<(String, String), u64>,
    after: &std::collections::BTreeMap<(String, String), u64>,
    n: usize,
) -> String {
    let per = |micros: u64| micros as f64 / n.max(1) as f64;
    let mut names: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for ((name, tid), now) in after {
        let was = before
            .get(&(name.clone(), tid.clone()))
            .copied()
            .unwrap_or(0);
        names
            .entry(name)
            .or_default()
            .push(per(now.saturating_sub(was)));
    }
    let split: Vec<String> = names
        .into_iter()
        .filter(|(_, us)| us.iter().sum::<f64>() >= 0.5)
        .map(|(name, us)| {
            let total: f64 = us.iter().sum();
            let busiest = us.iter().copied().fold(0.0, f64::max);
            if us.len() > 1 {
                format!("{name} ×{} {total:.0} (busiest {busiest:.0})", us.len())
            } else {
                format!("{name} {total:.0}")
            }
        })
        .collect();
    split.join(", ")
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn memory(args: &Args, sink: &Sink) {
    let n = args.queued;
    let s = setup(args, sink.port).await;
    let filled = prefill(&s, n, 1024).await;
    println!(
        "4. memory: pre-filled {n} queued messages of 1 KB in {:.1} s",
        filled.as_secs_f64()
    );
    let dir = s.dir_path.clone();
    let db_url = s.db_url.clone();
    let herald = s.herald.clone();
    s.running.stop().await;
    herald.store().clone().close().await;
    let port = free_port();
    let mut child = tokio::process::Command::new(&args.herald)
        .arg("serve")
        .env_clear()
        .env("HERALD_DATA_DIR", &dir)
        .env("HERALD_DATABASE_URL", &db_url)
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start herald serve");
    let pid = child.id().unwrap();
    let mut max = 0;
    let mut exited = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            break;
        }
        if let Some(k) = rss_kib(pid) {
            max = max.max(k);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill().await;
    if let Some(status) = exited {
        println!("   herald serve exited early ({status}): no figure");
        println!("   limit: <= 150 MB resident: {}", verdict(false));
        return;
    }
    // What it delivered meanwhile, so that the figure is known to be one
    // of a working process.
    let delivered = match herald_store::Store::connect(&db_url).await {
        Ok(store) => {
            use herald_store::Connection;
            let row = store
                .read()
                .query_one_raw(herald_store::Statement::from_string(
                    store.read().get_database_backend(),
                    "SELECT COUNT(*) AS n FROM recipient WHERE status = 'delivered'",
                ))
                .await;
            store.close().await;
            row.ok()
                .flatten()
                .and_then(|r| r.try_get::<i64>("", "n").ok())
                .unwrap_or(0)
        }
        Err(_) => 0,
    };
    let mib = max as f64 / 1024.0;
    println!(
        "   herald serve ({}) while delivering from {n} queued ({delivered} delivered in 20 s): {mib:.0} MiB resident at most",
        args.backend
    );
    println!(
        "   limit: <= 150 MB resident: {}",
        verdict(max > 0 && delivered > 0 && max as f64 * 1024.0 <= 150e6)
    );
}

/// mimalloc: delivery allocates and frees many short-lived buffers across
/// threads, where it costs a fraction of glibc's malloc (see the README's
/// benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    println!(
        "herald-bench on {} ({} CPUs)",
        args.backend,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let sink = Sink::start(&args.smtp_sink).await;
    let wants = |p: Part| args.parts.contains(&p);
    let delivery = wants(Part::Delivery);
    let raw = if delivery || wants(Part::Raw) {
        raw_rate(&args, &sink).await
    } else {
        0.0
    };
    if delivery || wants(Part::Acceptance) {
        let s = setup(&args, sink.port).await;
        if delivery {
            delivery_rate(&args, &s, &sink, raw).await;
        }
        if wants(Part::Acceptance) {
            acceptance(&args, &s).await;
        }
        let herald = s.herald.clone();
        s.running.stop().await;
        herald.store().clone().close().await;
    }
    if args.queued > 0 && wants(Part::Memory) {
        memory(&args, &sink).await;
    }
    if args.events > 0 && wants(Part::Events) {
        let s = setup(&args, sink.port).await;
        events::events(&args, &s).await;
        let herald = s.herald.clone();
        s.running.stop().await;
        herald.store().clone().close().await;
    }
    let Sink { mut child, .. } = sink;
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpus_shares_come_from_proc_stat() {
        let before = Cpus::parse("cpu  100 0 50 800 50 0 0 0 0 0");
        // 1,000 more ticks: 300 user, 100 system, 300 idle, 0 iowait, 300
        // stolen; guest time (20) is inside user and not counted twice.
        let after = Cpus::parse("cpu  400 0 150 1100 50 0 0 300 20 0");
        assert_eq!((before.total, before.idle, before.steal), (1000, 850, 0));
        assert_eq!(before.shares(after), (40.0, 30.0));
        let now = Cpus::read();
        assert!(now.total > 0 && now.idle <= now.total && now.steal <= now.total);
    }

    #[test]
    fn late_requests_are_told_apart_by_episode_and_by_device_stall() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // On time every 10 ms for 5 s; late ones at 1.00-1.05 s, at 3.00 s
        // and at 3.09 s (one episode with it), and at 4.50 s.
        let mut requests: Vec<(Instant, u64)> = (0..500).map(|n| (ms(10 * n), 3_000)).collect();
        for (at, lat) in [
            (1000, 40_000),
            (1020, 90_000),
            (1050, 30_000),
            (3000, 26_000),
            (3090, 30_000),
            (4500, 50_000),
        ] {
            requests.push((ms(at), lat));
        }
        let l = Load {
            rate: 0.0,
            p50: 0.0,
            p99: 0.0,
            p999: 0.0,
            errors: 0,
            threads: String::new(),
            started: t0,
            requests,
            device: Some(device::Device {
                completed: 1,
                stalls: vec![device::Stall {
                    start: ms(990),
                    length: Duration::from_millis(40),
                }],
            }),
            busy: 0.0,
            stolen: 0.0,
        };
        let episodes = l.episodes();
        assert_eq!(
            episodes,
            vec![
                (Duration::from_secs(1), Duration::from_millis(50), 3, 90_000),
                (Duration::from_secs(3), Duration::from_millis(90), 2, 30_000),
                (Duration::from_millis(4500), Duration::ZERO, 1, 50_000),
            ]
        );
        // The first episode is behind the stall (within 1 s of its end),
        // the others are not.
        assert_eq!(l.late(), (6, 3));
        // Six late of 506 put the p99 over 25 ms; away from the stall
        // (0.99-2.03 s) three late of 398 leave it on time.
        let mut all: Vec<u64> = l.requests.iter().map(|r| r.1).collect();
        all.sort_unstable();
        assert_eq!(percentile(&all, 0.99), 26.0);
        assert_eq!(l.p99_away_from_stalls(), 3.0);
    }
}
