//! The server's tables (`drydock serve`): projects and their sealed secrets, webhook deliveries
//! (replay protection), the queue's facts about each run, schedules' last ticks, build chains,
//! users, API tokens, sessions and watched upstream images.
//!
//! Secret values, webhook secrets and forge tokens arrive here sealed (encrypted by the
//! server); token and session values arrive hashed. Nothing here is plaintext.

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::{Db, DbError, Status};

/// A registered repository and how its runs are run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub repo_url: String,
    pub default_branch: String,
    /// Path of the pipeline file in the repository (`drydock.yml`).
    pub pipeline_file: String,
    /// Sealed.
    pub webhook_secret: Option<String>,
    /// `github`, `gitea`, `gitlab` or `generic`: where commit statuses go.
    pub forge: String,
    /// API base URL for commit statuses (`https://api.github.com`).
    pub status_api: Option<String>,
    /// `owner/name` (GitLab: the project path or id).
    pub status_repo: Option<String>,
    /// Sealed.
    pub status_token: Option<String>,
    /// Runs of this project at once (0: no limit of its own).
    pub max_runs: i64,
    /// Concurrency groups: `none`, `ref` (one run per ref at a time) or `project`.
    pub concurrency: String,
    /// A new run in a group cancels the older ones instead of waiting for them.
    pub cancel_in_progress: bool,
    /// After a crash: `requeue` the interrupted runs or `fail` them.
    pub on_interrupt: String,
    pub timeout_minutes: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: i64,
    pub project: String,
    pub group_key: Option<String>,
    pub only_job: Option<String>,
    pub chain_id: Option<i64>,
    pub chain_step: Option<i64>,
    /// The run this one re-runs.
    pub retry_of: Option<i64>,
    pub approved_by: Option<String>,
    /// JSON list of jobs kept from `retry_of` (passed there, not run again).
    pub keep_jobs: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub id: i64,
    pub name: String,
    pub project: String,
    pub repository: String,
    /// JSON list of steps.
    pub steps: String,
    pub delay_seconds: i64,
    pub cron: Option<String>,
    pub webhook_token_hash: String,
    /// `idle`, `waiting` (delay before a step), `running`, `success`, `failure`.
    pub status: String,
    pub reason: Option<String>,
    pub current_step: Option<i64>,
    pub current_run: Option<i64>,
    pub cause: Option<String>,
    pub coalesced: i64,
    pub next_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(skip_serializing)]
    pub password_hash: String,
    pub admin: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

fn project_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get("id")?,
        name: r.get("name")?,
        repo_url: r.get("repo_url")?,
        default_branch: r.get("default_branch")?,
        pipeline_file: r.get("pipeline_file")?,
        webhook_secret: r.get("webhook_secret")?,
        forge: r.get("forge")?,
        status_api: r.get("status_api")?,
        status_repo: r.get("status_repo")?,
        status_token: r.get("status_token")?,
        max_runs: r.get("max_runs")?,
        concurrency: r.get("concurrency")?,
        cancel_in_progress: r.get::<_, i64>("cancel_in_progress")? != 0,
        on_interrupt: r.get("on_interrupt")?,
        timeout_minutes: r.get("timeout_minutes")?,
        created_at: r.get("created_at")?,
    })
}

fn meta_row(r: &Row<'_>) -> rusqlite::Result<RunMeta> {
    Ok(RunMeta {
        run_id: r.get("run_id")?,
        project: r.get("project")?,
        group_key: r.get("group_key")?,
        only_job: r.get("only_job")?,
        chain_id: r.get("chain_id")?,
        chain_step: r.get("chain_step")?,
        retry_of: r.get("retry_of")?,
        approved_by: r.get("approved_by")?,
        keep_jobs: r.get("keep_jobs")?,
    })
}

fn chain_row(r: &Row<'_>) -> rusqlite::Result<Chain> {
    Ok(Chain {
        id: r.get("id")?,
        name: r.get("name")?,
        project: r.get("project")?,
        repository: r.get("repository")?,
        steps: r.get("steps")?,
        delay_seconds: r.get("delay_seconds")?,
        cron: r.get("cron")?,
        webhook_token_hash: r.get("webhook_token_hash")?,
        status: r.get("status")?,
        reason: r.get("reason")?,
        current_step: r.get("current_step")?,
        current_run: r.get("current_run")?,
        cause: r.get("cause")?,
        coalesced: r.get("coalesced")?,
        next_at: r.get("next_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        created_at: r.get("created_at")?,
    })
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get("id")?,
        name: r.get("name")?,
        password_hash: r.get("password_hash")?,
        admin: r.get::<_, i64>("admin")? != 0,
        created_at: r.get("created_at")?,
    })
}

fn token_row(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get("id")?,
        user_id: r.get("user_id")?,
        name: r.get("name")?,
        scopes: r.get("scopes")?,
        created_at: r.get("created_at")?,
        last_used_at: r.get("last_used_at")?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

impl Db {
    // ---- projects

    /// Inserts a project (its `id` and `created_at` are taken from the database and the
    /// argument). `Ok(None)` when the name is taken.
    pub fn create_project(&self, p: &Project) -> Result<Option<i64>, DbError> {
        let r = self.conn().query_row(
            "INSERT INTO projects (name, repo_url, default_branch, pipeline_file, webhook_secret, forge,
                 status_api, status_repo, status_token, max_runs, concurrency, cancel_in_progress,
                 on_interrupt, timeout_minutes, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING id",
            params![
                p.name, p.repo_url, p.default_branch, p.pipeline_file, p.webhook_secret, p.forge,
                p.status_api, p.status_repo, p.status_token, p.max_runs, p.concurrency,
                i64::from(p.cancel_in_progress), p.on_interrupt, p.timeout_minutes, p.created_at
            ],
            |r| r.get(0),
        );
        match r {
            Ok(id) => Ok(Some(id)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces every setting of the project with this name.
    pub fn update_project(&self, p: &Project) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE projects SET repo_url = ?2, default_branch = ?3, pipeline_file = ?4, webhook_secret = ?5,
                 forge = ?6, status_api = ?7, status_repo = ?8, status_token = ?9, max_runs = ?10,
                 concurrency = ?11, cancel_in_progress = ?12, on_interrupt = ?13, timeout_minutes = ?14
             WHERE name = ?1",
            params![
                p.name, p.repo_url, p.default_branch, p.pipeline_file, p.webhook_secret, p.forge,
                p.status_api, p.status_repo, p.status_token, p.max_runs, p.concurrency,
                i64::from(p.cancel_in_progress), p.on_interrupt, p.timeout_minutes
            ],
        )?;
        Ok(n > 0)
    }

    pub fn project(&self, name: &str) -> Result<Option<Project>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM projects WHERE name = ?1",
                params![name],
                project_row,
            )
            .optional()?)
    }

    pub fn projects(&self) -> Result<Vec<Project>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM projects ORDER BY name")?;
        let rows = stmt.query_map([], project_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_project(&self, name: &str) -> Result<bool, DbError> {
        Ok(self
            .conn()
            .execute("DELETE FROM projects WHERE name = ?1", params![name])?
            > 0)
    }

    // ---- project secrets (sealed values)

    pub fn put_secret(
        &self,
        project_id: i64,
        name: &str,
        sealed: &str,
        now: i64,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO project_secrets (project_id, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (project_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            params![project_id, name, sealed, now],
        )?;
        Ok(())
    }

    pub fn delete_secret(&self, project_id: i64, name: &str) -> Result<bool, DbError> {
        Ok(self.conn().execute(
            "DELETE FROM project_secrets WHERE project_id = ?1 AND name = ?2",
            params![project_id, name],
        )? > 0)
    }

    /// `(name, sealed value, updated_at)` of a project's secrets, by name.
    pub fn secrets(&self, project_id: i64) -> Result<Vec<(String, String, i64)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, sealed, updated_at FROM project_secrets WHERE project_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map(params![project_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Re-seals every sealed value (secrets, webhook secrets, forge tokens) in one
    /// transaction: `reseal` gets a sealed value and returns it sealed under the new key.
    /// Nothing changes unless every value re-seals. Returns how many values were re-sealed.
    pub fn reseal_all(
        &self,
        reseal: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Result<usize, String>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0usize;
        let secrets: Vec<(i64, String, String)> = {
            let mut stmt = tx.prepare("SELECT project_id, name, sealed FROM project_secrets")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?
        };
        for (pid, name, sealed) in secrets {
            let new = match reseal(&sealed) {
                Ok(v) => v,
                Err(e) => return Ok(Err(format!("secret {name} of project {pid}: {e}"))),
            };
            tx.execute(
                "UPDATE project_secrets SET sealed = ?3 WHERE project_id = ?1 AND name = ?2",
                params![pid, name, new],
            )?;
            n += 1;
        }
        let projects: Vec<(i64, String, Option<String>, Option<String>)> = {
            let mut stmt =
                tx.prepare("SELECT id, name, webhook_secret, status_token FROM projects")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?
        };
        for (id, name, hook, token) in projects {
            let mut redo = |v: Option<String>, what: &str| -> Result<Option<String>, String> {
                match v {
                    Some(s) => {
                        n += 1;
                        reseal(&s)
                            .map(Some)
                            .map_err(|e| format!("{what} of project {name}: {e}"))
                    }
                    None => Ok(None),
                }
            };
            let hook = match redo(hook, "webhook secret") {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let token = match redo(token, "status token") {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            tx.execute(
                "UPDATE projects SET webhook_secret = ?2, status_token = ?3 WHERE id = ?1",
                params![id, hook, token],
            )?;
        }
        tx.commit()?;
        Ok(Ok(n))
    }

    // ---- deliveries (replay protection)

    /// Records a delivery id; `false` when it was seen before (a replay: start nothing).
    pub fn record_delivery(
        &self,
        source: &str,
        delivery: &str,
        project: Option<&str>,
        event: Option<&str>,
        now: i64,
    ) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "INSERT INTO deliveries (source, delivery, project, event, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (source, delivery) DO NOTHING",
            params![source, delivery, project, event, now],
        )?;
        Ok(n > 0)
    }

    pub fn set_delivery_outcome(
        &self,
        source: &str,
        delivery: &str,
        outcome: &str,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE deliveries SET outcome = ?3 WHERE source = ?1 AND delivery = ?2",
            params![source, delivery, outcome],
        )?;
        Ok(())
    }

    /// Forgets a delivery (it was refused before anything started, so a corrected retry with
    /// the same id may run).
    pub fn forget_delivery(&self, source: &str, delivery: &str) -> Result<(), DbError> {
        self.conn().execute(
            "DELETE FROM deliveries WHERE source = ?1 AND delivery = ?2",
            params![source, delivery],
        )?;
        Ok(())
    }

    pub fn count_deliveries(&self) -> Result<i64, DbError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))?)
    }

    // ---- run meta (the queue)

    pub fn put_run_meta(&self, m: &RunMeta) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO run_meta (run_id, project, group_key, only_job, chain_id, chain_step, retry_of, approved_by, keep_jobs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![m.run_id, m.project, m.group_key, m.only_job, m.chain_id, m.chain_step, m.retry_of, m.approved_by, m.keep_jobs],
        )?;
        Ok(())
    }

    pub fn run_meta(&self, run: i64) -> Result<Option<RunMeta>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM run_meta WHERE run_id = ?1",
                params![run],
                meta_row,
            )
            .optional()?)
    }

    /// Runs with a given status, oldest first, with their queue facts.
    pub fn runs_with_status(&self, status: Status) -> Result<Vec<(i64, RunMeta)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT m.* FROM runs r JOIN run_meta m ON m.run_id = r.id WHERE r.status = ?1 ORDER BY r.id",
        )?;
        let rows = stmt.query_map(params![status.as_str()], |r| {
            let m = meta_row(r)?;
            Ok((m.run_id, m))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn count_runs(&self, project: Option<&str>) -> Result<i64, DbError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM runs WHERE (?1 IS NULL OR project = ?1)",
            params![project],
            |r| r.get(0),
        )?)
    }

    /// Most recent first, before run id `before` when given (paging).
    pub fn list_runs_page(
        &self,
        project: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<crate::Run>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT * FROM runs WHERE (?1 IS NULL OR project = ?1) AND (?2 IS NULL OR id < ?2)
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![project, before, limit], crate::db::run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// After a crash: every run that was `running` is marked interrupted with its running jobs
    /// and steps; queued jobs of those runs too. Runs still `queued` (never started) stay
    /// queued. Returns the ids of the interrupted runs.
    pub fn interrupt_running(&self, reason: &str, now: i64) -> Result<Vec<i64>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids: Vec<i64> = {
            let mut stmt =
                tx.prepare("SELECT id FROM runs WHERE status = 'running' ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in &ids {
            tx.execute(
                "UPDATE steps SET status = 'interrupted', reason = ?2, finished_at = ?3
                 WHERE status = 'running' AND job_id IN (SELECT id FROM jobs WHERE run_id = ?1)",
                params![id, reason, now],
            )?;
            tx.execute(
                "UPDATE jobs SET status = 'interrupted', reason = ?2, finished_at = ?3
                 WHERE run_id = ?1 AND status IN ('queued', 'running')",
                params![id, reason, now],
            )?;
            tx.execute(
                "UPDATE runs SET status = 'interrupted', reason = ?2, finished_at = ?3 WHERE id = ?1",
                params![id, reason, now],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Settles every unfinished job of a run that will not run (cancelled before it started).
    pub fn settle_unfinished_jobs(
        &self,
        run: i64,
        status: Status,
        reason: &str,
        now: i64,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE jobs SET status = ?2, reason = ?3, finished_at = ?4 WHERE run_id = ?1 AND status IN ('queued', 'running')",
            params![run, status.as_str(), reason, now],
        )?;
        Ok(())
    }

    /// Sets the reason of a run (kept status).
    pub fn set_run_reason(&self, run: i64, reason: &str) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE runs SET reason = ?2 WHERE id = ?1",
            params![run, reason],
        )?;
        Ok(())
    }

    /// Log lines of a job: how many there are (for pages that show the end of a long log).
    pub fn count_logs(&self, job: i64) -> Result<i64, DbError> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM log_lines WHERE job_id = ?1",
            params![job],
            |r| r.get(0),
        )?)
    }

    // ---- schedules

    /// When `owner`'s schedule `spec` last fired (`None`: never seen).
    pub fn schedule_last_fired(&self, owner: &str, spec: &str) -> Result<Option<i64>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT last_fired FROM schedules WHERE owner = ?1 AND spec = ?2",
                params![owner, spec],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_schedule_fired(&self, owner: &str, spec: &str, at: i64) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO schedules (owner, spec, last_fired) VALUES (?1, ?2, ?3)
             ON CONFLICT (owner, spec) DO UPDATE SET last_fired = excluded.last_fired",
            params![owner, spec, at],
        )?;
        Ok(())
    }

    // ---- chains

    pub fn create_chain(&self, c: &Chain) -> Result<Option<i64>, DbError> {
        let r = self.conn().query_row(
            "INSERT INTO chains (name, project, repository, steps, delay_seconds, cron, webhook_token_hash,
                 status, coalesced, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'idle', 0, ?8) RETURNING id",
            params![c.name, c.project, c.repository, c.steps, c.delay_seconds, c.cron, c.webhook_token_hash, c.created_at],
            |r| r.get(0),
        );
        match r {
            Ok(id) => Ok(Some(id)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn chain(&self, name: &str) -> Result<Option<Chain>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM chains WHERE name = ?1",
                params![name],
                chain_row,
            )
            .optional()?)
    }

    pub fn chain_by_id(&self, id: i64) -> Result<Option<Chain>, DbError> {
        Ok(self
            .conn()
            .query_row("SELECT * FROM chains WHERE id = ?1", params![id], chain_row)
            .optional()?)
    }

    pub fn chains(&self) -> Result<Vec<Chain>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM chains ORDER BY name")?;
        let rows = stmt.query_map([], chain_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes the progress fields of a chain.
    pub fn update_chain_state(&self, c: &Chain) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE chains SET status = ?2, reason = ?3, current_step = ?4, current_run = ?5, cause = ?6,
                 coalesced = ?7, next_at = ?8, started_at = ?9, finished_at = ?10
             WHERE id = ?1",
            params![c.id, c.status, c.reason, c.current_step, c.current_run, c.cause, c.coalesced, c.next_at, c.started_at, c.finished_at],
        )?;
        Ok(())
    }

    pub fn delete_chain(&self, name: &str) -> Result<bool, DbError> {
        Ok(self
            .conn()
            .execute("DELETE FROM chains WHERE name = ?1", params![name])?
            > 0)
    }

    /// Runs made for a chain, newest first.
    pub fn chain_runs(
        &self,
        chain: i64,
        limit: i64,
    ) -> Result<Vec<(RunMeta, crate::Run)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT m.run_id AS m_run_id, r.* FROM run_meta m JOIN runs r ON r.id = m.run_id
             WHERE m.chain_id = ?1 ORDER BY r.id DESC LIMIT ?2",
        )?;
        let ids: Vec<i64> = stmt
            .query_map(params![chain, limit], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        drop(conn);
        let mut out = Vec::new();
        for id in ids {
            if let Some(m) = self.run_meta(id)? {
                out.push((m, self.run(id)?));
            }
        }
        Ok(out)
    }

    // ---- users, tokens, sessions

    pub fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        admin: bool,
        now: i64,
    ) -> Result<Option<i64>, DbError> {
        let r = self.conn().query_row(
            "INSERT INTO users (name, password_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![name, password_hash, i64::from(admin), now],
            |r| r.get(0),
        );
        match r {
            Ok(id) => Ok(Some(id)),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn set_user_password(&self, name: &str, password_hash: &str) -> Result<bool, DbError> {
        Ok(self.conn().execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, password_hash],
        )? > 0)
    }

    pub fn user(&self, name: &str) -> Result<Option<User>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM users WHERE name = ?1",
                params![name],
                user_row,
            )
            .optional()?)
    }

    pub fn user_by_id(&self, id: i64) -> Result<Option<User>, DbError> {
        Ok(self
            .conn()
            .query_row("SELECT * FROM users WHERE id = ?1", params![id], user_row)
            .optional()?)
    }

    pub fn users(&self) -> Result<Vec<User>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM users ORDER BY name")?;
        let rows = stmt.query_map([], user_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        scopes: &str,
        now: i64,
    ) -> Result<i64, DbError> {
        Ok(self.conn().query_row(
            "INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            params![user_id, name, token_hash, scopes, now],
            |r| r.get(0),
        )?)
    }

    /// The token with this hash and its user; records its use.
    pub fn token_by_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(ApiToken, User)>, DbError> {
        let t = self
            .conn()
            .query_row(
                "SELECT * FROM api_tokens WHERE token_hash = ?1",
                params![token_hash],
                token_row,
            )
            .optional()?;
        let Some(t) = t else { return Ok(None) };
        self.conn().execute(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
            params![t.id, now],
        )?;
        Ok(self.user_by_id(t.user_id)?.map(|u| (t, u)))
    }

    pub fn tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiToken>, DbError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT * FROM api_tokens WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id")?;
        let rows = stmt.query_map(params![user_id], token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_token(&self, id: i64) -> Result<bool, DbError> {
        Ok(self
            .conn()
            .execute("DELETE FROM api_tokens WHERE id = ?1", params![id])?
            > 0)
    }

    pub fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
            params![token_hash, user_id, expires_at],
        )?;
        Ok(())
    }

    pub fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<User>, DbError> {
        let uid: Option<i64> = self
            .conn()
            .query_row(
                "SELECT user_id FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
                params![token_hash, now],
                |r| r.get(0),
            )
            .optional()?;
        match uid {
            Some(id) => self.user_by_id(id),
            None => Ok(None),
        }
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<(), DbError> {
        self.conn().execute(
            "DELETE FROM sessions WHERE token_hash = ?1",
            params![token_hash],
        )?;
        Ok(())
    }

    // ---- job outputs (for re-running only the failed jobs)

    /// Records what a passed job of `run` left (JSON, the engine's kept-job record).
    pub fn put_job_output(&self, run: i64, job: &str, kept: &str) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO job_outputs (run_id, job, kept) VALUES (?1, ?2, ?3)
             ON CONFLICT (run_id, job) DO UPDATE SET kept = excluded.kept",
            params![run, job, kept],
        )?;
        Ok(())
    }

    /// `(job, kept JSON)` of a run's passed jobs.
    pub fn job_outputs(&self, run: i64) -> Result<Vec<(String, String)>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT job, kept FROM job_outputs WHERE run_id = ?1 ORDER BY job")?;
        let rows = stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets the jobs a queued run keeps from an earlier one (JSON).
    pub fn set_keep_jobs(&self, run: i64, keep: &str) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE run_meta SET keep_jobs = ?2 WHERE run_id = ?1",
            params![run, keep],
        )?;
        Ok(())
    }

    // ---- watched upstream images

    pub fn watched_digest(&self, reference: &str) -> Result<Option<Option<String>>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT digest FROM watched_images WHERE reference = ?1",
                params![reference],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_watched_digest(
        &self,
        reference: &str,
        digest: Option<&str>,
        now: i64,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO watched_images (reference, digest, checked_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (reference) DO UPDATE SET digest = excluded.digest, checked_at = excluded.checked_at",
            params![reference, digest, now],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str) -> Project {
        Project {
            id: 0,
            name: name.into(),
            repo_url: "file:///tmp/r".into(),
            default_branch: "main".into(),
            pipeline_file: "drydock.yml".into(),
            webhook_secret: Some("sealed".into()),
            forge: "github".into(),
            status_api: None,
            status_repo: None,
            status_token: None,
            max_runs: 0,
            concurrency: "ref".into(),
            cancel_in_progress: false,
            on_interrupt: "requeue".into(),
            timeout_minutes: None,
            created_at: 1,
        }
    }

    #[test]
    fn projects_secrets_and_deliveries() {
        let db = Db::in_memory().unwrap();
        let id = db.create_project(&project("a")).unwrap().unwrap();
        assert_eq!(db.create_project(&project("a")).unwrap(), None);
        db.put_secret(id, "K", "s1", 1).unwrap();
        db.put_secret(id, "K", "s2", 2).unwrap();
        assert_eq!(db.secrets(id).unwrap(), vec![("K".into(), "s2".into(), 2)]);
        let n = db.reseal_all(&|s| Ok(format!("new:{s}"))).unwrap().unwrap();
        assert_eq!(n, 2);
        assert_eq!(db.secrets(id).unwrap()[0].1, "new:s2");
        assert_eq!(
            db.project("a").unwrap().unwrap().webhook_secret.as_deref(),
            Some("new:sealed")
        );
        // A failure re-seals nothing.
        assert!(db.reseal_all(&|_| Err("bad".into())).unwrap().is_err());
        assert_eq!(db.secrets(id).unwrap()[0].1, "new:s2");
        assert!(db.record_delivery("github", "d1", None, None, 1).unwrap());
        assert!(!db.record_delivery("github", "d1", None, None, 2).unwrap());
        assert!(db.record_delivery("gitea", "d1", None, None, 2).unwrap());
    }

    #[test]
    fn interrupt_running_keeps_queued_runs() {
        let db = Db::in_memory().unwrap();
        let new = crate::NewRun {
            project: "a".into(),
            pipeline: "drydock.yml".into(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            sha: "a".repeat(40),
            cause: "push".into(),
            context: serde_json::json!({}),
            created_at: 1,
        };
        let r1 = db.create_run(&new).unwrap();
        let r2 = db.create_run(&new).unwrap();
        db.start_run(r1, 2).unwrap();
        let j = db.create_job(r1, "a", &[]).unwrap();
        db.set_job_status(j, Status::Running, None, 2).unwrap();
        assert_eq!(db.interrupt_running("crash", 3).unwrap(), vec![r1]);
        assert_eq!(db.run(r1).unwrap().status, Status::Interrupted);
        assert_eq!(db.run(r2).unwrap().status, Status::Queued);
    }
}
