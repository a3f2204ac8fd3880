use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::DbError;
use crate::model::{Job, LogLine, NewRun, Run, RunDetail, RunImage, Status, Step};
use crate::schema::MIGRATIONS;

/// A handle on the database. Cheap to share behind an `Arc`; statements are serialised through
/// one connection, which SQLite needs anyway for writes.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn status(row: &Row<'_>, idx: &str) -> rusqlite::Result<Status> {
    let s: String = row.get(idx)?;
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: &str) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

pub(crate) fn run_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: row.get("id")?,
        project: row.get("project")?,
        pipeline: row.get("pipeline")?,
        event: row.get("event")?,
        git_ref: row.get("git_ref")?,
        sha: row.get("sha")?,
        cause: row.get("cause")?,
        status: status(row, "status")?,
        reason: row.get("reason")?,
        context: json(row, "context")?,
        created_at: row.get("created_at")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
    })
}

fn job_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get("id")?,
        run_id: row.get("run_id")?,
        name: row.get("name")?,
        status: status(row, "status")?,
        reason: row.get("reason")?,
        needs: json(row, "needs")?,
        attempt: row.get("attempt")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
    })
}

fn step_row(row: &Row<'_>) -> rusqlite::Result<Step> {
    Ok(Step {
        id: row.get("id")?,
        job_id: row.get("job_id")?,
        idx: row.get("idx")?,
        name: row.get("name")?,
        status: status(row, "status")?,
        reason: row.get("reason")?,
        exit_code: row.get("exit_code")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
    })
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(&path).map_err(|source| DbError::Open {
            path: path.clone(),
            source,
        })?;
        Self::setup(conn, path)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self, DbError> {
        Self::setup(Connection::open_in_memory()?, PathBuf::from(":memory:"))
    }

    fn setup(conn: Connection, path: PathBuf) -> Result<Self, DbError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers (the UI, `drydock logs`) never block the writer; NORMAL sync is durable
        // across process crashes, which is what a run record needs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(DbError::TooNew {
                path,
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves a consistent SQLite connection (statements are
        // atomic), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- runs

    pub fn create_run(&self, new: &NewRun) -> Result<i64, DbError> {
        let conn = self.conn();
        let id = conn.query_row(
            "INSERT INTO runs (project, pipeline, event, git_ref, sha, cause, status, context, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8) RETURNING id",
            params![new.project, new.pipeline, new.event, new.git_ref, new.sha, new.cause, new.context.to_string(), new.created_at],
            |r| r.get(0),
        )?;
        Ok(id)
    }

    pub fn start_run(&self, run: i64, now: i64) -> Result<(), DbError> {
        let n = self.conn().execute(
            "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?2) WHERE id = ?1",
            params![run, now],
        )?;
        if n == 0 {
            Err(DbError::NoRun(run))
        } else {
            Ok(())
        }
    }

    pub fn finish_run(
        &self,
        run: i64,
        status: Status,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), DbError> {
        let n = self.conn().execute(
            "UPDATE runs SET status = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1",
            params![run, status.as_str(), reason, now],
        )?;
        if n == 0 {
            Err(DbError::NoRun(run))
        } else {
            Ok(())
        }
    }

    pub fn run(&self, run: i64) -> Result<Run, DbError> {
        self.conn()
            .query_row("SELECT * FROM runs WHERE id = ?1", params![run], run_row)
            .optional()?
            .ok_or(DbError::NoRun(run))
    }

    /// Most recent first; `project` filters when given.
    pub fn list_runs(&self, project: Option<&str>, limit: i64) -> Result<Vec<Run>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT * FROM runs WHERE (?1 IS NULL OR project = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![project, limit], run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn run_detail(&self, run: i64) -> Result<RunDetail, DbError> {
        let run_row = self.run(run)?;
        let jobs = self.jobs(run)?;
        let mut out = Vec::new();
        for j in jobs {
            let steps = self.steps(j.id)?;
            out.push((j, steps));
        }
        Ok(RunDetail {
            run: run_row,
            jobs: out,
            images: self.images(run)?,
        })
    }

    // ---- jobs

    pub fn create_job(&self, run: i64, name: &str, needs: &[String]) -> Result<i64, DbError> {
        let needs = serde_json::to_string(needs).map_err(|e| DbError::Corrupt {
            what: "needs",
            reason: e.to_string(),
        })?;
        Ok(self.conn().query_row(
            "INSERT INTO jobs (run_id, name, status, needs) VALUES (?1, ?2, 'queued', ?3) RETURNING id",
            params![run, name, needs],
            |r| r.get(0),
        )?)
    }

    pub fn set_job_status(
        &self,
        job: i64,
        status: Status,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), DbError> {
        let conn = self.conn();
        match status {
            Status::Running => conn.execute(
                "UPDATE jobs SET status = 'running', reason = NULL, started_at = ?2, finished_at = NULL WHERE id = ?1",
                params![job, now],
            )?,
            s if s.is_finished() => conn.execute(
                "UPDATE jobs SET status = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1",
                params![job, s.as_str(), reason, now],
            )?,
            s => conn.execute("UPDATE jobs SET status = ?2, reason = ?3 WHERE id = ?1", params![job, s.as_str(), reason])?,
        };
        Ok(())
    }

    pub fn jobs(&self, run: i64) -> Result<Vec<Job>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM jobs WHERE run_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![run], job_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn job_by_name(&self, run: i64, name: &str) -> Result<Job, DbError> {
        self.conn()
            .query_row(
                "SELECT * FROM jobs WHERE run_id = ?1 AND name = ?2",
                params![run, name],
                job_row,
            )
            .optional()?
            .ok_or_else(|| DbError::NoJob {
                run,
                job: name.to_string(),
            })
    }

    // ---- steps

    pub fn start_step(&self, job: i64, idx: i64, name: &str, now: i64) -> Result<i64, DbError> {
        Ok(self.conn().query_row(
            "INSERT INTO steps (job_id, idx, name, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)
             ON CONFLICT (job_id, idx) DO UPDATE SET name = excluded.name, status = 'running',
                 started_at = excluded.started_at, finished_at = NULL, exit_code = NULL, reason = NULL
             RETURNING id",
            params![job, idx, name, now],
            |r| r.get(0),
        )?)
    }

    pub fn finish_step(
        &self,
        step: i64,
        status: Status,
        exit_code: Option<i64>,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE steps SET status = ?2, exit_code = ?3, reason = ?4, finished_at = ?5 WHERE id = ?1",
            params![step, status.as_str(), exit_code, reason, now],
        )?;
        Ok(())
    }

    pub fn steps(&self, job: i64) -> Result<Vec<Step>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM steps WHERE job_id = ?1 ORDER BY idx")?;
        let rows = stmt.query_map(params![job], step_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- logs

    /// Appends already-masked lines; returns the sequence number of the last one.
    pub fn append_logs(
        &self,
        job: i64,
        step_idx: Option<i64>,
        stream: &str,
        ts: i64,
        lines: &[String],
    ) -> Result<i64, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM log_lines WHERE job_id = ?1",
            params![job],
            |r| r.get(0),
        )?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO log_lines (job_id, seq, step_idx, stream, ts, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for line in lines {
                seq += 1;
                stmt.execute(params![job, seq, step_idx, stream, ts, line])?;
            }
        }
        tx.commit()?;
        Ok(seq)
    }

    /// Lines of a job after sequence number `after` (0 for all), in order.
    pub fn logs(&self, job: i64, after: i64, limit: i64) -> Result<Vec<LogLine>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT job_id, seq, step_idx, stream, ts, line FROM log_lines WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![job, after, limit], |r| {
            Ok(LogLine {
                job_id: r.get(0)?,
                seq: r.get(1)?,
                step_idx: r.get(2)?,
                stream: r.get(3)?,
                ts: r.get(4)?,
                line: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- images

    pub fn record_image(&self, run: i64, image: &RunImage) -> Result<(), DbError> {
        let tags = serde_json::to_string(&image.tags).map_err(|e| DbError::Corrupt {
            what: "tags",
            reason: e.to_string(),
        })?;
        self.conn().execute(
            "INSERT INTO run_images (run_id, job, image, digest, tags, pushed, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![run, image.job, image.image, image.digest, tags, i64::from(image.pushed), image.reason],
        )?;
        Ok(())
    }

    pub fn images(&self, run: i64) -> Result<Vec<RunImage>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT job, image, digest, tags, pushed, reason FROM run_images WHERE run_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![run], |r| {
            Ok(RunImage {
                job: r.get(0)?,
                image: r.get(1)?,
                digest: r.get(2)?,
                tags: json(r, "tags")?,
                pushed: r.get::<_, i64>(4)? != 0,
                reason: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks every unfinished run and job as interrupted (a process that ran them died).
    /// Returns the ids of the runs affected.
    pub fn interrupt_unfinished(&self, reason: &str, now: i64) -> Result<Vec<i64>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids: Vec<i64> = {
            let mut stmt = tx
                .prepare("SELECT id FROM runs WHERE status IN ('queued', 'running') ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        tx.execute(
            "UPDATE steps SET status = 'interrupted', reason = ?1, finished_at = ?2 WHERE status = 'running'",
            params![reason, now],
        )?;
        tx.execute(
            "UPDATE jobs SET status = 'interrupted', reason = ?1, finished_at = ?2 WHERE status IN ('queued', 'running')",
            params![reason, now],
        )?;
        tx.execute(
            "UPDATE runs SET status = 'interrupted', reason = ?1, finished_at = ?2 WHERE status IN ('queued', 'running')",
            params![reason, now],
        )?;
        tx.commit()?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run() -> NewRun {
        NewRun {
            project: "demo".into(),
            pipeline: "drydock.yml".into(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            sha: "a".repeat(40),
            cause: "push to main".into(),
            context: serde_json::json!({"event_name": "push"}),
            created_at: 1,
        }
    }

    #[test]
    fn run_lifecycle_round_trips() {
        let db = Db::in_memory().unwrap();
        let run = db.create_run(&new_run()).unwrap();
        db.start_run(run, 2).unwrap();
        let test = db.create_job(run, "test", &[]).unwrap();
        let publish = db.create_job(run, "publish", &["test".into()]).unwrap();
        db.set_job_status(test, Status::Running, None, 3).unwrap();
        let step = db.start_step(test, 0, "run: pytest", 3).unwrap();
        db.append_logs(test, Some(0), "stdout", 4, &["one".into(), "two".into()])
            .unwrap();
        db.finish_step(step, Status::Failure, Some(1), Some("exit code 1"), 5)
            .unwrap();
        db.set_job_status(test, Status::Failure, Some("step 1 failed"), 5)
            .unwrap();
        db.set_job_status(
            publish,
            Status::Skipped,
            Some("needs test, which failed"),
            5,
        )
        .unwrap();
        db.record_image(
            run,
            &RunImage {
                job: "publish".into(),
                image: "app".into(),
                digest: "sha256:x".into(),
                tags: vec!["a:1".into()],
                pushed: false,
                reason: Some("not main".into()),
            },
        )
        .unwrap();
        db.finish_run(run, Status::Failure, Some("job test failed"), 6)
            .unwrap();

        let d = db.run_detail(run).unwrap();
        assert_eq!(d.run.status, Status::Failure);
        assert_eq!(d.jobs.len(), 2);
        assert_eq!(d.jobs[0].1[0].exit_code, Some(1));
        assert_eq!(d.jobs[1].0.needs, vec!["test".to_string()]);
        assert_eq!(
            d.jobs[1].0.reason.as_deref(),
            Some("needs test, which failed")
        );
        assert_eq!(d.images[0].tags, vec!["a:1".to_string()]);
        let logs = db.logs(test, 0, 100).unwrap();
        assert_eq!(
            logs.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(db.logs(test, 1, 100).unwrap().len(), 1);
        assert!(matches!(db.run(99), Err(DbError::NoRun(99))));
    }

    #[test]
    fn interrupted_runs_are_marked_not_lost() {
        let db = Db::in_memory().unwrap();
        let run = db.create_run(&new_run()).unwrap();
        db.start_run(run, 2).unwrap();
        let job = db.create_job(run, "build", &[]).unwrap();
        db.set_job_status(job, Status::Running, None, 3).unwrap();
        db.start_step(job, 0, "build", 3).unwrap();
        assert_eq!(
            db.interrupt_unfinished("server restarted", 9).unwrap(),
            vec![run]
        );
        let d = db.run_detail(run).unwrap();
        assert_eq!(d.run.status, Status::Interrupted);
        assert_eq!(d.jobs[0].0.status, Status::Interrupted);
        assert_eq!(d.jobs[0].1[0].status, Status::Interrupted);
    }

    #[test]
    fn reopening_a_file_keeps_data_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let id = Db::open(&path).unwrap().create_run(&new_run()).unwrap();
        assert_eq!(
            Db::open(&path).unwrap().run(id).unwrap().cause,
            "push to main"
        );
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Db::open(&path),
            Err(DbError::TooNew { found: 99, .. })
        ));
    }
}
