//! Migrations, applied in order; `PRAGMA user_version` records how many ran.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: runs, jobs, steps, logs, images
    "
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        project TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        event TEXT NOT NULL,
        git_ref TEXT NOT NULL,
        sha TEXT NOT NULL,
        cause TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        context TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT
    );
    CREATE INDEX runs_by_project ON runs (project, id);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        needs TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        started_at BIGINT,
        finished_at BIGINT,
        UNIQUE (run_id, name)
    );
    CREATE TABLE steps (
        id INTEGER PRIMARY KEY,
        job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        exit_code INTEGER,
        started_at BIGINT,
        finished_at BIGINT,
        UNIQUE (job_id, idx)
    );
    CREATE TABLE log_lines (
        job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        step_idx INTEGER,
        stream TEXT NOT NULL,
        ts BIGINT NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE run_images (
        id INTEGER PRIMARY KEY,
        run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        job TEXT NOT NULL,
        image TEXT NOT NULL,
        digest TEXT NOT NULL,
        tags TEXT NOT NULL,
        pushed INTEGER NOT NULL,
        reason TEXT
    );
    ",
];
