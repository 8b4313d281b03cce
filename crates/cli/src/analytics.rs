//! `evault analytics`: the vault's summary of its analytics events
//! (`GET /api/v1/analytics/summary`), one line per source and kind.

use serde_json::Value;

use crate::client::{Client, encode};
use crate::error::CliResult;
use crate::output::print_json;

pub struct Filters {
    pub source: Option<String>,
    pub kind: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// `min/mean/max unit` of a stats object, or `-`.
fn stats(s: &Value, unit: Option<&str>) -> String {
    if !s.is_object() {
        return "-".into();
    }
    let n = |k: &str| s[k].as_f64().map_or("?".into(), |x| format!("{x}"));
    let mut t = format!("{}/{}/{}", n("min"), n("mean"), n("max"));
    if let Some(u) = unit {
        t.push(' ');
        t.push_str(u);
    }
    t
}

pub fn summary(client: &Client, f: Filters, json_out: bool) -> CliResult {
    let q: Vec<String> = [
        ("source", f.source),
        ("kind", f.kind),
        ("since", f.since),
        ("until", f.until),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(&v))))
    .collect();
    let mut path = "/api/v1/analytics/summary".to_string();
    if !q.is_empty() {
        path = format!("{path}?{}", q.join("&"));
    }
    let reply: Value = client.get_json(&path)?;
    if json_out {
        print_json(&reply);
        return Ok(());
    }
    let groups = reply["groups"].as_array().cloned().unwrap_or_default();
    if groups.is_empty() {
        crate::say!("evault: no analytics events match");
        return Ok(());
    }
    println!(
        "{:<24}  {:<20}  {:>8}  {:<24}  {:<24}  VALUE min/mean/max",
        "SOURCE", "KIND", "COUNT", "FIRST", "LAST"
    );
    for g in &groups {
        let s = |k: &str| g[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<24}  {:<20}  {:>8}  {:<24}  {:<24}  {}",
            s("source"),
            s("kind"),
            g["count"],
            s("first"),
            s("last"),
            stats(&g["value"], g["unit"].as_str())
        );
        for (name, m) in g["metrics"].as_object().into_iter().flatten() {
            println!("    metric {name}: {}", stats(m, None));
        }
    }
    Ok(())
}
