//! First start: with no users, an `admin` user is made with the configured password or a
//! random one written to `<data>/initial-admin-password` (mode 0600), and an admin API token
//! is written to `<data>/admin-token` (0600) for the CLI on the same machine.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::app::{App, ServerError};
use crate::auth;
use crate::util::{now_ms, random_hex};

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

pub fn first_admin(app: &App) -> Result<(), ServerError> {
    if !app.db.users()?.is_empty() {
        return Ok(());
    }
    let data = &app.cfg.data_dir;
    let password = match &app.cfg.admin_password {
        Some(p) => p.clone(),
        None => {
            let p = random_hex(12);
            write_private(&data.join("initial-admin-password"), &format!("{p}\n"))?;
            p
        }
    };
    app.db
        .create_user("admin", &auth::hash_password(&password), true, now_ms())?;
    let user = app
        .db
        .user("admin")?
        .ok_or_else(|| ServerError::Other("admin user vanished".into()))?;
    let scopes: Vec<String> = auth::SCOPES.iter().map(|s| s.to_string()).collect();
    let (_, token) = auth::create_token(&app.db, &user, "local admin (first start)", &scopes)?
        .map_err(ServerError::Other)?;
    write_private(&data.join("admin-token"), &format!("{token}\n"))?;
    tracing::info!(
        "first start: user admin created; API token in {}",
        data.join("admin-token").display()
    );
    Ok(())
}
