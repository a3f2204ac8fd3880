//! The OpenAPI 3.1 description of the REST API, served at `/api/openapi.json`. Hand-written;
//! a test keeps it in step with the router ([`crate::http::API_ROUTES`]).

use serde_json::{Value, json};

fn op(summary: &str, scope: &str, params: &[&str], body: Option<&str>, ok: &str) -> Value {
    let mut parameters: Vec<Value> = Vec::new();
    for p in params {
        let (name, inn) = match p.strip_prefix('?') {
            Some(q) => (q, "query"),
            None => (*p, "path"),
        };
        parameters.push(json!({
            "name": name, "in": inn, "required": inn == "path",
            "schema": {"type": if matches!(name, "id" | "before" | "limit" | "after") {"integer"} else {"string"}}
        }));
    }
    let mut o = json!({
        "summary": summary,
        "parameters": parameters,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"}
        },
        "x-scope": scope,
    });
    if let Some(b) = body {
        o["requestBody"] = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}});
    }
    o
}

pub fn spec() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "drydock server API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Projects, runs, logs, chains, the embedded registry's contents, users and tokens. Authenticate with `Authorization: Bearer <API token>` (scopes read, run, admin), HTTP Basic with a user's password, or the UI's session cookie. Webhooks (`/hooks/...`) authenticate by signature."
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"}
            },
            "responses": {
                "Error": {"description": "what went wrong", "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}}
            },
            "schemas": {
                "Project": {"type": "object", "properties": {
                    "name": {"type": "string"}, "repo_url": {"type": "string"}, "default_branch": {"type": "string"},
                    "pipeline_file": {"type": "string"}, "webhook_secret": {"type": "string", "writeOnly": true},
                    "forge": {"enum": ["github", "gitea", "forgejo", "gitlab", "generic"]},
                    "status_api": {"type": "string"}, "status_repo": {"type": "string"}, "status_token": {"type": "string", "writeOnly": true},
                    "max_runs": {"type": "integer"}, "concurrency": {"enum": ["none", "ref", "project"]},
                    "cancel_in_progress": {"type": "boolean"}, "on_interrupt": {"enum": ["requeue", "fail"]},
                    "timeout_minutes": {"type": "integer"},
                    "secrets": {"type": "object", "additionalProperties": {"type": "string"}, "writeOnly": true}
                }},
                "Secret": {"type": "object", "required": ["value"], "properties": {"value": {"type": "string", "writeOnly": true}}},
                "Trigger": {"type": "object", "properties": {"ref": {"type": "string"}, "job": {"type": "string"}}},
                "Rerun": {"type": "object", "properties": {"failed_only": {"type": "boolean"}}},
                "Chain": {"type": "object", "required": ["name", "project", "repository", "steps"], "properties": {
                    "name": {"type": "string"}, "project": {"type": "string"}, "repository": {"type": "string"},
                    "steps": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"tag": {"type": "string"}, "job": {"type": "string"}}}]}},
                    "delay_seconds": {"type": "integer"}, "cron": {"type": "string"}
                }},
                "User": {"type": "object", "required": ["name", "password"], "properties": {"name": {"type": "string"}, "password": {"type": "string", "writeOnly": true}, "admin": {"type": "boolean"}}},
                "Token": {"type": "object", "required": ["name", "scopes"], "properties": {"name": {"type": "string"}, "scopes": {"type": "string", "description": "space-separated: read run admin"}}}
            }
        },
        "security": [{"token": []}, {"basic": []}],
        "paths": {
            "/api/openapi.json": {"get": op("this document", "none", &[], None, "200")},
            "/api/whoami": {"get": op("the caller and its scopes", "read", &[], None, "200")},
            "/api/projects": {
                "get": op("list projects", "read", &[], None, "200"),
                "post": op("register a project", "admin", &[], Some("Project"), "201")
            },
            "/api/projects/{name}": {
                "get": op("a project (secrets by name only)", "read", &["name"], None, "200"),
                "patch": op("change a project's settings", "admin", &["name"], Some("Project"), "200"),
                "delete": op("remove a project", "admin", &["name"], None, "200")
            },
            "/api/projects/{name}/secrets": {"get": op("secret names", "read", &["name"], None, "200")},
            "/api/projects/{name}/secrets/{key}": {
                "put": op("set a secret (stored encrypted)", "admin", &["name", "key"], Some("Secret"), "200"),
                "delete": op("remove a secret", "admin", &["name", "key"], None, "200")
            },
            "/api/projects/{name}/runs": {"post": op("start a manual run", "run", &["name"], Some("Trigger"), "201")},
            "/api/runs": {"get": op("runs, newest first", "read", &["?project", "?before", "?limit"], None, "200")},
            "/api/runs/{id}": {"get": op("a run with jobs, steps and images", "read", &["id"], None, "200")},
            "/api/runs/{id}/cancel": {"post": op("cancel a run", "run", &["id"], None, "200")},
            "/api/runs/{id}/rerun": {"post": op("run again (same event and commit)", "run", &["id"], Some("Rerun"), "201")},
            "/api/runs/{id}/approve": {"post": op("approve a fork's pull request: run again with secrets", "admin", &["id"], None, "201")},
            "/api/runs/{id}/jobs/{job}/logs": {"get": op("a job's log lines (masked)", "read", &["id", "job", "?after", "?limit"], None, "200")},
            "/api/runs/{id}/jobs/{job}/events": {"get": op("a job's log as server-sent events (line, end)", "read", &["id", "job", "?after"], None, "200")},
            "/api/chains": {
                "get": op("build chains and their progress", "read", &[], None, "200"),
                "post": op("define a build chain (answers its webhook token once)", "admin", &[], Some("Chain"), "201")
            },
            "/api/chains/{name}": {
                "get": op("a chain", "read", &["name"], None, "200"),
                "delete": op("remove a chain", "admin", &["name"], None, "200")
            },
            "/api/chains/{name}/start": {"post": op("start a chain (coalesced while it runs)", "run", &["name"], None, "202")},
            "/api/registry/repositories": {"get": op("the embedded registry's repositories", "read", &[], None, "200")},
            "/api/registry/tags": {"get": op("a repository's tags with digests", "read", &["?repository"], None, "200")},
            "/api/users": {
                "get": op("users", "admin", &[], None, "200"),
                "post": op("add a user", "admin", &[], Some("User"), "201")
            },
            "/api/tokens": {
                "get": op("API tokens (values are never shown again)", "read", &[], None, "200"),
                "post": op("create an API token (answers its value once)", "read", &[], Some("Token"), "201")
            },
            "/api/tokens/{id}": {"delete": op("revoke a token", "read", &["id"], None, "200")},
            "/api/secrets/rotate": {"post": op("rotate the secrets key, re-encrypting every value", "admin", &[], None, "200")},
            "/hooks/{project}/{forge}": {"post": op("a forge's webhook delivery (github, gitea, forgejo, gitlab, generic); 401 bad signature, 400 malformed, 200 replay or nothing to run, 202 runs started", "signature", &["project", "forge"], None, "202")},
            "/hooks/chains/{name}/dockerhub": {"post": op("Docker Hub-shaped push notification advancing a chain; 422 when the tag or repository does not fit", "token", &["name", "?token"], None, "202")}
        }
    })
}
