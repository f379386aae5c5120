//! The event log as tenants read it: Mailgun's Events API on /v3 (filters,
//! ranges, paging links, errors), the same search on /api/v1 with its CSV
//! report, suppression lists on /v3 and /api/v1, retention, and npm
//! mailgun.js reading all of it unchanged.

use std::collections::HashSet;

use herald_domain::{
    EmailAddress, Event, EventKind, MessageId, QueuedMessage, RecipientStatus, Severity, Timestamp,
};
use herald_store::{events, messages};
use herald_tests::{TestApp, TestTenant};
use reqwest::Method;
use serde_json::{Value, json};

/// Base of the seeded log: 2026-11-01 00:00:00 UTC.
const T0: i64 = 1_793_491_200_000_000;
const MIN: i64 = 60_000_000;

struct Seeded {
    /// Every event id in (ts, id) order.
    ids: Vec<String>,
    message_id_header: String,
}

async fn default_profile(app: &TestApp, t: &TestTenant) -> String {
    let (_, list) = app.get("/api/v1/relay-profiles", &t.admin_key).await;
    list["items"][0]["id"].as_str().unwrap().to_owned()
}

/// Two messages and ten events at chosen times (five share one instant):
/// m1 (subject "Report card", tag "grades", to a@ and b@) accepted for both,
/// delivered to a@, failed temporarily then permanently for b@; m2 (subject
/// "Invoice", tag "billing") accepted, rejected as suppressed, and three
/// deliveries at the same instant.
async fn seed(app: &TestApp, t: &TestTenant) -> Seeded {
    let tenant = t.id.parse().unwrap();
    let profile = default_profile(app, t).await;
    let from = EmailAddress::parse(&format!("office@{}", t.domain)).unwrap();
    let store = app.herald().store();
    let tx = store.begin().await.unwrap();
    let mut all: Vec<Event> = Vec::new();
    let mut header_ids = Vec::new();
    for (n, (subject, tag, to)) in [
        (
            "Report card",
            "grades",
            vec!["a@home.example", "b@home.example"],
        ),
        (
            "Invoice",
            "billing",
            vec!["c@pay.example", "d@pay.example", "e@pay.example"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = MessageId::new();
        let header = format!("m{n}.{id}@{}", t.domain);
        let m = QueuedMessage {
            id,
            tenant_id: tenant,
            profile_id: Some(profile.parse().unwrap()),
            identity_id: None,
            purpose: None,
            mail_from: from.clone(),
            message_id_header: header.clone(),
            subject: subject.into(),
            size: 1234,
            test_mode: false,
            deliver_after: Timestamp::from_micros(T0),
            created_at: Timestamp::from_micros(T0),
        };
        let headers = json!({"to": to.join(", "), "from": from.to_string(),
                             "subject": subject, "message-id": header})
        .to_string();
        let tags = json!([tag]).to_string();
        let rcpts: Vec<(EmailAddress, RecipientStatus)> = to
            .iter()
            .map(|a| (EmailAddress::parse(a).unwrap(), RecipientStatus::Delivered))
            .collect();
        messages::insert(
            tx.conn(),
            &m,
            &messages::MessageBody {
                mime: &herald_store::body::pack(b"Subject: x\r\n\r\nhello".to_vec()),
                headers_json: &headers,
                tags_json: &tags,
                user_variables_json: r#"{"student":"42"}"#,
            },
            &rcpts,
        )
        .await
        .unwrap();
        let ev = |to: &str, kind: EventKind, minute: i64| {
            let mut e =
                Event::for_recipient(tenant, id, &from, &EmailAddress::parse(to).unwrap(), kind);
            e.at = Timestamp::from_micros(T0 + minute * MIN);
            e
        };
        if n == 0 {
            all.push(ev("a@home.example", EventKind::Accepted, 0));
            all.push(ev("b@home.example", EventKind::Accepted, 0));
            let mut d = ev("a@home.example", EventKind::Delivered, 1);
            d.detail = Some(
                json!({"code": 250, "enhanced-code": "2.0.0", "message": "2.0.0 OK",
                       "attempt-no": 1, "session-seconds": 0.1})
                .to_string(),
            );
            all.push(d);
            let mut f = ev("b@home.example", EventKind::Failed, 2);
            f.severity = Some(Severity::Temporary);
            f.reason = Some("generic".into());
            f.detail = Some(
                json!({"code": 450, "enhanced-code": "4.2.0", "message": "4.2.0 try later",
                       "attempt-no": 1, "session-seconds": 0.2})
                .to_string(),
            );
            all.push(f);
            let mut f = ev("b@home.example", EventKind::Failed, 12);
            f.severity = Some(Severity::Permanent);
            f.reason = Some("bounce".into());
            f.detail = Some(
                json!({"code": 550, "enhanced-code": "5.1.1", "message": "5.1.1 no such user",
                       "attempt-no": 2, "session-seconds": 0.2})
                .to_string(),
            );
            all.push(f);
        } else {
            all.push(ev("c@pay.example", EventKind::Accepted, 20));
            let mut r = ev("d@pay.example", EventKind::Rejected, 20);
            r.severity = Some(Severity::Permanent);
            r.reason = Some("suppress-bounce".into());
            all.push(r);
            // Three events at one instant: paging must neither skip nor
            // repeat any of them.
            for to in ["c@pay.example", "e@pay.example", "e@pay.example"] {
                all.push(ev(to, EventKind::Delivered, 30));
            }
        }
        header_ids.push(header);
    }
    events::insert_many(tx.conn(), &all).await.unwrap();
    tx.commit().await.unwrap();
    all.sort_by_key(|e| (e.at, e.id.to_string()));
    Seeded {
        ids: all.iter().map(|e| e.id.to_string()).collect(),
        message_id_header: header_ids.remove(0),
    }
}

async fn v3(app: &TestApp, t: &TestTenant, path_and_query: &str) -> (u16, Value) {
    v3_with(app, &t.admin_key, path_and_query).await
}

async fn v3_with(app: &TestApp, key: &str, path_and_query: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(path_and_query))
        .basic_auth("api", Some(key))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Follows an absolute paging URL (it must point at this server).
async fn follow(app: &TestApp, t: &TestTenant, url: &str) -> (u16, Value) {
    let base = app.url("");
    assert!(url.starts_with(&base), "{url} is not under {base}");
    v3(app, t, &url[base.len()..]).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

const RANGE: &str = "begin=1793491200&end=1793577600";

#[tokio::test]
async fn mailgun_events_api_filters_ranges_and_pages() {
    let app = TestApp::api_only().await;
    let t = app.tenant("evlog").await;
    let seeded = seed(&app, &t).await;
    let d = &t.domain;

    // Ascending over the day: everything, oldest first, in Mailgun's shape.
    let (status, page) = v3(&app, &t, &format!("/v3/{d}/events?{RANGE}&limit=300")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), seeded.ids);
    let delivered = &page["items"][2];
    assert_eq!(delivered["event"], "delivered");
    assert_eq!(delivered["log-level"], "info");
    assert_eq!(delivered["recipient"], "a@home.example");
    assert_eq!(delivered["recipient-domain"], "home.example");
    assert_eq!(delivered["tags"], json!(["grades"]));
    assert_eq!(delivered["user-variables"], json!({"student": "42"}));
    assert_eq!(delivered["envelope"]["sender"], format!("office@{d}"));
    assert_eq!(delivered["envelope"]["targets"], "a@home.example");
    assert_eq!(delivered["message"]["headers"]["subject"], "Report card");
    assert_eq!(
        delivered["message"]["headers"]["message-id"],
        seeded.message_id_header
    );
    assert_eq!(delivered["delivery-status"]["code"], 250);
    assert_eq!(
        delivered["timestamp"].as_f64().unwrap(),
        (T0 + MIN) as f64 / 1e6
    );
    let failed = &page["items"][4];
    assert_eq!(failed["event"], "failed");
    assert_eq!(failed["severity"], "permanent");
    assert_eq!(failed["reason"], "bounce");
    assert_eq!(failed["log-level"], "error");
    assert_eq!(failed["delivery-status"]["enhanced-code"], "5.1.1");
    assert_eq!(failed["delivery-status"]["attempt-no"], 2);
    assert_eq!(page["items"][3]["log-level"], "warn");
    assert_eq!(page["items"][6]["reason"], "suppress-bounce");
    for link in ["first", "last", "next", "previous"] {
        let url = page["paging"][link].as_str().unwrap();
        assert!(url.starts_with("http://"), "{link}: {url}");
    }

    // Without a range: newest first. begin > end walks backwards too.
    let (_, newest) = v3(&app, &t, &format!("/v3/{d}/events")).await;
    let mut reversed = seeded.ids.clone();
    reversed.reverse();
    assert_eq!(ids(&newest), reversed);
    let (_, back) = v3(
        &app,
        &t,
        &format!("/v3/{d}/events?begin=Mon, 02 Nov 2026 00:00:00 GMT&end=1793491200"),
    )
    .await;
    assert_eq!(ids(&back), reversed);
    // A range that holds only m1's first minute.
    let (_, early) = v3(
        &app,
        &t,
        &format!("/v3/{d}/events?begin=1793491200&end=1793491230&ascending=yes"),
    )
    .await;
    assert_eq!(ids(&early), seeded.ids[..2].to_vec());

    // Paging one at a time through equal timestamps, forward then back.
    let mut walked = Vec::new();
    let (_, mut p) = v3(&app, &t, &format!("/v3/{d}/events?{RANGE}&limit=1")).await;
    while !ids(&p).is_empty() {
        walked.extend(ids(&p));
        assert!(walked.len() <= seeded.ids.len(), "paging repeats");
        let next = p["paging"]["next"].as_str().unwrap().to_owned();
        p = follow(&app, &t, &next).await.1;
    }
    assert_eq!(walked, seeded.ids);
    let mut back_walk = Vec::new();
    let prev = p["paging"]["previous"].as_str().unwrap().to_owned();
    let (_, mut p) = follow(&app, &t, &prev).await;
    while !ids(&p).is_empty() {
        let mut here = ids(&p);
        here.extend(back_walk);
        back_walk = here;
        let prev = p["paging"]["previous"].as_str().unwrap().to_owned();
        p = follow(&app, &t, &prev).await.1;
    }
    assert_eq!(back_walk, seeded.ids);
    // `last` is the final page, in the search's order.
    let (_, first3) = v3(&app, &t, &format!("/v3/{d}/events?{RANGE}&limit=3")).await;
    let last = first3["paging"]["last"].as_str().unwrap().to_owned();
    let (_, last3) = follow(&app, &t, &last).await;
    assert_eq!(ids(&last3), seeded.ids[seeded.ids.len() - 3..].to_vec());

    // Filters.
    let count = |q: &str| {
        let app = &app;
        let t = &t;
        let q = q.to_owned();
        async move {
            let (status, body) = v3(app, t, &format!("/v3/{}/events?{RANGE}&{q}", t.domain)).await;
            assert_eq!(status, 200, "{q}: {body}");
            body["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("event=delivered").await, 4);
    assert_eq!(count("event=failed OR rejected").await, 3);
    assert_eq!(count("event=NOT accepted").await, 7);
    assert_eq!(count("event=failed&severity=temporary").await, 1);
    assert_eq!(count("recipient=B@HOME.example").await, 3);
    assert_eq!(count("recipient=e@pay.example OR c@pay.example").await, 4);
    assert_eq!(count(&format!("from=office@{d}")).await, 10);
    assert_eq!(count("from=someone@else.example").await, 0);
    assert_eq!(count("to=d@pay.example").await, 5);
    assert_eq!(count("to=NOT d@pay.example").await, 5);
    assert_eq!(
        count("to=pay.example").await,
        0,
        "to matches whole addresses"
    );
    assert_eq!(count("subject=report").await, 5);
    assert_eq!(count("subject=\"Invoice\"").await, 5);
    assert_eq!(
        count(&format!("message-id=<{}>", seeded.message_id_header)).await,
        5
    );
    assert_eq!(count("tags=billing").await, 5);
    assert_eq!(count("tags=grades OR billing&event=delivered").await, 4);
    assert_eq!(
        count("recipient=e@pay.example&recipient=NOT e@pay.example").await,
        0,
        "a field given twice must match both"
    );
    let (_, limited) = v3(&app, &t, &format!("/v3/{d}/events?{RANGE}&limit=4")).await;
    assert_eq!(ids(&limited), seeded.ids[..4].to_vec());

    // Mailgun's 400 for what it cannot take.
    for q in [
        "limit=301",
        "limit=0",
        "limit=lots",
        "begin=yesterday",
        "ascending=maybe",
        "event=bogus",
        "severity=fatal",
        "colour=blue",
        "event=(a OR b)",
        "event=a AND b",
        "begin=1793491200&end=1793577600&ascending=no",
        "recipient=a%0D%0Ab@home.example",
        "subject=report%00card",
        &format!("subject={}", "x".repeat(1000)),
    ] {
        let (status, body) = v3(&app, &t, &format!("/v3/{d}/events?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{q}"
        );
    }
    let (status, _) = v3(&app, &t, &format!("/v3/{d}/events/not-a-page")).await;
    assert_eq!(status, 400);
    // Opens and clicks are never tracked, but naming them is not an error.
    assert_eq!(count("event=opened").await, 0);
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_events() {
    let app = TestApp::api_only().await;
    let a = app.tenant("evwalla").await;
    let b = app.tenant("evwallb").await;
    let seeded = seed(&app, &a).await;
    seed(&app, &b).await;
    // B's key on A's domain: Mailgun's 404, and nothing of A's.
    let (status, body) = v3_with(&app, &b.admin_key, &format!("/v3/{}/events", a.domain)).await;
    assert_eq!(status, 404, "{body}");
    // B's own log holds only B's events.
    let (_, own) = v3_with(
        &app,
        &b.admin_key,
        &format!("/v3/{}/events?limit=300", b.domain),
    )
    .await;
    let mine: HashSet<String> = ids(&own).into_iter().collect();
    assert_eq!(mine.len(), 10);
    assert!(seeded.ids.iter().all(|id| !mine.contains(id)));
    // A paging token taken from A and replayed by B searches B's domain only.
    let (_, a_page) = v3(
        &app,
        &a,
        &format!("/v3/{}/events?{RANGE}&limit=2", a.domain),
    )
    .await;
    let next = a_page["paging"]["next"].as_str().unwrap();
    let token = next.rsplit('/').next().unwrap();
    let (status, stolen) = v3_with(
        &app,
        &b.admin_key,
        &format!("/v3/{}/events/{token}", b.domain),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ids(&stolen).iter().all(|id| !seeded.ids.contains(id)));
    // /api/v1 too.
    let (_, v1) = app.get("/api/v1/events?limit=300", &b.admin_key).await;
    assert!(
        v1["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !seeded.ids.contains(&i["id"].as_str().unwrap().to_owned()))
    );
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    // Enough of RFC 4180 for the report: quoted fields with "" escapes.
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn the_native_event_log_pages_and_its_csv_report_matches() {
    let app = TestApp::api_only().await;
    let t = app.tenant("evnative").await;
    let seeded = seed(&app, &t).await;
    let viewer = app.key(&t, "viewer").await;

    // Keyset pages of 3, oldest first.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/events?{RANGE}&limit=3&cursor={c}"),
            None => format!("/api/v1/events?{RANGE}&limit=3"),
        };
        let (status, page) = app.get(&path, &viewer).await;
        assert_eq!(status, 200, "{page}");
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, seeded.ids);

    // The message filter, and errors in /api/v1's shape.
    let (_, one) = app.get(&format!("/api/v1/events?{RANGE}"), &viewer).await;
    let message = one["items"][0]["herald"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{one}"))
        .to_owned();
    let (_, of_message) = app
        .get(
            &format!("/api/v1/events?message={message}&limit=300"),
            &viewer,
        )
        .await;
    assert_eq!(of_message["items"].as_array().unwrap().len(), 5);
    for q in [
        "limit=500",
        "cursor=nope",
        "message=nope",
        "identity=x",
        "begin=soon",
        "recipient=x%0Ay@home.example",
    ] {
        let (status, body) = app.get(&format!("/api/v1/events?{q}"), &viewer).await;
        assert_eq!(status, 422, "{q}: {body}");
        assert!(body["error"]["field"].is_string(), "{q}: {body}");
    }

    // The CSV report holds the same rows as the JSON for the same filter.
    let filter = format!("{RANGE}&event=failed OR delivered");
    let (_, json_page) = app
        .get(&format!("/api/v1/events?{filter}&limit=300"), &viewer)
        .await;
    let res = app
        .client
        .get(app.url(&format!("/api/v1/events.csv?{filter}")))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let rows = parse_csv(&res.text().await.unwrap());
    assert_eq!(rows[0][0], "id");
    let items = json_page["items"].as_array().unwrap();
    assert_eq!(rows.len() - 1, items.len());
    assert_eq!(items.len(), 6);
    for (row, item) in rows[1..].iter().zip(items) {
        assert_eq!(row[0], item["id"].as_str().unwrap());
        assert_eq!(row[2], item["event"].as_str().unwrap());
        assert_eq!(row[5], item["recipient"].as_str().unwrap());
        assert_eq!(
            row[7],
            item["message"]["headers"]["subject"].as_str().unwrap()
        );
        assert_eq!(
            row[10],
            item["delivery-status"]["code"]
                .as_u64()
                .map(|c| c.to_string())
                .unwrap_or_default()
        );
        assert_eq!(row[3], item["severity"].as_str().unwrap_or_default());
    }
    // Identity events are in the tenant's activity log (not in a domain's
    // Mailgun log), found by the identity filter.
    let identity = herald_domain::IdentityId::new();
    let store = app.herald().store();
    let tx = store.begin().await.unwrap();
    events::insert(
        tx.conn(),
        &Event::for_identity(
            t.id.parse().unwrap(),
            identity,
            EventKind::TokenRefreshed,
            Some("access token refreshed".into()),
        ),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (_, mine) = app
        .get(&format!("/api/v1/events?identity={identity}"), &viewer)
        .await;
    let mine = mine["items"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["event"], "token_refreshed");
    assert_eq!(mine[0]["herald"]["identity"], identity.to_string());
    let (_, v3_log) = v3(
        &app,
        &t,
        &format!("/v3/{}/events?event=token_refreshed", t.domain),
    )
    .await;
    assert_eq!(v3_log["items"], json!([]));

    // A refused filter is a 422 before any CSV is written.
    let res = app
        .client
        .get(app.url("/api/v1/events.csv?event=bogus"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn events_past_the_retention_are_purged_per_tenant() {
    let app = TestApp::api_only().await;
    let short = app.tenant("evshort").await;
    let long = app.tenant("evlong").await;
    // The seeded events are weeks old (November 1st); add fresh ones.
    seed(&app, &short).await;
    seed(&app, &long).await;
    let (status, body) = app
        .send(
            Method::PATCH,
            "/api/v1/tenant",
            &short.admin_key,
            Some(json!({"event_retention_days": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event_retention_days"], 1);
    // The long tenant keeps its events 30 days past the seeded day,
    // however long ago that is when the test runs.
    let seeded_days_ago = (Timestamp::now().as_micros() - T0) / 86_400_000_000;
    let long_days = seeded_days_ago + 30;
    let (status, body) = app
        .send(
            Method::PATCH,
            "/api/v1/tenant",
            &long.admin_key,
            Some(json!({"event_retention_days": long_days})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for bad in [0, 3651, -1] {
        let (status, _) = app
            .send(
                Method::PATCH,
                "/api/v1/tenant",
                &short.admin_key,
                Some(json!({"event_retention_days": bad})),
            )
            .await;
        assert_eq!(status, 422, "{bad}");
    }
    // A fresh send keeps events that are inside the retention.
    let res = app
        .client
        .post(app.url(&format!("/v3/{}/messages", short.domain)))
        .basic_auth("api", Some(&short.admin_key))
        .form(&[
            ("from", format!("office@{}", short.domain)),
            ("to", "fresh@home.example".to_owned()),
            ("subject", "Today".to_owned()),
            ("text", "hi".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Small batches: the purge loops until nothing old is left.
    let deleted = app.herald().purge_events(3).await.unwrap();
    assert_eq!(
        deleted, 10,
        "only the short tenant's old events go (the long one keeps {long_days} days, and the seeded day is {seeded_days_ago} days ago)"
    );
    let (_, left) = app.get("/api/v1/events?limit=300", &short.admin_key).await;
    let left = left["items"].as_array().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["event"], "accepted");
    assert_eq!(left[0]["recipient"], "fresh@home.example");
    let (_, kept) = app.get("/api/v1/events?limit=300", &long.admin_key).await;
    assert_eq!(kept["items"].as_array().unwrap().len(), 10);
    // Nothing more to do.
    assert_eq!(app.herald().purge_events(3).await.unwrap(), 0);
}

#[tokio::test]
async fn sent_mail_appears_in_the_log_within_a_second() {
    let app = TestApp::spawn().await;
    let t = app.tenant("evlive").await;
    let res = app
        .client
        .post(app.url(&format!("/v3/{}/messages", t.domain)))
        .basic_auth("api", Some(&t.admin_key))
        .form(&[
            ("from", format!("office@{}", t.domain)),
            ("to", "parent@home.example".to_owned()),
            ("subject", "Live".to_owned()),
            ("text", "hi".to_owned()),
            ("o:tag", "live".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sent: Value = res.json().await.unwrap();
    let header = sent["id"]
        .as_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned();
    // accepted is committed with the message; delivered (the sandbox
    // profile) follows from the worker.
    let (_, page) = v3(
        &app,
        &t,
        &format!("/v3/{}/events?message-id={header}&event=accepted", t.domain),
    )
    .await;
    assert_eq!(ids(&page).len(), 1);
    let mut kinds = Vec::new();
    for _ in 0..20 {
        let (_, page) = v3(
            &app,
            &t,
            &format!("/v3/{}/events?message-id={header}&ascending=yes", t.domain),
        )
        .await;
        kinds = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["event"].as_str().unwrap().to_owned())
            .collect();
        if kinds.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(kinds, ["accepted", "delivered"]);
}

#[tokio::test]
async fn suppression_lists_on_v3_and_v1_and_the_pipeline_obeys_them() {
    let app = TestApp::api_only().await;
    let t = app.tenant("supp").await;
    let other = app.tenant("suppother").await;
    let d = &t.domain;
    let sender = app.key(&t, "sender").await;
    let viewer = app.key(&t, "viewer").await;

    // /v3: add as JSON (many) and as a form (one).
    let res = app
        .client
        .post(app.url(&format!("/v3/{d}/bounces")))
        .basic_auth("api", Some(&t.admin_key))
        .json(&json!([
            {"address": "Bounced@Home.example", "code": "550", "error": "5.1.1 unknown",
             "created_at": "Mon, 02 Nov 2026 10:00:00 UTC"},
            {"address": "full@home.example", "code": 552}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["message"],
        "2 addresses have been added to the bounces table"
    );
    let res = app
        .client
        .post(app.url(&format!("/v3/{d}/unsubscribes")))
        .basic_auth("api", Some(&sender))
        .form(&[("address", "news@home.example"), ("tag", "newsletter")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, one) = v3(&app, &t, &format!("/v3/{d}/bounces/bounced@home.example")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        one,
        json!({"address": "Bounced@home.example", "code": "550", "error": "5.1.1 unknown",
               "created_at": "Mon, 02 Nov 2026 10:00:00 UTC"})
    );
    let (_, unsubs) = v3(&app, &t, &format!("/v3/{d}/unsubscribes")).await;
    assert_eq!(unsubs["items"][0]["tags"], json!(["newsletter"]));
    // Bad entries: 400, and nothing of the request is stored.
    for bad in [
        json!([{"address": "ok@home.example"}, {"address": "not an address"}]),
        json!([{"address": "x@home.example", "code": "5500"}]),
        json!([{"address": "x@home.example\r\nBcc: y@z.example"}]),
        json!([{"address": "x@home.example", "colour": "blue"}]),
        json!("x@home.example"),
    ] {
        let res = app
            .client
            .post(app.url(&format!("/v3/{d}/bounces")))
            .basic_auth("api", Some(&t.admin_key))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"address": format!("many{i}@home.example")}))
        .collect();
    let res = app
        .client
        .post(app.url(&format!("/v3/{d}/bounces")))
        .basic_auth("api", Some(&t.admin_key))
        .json(&too_many)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "more than 1,000 entries at once");
    let (_, all) = v3(&app, &t, &format!("/v3/{d}/bounces")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    // Unknown list, other tenant's domain, missing address.
    assert_eq!(v3(&app, &t, &format!("/v3/{d}/whatever")).await.0, 404);
    assert_eq!(
        v3_with(&app, &other.admin_key, &format!("/v3/{d}/bounces"))
            .await
            .0,
        404
    );
    let (status, body) = v3(&app, &t, &format!("/v3/{d}/complaints/nobody@home.example")).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Address not found in complaints table");
    // Another tenant's lists are its own.
    let (_, theirs) = v3_with(
        &app,
        &other.admin_key,
        &format!("/v3/{}/bounces", other.domain),
    )
    .await;
    assert_eq!(theirs["items"], json!([]));

    // The pipeline: a bounced address is rejected; the tag-scoped
    // unsubscribe stops only mail with that tag.
    let send = |to: &'static str, tag: &'static str| {
        let app = &app;
        let t = &t;
        async move {
            let res = app
                .client
                .post(app.url(&format!("/v3/{}/messages", t.domain)))
                .basic_auth("api", Some(&t.admin_key))
                .form(&[
                    ("from", format!("office@{}", t.domain)),
                    ("to", to.to_owned()),
                    ("subject", "Hello".to_owned()),
                    ("text", "hi".to_owned()),
                    ("o:tag", tag.to_owned()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let v: Value = res.json().await.unwrap();
            v["id"]
                .as_str()
                .unwrap()
                .trim_matches(['<', '>'])
                .to_owned()
        }
    };
    let verdict = |header: String| {
        let app = &app;
        let t = &t;
        async move {
            let (_, page) = v3(
                app,
                t,
                &format!("/v3/{}/events?message-id={header}", t.domain),
            )
            .await;
            let item = page["items"][0].clone();
            (
                item["event"].as_str().unwrap().to_owned(),
                item["reason"].as_str().map(str::to_owned),
            )
        }
    };
    let h = send("BOUNCED@home.example", "report").await;
    assert_eq!(
        verdict(h).await,
        ("rejected".to_owned(), Some("suppress-bounce".to_owned()))
    );
    let h = send("news@home.example", "newsletter").await;
    assert_eq!(
        verdict(h).await,
        (
            "rejected".to_owned(),
            Some("suppress-unsubscribe".to_owned())
        )
    );
    let h = send("news@home.example", "report").await;
    assert_eq!(verdict(h).await, ("accepted".to_owned(), None));

    // /api/v1: list with a cursor, add, get, delete (admins only).
    let (status, added) = app
        .send(
            Method::POST,
            "/api/v1/suppressions",
            &sender,
            Some(json!({"kind": "complaint", "address": "angry@home.example"})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["kind"], "complaint");
    let (status, _) = app
        .send(
            Method::POST,
            "/api/v1/suppressions",
            &viewer,
            Some(json!({"kind": "complaint", "address": "x@home.example"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/suppressions",
            &sender,
            Some(json!({"kind": "complaint", "address": "x@home.example", "code": "550"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/suppressions",
            &sender,
            Some(json!({"kind": "bounce", "address": "x@home.example\r\nBcc: y@z.example"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    // Another tenant can neither delete nor see this tenant's entry.
    let (status, _) = app
        .send(
            Method::DELETE,
            "/api/v1/suppressions/complaint/angry@home.example",
            &other.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get("/api/v1/suppressions/complaint/angry@home.example", &viewer)
        .await;
    assert_eq!(status, 200, "still listed");
    let (_, p1) = app
        .get("/api/v1/suppressions?kind=bounce&limit=1", &viewer)
        .await;
    assert_eq!(p1["items"][0]["address"], "Bounced@home.example");
    let c = p1["next_cursor"].as_str().unwrap().to_owned();
    let (_, p2) = app
        .get(
            &format!("/api/v1/suppressions?kind=bounce&limit=1&cursor={c}"),
            &viewer,
        )
        .await;
    assert_eq!(p2["items"][0]["address"], "full@home.example");
    assert!(p2["next_cursor"].is_null());
    let (status, _) = app.get("/api/v1/suppressions?kind=nonsense", &viewer).await;
    assert_eq!(status, 422);
    let (status, _) = app
        .send(
            Method::DELETE,
            "/api/v1/suppressions/bounce/full@home.example",
            &sender,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            Method::DELETE,
            "/api/v1/suppressions/bounce/full@home.example",
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(
            Method::DELETE,
            "/api/v1/suppressions/bounce/full@home.example",
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Another tenant cannot see or delete this tenant's entries.
    let (status, _) = app
        .get(
            "/api/v1/suppressions/bounce/bounced@home.example",
            &other.admin_key,
        )
        .await;
    assert_eq!(status, 404);
    // /v3 delete-all clears one list.
    let res = app
        .client
        .delete(app.url(&format!("/v3/{d}/bounces")))
        .basic_auth("api", Some(&t.admin_key))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, none) = v3(&app, &t, &format!("/v3/{d}/bounces")).await;
    assert_eq!(none["items"], json!([]));
    let (_, still) = v3(&app, &t, &format!("/v3/{d}/complaints")).await;
    assert_eq!(still["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn mailgun_js_reads_events_and_suppressions_unchanged() {
    let app = TestApp::spawn().await;
    let t = app.tenant("mgjs").await;
    let begin = Timestamp::now().as_secs_f64().floor() - 1.0;
    let config = json!({
        "url": app.url(""),
        "key": t.admin_key,
        "domain": t.domain,
        "from": format!("School Office <office@{}>", t.domain),
        "recipients": ["p1@home.example", "p2@home.example", "p3@home.example"],
        "begin": begin,
    });
    let out = tokio::process::Command::new("node")
        .arg("mailgun-client.mjs")
        .arg(config.to_string())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/peers"))
        .output()
        .await
        .expect("node (scripts/test installs the peers with npm ci)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(r["sent"]["message"], "Queued. Thank you.");
    assert_eq!(r["accepted"], 3);
    // The walk forward and the walk back found the same events, each once:
    // three accepted and (the worker delivers through the sandbox
    // profile) up to three delivered.
    let forward: Vec<String> = serde_json::from_value(r["forward"].clone()).unwrap();
    let backward: Vec<String> = serde_json::from_value(r["backward"].clone()).unwrap();
    assert!(forward.len() >= 3, "{r}");
    assert_eq!(forward, backward);
    assert_eq!(
        forward.iter().collect::<HashSet<_>>().len(),
        forward.len(),
        "no event twice"
    );
    for link in ["first", "last", "next", "previous"] {
        assert!(r["firstPaging"][link]["url"].is_string(), "{link}: {r}");
    }
    assert!(
        r["deliveredOrFailed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e == "delivered" || e == "failed")
    );
    assert_eq!(
        r["bouncesAdded"]["message"],
        "3 addresses have been added to the bounces table"
    );
    let bounces = r["bounces"].as_array().unwrap();
    assert_eq!(bounces.len(), 3, "{r}");
    assert_eq!(bounces[0]["address"], "b1@gone.example");
    assert_eq!(bounces[0]["code"], 550);
    assert_eq!(bounces[1]["code"], 551);
    assert_eq!(bounces[2]["code"], 550, "a bounce without a code is a 550");
    assert!(bounces.iter().all(|b| b["created"] == true));
    assert_eq!(
        r["bouncesBack"],
        json!(["b1@gone.example", "b2@gone.example", "b3@gone.example"]),
        "walking back from the end sees every entry once"
    );
    assert_eq!(r["bounceOne"]["error"], "moved");
    assert_eq!(r["bounceDeleted"]["address"], "b1@gone.example");
    assert_eq!(r["unsubscribes"][0]["tags"], json!(["newsletter"]));
    assert_eq!(r["complaints"], json!(["c1@angry.example"]));
    assert_eq!(r["missing"], 404);
    // What the client removed is gone.
    let (_, left) = v3(&app, &t, &format!("/v3/{}/bounces", t.domain)).await;
    assert_eq!(left["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_portal_message_log_filters_and_downloads_the_report() {
    let app = TestApp::api_only().await;
    let t = app.tenant("evportal").await;
    let other = app.tenant("evportalb").await;
    seed(&app, &t).await;
    let clerk = app.user(&t, "clerk", "viewer").await;
    let get = |path: String, cookie: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(app.url(&path))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (status, html) = get(
        "/events?from=2026-11-01&to=2026-11-01&event=failed".into(),
        clerk.cookie.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<td>b@home.example</td>").count(), 2, "{html}");
    assert!(!html.contains("a@home.example"));
    assert!(html.contains("<td>bounce</td>"), "the reason is shown");
    // "Generate report" downloads the same filter as CSV in the session.
    let href = "/api/v1/events.csv?begin=1793491200&amp;end=1793577599&amp;event=failed";
    assert!(html.contains(href), "{html}");
    let (status, csv) = get(href.replace("&amp;", "&"), clerk.cookie.clone()).await;
    assert_eq!(status, 200);
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[2] == "failed" && r[5] == "b@home.example")
    );
    // Newest first, all of the day: m2's deliveries lead.
    let (_, all) = get("/events?from=2026-11-01".into(), clerk.cookie.clone()).await;
    assert_eq!(all.matches("<tr><td>").count(), 10);
    let first_row = all.find("<tr><td>").unwrap();
    assert!(
        all[first_row..].starts_with("<tr><td>2026-11-01T00:30:00"),
        "{all}"
    );
    // Bad input is explained, not a 500.
    let (status, bad) = get("/events?from=someday".into(), clerk.cookie.clone()).await;
    assert_eq!(status, 200);
    assert!(
        bad.contains("role=\"alert\"") && bad.contains("is not a date"),
        "{bad}"
    );
    // Another tenant's user sees none of it; no session goes to sign-in.
    let outsider = app.user(&other, "clerk", "viewer").await;
    let (_, theirs) = get("/events".into(), outsider.cookie).await;
    assert!(theirs.contains("No events match."));
    let res = app.client.get(app.url("/events")).send().await.unwrap();
    assert_eq!(res.status(), 303);
}
