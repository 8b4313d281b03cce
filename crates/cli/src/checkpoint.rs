//! `evault checkpoint`: print one of the log's signed checkpoints.

use crate::client::Client;

pub fn show(client: &Client, size: Option<u64>) -> Result<(), String> {
    let path = match size {
        Some(n) => format!("/api/v1/checkpoints/{n}"),
        None => "/api/v1/checkpoints/latest".to_string(),
    };
    print!("{}", client.get_text(&path, "text/plain")?);
    Ok(())
}
