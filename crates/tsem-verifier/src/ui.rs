//! The verifier's web page: every host and workload with its verdict (`/`), and per workload its
//! forensic events explained, its state history and its learning and forensics curves as charts
//! (`/ui/workloads/{name}`). Rendered on the server as HTML with inline SVG: no script at all
//! (the Content-Security-Policy forbids any), readable on a phone. Everything shown that came
//! from attesters (reasons, forensic descriptions, host names) is HTML-escaped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::protocol::{self, Status};
use crate::server::App;
use crate::store::PageEntry;

/// History entries a workload page reads (the charts and the table).
const PAGE_ENTRIES: i64 = 500;
/// History rows the table shows, newest first.
const TABLE_ROWS: usize = 50;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;color:#1b1b1b;\
background:#fafafa;max-width:60rem}h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.4rem;\
border-bottom:1px solid #ddd;vertical-align:top;overflow-wrap:anywhere}\
.v{font-weight:600;padding:.1rem .4rem;border-radius:.3rem;white-space:nowrap}\
.affirming{background:#d4f4dd;color:#0b5d1e}.warning{background:#fff1c2;color:#7a5200}\
.contraindicated{background:#ffd6d6;color:#8a0000}.stale{background:#e4e4e4;color:#444}\
.none{background:#e8eefc;color:#233d7a}svg{width:100%;height:auto;background:#fff;\
border:1px solid #ddd}.muted{color:#666;font-size:.9rem}pre{white-space:pre-wrap;\
overflow-wrap:anywhere;font-size:.8rem}p{overflow-wrap:anywhere}@media(max-width:40rem){.wide{display:none}}";

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

fn refused(code: StatusCode, msg: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

fn badge(verdict: &str) -> String {
    let class = match verdict {
        "affirming" | "warning" | "contraindicated" | "stale" => verdict,
        _ => "none",
    };
    format!("<span class=\"v {class}\">{}</span>", esc(verdict))
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (days to civil date: Howard Hinnant's
/// algorithm).
pub fn utc(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn when(t: u64) -> String {
    format!("<span class=\"muted\">{}</span>", utc(t))
}

/// The attested host of each workload's latest appraisal.
fn hosts(latest: &[(String, String)]) -> HashMap<String, String> {
    latest
        .iter()
        .filter_map(|(w, a)| {
            let v: serde_json::Value = serde_json::from_str(a).ok()?;
            Some((w.clone(), v["claims"]["host"].as_str()?.to_string()))
        })
        .collect()
}

/// `GET /`: hosts and workloads with their verdicts.
pub(crate) async fn index(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.cfg.private_status && crate::server::refuse_reader(&app, &headers).is_some() {
        return refused(
            StatusCode::FORBIDDEN,
            "this verifier keeps verdicts private (--private-status): use the REST API with the admin token",
        );
    }
    let now = tsem_attest::now_unix();
    let (status, latest) = match (
        app.store.status(now, None).await,
        app.store.latest_attestations().await,
    ) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) | (_, Err(e)) => return crate::server::internal(e),
    };
    let hosts = hosts(&latest);
    let mut rows: Vec<(&str, &Status)> = status
        .iter()
        .map(|s| {
            (
                hosts
                    .get(&s.workload)
                    .map_or("(not attested yet)", String::as_str),
                s,
            )
        })
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1.workload).cmp(&(b.0, &b.1.workload)));
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, s) in &rows {
        *count.entry(s.verdict.as_str()).or_default() += 1;
    }
    let mut b = format!(
        "<h1>tsem verifier</h1><p class=\"muted\">{} workload(s) at {}: {}. Verifier {}.</p>",
        rows.len(),
        utc(now),
        ["affirming", "warning", "contraindicated", "stale", "none"]
            .iter()
            .map(|v| format!("{} {v}", count.get(v).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", "),
        esc(&app.cfg.id)
    );
    b.push_str(
        "<table id=\"workloads\"><tr><th>Host</th><th>Workload</th><th>Verdict</th>\
         <th class=\"wide\">Reason</th><th class=\"wide\">Since</th></tr>",
    );
    for (host, s) in &rows {
        let _ = write!(
            b,
            "<tr class=\"workload\" data-workload=\"{w}\" data-verdict=\"{v}\"><td>{h}</td>\
             <td><a href=\"/ui/workloads/{w}\">{w}</a></td><td>{badge}</td>\
             <td class=\"wide\">{r}</td><td class=\"wide\">{t}</td></tr>",
            w = esc(&s.workload),
            v = esc(&s.verdict),
            h = esc(host),
            badge = badge(&s.verdict),
            r = esc(&s.reason),
            t = when(s.at),
        );
    }
    b.push_str("</table>");
    page("tsem verifier", &b)
}

/// One forensic description, explained in a sentence; the description itself follows.
pub fn explain_forensic(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return "a forensic event whose description is not JSON (kept as posted)".into();
    };
    let ty = v["event"]["type"].as_str().unwrap_or("event");
    let process = v["event"]["process"].as_str().unwrap_or("?");
    let uid = v["COE"]["uid"].as_str().unwrap_or("?");
    let object = find_str(&v[ty], "pathname")
        .or_else(|| find_str(&v[ty], "address"))
        .map(|o| format!(" on {o}"))
        .unwrap_or_default();
    format!(
        "{process} (uid {uid}) did {ty}{object}: in none of the workload's models, so it is a \
         forensic point: under enforcement it was denied, and it makes the state differ from the \
         model's."
    )
}

fn find_str(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .or_else(|| m.values().find_map(|x| find_str(x, key))),
        _ => None,
    }
}

/// A line chart of `series` (label, colour, values) over the same x positions.
fn line_chart(title: &str, series: &[(&str, &str, Vec<f64>)]) -> String {
    let (w, h, pad) = (600.0, 160.0, 30.0);
    let n = series.iter().map(|s| s.2.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .fold(1.0f64, f64::max);
    let x = |i: usize| pad + (w - 2.0 * pad) * (i as f64) / ((n.max(2) - 1) as f64);
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v / max;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{top}\" font-size=\"10\">{max}</text>\
         <text x=\"2\" y=\"{b}\" font-size=\"10\">0</text>",
        t = esc(title),
        b = h - pad,
        r = w - pad,
        top = pad,
    );
    for (k, (label, colour, vals)) in series.iter().enumerate() {
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"14\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            pts.join(" "),
            pad + 150.0 * k as f64,
            esc(label)
        );
        // A mark per value: one attestation is a point, not an invisible line.
        for (i, v) in vals.iter().enumerate() {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                x(i),
                y(*v)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// The state history as a step chart: one mark per entry at its verdict's level.
fn verdict_chart(entries: &[PageEntry]) -> String {
    let level = |v: &str| match v {
        "affirming" => 4.0,
        "warning" => 3.0,
        "none" => 2.0,
        "stale" => 1.0,
        _ => 0.0,
    };
    let (w, h, pad) = (600.0, 140.0, 30.0);
    let n = entries.len().max(2);
    let x = |i: usize| pad + 80.0 + (w - 2.0 * pad - 80.0) * (i as f64) / ((n - 1) as f64);
    let y = |l: f64| h - pad - (h - 2.0 * pad) * l / 4.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"state history\">\
         <title>state history</title>"
    );
    for name in ["affirming", "warning", "none", "stale", "contraindicated"] {
        let _ = write!(
            s,
            "<text x=\"2\" y=\"{:.1}\" font-size=\"10\">{name}</text>",
            y(level(name)) + 3.0
        );
    }
    let pts: Vec<String> = entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            let l = y(level(&e.verdict));
            let next = x(i + 1).min(w - pad);
            [format!("{:.1},{l:.1}", x(i)), format!("{next:.1},{l:.1}")]
        })
        .collect();
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"#233d7a\" stroke-width=\"2\" points=\"{}\"/></svg>",
        pts.join(" ")
    );
    s
}

/// `GET /ui/workloads/{name}`.
pub(crate) async fn workload(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if app.cfg.private_status && crate::server::refuse_reader(&app, &headers).is_some() {
        return refused(
            StatusCode::FORBIDDEN,
            "this verifier keeps verdicts private (--private-status)",
        );
    }
    if let Err(e) = protocol::check_name(&name) {
        return refused(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let now = tsem_attest::now_unix();
    let (status, entries) = match (
        app.store.status(now, Some(&name)).await,
        app.store.latest_entries(&name, PAGE_ENTRIES).await,
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return crate::server::internal(e),
    };
    let Some(st) = status.into_iter().next() else {
        return refused(
            StatusCode::NOT_FOUND,
            &format!("workload {name:?} is not enrolled"),
        );
    };
    let mut b = format!(
        "<p><a href=\"/\">all workloads</a></p><h1>{w}</h1>\
         <p id=\"verdict\" data-verdict=\"{v}\">{badge} {r}</p>",
        w = esc(&name),
        v = esc(&st.verdict),
        badge = badge(&st.verdict),
        r = esc(&st.reason)
    );
    b.push_str("<h2>State history</h2>");
    b.push_str(&verdict_chart(&entries));
    let claims: Vec<serde_json::Value> = entries
        .iter()
        .filter_map(|e| e.attestation.as_deref())
        .filter_map(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .map(|v| v["claims"].clone())
        .collect();
    let num = |c: &serde_json::Value, k: &str| c[k].as_u64().unwrap_or(0) as f64;
    b.push_str("<h2>Learning and forensics</h2>");
    b.push_str(&line_chart(
        "points and forensic events per attestation",
        &[
            (
                "points",
                "#0b5d1e",
                claims.iter().map(|c| num(c, "points")).collect(),
            ),
            (
                "forensic events",
                "#8a0000",
                claims.iter().map(|c| num(c, "forensics_events")).collect(),
            ),
        ],
    ));
    let _ = write!(
        b,
        "<p class=\"muted\">{} attestation(s) among the latest {} entries.</p>",
        claims.len(),
        entries.len()
    );
    b.push_str("<h2>Forensics</h2>");
    let latest = entries.iter().rev().find(|e| e.attestation.is_some());
    let forensics: Vec<String> = latest
        .and_then(|e| e.forensics.as_deref())
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or_default();
    if forensics.is_empty() {
        b.push_str("<p>None in the latest attestation.</p>");
    } else {
        b.push_str("<ol id=\"forensics\">");
        for f in &forensics {
            let _ = write!(
                b,
                "<li>{}<details><summary>description</summary><pre>{}</pre></details></li>",
                esc(&explain_forensic(f)),
                esc(f)
            );
        }
        b.push_str("</ol>");
    }
    b.push_str(
        "<h2>History</h2><table><tr><th>#</th><th>At</th><th>Verdict</th><th>Reason</th></tr>",
    );
    for e in entries.iter().rev().take(TABLE_ROWS) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.id,
            when(e.at),
            badge(&e.verdict),
            esc(&e.reason)
        );
    }
    b.push_str("</table>");
    page(&format!("{name} · tsem verifier"), &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_attesters_is_escaped() {
        assert_eq!(
            esc("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert!(badge("<b>").contains("class=\"v none\""));
        assert!(!badge("<b>").contains("<b>"));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_035_639), "2026-11-30 10:47:19 UTC");
    }

    #[test]
    fn forensics_are_explained() {
        let line = r#"{"event": {"process": "cat", "type": "file_open"}, "COE": {"uid": "0"},
            "file_open": {"file": {"path": {"pathname": "/etc/shadow"}}}}"#;
        let e = explain_forensic(line);
        assert!(
            e.starts_with("cat (uid 0) did file_open on /etc/shadow"),
            "{e}"
        );
        assert!(explain_forensic("not json").contains("not JSON"));
    }

    #[test]
    fn charts_are_svg_with_one_point_per_value() {
        let c = line_chart("t", &[("a", "#000", vec![1.0, 2.0, 3.0])]);
        assert!(c.starts_with("<svg") && c.ends_with("</svg>"));
        assert_eq!(c.matches(',').count(), 3);
        assert!(line_chart("t", &[("a", "#000", vec![])]).ends_with("</svg>"));
    }
}
