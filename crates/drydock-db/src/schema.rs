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
    // 2: the server (drydock serve): projects and their sealed secrets, webhook deliveries,
    // the queue's facts about each run, schedules, build chains, users, API tokens, sessions,
    // watched upstream images.
    "
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        repo_url TEXT NOT NULL,
        default_branch TEXT NOT NULL,
        pipeline_file TEXT NOT NULL,
        webhook_secret TEXT,
        forge TEXT NOT NULL,
        status_api TEXT,
        status_repo TEXT,
        status_token TEXT,
        max_runs INTEGER NOT NULL,
        concurrency TEXT NOT NULL,
        cancel_in_progress INTEGER NOT NULL,
        on_interrupt TEXT NOT NULL,
        timeout_minutes INTEGER,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE project_secrets (
        project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sealed TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (project_id, name)
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        delivery TEXT NOT NULL,
        project TEXT,
        event TEXT,
        received_at BIGINT NOT NULL,
        outcome TEXT,
        UNIQUE (source, delivery)
    );
    CREATE TABLE run_meta (
        run_id BIGINT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
        project TEXT NOT NULL,
        group_key TEXT,
        only_job TEXT,
        chain_id BIGINT,
        chain_step INTEGER,
        retry_of BIGINT,
        approved_by TEXT,
        keep_jobs TEXT
    );
    CREATE TABLE schedules (
        owner TEXT NOT NULL,
        spec TEXT NOT NULL,
        last_fired BIGINT NOT NULL,
        PRIMARY KEY (owner, spec)
    );
    CREATE TABLE chains (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        project TEXT NOT NULL,
        repository TEXT NOT NULL,
        steps TEXT NOT NULL,
        delay_seconds BIGINT NOT NULL,
        cron TEXT,
        webhook_token_hash TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        current_step INTEGER,
        current_run BIGINT,
        cause TEXT,
        coalesced BIGINT NOT NULL,
        next_at BIGINT,
        started_at BIGINT,
        finished_at BIGINT,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        admin INTEGER NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE watched_images (
        reference TEXT PRIMARY KEY,
        digest TEXT,
        checked_at BIGINT NOT NULL
    );
    CREATE INDEX runs_by_status ON runs (status, id);
    ",
    // 3: what each job of a server run left for later runs (re-running only the failed jobs
    // keeps the passed ones with what they persisted).
    "
    CREATE TABLE job_outputs (
        run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        job TEXT NOT NULL,
        kept TEXT NOT NULL,
        PRIMARY KEY (run_id, job)
    );
    ",
];
