//! The keys of every mapping in `drydock.yml`, with a description each. The parser checks keys
//! against these tables and the JSON Schema is generated from them, so both stay in step.

pub(crate) type Keys = &'static [(&'static str, &'static str)];

pub(crate) const PIPELINE: Keys = &[
    (
        "on",
        "Events that start the pipeline. Default: push to any branch or tag, and pull_request.",
    ),
    ("env", "Environment variables for every job."),
    ("images", "Images the pipeline builds and pushes, by name."),
    ("secrets", "Named secret groups a job may ask for."),
    (
        "jobs",
        "The jobs, by name; they run in parallel where `needs` allows.",
    ),
];

pub(crate) const ON: Keys = &[
    (
        "push",
        "Run on pushes to branches and tags matching the filters.",
    ),
    (
        "pull_request",
        "Run on pull requests whose base branch matches the filters.",
    ),
    ("schedule", "Run on cron schedules."),
    (
        "image",
        "Run when one of these upstream images changes digest.",
    ),
    ("manual", "Allow manual runs."),
    ("workflow_dispatch", "Allow manual runs (GitHub's name)."),
];

pub(crate) const PUSH: Keys = &[
    ("branches", "Branch patterns to run on."),
    ("branches-ignore", "Branch patterns not to run on."),
    ("tags", "Tag patterns to run on."),
    ("tags-ignore", "Tag patterns not to run on."),
    (
        "paths",
        "Run only when a changed file matches one of these patterns.",
    ),
    (
        "paths-ignore",
        "Do not run when every changed file matches these patterns.",
    ),
];

pub(crate) const PULL_REQUEST: Keys = &[
    ("branches", "Base branch patterns to run on."),
    ("branches-ignore", "Base branch patterns not to run on."),
    (
        "paths",
        "Run only when a changed file matches one of these patterns.",
    ),
    (
        "paths-ignore",
        "Do not run when every changed file matches these patterns.",
    ),
];

pub(crate) const SCHEDULE: Keys = &[
    ("cron", "Five-field cron expression, or @daily and friends."),
    (
        "timezone",
        "UTC (default), a fixed offset such as +02:00, or a zone without daylight saving time.",
    ),
];

pub(crate) const IMAGE: Keys = &[
    (
        "context",
        "Build context directory, or a git URL `<url>#<ref>:<subdir>`. Default `.`.",
    ),
    (
        "dockerfile",
        "Dockerfile path. Default `<context>/Dockerfile`.",
    ),
    ("target", "Stage to build."),
    (
        "args",
        "Build arguments (never secrets: use `secrets` and `--secret`).",
    ),
    ("platforms", "Platforms such as linux/amd64."),
    ("repositories", "Repositories to push to."),
    ("tags", "docker/metadata-action `tags` input."),
    ("flavor", "docker/metadata-action `flavor` input."),
    (
        "labels",
        "Extra labels (override the generated OCI labels).",
    ),
    (
        "push",
        "Expression deciding whether `push:` steps push. Default true.",
    ),
];

pub(crate) const SECRET_GROUP: Keys = &[
    ("keys", "Names of the secrets in this group."),
    ("allow", "Where the group may be used."),
];

pub(crate) const ALLOW: Keys = &[
    ("branches", "Branch patterns allowed."),
    (
        "events",
        "Events allowed (push, pull_request, schedule, image, manual).",
    ),
    ("projects", "Projects allowed (on a server)."),
    ("jobs", "Jobs allowed."),
];

pub(crate) const JOB: Keys = &[
    (
        "image",
        "Image to run the steps in; omitted: the host shell.",
    ),
    (
        "services",
        "Containers started next to the job, reachable by name.",
    ),
    ("steps", "What the job does, in order."),
    ("needs", "Jobs that must succeed first."),
    ("if", "Expression deciding whether the job runs."),
    (
        "on",
        "Event filters for this job (same syntax as the top-level `on`).",
    ),
    ("env", "Environment variables for the job's steps."),
    ("persist", "Paths handed to later jobs."),
    ("timeout-minutes", "Time limit for the job."),
    (
        "continue-on-error",
        "A failure of this job does not fail the run.",
    ),
    (
        "working-directory",
        "Default working directory of `run` steps.",
    ),
    ("shell", "Default shell of `run` steps."),
    (
        "secrets",
        "Secret groups the job gets as environment variables.",
    ),
    (
        "outputs",
        "Values handed to the jobs that need this one (`needs.<job>.outputs.<name>`), evaluated when the job ends; usually `${{ steps.<id>.outputs.<name> }}`.",
    ),
];

pub(crate) const SERVICE: Keys = &[
    ("image", "Image of the service."),
    ("env", "Environment of the service."),
    ("ready", "Command that succeeds once the service is ready."),
    (
        "timeout",
        "How long to wait for `ready` (e.g. 30s, 2m). Default 60s.",
    ),
    ("ports", "Ports the service listens on."),
    ("command", "Command to run instead of the image's default."),
];

pub(crate) const STEP: Keys = &[
    ("run", "Shell command(s)."),
    ("build", "Build an image of `images`."),
    ("push", "Push an image of `images` with its computed tags."),
    (
        "attach",
        "Restore files persisted by needed jobs: true, or a list of job names.",
    ),
    ("name", "Name shown in logs."),
    ("id", "Identifier for `steps.<id>`."),
    ("if", "Expression deciding whether the step runs."),
    ("env", "Environment variables for the step."),
    ("working-directory", "Working directory of a `run` step."),
    ("shell", "Shell of a `run` step."),
    (
        "continue-on-error",
        "A failure of this step does not fail the job.",
    ),
    ("timeout-minutes", "Time limit for the step."),
];

pub(crate) fn names(keys: Keys) -> Vec<&'static str> {
    keys.iter().map(|(k, _)| *k).collect()
}
