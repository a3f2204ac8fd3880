//! Shared by `drydock project` and `drydock remote`: a small JSON client of a drydock server's
//! API (`--server`/DRYDOCK_SERVER, `--token`/DRYDOCK_TOKEN, else DRYDOCK_HOME/admin-token).

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use serde_json::Value;

#[derive(Debug, Clone, ClapArgs)]
pub struct ServerArgs {
    /// The server's URL.
    #[arg(
        long,
        env = "DRYDOCK_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// An API token (default: DRYDOCK_HOME/admin-token, written at the server's first start).
    #[arg(long, env = "DRYDOCK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl ApiClient {
    pub fn new(a: &ServerArgs) -> anyhow::Result<ApiClient> {
        drydock_server::install_crypto_provider();
        let token = a.token.clone().or_else(|| {
            std::fs::read_to_string(crate::home::drydock_home().join("admin-token"))
                .ok()
                .map(|t| t.trim().to_string())
        });
        Ok(ApiClient {
            base: a.server.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .context("HTTP client")?,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("async runtime")?,
        })
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).context("method")?;
        let mut req = self.http.request(m, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .with_context(|| format!("{method} {url}"))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
            if !status.is_success() {
                let msg = v
                    .get("error")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or(text);
                bail!("{method} {path}: {status}: {msg}");
            }
            Ok(v)
        })
    }
}
