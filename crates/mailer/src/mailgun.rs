//! Sending through the Mailgun HTTP API (`POST /v3/{domain}/messages`).

use std::time::{Duration, Instant};

use herald_crypto::SecretString;
use herald_domain::MailgunRelay;

use crate::Diagnosis;

/// The outcome of one API call.
pub struct MailgunReport {
    pub result: Result<String, Diagnosis>,
    pub transcript: Vec<String>,
    pub elapsed: Duration,
}

/// A message in Mailgun's form fields.
pub struct MailgunMessage<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
}

fn failure(code: &'static str, message: String, sender_auth: bool) -> Diagnosis {
    Diagnosis {
        code,
        message,
        sender_auth,
    }
}

/// Posts one message built from form fields (a test send or a notice).
pub async fn send(
    client: &reqwest::Client,
    relay: &MailgunRelay,
    api_key: &SecretString,
    msg: &MailgunMessage<'_>,
) -> MailgunReport {
    let url = format!("{}/v3/{}/messages", relay.api_base(), relay.domain);
    let req = client.post(&url).form(&[
        ("from", msg.from),
        ("to", msg.to),
        ("subject", msg.subject),
        ("text", msg.text),
    ]);
    call(relay, api_key, &url, req).await
}

/// Posts a message Herald built itself (`messages.mime`): the MIME bytes
/// as the `message` file and the envelope recipients as `to`.
pub async fn send_mime(
    client: &reqwest::Client,
    relay: &MailgunRelay,
    api_key: &SecretString,
    to: &[&str],
    mime: Vec<u8>,
) -> MailgunReport {
    let url = format!("{}/v3/{}/messages.mime", relay.api_base(), relay.domain);
    let form = reqwest::multipart::Form::new()
        .text("to", to.join(","))
        .part(
            "message",
            reqwest::multipart::Part::bytes(mime).file_name("message.mime"),
        );
    call(relay, api_key, &url, client.post(&url).multipart(form)).await
}

/// Sends a prepared request with the API key and reads Mailgun's answer.
/// The API key never appears in the transcript.
async fn call(
    relay: &MailgunRelay,
    api_key: &SecretString,
    url: &str,
    req: reqwest::RequestBuilder,
) -> MailgunReport {
    let started = Instant::now();
    let mut transcript = vec![format!("C: POST {url} (HTTP Basic api:********)")];
    let res = req
        .basic_auth("api", Some(api_key.expose()))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let result = match res {
        Err(e) if e.is_timeout() => Err(failure(
            "timeout",
            format!("{} did not answer within 30 s", relay.api_base()),
            false,
        )),
        Err(e) if e.is_connect() => Err(failure(
            "connection_refused",
            format!("could not connect to {}: {e}", relay.api_base()),
            false,
        )),
        Err(e) => Err(failure("connection_lost", e.to_string(), false)),
        Ok(res) => {
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            let snippet: String = body.chars().take(300).collect();
            transcript.push(format!("S: HTTP {} {}", status.as_u16(), snippet));
            match status.as_u16() {
                200..=299 => Ok(serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                    .unwrap_or_default()),
                401 | 403 => Err(failure(
                    "bad_credentials",
                    "Mailgun refused the API key. Check the key and the region (US or EU).".into(),
                    true,
                )),
                404 => Err(failure(
                    "mailgun_domain",
                    format!(
                        "Mailgun does not know the domain {} in this region ({}).",
                        relay.domain,
                        relay.api_base()
                    ),
                    true,
                )),
                400 => Err(failure(
                    "rejected",
                    format!("Mailgun refused the message: {snippet}"),
                    false,
                )),
                s if s >= 500 || s == 429 => Err(failure(
                    "temporary_failure",
                    format!("Mailgun answered {s}; try again later."),
                    false,
                )),
                s => Err(failure(
                    "rejected",
                    format!("Mailgun answered {s}: {snippet}"),
                    false,
                )),
            }
        }
    };
    MailgunReport {
        result,
        transcript,
        elapsed: started.elapsed(),
    }
}
